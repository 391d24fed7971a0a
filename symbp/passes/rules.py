"""The rule sets, as data: every rewrite symbp makes after parsing, by name.

The constructors of ``symbp.ir.ops`` and ``symbp.ir.expr`` already apply the identities every
build gets (numbers fold, x * 1 = x, x + x = 2 x, x x = x², (xᵀ)ᵀ = x, transposes fold
into contractions, a reshape to the same shape is no reshape, no explicit broadcast feeds
an elementwise node), so a rule never sees those forms: a rewrite rebuilds every node
above the one it changes, and what the constructors do costs nothing later. The sets here
are what ``symbp.passes.pipeline`` runs (canonicalize to cse both before and after
differentiation; ``grad`` builds its adjoints in the cse and specialize form, with
``share_costly``):

- ``stabilize`` (before differentiation): the saturating functions' logs in stable form.
- ``canonicalize``: one form for one computation (sums of sums merged).
- ``constant_fold``: operations whose input is one constant value everywhere.
- ``simplify``: algebra (exp(a) exp(b) = exp(a + b), sums of broadcasts, batch sums of scaled
  values).
- ``cse``: a transcendental subexpression computed twice in one expression gets its own
  node (structural CSE of equal nodes is free: nodes are hash-consed).
- ``specialize`` (after differentiation): reuse a value the graph already computes.
- ``fuse``: elementwise chains into one expression, one loop in the C backend.

Dead code needs no rule: a program is its roots, and a node no root reaches is gone after
any pass (``symbp grad --passes`` shows the node counts before and after each).
"""

from __future__ import annotations

from functools import lru_cache

from ..ir import expr as ex
from ..ir import ops
from ..ir.expr import ONE, Expr, X
from ..ir.functions import FUNCTIONS
from ..ir.indexing import Span
from ..ir.node import Node, Op
from .rewrite import Context, Rule, RuleSet, equation

EW = (Op.EW,)


def _suspect(node: Node, depth: int = 3) -> bool:
    """An elementwise node computing exp or sigmoid, possibly a few levels down."""
    if node.op is not Op.EW or depth == 0:
        return False
    return ex.has(node.attr, "exp", "sigmoid") or any(_suspect(a, depth - 1) for a in node.args)


def _inline(attr: Expr, args: list[Node], i: int) -> tuple[Expr, list[Node]]:
    """The expression with its i-th argument (an elementwise node) written out in place."""
    inner = args[i]
    return _inlined(attr, len(args), i, inner.attr), args + list(inner.args)


@lru_cache(maxsize=65536)  # a graph repeats a few expressions many times
def _inlined(attr: Expr, n: int, i: int, inner: Expr) -> Expr:
    inner = ex.substitute(inner, {j: X[n + j] for j in range(len(inner.args_used))})
    return ex.substitute(attr, {i: inner})


def _unstable(e: Expr) -> bool:
    """Does ``e`` take the log of something that underflows to zero?"""
    return any(t.op == "log" and ex.has(t.args[0], "sigmoid", "exp") for t in ex.walk(e))


# ------------------------------------------------------------------- stabilize

STABLE_EQUATIONS = [
    equation("1 / (1 + exp(x)) = sigmoid(-x)", "sigmoid_form"),
    equation("(1 + exp(x)) ** -1 = sigmoid(-x)", "sigmoid_form_pow"),
    equation("exp(x) / (1 + exp(x)) = sigmoid(x)", "sigmoid_form_exp"),
    equation("log(sigmoid(x)) = -softplus(-x)", "log_sigmoid"),
    equation("log(1 - sigmoid(x)) = -softplus(x)", "log_one_minus_sigmoid"),
    equation("log(1 + exp(x)) = softplus(x)", "log_one_plus_exp"),
    equation("log(exp(x)) = x", "log_exp"),
]


