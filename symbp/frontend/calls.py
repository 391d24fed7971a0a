"""Calls of the spec language's built-in functions: the elementwise functions, the reductions
(``sum(x, axis=1)``, ``softmax``, ``max``, ...), ``cross_entropy`` and ``dropout``; the
convolution and pooling calls go to their reader (``symbp.frontend.windows``).

A part of the expression reader (``symbp.frontend.expressions`` inherits it): it checks a
call's arguments and keywords and reads it, or hands it to the reader of its kind (user
functions, indexing, tensors of a literal shape). Every misuse is a located ``SpecError``.
"""

from __future__ import annotations

import ast

from ..ir import composites, extrema, ops
from ..ir import expr as ex
from ..ir.functions import FUNCTIONS, SPEC_FUNCTIONS
from ..ir.node import Node, Op
from ..ir.randomness import dropout
from . import hints
from .indexing import INDEXING_FUNCTIONS, JOINS
from .source import SpecSource
from .tensors import CONSTRUCTORS
from .windows import WINDOW_FUNCTIONS

REDUCTIONS = ("sum", "mean", "logsumexp", "softmax", "log_softmax", "max", "min")


class BuiltinCalls(SpecSource):
    """Calls by name; ``expr``, ``as_node``, ``check_constant``, ``known_functions``,
    ``user_call`` and ``unknown_function`` are the expression reader's, ``method_call`` and
    ``indexing_call`` the indexing reader's, ``constructor`` the literal shapes' reader's,
    ``window_call`` the convolution reader's."""

    sites: int  # dropout calls met so far
    functions: dict  # user function -> (arity, body, line)

    def arity(self, e: ast.Call, name: str, n: int) -> None:
        """A located error unless the call ``e`` of ``name`` passes ``n`` arguments."""
        if len(e.args) != n:
            plural = "" if n == 1 else "s"
            hint = ""
            if name in REDUCTIONS and len(e.args) == 2:
                hint = f"; pass the axis by keyword, {name}(e, axis=k)"
            if name in ("max", "min") and len(e.args) == 2:
                hint += f", or for the elementwise {name}imum of two values write {name}imum(a, b)"
            raise self.error(e, f"{name}() takes {n} argument{plural}, got {len(e.args)}{hint}")

    def call(self, e: ast.Call) -> Node:
        """A call by name: of an elementwise function, a reduction, ``cross_entropy``,
        ``dropout``, a user function, an indexing function or a tensor constructor."""
        if isinstance(e.func, ast.Attribute) and e.func.attr in ("reshape", "flatten"):
            return self.method_call(e)
        if not isinstance(e.func, ast.Name):
            what = "a method call" if isinstance(e.func, ast.Attribute) else "a call"
            hint = hints.method_hint(e, self.segment, self.known_functions())
            raise self.error(
                e.func,
                f"unsupported expression: {what} `{self.segment(e)}`: "
                f"only functions called by name are supported{hint}",
            )
        name = e.func.id
        starred = [a for a in e.args if isinstance(a, ast.Starred)]
        if starred or any(k.arg is None for k in e.keywords):
            where = starred[0] if starred else next(k for k in e.keywords if k.arg is None)
            raise self.error(where, "* and ** unpacking in calls are not supported")
        if name in WINDOW_FUNCTIONS and name not in self.functions:
            return self.window_call(e, name)
        axis_kw = [k for k in e.keywords if k.arg == "axis"]
        other_kw = [k for k in e.keywords if k.arg != "axis"]
        if other_kw or (axis_kw and name not in (*REDUCTIONS, *JOINS)) or len(axis_kw) > 1:
            bad = other_kw[0] if other_kw else axis_kw[-1]
            raise self.error(bad, f"{name}() takes no keyword argument '{bad.arg}'")
        if name in SPEC_FUNCTIONS:
            self.arity(e, name, FUNCTIONS[name].arity)
            args = [self.as_node(self.expr(a)) for a in e.args]
            if all(x.op is Op.CONST for x in args):  # say which constant fails, e.g. log(0)
                self.check_constant(e, ex.call(name, *(x.attr for x in args)))
            return ops.apply(name, *args)
        if name in REDUCTIONS:
            return self.reduction(e, name, self.axis(axis_kw[0].value) if axis_kw else None)
        if name == "cross_entropy":
            self.arity(e, name, 2)
            logits, target = (self.as_node(self.expr(a)) for a in e.args)
            if logits.ndim == 0:
                raise self.error(e, "cross_entropy() needs vectors of logits and targets")
            return composites.cross_entropy(logits, target)
        if name in self.functions:
            return self.user_call(e, name)
        if name == "dropout":
            return self.dropout(e)
        if name in INDEXING_FUNCTIONS:
            return self.indexing_call(e, name, axis_kw)
        if name in CONSTRUCTORS:
            return self.constructor(e, name)
        raise self.unknown_function(e, name)

    def dropout(self, e: ast.Call) -> Node:
        """``dropout(x, p)``, p a number known when compiling, in [0, 1); each call draws its
        own mask (its site is its place among the spec's dropout calls)."""
        self.arity(e, "dropout", 2)
        x = self.as_node(self.expr(e.args[0]))
        p = self.constant(self.expr(e.args[1]))
        if p.op != "num":
            raise self.error(
                e.args[1],
                f"dropout(): p must be a number, as in dropout(h, 0.5), not "
                f"`{self.segment(e.args[1])}`, which varies",
            )
        if not 0 <= p.value < 1:
            raise self.error(
                e.args[1],
                "dropout(): p is the probability of dropping an element, "
                f"at least 0 and below 1; got {float(p.value):g}",
            )
        self.sites += 1
        return dropout(x, float(p.value), self.sites - 1)

    def reduction(self, e: ast.Call, name: str, axis) -> Node:
        self.arity(e, name, 1)
        x = self.as_node(self.expr(e.args[0]))
        if name == "sum":
            return ops.reduce_sum(x, axis)
        if name == "mean":
            return composites.mean(x, axis)
        if name == "logsumexp":
            return ops.logsumexp(x, axis)
        if name in ("max", "min"):
            return (extrema.reduce_max if name == "max" else extrema.reduce_min)(x, axis)
        if x.ndim == 0:
            raise self.error(e, f"{name}() needs a tensor of rank 1 or more, got a scalar")
        f = composites.softmax if name == "softmax" else composites.log_softmax
        return f(x, -1 if axis is None else axis)

    def axis(self, e: ast.expr) -> int | tuple[int, ...]:
        """``axis=k`` or ``axis=(j, k)`` of integer literals."""
        items = e.elts if isinstance(e, ast.Tuple) else [e]
        axes = []
        for item in items:
            sign, inner = 1, item
            while isinstance(inner, ast.UnaryOp) and isinstance(inner.op, (ast.USub, ast.UAdd)):
                sign *= -1 if isinstance(inner.op, ast.USub) else 1
                inner = inner.operand
            if not (isinstance(inner, ast.Constant) and type(inner.value) is int):
                raise self.error(item, "axis must be an integer literal or a tuple of them")
            if inner.value.bit_length() > 31:
                raise self.error(item, "axis is out of range")
            axes.append(sign * inner.value)
        return tuple(axes) if isinstance(e, ast.Tuple) else axes[0]
