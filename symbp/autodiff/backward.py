"""Reverse mode by graph rewriting: the gradient of a graph is another graph in the same IR.

``backward`` visits nodes in reverse topological order, asks each op's rule in
``symbp.autodiff.rules.VJP`` for the adjoint contributions to its arguments, and adds them
where a node has several children ("gradients add at branches"); ``unbroadcast`` is the one
place that undoes broadcasting, the batch axis included.

An adjoint may be unbatched while its node is batched: it then stands for the same value
sent to every example (the seed 1/n is one). Summing it over the batch multiplies by n.

The pipeline may hand in a ``normalize`` function, which ``backward`` applies to every
contribution it makes: the passes after differentiation would otherwise rewrite them, and
nodes being immutable, every node above each one they changed would be rebuilt too.
"""

from __future__ import annotations

from collections.abc import Callable

from ..ir import ops
from ..ir.expr import sum_of
from ..ir.graph import Graph
from ..ir.node import Node, toposort
from .rules import VJP


def unbroadcast(g: Node, target: Node, from_batched: bool) -> Node:
    """Sum ``g`` (an adjoint for a value of ``from_batched`` examples) to ``target``'s shape."""
    if g.shape != target.shape:
        lead = g.ndim - target.ndim
        axes = tuple(range(lead)) + tuple(
            lead + i for i, d in enumerate(target.shape) if d == 1 and g.shape[lead + i] != 1
        )
        g = ops.reshape(ops.reduce_sum(g, axes), target.shape) if axes else g
    if from_batched and not target.batched:
        g = ops.batch_sum(g)  # n * g when g is the same for every example
    return g


# ---------------------------------------------------------------------- the pass


def backward(
    roots: list[tuple[Node, Node]],
    wrt: list[Node],
    origin: dict[Node, Node] | None = None,
    adjoints: dict[Node, Node] | None = None,
    normalize: Callable[[Node], Node] | None = None,
    order: list[Node] | None = None,
) -> list[Node]:
    """Adjoints of ``wrt`` for the sum over roots of <cotangent, root>.

    ``roots`` pairs each output node with its cotangent (seed). Only nodes on a path to a
    ``wrt`` node are visited. If ``origin`` is given it records, for every adjoint node made,
    the forward node whose rule made it (the generated code cites that node's spec line);
    ``adjoints`` receives the whole adjoint of every node visited. ``order`` may give the
    forward graph in topological order, if the caller has it.
    """
    if order is None:
        order = toposort([r for r, _ in roots])
    forward = set(order)
    reaches = _reaching(order, set(wrt))
    pending: dict[Node, list[Node]] = {}
    for root, seed in roots:
        pending.setdefault(root, []).append(seed)
    adjoint: dict[Node, Node] = {} if adjoints is None else adjoints
    for node in reversed(order):
        if node not in pending or node not in reaches:
            continue
        g = adjoint[node] = _sum_all(pending.pop(node))
        if origin is not None:
            origin.setdefault(g, node)
        if node.op not in VJP:  # a leaf
            continue
        wanted = tuple([a in reaches for a in node.args])
        for arg, contrib in zip(node.args, VJP[node.op](node, g, wanted)):
            if contrib is None:
                continue
            if normalize is not None:
                made, contrib = contrib, normalize(contrib)
                if origin is not None and contrib is not made:
                    for part in contrib.args:  # a part split out: this node's too
                        if part not in forward:
                            origin.setdefault(part, node)
            if contrib.shape != arg.shape or (node.batched and not arg.batched):
                contrib = unbroadcast(contrib, arg, node.batched)
            if origin is not None:
                _cite(contrib, node, origin, forward)
            pending.setdefault(arg, []).append(contrib)
    return [adjoint.get(w) or ops.broadcast(ops.const(0), w.shape) for w in wrt]


def _cite(contrib: Node, node: Node, origin: dict[Node, Node], forward: set[Node]) -> None:
    """``contrib`` and the nodes its rule made on the way (the mask of a max's ties, say)
    cite ``node``, unless they cite another node already."""
    stack = [contrib]
    while stack:
        part = stack.pop()
        if part not in forward and part not in origin:
            origin[part] = node
            stack.extend(part.args)


def _reaching(order: list[Node], wanted: set[Node]) -> set[Node]:
    """The nodes of ``order`` (arguments first) from which a ``wanted`` node is reached."""
    reaches = set(wanted) & set(order)
    for node in order:
        for a in node.args:
            if a in reaches:
                reaches.add(node)
                break
    return reaches


SUM_TERMS = 8  # terms per node of an adjoint's sum: a node with 2,000 children gets a tree


def _sum_all(terms: list[Node]) -> Node:
    """The adjoint of a node with several children: the sum of their contributions, one
    node per SUM_TERMS terms."""
    if len(terms) <= SUM_TERMS:  # (the usual case: one node, or none)
        return terms[0] if len(terms) == 1 else ops.elementwise(sum_of(len(terms)), terms)
    while len(terms) > 1:
        terms = [
            ops.elementwise(sum_of(len(part)), part) if len(part) > 1 else part[0]
            for part in (terms[i : i + SUM_TERMS] for i in range(0, len(terms), SUM_TERMS))
        ]
    return terms[0]


def grad(
    graph: Graph,
    origin: dict[Node, Node] | None = None,
    adjoints: dict[Node, Node] | None = None,
    normalize: Callable[[Node], Node] | None = None,
    order: list[Node] | None = None,
) -> dict[str, Node]:
    """Gradients of the batch-mean Loss with respect to every Param, by name.

    The seed is 1 per example; the sum over the batch then divides by n, so each weight
    gradient reads as "δ aᵀ averaged over the batch".
    """
    params = [d.node for d in graph.params.values()]
    loss = graph.loss
    seed = ops.const(1)
    grads = backward([(loss, seed)], params, origin, adjoints, normalize, order)
    out = {}
    for name, g in zip(graph.params, grads):
        if graph.has_batch:
            if g.batched:  # only possible if the param reaches the loss unreduced
                g = ops.batch_sum(g)
            if loss.batched:
                g = ops.div(g, ops.batch_size())
        out[name] = g
    return out
