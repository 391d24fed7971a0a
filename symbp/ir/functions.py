"""The elementwise functions, one record each: what symbp knows of a function apart from any
backend.

A record gives a function's arity, its value at numbers (constants the spec computes are
folded with it), its value on NumPy arrays (the reference interpreter's meaning), the
derivative with respect to each argument, its closed form in sympy (the tests' reference),
and its cost. Formulas are spec notation over the arguments ``x`` (and ``y``, ``z``) and
``f``, the function's own value: the derivative of the sigmoid reads ``f * (1 - f)``, so the
gradient reuses the forward value.

A function may be given by a ``formula`` alone: its value, derivative and sympy form are
then the formula's, and each backend spells it as a helper computing the formula. Adding
such a function is one row here. Each backend's table of spellings
(``symbp.backends.numpy.printer``, ``symbp.backends.c.names``) extends the usual one: a
NumPy ufunc of the same name, a C99 function of the same name, or the formula's helper.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

Number = Fraction | float


@dataclass(frozen=True)
class Function:
    """An elementwise function; the fields left None follow from ``formula`` (and ``sympy``,
    failing that, is sympy's function of the same name).

    ``evaluate`` takes and returns Python numbers (a Fraction where the result is exact); it
    raises ValueError outside the domain (a result that is no real number), ZeroDivisionError
    at a pole, OverflowError beyond the floats. ``reference`` computes on NumPy arrays as
    NumPy would, infinities and NaN included. ``sympy(sp, *args)`` builds the closed form
    with the sympy module ``sp``.
    """

    name: str
    arity: int = 1
    formula: str | None = None
    derivatives: tuple[str, ...] | None = None  # d/d argument i, over x, y, z and f
    evaluate: Callable[..., Number] | None = None
    reference: Callable[..., np.ndarray] | None = None
    sympy: Callable | None = None
    costly: bool = True  # worth computing once (cse) and reusing (specialize)
    positive: bool = False  # its values are above 0 everywhere
    in_spec: bool = True  # False: made by differentiation only (the derivatives of kinks)
    operator: str | None = None  # the spec's infix spelling (a comparison: "<"), not a call
    mask: bool = False  # its values are 0 and 1 only


def _exp(x: Number) -> Number:
    return 1 if x == 0 else math.exp(x)


def _log(x: Number) -> Number:
    if x == 0:
        raise ZeroDivisionError("log(0)")
    if isinstance(x, Fraction) and x > 0:
        f = float(x)
        if f >= sys.float_info.min:  # a normal float: log1p near 1 keeps the digits
            return math.log1p(float(x - 1)) if 0.5 < f < 2 else math.log(f)
        return math.log(x.numerator) - math.log(x.denominator)  # 2**-1075 is no float
    return math.log(x)


def _sqrt(x: Number) -> Number:
    if isinstance(x, Fraction) and x >= 0:  # exact for the squares of rationals
        p, q = math.isqrt(x.numerator), math.isqrt(x.denominator)
        if p * p == x.numerator and q * q == x.denominator:
            return Fraction(p, q)
    return math.sqrt(x)


def _sigmoid(x: Number) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _softplus(x: Number) -> float:
    return max(float(x), 0.0) + math.log1p(math.exp(-abs(x)))


# maximum, minimum, clip, where and the comparisons. At a tie the gradient follows torch and
# JAX (SPEC.md, section 5): maximum(a, b) at a == b sends half to each, where sends it to the
# chosen branch only. clip at a bound: torch's clamp gives x all of it (x >= lo and x <= hi;
# lo gets it where x < lo < hi, hi where x > hi or hi < lo), while jnp.clip, which is
# minimum(hi, maximum(lo, x)), splits it in half between x and the bound; symbp follows
# torch. The comparisons are the spec's operators < <= > >= == !=, masks of 0 and 1 with no
# gradient; where(c, a, b) is a where c is not 0 (NaN included, as np.where), else b.
_COMPARISONS = (
    ("lt", "<", lambda x, y: x < y, np.less, "Lt"),
    ("le", "<=", lambda x, y: x <= y, np.less_equal, "Le"),
    ("gt", ">", lambda x, y: x > y, np.greater, "Gt"),
    ("ge", ">=", lambda x, y: x >= y, np.greater_equal, "Ge"),
    ("eq", "==", lambda x, y: x == y, np.equal, "Eq"),
    ("ne", "!=", lambda x, y: x != y, np.not_equal, "Ne"),
)


def _comparison(name: str, symbol: str, test: Callable, ufunc: np.ufunc, relation: str):
    return Function(
        name,
        arity=2,
        evaluate=lambda x, y: int(test(x, y)),
        reference=lambda x, y: np.where(ufunc(x, y), 1.0, 0.0),
        derivatives=("0", "0"),
        sympy=lambda sp, x, y: sp.Piecewise((1, getattr(sp, relation)(x, y)), (0, True)),
        costly=False,
        in_spec=False,
        operator=symbol,
        mask=True,
    )


_TIES = [
    Function(
        "maximum",
        arity=2,
        evaluate=max,
        reference=np.maximum,
        derivatives=("(x > y) + 0.5 * (x == y)", "(y > x) + 0.5 * (y == x)"),
        sympy=lambda sp, x, y: sp.Max(x, y),
        costly=False,
    ),
    Function(
        "minimum",
        arity=2,
        evaluate=min,
        reference=np.minimum,
        derivatives=("(x < y) + 0.5 * (x == y)", "(y < x) + 0.5 * (y == x)"),
        sympy=lambda sp, x, y: sp.Min(x, y),
        costly=False,
    ),
    Function(
        "clip",
        arity=3,
        formula="minimum(maximum(x, y), z)",
        derivatives=("(x >= y) * (x <= z)", "(x < y) * (y < z)", "maximum(x > z, z < y)"),
        costly=False,
    ),
    Function(
        "where",
        arity=3,
        evaluate=lambda c, a, b: a if c != 0 else b,
        reference=lambda c, a, b: np.where(c != 0, a, b),
        derivatives=("0", "x != 0", "x == 0"),
        sympy=lambda sp, c, a, b: sp.Piecewise((a, sp.Ne(c, 0)), (b, True)),
        costly=False,
    ),
    *(_comparison(*row) for row in _COMPARISONS),
]

FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function("exp", evaluate=_exp, reference=np.exp, derivatives=("f",), positive=True),
        Function("log", evaluate=_log, reference=np.log, derivatives=("1 / x",)),
        Function("sqrt", evaluate=_sqrt, reference=np.sqrt, derivatives=("1 / (2 * f)",)),
        Function(
            "abs",
            evaluate=abs,
            reference=np.abs,
            derivatives=("sign(x)",),
            sympy=lambda sp, x: sp.Abs(x),
            costly=False,
        ),
        Function("tanh", evaluate=math.tanh, reference=np.tanh, derivatives=("1 - f ** 2",)),
        Function(
            "sigmoid",
            formula="1 / (1 + exp(-x))",
            evaluate=_sigmoid,
            reference=lambda x: np.exp(-np.logaddexp(0.0, -x)),
            derivatives=("f * (1 - f)",),
            positive=True,
        ),
        Function(
            "relu",
            evaluate=lambda x: max(x, 0),
            reference=lambda x: np.maximum(x, 0.0),
            derivatives=("step(x)",),
            sympy=lambda sp, x: sp.Max(x, 0),
            costly=False,
        ),
        Function(
            "softplus",
            formula="log(1 + exp(x))",
            evaluate=_softplus,
            reference=lambda x: np.logaddexp(0.0, x),
            derivatives=("sigmoid(x)",),
            positive=True,
        ),
        Function("sin", evaluate=math.sin, reference=np.sin, derivatives=("cos(x)",)),
        Function("cos", evaluate=math.cos, reference=np.cos, derivatives=("-sin(x)",)),
        # GELU in its tanh form (Hendrycks and Gimpel); 0.7978845608028654 is sqrt(2 / pi)
        Function(
            "gelu", formula="0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x**3)))"
        ),
        # the derivatives of relu and abs: zero almost everywhere, as gradients take them
        Function(
            "step",
            evaluate=lambda x: int(x > 0),
            reference=lambda x: np.where(x > 0, 1.0, 0.0),
            derivatives=("0",),
            sympy=lambda sp, x: sp.Heaviside(x, 0),
            costly=False,
            in_spec=False,
        ),
        Function(
            "sign",
            evaluate=lambda x: (x > 0) - (x < 0),
            reference=np.sign,
            derivatives=("0",),
            sympy=lambda sp, x: sp.sign(x),
            costly=False,
            in_spec=False,
        ),
        # maximum, minimum, clip, where and the comparisons
        *_TIES,
    ]
}

SPEC_FUNCTIONS = tuple(name for name, f in FUNCTIONS.items() if f.in_spec)
OPERATORS = {f.operator: name for name, f in FUNCTIONS.items() if f.operator}  # "<": "lt"
