"""Reverse mode by graph rewriting: the gradient of a graph is another graph in the same IR.

``RULES`` holds one entry per op: given the node and the adjoint ``g`` flowing into it, it
returns one adjoint contribution per argument (``None`` where there is nothing to send).
``backward`` visits nodes in reverse topological order and adds contributions where a node
has several children ("gradients add at branches"); ``unbroadcast`` is the one place that
undoes broadcasting, the batch axis included.

An adjoint may be unbatched while its node is batched: it then stands for the same value
sent to every example (the seed 1/n is one). Summing it over the batch multiplies by n.

The adjoints are built in the form the rewrite passes after differentiation would give
them: a costly part an adjoint computes twice gets a node of its own (the cse rule), and
a part the forward graph computes is read from there (the specialize rule). Nodes are
immutable, so a pass that did it later would rebuild every node above each one it changed.
The contributions to one node are summed SUM_TERMS at a time, as one node each.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..ir import expr as ex
from ..ir import ops
from ..ir.expr import X
from ..ir.graph import Graph
from ..ir.node import Contraction, Node, Op, toposort
from ..passes import rules
from ..passes.rewrite import Context
from . import calculus as ew

X0 = X[0]


def unbroadcast(g: Node, target: Node, from_batched: bool) -> Node:
    """Sum ``g`` (an adjoint for a value of ``from_batched`` examples) to ``target``'s shape."""
    if g.shape == target.shape:  # nothing was broadcast (the common case)
        if from_batched and not target.batched:
            g = ops.batch_sum(g)
        return g
    lead = g.ndim - target.ndim
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(target.shape) if d == 1 and g.shape[lead + i] != 1
    )
    g = ops.reshape(ops.reduce_sum(g, axes), target.shape) if axes else g
    if from_batched and not target.batched:
        g = ops.batch_sum(g)  # n * g when g is the same for every example
    return g


# -------------------------------------------------------------------------- the rules


def _ew_rule(node: Node, g: Node, needed=None) -> list[Node | None]:
    """d/d arg_i of an elementwise expression: g times its derivative, reusing the output;
    only for the arguments ``needed(arg)`` says lead to a wanted node, if it is given."""
    args, shape = node.args, node.shape
    n = len(args)
    operands = (g, *args, node)
    # the usual case: g an array of the node's shape, every argument of that shape too; the
    # operands are then distinct non-constants, and the node is built from the canonical
    # form cached with the expression, without elementwise() sorting the operands out
    unwrapped = ops.UNWRAPPED  # operands the direct path leaves to elementwise()
    direct = g.op not in unwrapped and g.shape == shape and g is not node and g not in args
    if direct:
        for a in args:
            if a.shape != shape or a.op in unwrapped:
                direct = False
                break
    forms = _adjoint_exprs.get((node.attr, n))
    if forms is None:
        forms = ex.remember(_adjoint_exprs, (node.attr, n), [None] * n)
    out: list[Node | None] = []
    for i in range(n):
        if needed is not None and not needed(args[i]):
            out.append(None)
            continue
        form = forms[i]
        if form is None:  # g * d/dx_i over (g, x_0.., y): a graph repeats a few of these
            form = forms[i] = _adjoint_form(node.attr, n, i)
        adjoint, e, used = form
        if adjoint is ex.ZERO:
            out.append(None)
        elif direct and used and not e.bad:
            if e is X0:
                out.append(operands[used[0]])
                continue
            kept = tuple([operands[j] for j in used])
            batched = False
            for a in kept:
                if a.batched:
                    batched = True
                    break
            out.append(Node(Op.EW, kept, e, shape, batched))
        else:
            out.append(ops.elementwise(adjoint, operands))
    return out


def _adjoint_form(attr: ex.Expr, n: int, i: int) -> tuple[ex.Expr, ex.Expr, tuple[int, ...]]:
    """The adjoint's expression for argument i over (g, x_0.., y), its canonical form over
    distinct operands, and the operands that form reads."""
    d = ew.derivative(attr, n, i)
    shifted = {X[j]: X[j + 1] for j in range(n + 1)}
    adjoint = X0 * ex.replace(d, shifted) if d is not ex.ZERO else d
    return (adjoint, *ops.canonical_form(adjoint, list(range(n + 2))))


def _as_rewritten(node: Node, forward: Context) -> Node:
    """An adjoint in the form the cse and specialize rules would give it after
    differentiation: a costly part it computes more than once (sigmoid(u) in the derivative
    of u sigmoid(u)) read from a node of its own, a part the forward graph computes read
    from there. Made here, the rewrite changes one node; made by a pass, it would rebuild
    every node above it (nodes are immutable), and the forward values would not find the
    part in the same pass."""
    for _ in range(8):
        if node.op is not Op.EW or not rules.may_share(node.attr):
            break
        out = rules.shared_subexpression(node, forward) or rules.reuse_value(node, forward)
        if out is None:
            break
        node = out
    return node


# (expression, arity) -> per argument, its _adjoint_form once asked for
_adjoint_exprs: dict[tuple, list] = {}


def _dot_rule(node: Node, g: Node) -> list[Node | None]:
    a, b = node.args
    ca, cb = _dot_adjoints(node.attr)
    return [ops.dot(g, b, ca), ops.dot(g, a, cb)]


@functools.lru_cache(maxsize=4096)
def _dot_adjoints(c: Contraction) -> tuple[Contraction, Contraction]:
    """The adjoint of each operand contracts g with the other operand over the other
    letters (cached per contraction: a network has a handful)."""
    return Contraction(c.out, c.b, c.a), Contraction(c.out, c.a, c.b)


def _sum_rule(node: Node, g: Node) -> list[Node | None]:
    (x,) = node.args
    return [ops.broadcast(ops.keepdims(g, node.attr, x.shape), x.shape)]


