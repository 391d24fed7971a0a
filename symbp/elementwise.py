"""The spec's elementwise functions, their derivatives, and the stable forms of their logs.

Every elementwise node (``Op.EW``) holds a ``symbp.expr.Expr`` over placeholders ``X[0]``,
``X[1]``, ... standing for its arguments. ``derivative`` expresses d(expr)/d(X[i]) over the
same placeholders plus one extra, the node's own output, so that sigmoid' reads a * (1 - a)
and tanh' reads 1 - a**2 instead of recomputing exponentials. The stable forms of these
functions' logs are equations of the ``stabilize`` rule set (``symbp.rules``).
"""

from __future__ import annotations

from .expr import Expr, X, decimal, derivative, function, has, walk

__all__ = ["BUILTINS", "X", "derivative", "is_unstable", "number"]

# The spec's elementwise built-ins: name -> constructor of one argument.
BUILTINS = {name: function(name) for name in
            ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "softplus", "sin", "cos")}

number = decimal  # a spec literal, exact as written: 0.1 is 1/10


def is_unstable(e: Expr) -> bool:
    """Does ``e`` take the log of something that underflows to zero?"""
    return any(t.op == "log" and has(t.args[0], "sigmoid", "exp") for t in walk(e))