def stabilize_log(node: Node, ctx: Context) -> Node | None:
    """log(sigmoid(u)) -> -softplus(-u), log(softmax(z)) -> log_softmax(z), and friends,
    where the argument of the log is computed by other nodes: the arguments that compute
    exp or sigmoid are written out into the log's expression, where the stable-form
    equations can see the whole formula. Declines unless the result is stable."""
    if not ex.has(node.attr, "log"):
        return None
    expr, args = node.attr, list(node.args)
    for _ in range(8):
        i = next((i for i, a in enumerate(args) if i in expr.args_used and _suspect(a)), None)
        if i is None:
            break
        expr, args = _inline(expr, args, i)
    stable, fired = STABILIZE.normal_form(expr)
    logs_of_suspects = any(
        t.op == "log" and any(_suspect(node.args[i]) for i in t.args[0].args_used)
        for t in ex.walk(node.attr)
    )
    if not (fired or logs_of_suspects) or _unstable(stable):
        return None
    if any(i in stable.args_used and _suspect(a) for i, a in enumerate(args)):
        return None
    ctx.fired.update(fired)
    return ops.elementwise(stable, args)


LOG_X, EXP_X = ex.call("log", X[0]), ex.call("exp", X[0])


def log_sum_exp(node: Node, ctx: Context) -> Node | None:
    """log(sum(exp(x))) -> logsumexp(x)."""
    if node.attr is not LOG_X:
        return None
    s = node.args[0]
    if s.op is Op.SUM and s.args[0].op is Op.EW and s.args[0].attr is EXP_X:
        return ops.logsumexp(s.args[0].args[0], s.attr)
    return None


STABILIZE = RuleSet(
    "stabilize",
    [
        Rule("log_sum_exp", EW, log_sum_exp, applies=lambda e: e is LOG_X),
        Rule("stabilize_log", EW, stabilize_log, applies=lambda e: ex.has(e, "log")),
    ],
    equations=STABLE_EQUATIONS,
    doc="before differentiation: saturating functions and their logs in stable form",
)


# ---------------------------------------------------------------- canonicalize


def sum_of_sum(node: Node, ctx: Context) -> Node | None:
    """sum(sum(x, a), b) is one sum over both sets of axes."""
    inner = node.args[0]
    if inner.op is not Op.SUM or not ctx.single_use(inner):
        return None
    kept = [ax for ax in range(inner.args[0].ndim) if ax not in inner.attr]
    axes = sorted(inner.attr + tuple(kept[ax] for ax in node.attr))
    return ops.reduce_sum(inner.args[0], tuple(axes))


CANONICALIZE = RuleSet(
    "canonicalize",
    [
        Rule("sum_of_sum", (Op.SUM,), sum_of_sum),
    ],
    doc="one form for one computation",
)


# --------------------------------------------------------------- constant_fold


def fold_uniform(node: Node, ctx: Context) -> Node | None:
    """An operation on one constant value everywhere: sum(c over m elements) = m c,
    logsumexp(c over m) = c + log m, transposes and reshapes of it are broadcasts of c."""
    c = ops.uniform_constant(node.args[0])
    if c is None or node.op is Op.BROADCAST:
        return None
    x = node.args[0]
    if node.op in (Op.TRANSPOSE, Op.RESHAPE, Op.MAX, Op.MIN):  # (the max of c's is c)
        return ops.broadcast(c, node.shape)
    count = 1
    for ax in node.attr:
        count *= x.shape[ax]
    if node.op is Op.SUM:
        value = ex.mul(ex.num(count), c.attr)
    else:
        value = ex.add(c.attr, ex.call("log", ex.num(count)))
    return ops.broadcast(ops.const(value), node.shape)


CONSTANT_FOLD = RuleSet(
    "constant_fold",
    [
        Rule(
            "fold_uniform",
            (Op.SUM, Op.LOGSUMEXP, Op.TRANSPOSE, Op.RESHAPE, Op.MAX, Op.MIN),
            fold_uniform,
        ),
    ],
    doc="operations on a constant: their value, computed once at compile time",
)


