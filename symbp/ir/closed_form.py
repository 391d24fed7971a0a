"""The closed form of an elementwise expression in sympy: the tests' reference for values and
derivatives (``sympy.diff`` of it), never on a compile's path.

A function's form is its record's ``sympy`` (``symbp.ir.functions``), else its formula's,
else sympy's function of the same name.
"""

from __future__ import annotations

from fractions import Fraction

from .expr import BINARY, Expr, definition
from .functions import FUNCTIONS


def to_sympy(e: Expr, symbols=None):
    """The sympy form of ``e`` (for tests and closed-form checks; never on a hot path)."""
    import sympy

    if symbols is None:
        symbols = [
            sympy.Symbol(f"x{i}", real=True) for i in range(max(e.args_used, default=-1) + 1)
        ]

    def function(name: str, args: list):
        f = FUNCTIONS[name]
        if f.sympy is not None:
            return f.sympy(sympy, *args)
        if f.formula is not None:
            return to_sympy(definition(name), args)
        return getattr(sympy, name)(*args)

    def go(t: Expr):
        if t.op == "arg":
            return symbols[t.value]
        if t.op == "num":
            if isinstance(t.value, Fraction):
                return sympy.Rational(t.value)
            return sympy.Float(t.value, 17)
        if t.op == "undefined":
            return sympy.nan
        a = [go(x) for x in t.args]
        if t.op == "neg":
            return -a[0]
        if t.op in BINARY:
            x, y = a
            return {"add": x + y, "sub": x - y, "mul": x * y, "div": x / y, "pow": x**y}[t.op]
        return function(t.op, a)

    return go(e)
