"""The derivative rules: one entry per op, as a table.

``VJP[op](node, g, wanted)`` gets a node, the adjoint ``g`` flowing into it (the gradient of
the loss with respect to the node's value) and, per argument, whether its adjoint is wanted;
it returns one adjoint contribution per argument, None where none is wanted or none flows
(a vector-Jacobian product). A contribution may have a broadcast shape: the backward pass
sums it back to its argument's (``backward.unbroadcast``). Leaves have no rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from ..ir import expr as ex
from ..ir import ops
from ..ir.convolution import fold, patches
from ..ir.expr import Expr, X
from ..ir.indexing import part_index
from ..ir.node import Contraction, Node, Op
from ..ir.randomness import dropout
from .calculus import derivative

Rule = Callable[[Node, Node, tuple[bool, ...]], list[Node | None]]


def linear(adjoint: Callable[[Node, Node], Node]) -> Rule:
    """The rule of an op linear in its one argument: ``adjoint(node, g)``."""
    return lambda node, g, wanted: [adjoint(node, g)]


def _elementwise(node: Node, g: Node, wanted: tuple[bool, ...]) -> list[Node | None]:
    """g times the expression's derivative in each argument, over g, the arguments and the
    node's own value (sigmoid' reuses the sigmoid)."""
    n = len(node.args)
    operands = (g, *node.args, node)
    masks = tuple(j for j, a in enumerate(node.args) if a.op is Op.EW and ex.is_mask(a.attr))
    out: list[Node | None] = []
    for i in range(n):
        adjoint = adjoint_expr(node.attr, n, i, masks) if wanted[i] else ex.ZERO
        out.append(None if adjoint is ex.ZERO else ops.elementwise(adjoint, operands))
    return out


@lru_cache(maxsize=65536)  # a graph repeats a few expressions many times
def adjoint_expr(e: Expr, n: int, i: int, masks: tuple[int, ...] = ()) -> Expr:
    """g * d e / d x_i as an expression over (g, x_0, .., x_{n-1}, e's value); the arguments
    ``masks`` are masks (values 0 and 1), so that where's derivative reads m, not m != 0."""
    d = derivative(e, n, i)
    if masks:
        known = {ex.call("ne", X[j], ex.ZERO): X[j] for j in masks}
        known |= {ex.call("eq", X[j], ex.ZERO): 1 - X[j] for j in masks}
        d = ex.replace(d, known)
    if d is ex.ZERO:
        return d
    return X[0] * ex.substitute(d, {j: X[j + 1] for j in range(n + 1)})


def _dot(node: Node, g: Node, wanted: tuple[bool, ...]) -> list[Node | None]:
    """The adjoint of each operand contracts g with the other operand over the other
    letters."""
    a, b = node.args
    c = node.attr
    return [
        ops.dot(g, b, Contraction(c.out, c.b, c.a)) if wanted[0] else None,
        ops.dot(g, a, Contraction(c.out, c.a, c.b)) if wanted[1] else None,
    ]


def _sum(node: Node, g: Node) -> Node:
    x = node.args[0]
    return ops.broadcast(ops.keepdims(g, node.attr, x.shape), x.shape)


def _logsumexp(node: Node, g: Node) -> Node:
    """g times the softmax of the argument along the reduced axes."""
    (x,) = node.args
    axes = node.attr
    soft = ops.elementwise(ex.call("exp", X[0] - X[1]), (x, ops.keepdims(node, axes, x.shape)))
    return ops.mul(ops.keepdims(g, axes, x.shape), soft)


def _transpose(node: Node, g: Node) -> Node:
    perm = node.attr
    return ops.transpose(g, tuple(perm.index(i) for i in range(len(perm))))


# indexing


def _concat(node: Node, g: Node, wanted: tuple[bool, ...]) -> list[Node | None]:
    """Each part's adjoint is g at the part's place."""
    shapes = [p.shape for p in node.args]
    return [
        ops.slice_(g, part_index(node.attr, shapes, node.shape, i)) if w else None
        for i, w in enumerate(wanted)
    ]


def _gather(node: Node, g: Node, wanted: tuple[bool, ...]) -> list[Node | None]:
    """The rows of g scatter-add into the table; integer ids have no gradient."""
    table, ids = node.args
    return [ops.scatter_add(g, ids, table.shape[0]) if wanted[0] else None, None]


def _scatter_add(node: Node, g: Node, wanted: tuple[bool, ...]) -> list[Node | None]:
    """The adjoint of a scatter gathers the rows back (summed over the examples where the
    scatter summed them)."""
    values, ids = node.args
    if not wanted[0]:
        return [None, None]
    back = ops.gather(g, ids)
    if node.attr.sum_batch and not values.batched:
        back = ops.batch_sum(back)
    return [back, None]


def _extremum(node: Node, g: Node) -> Node:
    """g shared evenly among the entries that equal the max (or min), as torch's amax and
    JAX's reduce_max share it: g * (x == m) / count(x == m)."""
    (x,) = node.args
    axes = node.attr
    hit = ops.apply("eq", x, ops.keepdims(node, axes, x.shape))
    count = ops.keepdims(ops.reduce_sum(hit, axes), axes, x.shape)
    return ops.elementwise(X[0] * X[1] / X[2], (ops.keepdims(g, axes, x.shape), hit, count))


VJP: dict[Op, Rule] = {
    Op.EW: _elementwise,
    Op.DOT: _dot,
    Op.SUM: linear(_sum),
    Op.LOGSUMEXP: linear(_logsumexp),
    Op.TRANSPOSE: linear(_transpose),
    Op.RESHAPE: linear(lambda node, g: ops.reshape(g, node.args[0].shape)),
    Op.BROADCAST: linear(lambda node, g: g),  # unbroadcast sums it back
    Op.BATCH_SUM: linear(lambda node, g: g),  # the same adjoint for every example
    # dropout: linear, so its adjoint is g through the same mask (recomputed from the key)
    Op.DROPOUT: linear(lambda node, g: dropout(g, *node.attr)),
    # indexing
    Op.SLICE: linear(lambda node, g: ops.unslice(g, node.attr, node.args[0].shape)),
    Op.UNSLICE: linear(lambda node, g: ops.slice_(g, node.attr.index)),
    Op.CONCAT: _concat,
    # indexing (gather)
    Op.GATHER: _gather,
    Op.SCATTER_ADD: _scatter_add,
    # max and min
    Op.MAX: lambda node, g, wanted: [_extremum(node, g)],
    Op.MIN: lambda node, g, wanted: [_extremum(node, g)],
    # convolution: the patches and their fold are each other's adjoint
    Op.PATCHES: linear(lambda node, g: fold(g, node.attr, node.args[0].shape)),
    Op.FOLD: linear(lambda node, g: patches(g, node.attr.window)),
}