# -------------------------------------------------------------------- simplify


def sum_of_broadcast(node: Node, ctx: Context) -> Node | None:
    """sum(broadcast(s)) of a scalar s over the broadcast axes is s times their size."""
    if node.args[0].op is not Op.BROADCAST:
        return None
    inner = node.args[0].args[0]
    full = node.args[0].shape
    if inner.ndim != 0:
        return None
    count = 1
    for ax in node.attr:
        count *= full[ax]
    return ops.broadcast(ops.elementwise(X[0] * count, (inner,)), node.shape)


def batch_sum_scale(node: Node, ctx: Context) -> Node | None:
    """Sum over the batch of c * x, c the same for every example: c * (sum of x)."""
    inner = node.args[0]
    if inner.op is not Op.EW:
        return None
    batched = [i for i, a in enumerate(inner.args) if a.batched]
    if len(batched) != 1:
        return None
    i = batched[0]
    factor = linear_factor(inner.attr, i)
    if factor is None:
        return None  # not a product with the batched argument
    args = list(inner.args)
    args[i] = ops.batch_sum(inner.args[i])
    return ops.elementwise(factor * X[i], args)


def linear_factor(e: Expr, i: int) -> Expr | None:
    """``f`` when ``e`` is f * arg(i) (or arg(i) / f, -arg(i)) with f free of arg(i)."""
    x = ex.arg(i)
    if e is x:
        return ONE
    if e.op == "neg":
        f = linear_factor(e.args[0], i)
        return None if f is None else ex.neg(f)
    if e.op == "mul":
        a, b = e.args
        if b is x and i not in a.args_used:
            return a
        if a is x and i not in b.args_used:
            return b
    if e.op == "div" and e.args[0] is x and i not in e.args[1].args_used:
        return ex.div(ONE, e.args[1])
    return None


ALGEBRA = [
    equation("c * x + k * x = (c + k) * x", "collect"),
    equation("x ** c * x = x ** (c + 1)", "power_times_base"),
    equation("abs(abs(x)) = abs(x)", "abs_abs"),
    equation("abs(-x) = abs(x)", "abs_neg"),
    equation("relu(relu(x)) = relu(x)", "relu_relu"),
    equation("tanh(-x) = -tanh(x)", "tanh_odd"),
    equation("sin(-x) = -sin(x)", "sin_odd"),
    equation("cos(-x) = cos(x)", "cos_even"),
    equation("exp(x) * exp(y) = exp(x + y)", "exp_product"),
]

# indexing


def sum_of_unslices(node: Node, ctx: Context) -> Node | None:
    """Adjoints of slices of one value that meet, side by side along one axis (x[0], x[1],
    ...; x[:3], x[3:]), are one write of their join: O(the value's size), not that times
    the number of slices."""
    runs = _adjacent_unslices([a if ctx.single_use(a) else None for a in node.args])
    if not runs:
        return None
    merged = [i for run in runs for i in run]
    terms = [a for i, a in enumerate(node.args) if i not in merged]
    for run in runs:
        parts = [node.args[i] for i in run]
        index, shape = parts[0].attr
        axis = next(k for k, e in enumerate(index) if e != Span(0, shape[k], 1))
        entries = [p.attr.index[axis] for p in parts]
        if all(isinstance(e, int) for e in entries):
            joined = ops.concat([p.args[0] for p in parts], axis, new=True)
        else:
            pieces = [_with_axis(p.args[0], e, axis) for p, e in zip(parts, entries)]
            joined = ops.concat(pieces, axis)
        start = entries[0] if isinstance(entries[0], int) else entries[0].start
        span = Span(start, joined.shape[axis], 1)
        terms.append(ops.unslice(joined, index[:axis] + (span,) + index[axis + 1 :], shape))
    return terms[0] if len(terms) == 1 else ops.elementwise(ex.sum_of(len(terms)), terms)


