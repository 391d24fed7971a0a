"""symbp.ir.expr: the elementwise expression trees, checked against sympy.

Random expression trees are differentiated by ``symbp.autodiff.calculus.diff`` and by
``sympy.diff`` of the same tree (``to_sympy``), and both are evaluated at random points; the
simplifying constructors must keep every value; the printers must print what the tree
computes.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from symbp.autodiff import calculus as ew
from symbp.backends.numpy.printer import NumpyExprPrinter
from symbp.ir import expr as ex
from symbp.ir.closed_form import to_sympy
from symbp.ir.expr import X
from symbp.ir.interpret import expression
from symbp.ir.notation import ATOM, print_expr

# functions defined on the whole real line (log and sqrt get positive arguments below)
SMOOTH = ("exp", "tanh", "sigmoid", "softplus", "sin", "cos")


@st.composite
def trees(draw, depth=4):
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            return X[draw(st.integers(0, 1))]
        return ex.lift(draw(st.sampled_from((0.5, 2, 3, -1.5, 0.1))))
    kind = draw(st.sampled_from(("add", "sub", "mul", "div", "pow", "neg", "f", "f", "pos")))
    a = draw(trees(depth=depth - 1))
    if kind == "neg":
        return -a
    if kind == "f":  # exp of a bounded argument: sin(exp(exp(..))) is noise in floats
        name = draw(st.sampled_from(SMOOTH))
        return ex.call("exp", ex.call("tanh", a)) if name == "exp" else ex.call(name, a)
    if kind == "pos":  # a positive argument for log and sqrt
        return ex.call(draw(st.sampled_from(("log", "sqrt"))), 1 + a * a)
    b = draw(trees(depth=depth - 1))
    if kind == "div":
        return a / (2 + ex.call("sin", b))
    if kind == "pow":
        return (1 + a * a) ** draw(st.sampled_from((2, 3, 0.5, -1)))
    return {"add": a + b, "sub": a - b, "mul": a * b}[kind]


def sympy_value(e, point):
    s0, s1 = sympy.symbols("x0 x1", real=True)
    value = to_sympy(e, [s0, s1]).subs({s0: point[0], s1: point[1]})
    return float(sympy.N(value, 30))


POINTS = [(0.3, -0.7), (-1.2, 0.4), (0.9, 1.1)]


@settings(max_examples=200, deadline=None)
@given(e=trees())
def test_derivatives_agree_with_sympy(e):
    note(repr(e))
    s = sympy.symbols("x0 x1", real=True)
    for i in (0, 1):
        d_ours = ew.diff(e, i)
        d_sympy = sympy.diff(to_sympy(e, list(s)), s[i])
        for p in POINTS:
            want = float(sympy.N(d_sympy.subs({s[0]: p[0], s[1]: p[1]}), 30))
            got = float(expression(d_ours, [np.float64(p[0]), np.float64(p[1])]))
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(e=trees())
def test_printed_code_computes_the_tree(e):
    """The NumPy text, with its parentheses, evaluates to what sympy says the tree is."""
    assume(not e.bad)  # a tree of numbers may fold to a constant no float holds
    # a folded constant of 1e9 makes sin(x0 + c) noise: the float sum loses x0's digits
    assume(all(abs(float(t.value)) < 1e6 for t in ex.walk(e) if t.op == "num"))
    text = print_expr(e, [("x0", ATOM), ("x1", ATOM)], NumpyExprPrinter())[0]
    note(text)
    env = {
        "np": np,
        "x0": 0.3,
        "x1": -0.7,
        "_sigmoid": lambda u: 1 / (1 + np.exp(-u)),
        "_softplus": lambda u: np.logaddexp(0.0, u),
    }
    got = eval(text, env)  # noqa: S307 - our own generated text, in a test
    assert got == pytest.approx(sympy_value(e, (0.3, -0.7)), rel=1e-9, abs=1e-12)


def test_output_reuse_in_derivatives():
    for name, want in [
        ("sigmoid", X[1] * (1 - X[1])),
        ("tanh", 1 - X[1] ** 2),
        ("exp", X[1]),
        ("sqrt", 1 / (2 * X[1])),
    ]:
        assert ew.derivative(ex.call(name, X[0]), 1, 0) is want, name


def test_numbers_fold_exactly_and_say_why_they_cannot():
    assert ex.lift(0.1) + ex.lift(0.2) is ex.num(Fraction(3, 10))  # as written, not binary
    assert (ex.lift(2) ** 10).value == 1024
    assert ex.call("sqrt", ex.num(Fraction(9, 4))).value == Fraction(3, 2)
    assert ex.call("log", ex.num(0)).bad == ex.UNDEFINED
    assert ex.call("sqrt", ex.num(-1)).bad == ex.NOT_REAL
    assert ex.call("exp", ex.num(1000)).bad == ex.TOO_LARGE
    assert (ex.lift(10) ** ex.lift(400)).bad == ex.TOO_LARGE
    assert (ex.lift(10) ** (ex.lift(10) ** 10)).bad == ex.TOO_LARGE  # without computing it
    assert (ex.lift(0) ** -1).bad == ex.UNDEFINED
    assert (ex.lift(-8) ** 0.5).bad == ex.NOT_REAL
    assert (X[0] + ex.call("log", ex.num(0))).bad == ex.UNDEFINED  # it spreads
    assert math.isclose(ex.call("exp", ex.num(1)).value, math.e)


def test_construction_is_canonical_and_hash_consed():
    assert X[0] * X[1] is X[0] * X[1] and X[0] * X[1] is not X[1] * X[0]
    assert 2 * (3 * X[0]) is 6 * X[0] and X[0] * 2 is 2 * X[0]
    assert X[0] - X[0] is ex.num(0) and X[0] / X[0] is ex.num(1)
    assert -(X[0] - X[1]) is X[1] - X[0] and X[0] + -X[1] is X[0] - X[1]
    assert (X[0] ** 2) ** 3 is X[0] ** 6 and X[0] ** 0.5 is ex.call("sqrt", X[0])
    assert ex.call("log", ex.call("exp", X[0])) is X[0]
    t = ex.call("tanh", X[0])
    assert t * t is t**2 and (-X[0]) * (-X[0]) is X[0] ** 2 and X[0] * X[1] != X[0] ** 2
    assert t + t is 2 * t and X[0] + X[1] != 2 * X[0]


def test_simplification_keeps_every_value():
    """The constructors' identities against the plain arithmetic of the same tree."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 40)
    cases = [
        (X[0] * 1 + 0, x),
        (ex.neg(-X[0]) * 3 * 2, 6 * x),
        (X[0] - (X[0] - X[0]), x),
        ((X[0] ** 2) ** 2, x**4),
        (2 * (X[0] / 4), x / 2),
    ]
    for e, want in cases:
        np.testing.assert_allclose(expression(e, [x]), want, rtol=1e-15)


