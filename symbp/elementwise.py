"""Elementwise functions as sympy expressions, and their derivatives from ``sympy.diff``.

Every elementwise node (``Op.EW``) holds a sympy expression over placeholders ``X[0]``,
``X[1]``, ... standing for its arguments. Built-in functions that sympy lacks (sigmoid,
softplus, relu and relu's step) are sympy ``Function`` classes whose ``fdiff`` states the
derivative once; everything else, user ``def``s included, is differentiated by sympy.

``derivative`` expresses d(expr)/d(X[i]) over the same placeholders plus one extra, the
node's own output, so that sigmoid' reads a * (1 - a) and tanh' reads 1 - a**2 instead of
recomputing exponentials.
"""

from __future__ import annotations

from functools import cache

import sympy


class X:
    """Placeholder symbols: ``X[i]`` is the i-th argument of an elementwise node."""

    _symbols: list[sympy.Symbol] = []

    def __class_getitem__(cls, i: int) -> sympy.Symbol:
        while len(cls._symbols) <= i:
            cls._symbols.append(sympy.Symbol(f"_x{len(cls._symbols)}", real=True))
        return cls._symbols[i]


def placeholder_index(sym: sympy.Symbol) -> int:
    return int(sym.name[2:])


class sigmoid(sympy.Function):
    """Logistic function 1 / (1 + exp(-x)); printed as a numerically stable helper."""

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_evalf(self, prec):
        return (1 / (1 + sympy.exp(-self.args[0])))._eval_evalf(prec)


class softplus(sympy.Function):
    """log(1 + exp(x)), stable for large |x|."""

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_evalf(self, prec):
        return sympy.log(1 + sympy.exp(self.args[0]))._eval_evalf(prec)


class step(sympy.Function):
    """Heaviside step with step(0) = 0: the derivative of relu."""

    def fdiff(self, argindex=1):
        return sympy.S.Zero

    def _eval_is_real(self):
        return True

    def _eval_evalf(self, prec):
        return sympy.Float(1 if self.args[0] > 0 else 0, prec)


class relu(sympy.Function):
    """max(x, 0)."""

    def fdiff(self, argindex=1):
        return step(self.args[0])

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_evalf(self, prec):
        return sympy.Max(self.args[0], 0)._eval_evalf(prec)


# The spec's elementwise built-ins: name -> sympy constructor of one argument.
BUILTINS: dict[str, object] = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "abs": sympy.Abs,
    "tanh": sympy.tanh,
    "sigmoid": sigmoid,
    "relu": relu,
    "softplus": softplus,
    "sin": sympy.sin,
    "cos": sympy.cos,
}


def _no_distributions(expr: sympy.Expr) -> sympy.Expr:
    """sign' is 2·DiracDelta: zero almost everywhere, which is what gradients use."""
    return expr.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)


@cache
def derivative(expr: sympy.Expr, nargs: int, i: int) -> sympy.Expr:
    """d(expr)/d(X[i]), over X[0..nargs-1] and X[nargs] = the value of ``expr`` itself."""
    d = _no_distributions(sympy.diff(expr, X[i]))
    out = X[nargs]
    # Reuse the output where the derivative contains it: sigmoid(x)(1 - sigmoid(x)) -> y(1 - y).
    if expr.free_symbols and not expr.is_Symbol:
        d = d.subs(expr, out)
        if expr.func is sympy.Pow and expr.exp == sympy.S.Half:  # sqrt' = 1/(2 sqrt(x))
            d = d.subs(1 / expr, 1 / out)
    return d


def _log_rules(e: sympy.Expr) -> sympy.Expr:
    """Rewrite log of the saturating functions into their stable forms."""
    arg = e.args[0]
    if isinstance(arg, sigmoid):  # log(sigmoid(u)) = -softplus(-u)
        return -softplus(-arg.args[0])
    one_minus = sympy.expand(1 - arg)
    if isinstance(one_minus, sigmoid):  # log(1 - sigmoid(u)) = -softplus(u)
        return -softplus(one_minus.args[0])
    minus_one = sympy.expand(arg - 1)
    if isinstance(minus_one, sympy.exp):  # log(1 + exp(u)) = softplus(u)
        return softplus(minus_one.args[0])
    return e


def _sigmoid_rule(e: sympy.Expr) -> sympy.Expr:
    """1 / (1 + exp(v)) is sigmoid(-v), which never overflows."""
    rest = sympy.expand(e.base - 1)
    if isinstance(rest, sympy.exp):
        return sigmoid(-rest.args[0])
    return e


def stabilize(expr: sympy.Expr) -> sympy.Expr:
    """The stable form of an expression: 1/(1 + exp(-u)) -> sigmoid(u),
    log(sigmoid(u)) -> -softplus(-u), log(1 + exp(u)) -> softplus(u), and so on.

    log(exp(u)) -> u needs no rule: sympy does it for real u.
    """
    expr = expr.replace(lambda e: e.is_Pow and e.exp == -1 and e.base.has(sympy.exp),
                        _sigmoid_rule)
    return expr.replace(lambda e: isinstance(e, sympy.log), _log_rules)


def is_unstable(expr: sympy.Expr) -> bool:
    """Does ``expr`` take the log of something that underflows to zero?"""
    for e in sympy.preorder_traversal(expr):
        if isinstance(e, sympy.log) and e.args[0].has(sigmoid, sympy.exp):
            return True
    return False


def number(value: float | int) -> sympy.Expr:
    """An exact sympy number for a spec literal: 0.1 is 1/10, as the user wrote it."""
    if isinstance(value, int):
        return sympy.Integer(value)
    return sympy.Rational(repr(value))


def as_float(expr: sympy.Expr) -> float | None:
    """The value of an argument-free expression, or None if it is not a finite real."""
    try:
        v = complex(sympy.N(expr, 30))
    except (TypeError, ValueError):
        return None
    if v.imag != 0 or v.real != v.real or abs(v.real) == float("inf"):
        return None
    return v.real