def _with_axis(g: Node, entry, axis: int) -> Node:
    """``g``, the values at an int index of ``axis``, with that axis back (size 1)."""
    if not isinstance(entry, int):
        return g
    return ops.reshape(g, g.shape[:axis] + (1,) + g.shape[axis:])


def _adjacent_unslices(args: list[Node | None]) -> list[list[int]]:
    """Runs (of two or more) of the UNSLICE arguments that write, into zeros of one shape,
    at an int or a step-1 span of one axis and the whole of the others, one after another
    along that axis: their positions, in the order of the axis."""
    groups: dict[tuple, list[tuple[int, int, int]]] = {}
    for i, a in enumerate(args):
        if a is None or a.op is not Op.UNSLICE:
            continue
        index, shape = a.attr
        partial = [k for k, e in enumerate(index) if e != Span(0, shape[k], 1)]
        e = index[partial[0]] if len(partial) == 1 else None
        if e is None or (isinstance(e, Span) and e.step != 1):
            continue
        lo, count = (e, 1) if isinstance(e, int) else (e.start, e.count)
        groups.setdefault((shape, partial[0]), []).append((lo, lo + count, i))
    runs = []
    for spans in groups.values():
        spans.sort()
        run = [spans[0]]
        for s in spans[1:] + [None]:
            if s is not None and s[0] == run[-1][1]:
                run.append(s)
                continue
            if len(run) > 1:
                runs.append([i for _, _, i in run])
            run = [s]
    return runs


def _is_plain_sum(e: Expr) -> bool:
    """Is ``e`` a sum of distinct arguments, each once (as adjoints that meet add up)?"""
    if e.op == "arg":
        return True
    return e.op == "add" and all(_is_plain_sum(t) for t in e.args)


SIMPLIFY = RuleSet(
    "simplify",
    [
        Rule("sum_of_broadcast", (Op.SUM,), sum_of_broadcast),
        Rule("batch_sum_scale", (Op.BATCH_SUM,), batch_sum_scale),
        # indexing
        Rule("sum_of_unslices", EW, sum_of_unslices, applies=_is_plain_sum),
    ],
    equations=ALGEBRA,
    doc="algebra: fewer and cheaper operations",
)


# ------------------------------------------------------------------------- cse

EXPENSIVE = frozenset({"pow", *(name for name, f in FUNCTIONS.items() if f.costly)})


def shared_subexpression(node: Node, ctx: Context) -> Node | None:
    """A costly subexpression that one expression computes twice, e.g. sigmoid(u) in the
    derivative of u sigmoid(u), becomes a node of its own, computed once."""
    t = _repeated_part(node.attr)
    if t is None:
        return None
    part = ops.elementwise(t, node.args)
    n = len(node.args)
    return ops.elementwise(ex.replace(node.attr, {t: X[n]}), list(node.args) + [part])


@lru_cache(maxsize=65536)
def _repeated_part(e: Expr) -> Expr | None:
    """The largest costly subexpression ``e`` computes more than once, if any."""
    seen: dict[Expr, int] = {}
    for t in _subtrees(e):
        if t.op in EXPENSIVE and t.args_used:
            seen[t] = seen.get(t, 0) + 1
    twice = [t for t, k in seen.items() if k > 1]
    return max(twice, key=lambda s: s.size) if twice else None  # its parts go with it


def _subtrees(e: Expr):
    """Every subtree, counted once per occurrence."""
    stack = [e]
    while stack:
        t = stack.pop()
        yield t
        stack.extend(t.args)


CSE = RuleSet(
    "cse",
    [
        Rule(
            "shared_subexpression",
            EW,
            shared_subexpression,
            applies=lambda e: _repeated_part(e) is not None,
        )
    ],
    doc="a costly subexpression computed twice in one expression, once",
)


# ------------------------------------------------------------------ specialize


