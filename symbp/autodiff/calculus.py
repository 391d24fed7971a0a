"""The spec's elementwise functions, their derivatives, and the stable forms of their logs.

Every elementwise node (``Op.EW``) holds a ``symbp.expr.Expr`` over placeholders ``X[0]``,
``X[1]``, ... standing for its arguments. ``derivative`` expresses d(expr)/d(X[i]) over the
same placeholders plus one extra, the node's own output, so that sigmoid' reads a * (1 - a)
and tanh' reads 1 - a**2 instead of recomputing exponentials. The stable forms of these
functions' logs are equations of the ``stabilize`` rule set (``symbp.rules``).
"""

from __future__ import annotations

from ..ir.expr import (
    ONE,
    ZERO,
    Expr,
    X,
    add,
    arg,
    call,
    decimal,
    div,
    function,
    has,
    mul,
    neg,
    num,
    power,
    remember,
    replace,
    sub,
    walk,
)

__all__ = ["BUILTINS", "X", "derivative", "diff", "is_unstable", "linear_factor", "number"]

# The spec's elementwise built-ins: name -> constructor of one argument.
BUILTINS = {
    name: function(name)
    for name in ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "softplus", "sin", "cos")
}

number = decimal  # a spec literal, exact as written: 0.1 is 1/10


def is_unstable(e: Expr) -> bool:
    """Does ``e`` take the log of something that underflows to zero?"""
    return any(t.op == "log" and has(t.args[0], "sigmoid", "exp") for t in walk(e))


# ------------------------------------------------------------------ derivatives


def _d_function(name: str, u: Expr) -> Expr:
    """f'(u) for each of FUNCTIONS, in terms of f(u) where that is cheaper (the caller
    replaces f(u) by the node's output)."""
    f = call(name, u)
    if name == "exp":
        return f
    if name == "log":
        return div(ONE, u)
    if name == "sqrt":
        return div(ONE, mul(num(2), f))
    if name == "abs":
        return call("sign", u)
    if name == "tanh":
        return sub(ONE, power(f, num(2)))
    if name == "sigmoid":
        return mul(f, sub(ONE, f))
    if name == "relu":
        return call("step", u)
    if name == "softplus":
        return call("sigmoid", u)
    if name == "sin":
        return call("cos", u)
    if name == "cos":
        return neg(call("sin", u))
    return ZERO  # step and sign: zero almost everywhere, which is what gradients use


def diff(e: Expr, i: int, memo: dict[Expr, Expr] | None = None) -> Expr:
    """d e / d arg(i), by the chain rule, through the simplifying constructors."""
    if memo is None:
        memo = {}
    if i not in e.args_used:
        return ZERO
    done = memo.get(e)
    if done is not None:
        return done
    op = e.op
    if op == "arg":
        out = ONE
    elif op == "neg":
        out = neg(diff(e.args[0], i, memo))
    elif op in ("add", "sub"):
        da, db = diff(e.args[0], i, memo), diff(e.args[1], i, memo)
        out = add(da, db) if op == "add" else sub(da, db)
    elif op == "mul":
        a, b = e.args
        out = add(mul(diff(a, i, memo), b), mul(a, diff(b, i, memo)))
    elif op == "div":
        a, b = e.args
        da, db = diff(a, i, memo), diff(b, i, memo)
        out = div(sub(da, mul(div(a, b), db)), b)  # (a' - (a/b) b')/b: no b², which
        # overflows for |b| > 1e154 (and a constant b gives a'/b)
    elif op == "pow":
        a, b = e.args
        da = diff(a, i, memo)
        if i not in b.args_used:  # u**c: c u**(c-1) u'
            out = mul(mul(b, power(a, sub(b, ONE))), da)
        else:  # a**b (b' log a + b a'/a)
            db = diff(b, i, memo)
            out = mul(e, add(mul(db, call("log", a)), div(mul(b, da), a)))
    else:
        u = e.args[0]
        out = mul(_d_function(op, u), diff(u, i, memo))
    memo[e] = out
    return out


_derivatives: dict[tuple[Expr, int, int], Expr] = {}


def derivative(e: Expr, nargs: int, i: int) -> Expr:
    """d e / d arg(i), over arg(0..nargs-1) and arg(nargs), the value of ``e`` itself:
    sigmoid' reads y*(1 - y) and tanh' 1 - y**2 instead of recomputing exponentials."""
    key = (e, nargs, i)
    d = _derivatives.get(key)
    if d is None:
        d = diff(e, i)
        if e.op != "arg" and e.args_used:
            d = replace(d, {e: arg(nargs)})
        remember(_derivatives, key, d)
    return d


def linear_factor(e: Expr, i: int) -> Expr | None:
    """``f`` when ``e`` is f * arg(i) (or arg(i) / f, -arg(i)) with f free of arg(i)."""
    x = arg(i)
    if e is x:
        return ONE
    if e.op == "neg":
        f = linear_factor(e.args[0], i)
        return None if f is None else neg(f)
    if e.op == "mul":
        a, b = e.args
        if b is x and i not in a.args_used:
            return a
        if a is x and i not in b.args_used:
            return b
    if e.op == "div" and e.args[0] is x and i not in e.args[1].args_used:
        return div(ONE, e.args[1])
    return None