def test_numbers_beyond_float_range():
    """Found by the parser fuzzer (2.0**-1075 raised a math domain error) and the review
    (0.1**400 overflowed the C printer): a number no float holds exactly is rounded to the
    nearest float, as NumPy would compute it, so 2.0**-1075 is 0 and its log undefined."""
    assert ex.lift(2.0) ** -1075 is ex.num(0)
    assert ex.call("log", ex.lift(2.0) ** -1075).bad == ex.UNDEFINED
    assert ex.lift(0.1) ** 400 is ex.num(0)  # below the smallest float
    small = ex.lift(2.0) ** -1000  # exactly a float: kept
    assert small.value == 2.0**-1000 and ex.call("log", small).value == pytest.approx(
        -1000 * math.log(2)
    )


def test_compiling_network_after_network_holds_a_bounded_number_of_expressions():
    """The review measured 20 KB kept for ever per compile: the expression table was strong
    and the memo caches unbounded. Now the table is weak, and what keeps expressions alive
    past a compile is the compiler's memo caches, each bounded: emptied, they let go."""
    import functools
    import gc

    import symbp

    def caches():
        return [
            obj
            for obj in gc.get_objects()
            if isinstance(obj, functools._lru_cache_wrapper)
            and getattr(obj, "__module__", "").startswith("symbp")
        ]

    def compile_some(first):
        for k in range(first, first + 60):
            spec = f"x: Input[2]\nw: Param[2] = ones\nC: Loss = sum(sigmoid({k} * w * x + {k}.5))\n"
            symbp.generate(symbp.parse_text(spec))
        gc.collect()
        return len(ex._TABLE)

    compile_some(0)
    sizes = {c: c.cache_info().currsize for c in caches()}
    before = len(ex._TABLE)
    assert compile_some(1000) > before + 60  # the caches hold the new networks' expressions
    grown = [c for c in caches() if c.cache_info().currsize > sizes.get(c, 0)]
    assert grown and all(c.cache_info().maxsize is not None for c in grown)
    for c in caches():
        c.cache_clear()
    gc.collect()
    assert len(ex._TABLE) <= before  # and nothing else does
