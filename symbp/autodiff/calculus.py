"""Derivatives of elementwise expressions, by the chain rule on their trees.

``diff`` differentiates an ``Expr`` with respect to one argument placeholder; a function's
own derivative comes from its record in ``symbp.ir.functions`` (or from its formula).
``derivative`` then writes the result over the expression's own value where it can, so that
sigmoid' reads y*(1 - y) and tanh' 1 - y**2 instead of recomputing exponentials.
"""

from __future__ import annotations

from functools import cache, lru_cache

from ..ir.expr import (
    ONE,
    PARAMETERS,
    ZERO,
    Expr,
    add,
    arg,
    call,
    definition,
    div,
    formula,
    mul,
    neg,
    power,
    replace,
    sub,
    substitute,
)
from ..ir.functions import FUNCTIONS


@cache
def partials(name: str) -> tuple[Expr, ...]:
    """d f / d argument j of function ``name``, for each j, over its arguments and, as
    ``arg(arity)``, its value f."""
    f = FUNCTIONS[name]
    if f.derivatives is None:  # differentiate the formula
        return tuple(diff(definition(name), j) for j in range(f.arity))
    names = (*PARAMETERS[: f.arity], "f")
    return tuple(formula(text, names) for text in f.derivatives)


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
        # (a' - (a/b) b')/b: no b², which overflows for |b| > 1e154 (and a constant b
        # gives a'/b)
        out = div(sub(da, mul(div(a, b), db)), b)
    elif op == "pow":
        a, b = e.args
        da = diff(a, i, memo)
        if i not in b.args_used:  # u**c: c u**(c-1) u'
            out = mul(mul(b, power(a, sub(b, ONE))), da)
        else:  # a**b (b' log a + b a'/a)
            db = diff(b, i, memo)
            out = mul(e, add(mul(db, call("log", a)), div(mul(b, da), a)))
    else:  # a function: the sum over its arguments of its partial times the argument's
        values = {j: a for j, a in enumerate(e.args)}
        values[len(e.args)] = e
        out = ZERO
        for a, partial in zip(e.args, partials(op)):
            if i in a.args_used:
                out = add(out, mul(substitute(partial, values), diff(a, i, memo)))
    memo[e] = out
    return out


@lru_cache(maxsize=65536)  # a graph repeats a few expressions many times
def derivative(e: Expr, nargs: int, i: int) -> Expr:
    """d e / d arg(i), over arg(0..nargs-1) and arg(nargs), the value of ``e`` itself:
    sigmoid' reads y*(1 - y) and tanh' 1 - y**2 instead of recomputing exponentials."""
    d = diff(e, i)
    if e.op != "arg" and e.args_used:
        d = replace(d, {e: arg(nargs)})
    return d
