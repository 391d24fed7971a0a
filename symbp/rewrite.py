"""Rewrite passes: rules as data, one driver, one pipeline that names every pass.

A rule is a function ``(node, ctx) -> Node | None``; ``None`` declines. A rule set is a
named list of rules, list order being priority. ``run_pass`` rebuilds a graph bottom-up,
applying the first rule that fires to each node until none does, and returns the map from
old to new nodes so that names and spec lines follow the values they label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy

from . import elementwise as ew
from . import ops
from .elementwise import X
from .ir import Node, Op, toposort, use_counts

Rule = Callable[[Node, "Context"], "Node | None"]


@dataclass
class Context:
    """What a rule may ask about the graph: use counts and nodes that must stay variables."""

    uses: dict[Node, int] = field(default_factory=dict)
    keep: set[int] = field(default_factory=set)  # ids of named nodes

    def single_use(self, node: Node) -> bool:
        return self.uses.get(node, 0) <= 1 and id(node) not in self.keep


@dataclass
class Pass:
    name: str
    rules: list[tuple[str, Rule]]


@dataclass
class PassStats:
    name: str
    fired: Counter
    nodes_before: int
    nodes_after: int


def rebuild(node: Node, args: list[Node]) -> Node:
    """The node ``node`` would be with ``args``, through the canonicalizing constructors."""
    if list(node.args) == args:
        return node
    op = node.op
    if op is Op.EW:
        return ops.elementwise(node.attr, args)
    if op is Op.SUM:
        return ops.reduce_sum(args[0], node.attr)
    if op is Op.BATCH_SUM:
        return ops.batch_sum(args[0])
    if op is Op.LOGSUMEXP:
        return ops.logsumexp(args[0], node.attr)
    if op is Op.DOT:
        return ops.dot(args[0], args[1], node.attr)
    if op is Op.TRANSPOSE:
        return ops.transpose(args[0], node.attr)
    if op is Op.RESHAPE:
        return ops.reshape(args[0], node.attr)
    if op is Op.BROADCAST:
        return ops.broadcast(args[0], node.attr)
    raise AssertionError(f"cannot rebuild {op}")


def run_pass(
    p: Pass, roots: list[Node], keep: set[int], max_sweeps: int = 20
) -> tuple[dict[Node, Node], PassStats]:
    """Apply ``p`` to the graph below ``roots`` until nothing fires; old -> new node map."""
    total: dict[Node, Node] = {n: n for n in toposort(roots)}
    before = len(total)
    fired: Counter = Counter()
    current = list(roots)
    for _ in range(max_sweeps):
        ctx = Context(use_counts(current), keep)
        mapping: dict[Node, Node] = {}
        changed = False
        for old in toposort(current):
            new = rebuild(old, [mapping[a] for a in old.args])
            for _ in range(100):
                for rule_name, rule in p.rules:
                    out = rule(new, ctx)
                    if out is not None and out is not new:
                        fired[rule_name] += 1
                        new = out
                        break
                else:
                    break
            if new is not old:
                changed = True
                ctx.uses[new] = ctx.uses.get(new, 0) + ctx.uses.get(old, 0)
                if id(old) in keep:
                    keep.add(id(new))
            mapping[old] = new
        total = {k: mapping.get(v, v) for k, v in total.items()}
        current = [mapping[r] for r in current]
        if not changed:
            break
    after = len(toposort(current))
    return total, PassStats(p.name, fired, before, after)


# ------------------------------------------------------------------------------ rules


def _substitute(node: Node, i: int) -> tuple[sympy.Expr, list[Node]]:
    """The expression of ``node`` with its i-th argument (an EW node) inlined."""
    inner = node.args[i]
    n = len(node.args)
    args = list(node.args) + list(inner.args)
    inner_expr = inner.attr.xreplace({X[j]: X[n + j] for j in range(len(inner.args))})
    return node.attr.xreplace({X[i]: inner_expr}), args


def _suspect(node: Node, depth: int = 3) -> bool:
    """An elementwise node computing exp or sigmoid, possibly a few levels down."""
    if node.op is not Op.EW or depth == 0:
        return False
    return node.attr.has(sympy.exp, ew.sigmoid) or any(_suspect(a, depth - 1) for a in node.args)


def stabilize_log(node: Node, ctx: Context) -> Node | None:
    """log(sigmoid(u)) -> -softplus(-u), log(softmax(z)) -> log_softmax(z), and friends.

    The suspect arguments (those computing exp or sigmoid) are inlined into the log's
    expression, where sympy and ``elementwise.stabilize`` can see the whole formula.
    """
    if node.op is not Op.EW or not node.attr.has(sympy.exp, sympy.log):
        return None
    if not any(_suspect(a) for a in node.args):  # the whole formula is in this node
        expr = ew.stabilize(node.attr)
        if expr == node.attr or ew.is_unstable(expr):
            return None
        return ops.elementwise(expr, node.args)
    expr, args = node.attr, list(node.args)
    for _ in range(8):
        used = {ew.placeholder_index(sym) for sym in expr.free_symbols}
        i = next((i for i, a in enumerate(args) if i in used and _suspect(a)), None)
        if i is None:
            break
        expr, args = _substitute(Node(Op.EW, tuple(args), expr, node.shape, node.batched), i)
    expr = ew.stabilize(expr)
    used = {ew.placeholder_index(sym) for sym in expr.free_symbols}
    if ew.is_unstable(expr) or any(i in used and _suspect(a) for i, a in enumerate(args)):
        return None
    return ops.elementwise(expr, args)


def log_sum_exp(node: Node, ctx: Context) -> Node | None:
    """log(sum(exp(x))) -> logsumexp(x)."""
    if node.op is not Op.EW or node.attr != sympy.log(X[0]):
        return None
    s = node.args[0]
    if s.op is Op.SUM and s.args[0].op is Op.EW and s.args[0].attr == sympy.exp(X[0]):
        return ops.logsumexp(s.args[0].args[0], s.attr)
    return None


FUSE_MAX_ARGS = 6  # a fused loop reading more arrays than this stops paying off
FUSE_MAX_OPS = 40  # and an expression longer than this stops being readable


def fuse_elementwise(node: Node, ctx: Context) -> Node | None:
    """Inline an elementwise argument used only here into this elementwise node, while the
    result stays a small expression (long chains would grow it, and the time, without end)."""
    if node.op is not Op.EW:
        return None
    for i, arg in enumerate(node.args):
        # inline only where X[i] occurs once: more would compute arg several times
        if arg.op is Op.EW and ctx.single_use(arg) and node.attr.count(X[i]) == 1:
            if len(node.args) + len(arg.args) - 1 > FUSE_MAX_ARGS:
                continue
            if sympy.count_ops(node.attr) + sympy.count_ops(arg.attr) > FUSE_MAX_OPS:
                continue
            expr, args = _substitute(node, i)
            return ops.elementwise(expr, args)
    return None


def _leading_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def drop_broadcast(node: Node, ctx: Context) -> Node | None:
    """An elementwise argument need not be broadcast, nor given leading size-1 axes,
    explicitly: elementwise broadcasting does both."""
    if node.op is not Op.EW:
        return None
    for i, arg in enumerate(node.args):
        padding = arg.op is Op.RESHAPE and (
            _leading_ones(arg.shape) == _leading_ones(arg.args[0].shape)
        )
        if arg.op is Op.BROADCAST or padding:
            args = list(node.args)
            args[i] = arg.args[0]
            shapes = [a.shape for a in args]
            if ops.broadcast_shapes(*shapes) == node.shape:
                return ops.elementwise(node.attr, args)
    return None


def sum_of_broadcast(node: Node, ctx: Context) -> Node | None:
    """sum(broadcast(c)) over the broadcast axes is c times their size."""
    if node.op is not Op.SUM or node.args[0].op is not Op.BROADCAST:
        return None
    inner = node.args[0].args[0]
    full = node.args[0].shape
    if inner.ndim == 0:
        count = 1
        for ax in node.attr:
            count *= full[ax]
        return ops.broadcast(ops.elementwise(X[0] * count, (inner,)), node.shape)
    return None


def batch_sum_scale(node: Node, ctx: Context) -> Node | None:
    """Sum over the batch of c * x, c the same for every example: c * (sum of x)."""
    if node.op is not Op.BATCH_SUM or node.args[0].op is not Op.EW:
        return None
    inner = node.args[0]
    batched = [i for i, a in enumerate(inner.args) if a.batched]
    if len(batched) != 1:
        return None
    i = batched[0]
    expr = inner.attr
    if sympy.diff(expr, X[i], 2) != 0 or expr.subs(X[i], 0) != 0:
        return None  # not linear in the batched argument
    factor = sympy.simplify(expr / X[i])
    if factor.has(X[i]):
        return None
    args = list(inner.args)
    args[i] = ops.batch_sum(inner.args[i])
    return ops.elementwise(factor * X[i], args)


STABILIZE = Pass("stabilize", [("log_sum_exp", log_sum_exp), ("stabilize_log", stabilize_log)])
SIMPLIFY = Pass(
    "simplify",
    [
        ("drop_broadcast", drop_broadcast),
        ("sum_of_broadcast", sum_of_broadcast),
        ("batch_sum_scale", batch_sum_scale),
    ],
)
FUSE = Pass(
    "fuse_elementwise",
    [("fuse_elementwise", fuse_elementwise), ("drop_broadcast", drop_broadcast)],
)