def reuse_value(node: Node, ctx: Context) -> Node | None:
    """A part of an expression that another node of the graph already computes (a
    forward value the backward pass needs again) is read from that node."""
    args = node.args
    for t, alone, used in _costly_parts(node.attr):
        inner = tuple(args[j] for j in used)
        if (
            Node.find(
                Op.EW,
                inner,
                alone,
                ops.broadcast_shapes(*(a.shape for a in inner)),
                any(a.batched for a in inner),
            )
            is None
        ):
            continue  # no node anywhere computes it (the test that is true of most parts)
        candidate = ops.elementwise(t, args)
        if (candidate in ctx.nodes or candidate in ctx.made) and candidate is not node:
            n = len(node.args)
            return ops.elementwise(ex.replace(node.attr, {t: X[n]}), list(node.args) + [candidate])
    return None


@lru_cache(maxsize=65536)
def _costly_parts(e: Expr) -> tuple[tuple[Expr, Expr, tuple[int, ...]], ...]:
    """The costly proper subexpressions of ``e`` that read an argument, outermost first
    (none for an expression of more than 64 terms), each with the expression a node
    computing it alone would hold and which of ``e``'s arguments it reads."""
    if e.size > 64:
        return ()
    n = max(e.args_used, default=-1) + 1
    return tuple(
        (t, *ops.canonical_form(t, tuple(range(n))))
        for t in ex.walk(e)
        if t is not e and t.op in EXPENSIVE and t.args_used
    )


def share_costly(node: Node, ctx: Context) -> Node:
    """``node`` in the form the cse and specialize rules give it: a costly part it computes
    more than once read from a node of its own, a part the graph computes (``ctx.nodes``)
    read from there. ``grad`` builds its adjoints through this, each rewrite made once."""
    for _ in range(8):
        if node.op is not Op.EW or not (_costly_parts(node.attr) or _repeated_part(node.attr)):
            break  # (most expressions have no costly part)
        out = shared_subexpression(node, ctx) or reuse_value(node, ctx)
        if out is None:
            break
        node = out
    return node


SPECIALIZE = RuleSet(
    "specialize",
    [Rule("reuse_value", EW, reuse_value, applies=lambda e: bool(_costly_parts(e)))],
    doc="after differentiation: values the graph already has, reused",
)


# ------------------------------------------------------------------------ fuse

FUSE_MAX_ARGS = 6  # a fused loop reading more arrays than this stops paying off
FUSE_MAX_SIZE = 60  # and an expression larger than this stops being readable


def fuse_elementwise(node: Node, ctx: Context) -> Node | None:
    """Inline an elementwise argument used only here into this elementwise node, while the
    result stays a small expression (long chains would grow it, and the time, without end)."""
    uses, keep, args = ctx.uses, ctx.keep, node.args
    # inline only where X[i] occurs once: more would compute arg several times
    for i in _read_once(node.attr):
        arg = args[i]
        if arg.op is Op.EW and uses.get(arg, 0) <= 1 and arg not in keep:  # single use
            if len(node.args) + len(arg.args) - 1 > FUSE_MAX_ARGS:
                continue
            if node.attr.size + arg.attr.size > FUSE_MAX_SIZE:
                continue
            expr, args = _inline(node.attr, list(node.args), i)
            return ops.elementwise(expr, args)
    return None


@lru_cache(maxsize=65536)
def _read_once(e: Expr) -> tuple[int, ...]:
    """The arguments ``e`` reads exactly once, in order."""
    return tuple(i for i in sorted(e.args_used) if e.uses(i) == 1)


FUSE = RuleSet(
    "fuse",
    [
        Rule("fuse_elementwise", EW, fuse_elementwise, applies=lambda e: bool(_read_once(e))),
    ],
    doc="elementwise chains into one expression: one loop in C",
)

ALL = [STABILIZE, CANONICALIZE, CONSTANT_FOLD, SIMPLIFY, CSE, SPECIALIZE, FUSE]