def _logsumexp_rule(node: Node, g: Node) -> list[Node | None]:
    (x,) = node.args
    axes = node.attr
    soft = ops.elementwise(ex.call("exp", X[0] - X[1]), (x, ops.keepdims(node, axes, x.shape)))
    return [ops.mul(ops.keepdims(g, axes, x.shape), soft)]


def _transpose_rule(node: Node, g: Node) -> list[Node | None]:
    perm = node.attr
    inverse = tuple(perm.index(i) for i in range(len(perm)))
    return [ops.transpose(g, inverse)]


RULES: dict[Op, Callable[[Node, Node], list[Node | None]]] = {
    Op.EW: _ew_rule,
    Op.DOT: _dot_rule,
    Op.SUM: _sum_rule,
    Op.LOGSUMEXP: _logsumexp_rule,
    Op.TRANSPOSE: _transpose_rule,
    Op.RESHAPE: lambda node, g: [ops.reshape(g, node.args[0].shape)],
    Op.BROADCAST: lambda node, g: [g],  # unbroadcast below sums it back
    Op.BATCH_SUM: lambda node, g: [g],  # the same adjoint for every example
}


# ---------------------------------------------------------------------- the pass


def backward(
    roots: list[tuple[Node, Node]],
    wrt: list[Node],
    origin: dict[Node, Node] | None = None,
    adjoints: dict[Node, Node] | None = None,
) -> list[Node]:
    """Adjoints of ``wrt`` for the sum over roots of <cotangent, root>.

    ``roots`` pairs each output node with its cotangent (seed). Only nodes on a path to a
    ``wrt`` node are visited. If ``origin`` is given it records, for every adjoint node made,
    the forward node whose rule made it (the generated code cites that node's spec line);
    ``adjoints`` receives the whole adjoint of every node visited.
    """
    wanted = set(wrt)  # (nodes hash by identity)
    order = toposort([r for r, _ in roots])
    forward = set(order)
    ctx = Context(nodes=forward)  # what the adjoints may reuse: the forward values
    reaches: set[Node] = set()
    for node in order:
        if node in wanted:
            reaches.add(node)
        else:
            for a in node.args:
                if a in reaches:
                    reaches.add(node)
                    break
    needed = reaches.__contains__
    pending: dict[Node, list[Node]] = {}
    for root, seed in roots:
        pending.setdefault(root, []).append(seed)
    adjoint: dict[Node, Node] = {} if adjoints is None else adjoints
    for node in reversed(order):
        if node not in pending or node not in reaches:
            continue
        g = _sum_all(pending.pop(node))
        adjoint[node] = g
        if origin is not None:
            origin.setdefault(g, node)
        if node.op not in RULES:
            continue
        contribs = _ew_rule(node, g, needed) if node.op is Op.EW else RULES[node.op](node, g)
        for arg, contrib in zip(node.args, contribs):
            if contrib is None or arg not in reaches:
                continue
            if contrib.op is Op.EW and rules.may_share(contrib.attr):
                made = contrib
                contrib = _as_rewritten(contrib, ctx)
                if origin is not None and contrib is not made:
                    for part in contrib.args:  # a part the rules split out: this node's too
                        if part not in forward:
                            origin.setdefault(part, node)
            if contrib.shape != arg.shape or (node.batched and not arg.batched):
                contrib = unbroadcast(contrib, arg, node.batched)
            if origin is not None:
                origin.setdefault(contrib, node)
            pending.setdefault(arg, []).append(contrib)
    return [adjoint.get(w) or ops.broadcast(ops.const(0), w.shape) for w in wrt]


SUM_TERMS = 8  # terms per node of an adjoint's sum: a node with 2,000 children gets a tree


def _sum_all(terms: list[Node]) -> Node:
    """The adjoint of a node with several children: the sum of their contributions, one
    node per SUM_TERMS terms (its expression x0 + x1 + ... is made once per count)."""
    if len(terms) == 1:
        return terms[0]
    if len(terms) <= SUM_TERMS:  # the usual case: distinct arrays of one shape, summed as is
        shape, batched = terms[0].shape, False
        for t in terms:
            if t.shape != shape or t.op in ops.UNWRAPPED:
                break
            batched = batched or t.batched
        else:
            if len(set(terms)) == len(terms):
                return Node(Op.EW, tuple(terms), _sum_expr(len(terms)), shape, batched)
    while len(terms) > 1:
        terms = [
            ops.elementwise(_sum_expr(len(part)), part) if len(part) > 1 else part[0]
            for part in (terms[i : i + SUM_TERMS] for i in range(0, len(terms), SUM_TERMS))
        ]
    return terms[0]


@functools.lru_cache(maxsize=256)
def _sum_expr(k: int) -> ex.Expr:
    total = X[0]
    for i in range(1, k):
        total = total + X[i]
    return total


def grad(
    graph: Graph,
    origin: dict[Node, Node] | None = None,
    adjoints: dict[Node, Node] | None = None,
) -> dict[str, Node]:
    """Gradients of the batch-mean Loss with respect to every Param, by name.

    The seed is 1 per example; the sum over the batch then divides by n, so each weight
    gradient reads as "δ aᵀ averaged over the batch".
    """
    params = [d.node for d in graph.params.values()]
    loss = graph.loss
    seed = ops.const(1)
    grads = backward([(loss, seed)], params, origin, adjoints)
    out = {}
    for name, g in zip(graph.params, grads):
        if graph.has_batch:
            if g.batched:  # only possible if the param reaches the loss unreduced
                g = ops.batch_sum(g)
            if loss.batched:
                g = ops.div(g, ops.batch_size())
        out[name] = g
    return out
