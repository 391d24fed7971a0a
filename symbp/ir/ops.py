"""Constructors for IR nodes: shape rules, and the small canonicalizations every build gets.

Every node is made here, by the parser, by ``grad`` and by the rewrite passes alike, so the
shape rules are written once. A constructor checks its arguments and raises ``GraphError``
quoting the shapes; it also folds what is trivially the same (a transpose of a transpose,
a reshape to the same shape, an elementwise expression that is just one of its arguments).

The same functions, with operator sugar on ``Node``, are the Python way to build a network.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ..autodiff import calculus as ew
from . import expr as ex
from .expr import Expr, X
from .node import Contraction, Node, Op, Shape

LETTERS = "ijklmnopqrstuvwxyzacdefgh"  # 'b' is the batch axis in generated einsums
MAX_ELEMENTS = 2**31 - 1


class GraphError(ValueError):
    """An operation that cannot be built: shapes that do not fit, a constant that is not a
    finite number. The parser adds the spec location."""


# ---------------------------------------------------------------------------- leaves


def _check_shape(shape: Sequence[int], what: str) -> Shape:
    shape = tuple(shape)
    size = 1
    for d in shape:
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise GraphError(f"{what}: dimensions must be positive integers, got {shape}")
        size *= d
    if size > MAX_ELEMENTS:
        raise GraphError(f"{what}: {shape} has {size} elements, more than {MAX_ELEMENTS}")
    return shape


def input_node(name: str, shape: Sequence[int] = ()) -> Node:
    return Node(Op.INPUT, (), name, _check_shape(shape, f"Input {name}"), True)


def param_node(name: str, shape: Sequence[int] = ()) -> Node:
    return Node(Op.PARAM, (), name, _check_shape(shape, f"Param {name}"), False)


def const(value) -> Node:
    """A scalar constant; ``value`` a Python number (a float is taken as its shortest
    decimal, 0.1 as 1/10) or a number ``Expr``."""
    if not isinstance(value, Expr):
        value = ex.decimal(value)
    if not value.is_number:
        raise GraphError(f"a constant must be a number, got {value}")
    if value.bad:
        raise GraphError(f"the constant is {value.bad}")
    return Node(Op.CONST, (), value, (), False)


def batch_size() -> Node:
    return Node(Op.BATCH_SIZE, (), None, (), False)


# ----------------------------------------------------------------------- elementwise


def broadcast_shapes(*shapes: Shape, what: str = "elementwise operation") -> Shape:
    first = None  # the common shape of the non-scalars, if they have one
    for s in shapes:
        if s:
            if first is None:
                first = s
            elif s != first:
                return _broadcast(shapes, what)
    return () if first is None else first


@functools.lru_cache(maxsize=4096)
def _broadcast(shapes: tuple[Shape, ...], what: str) -> Shape:
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(ndim):
        dims = {s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            shown = " and ".join(str(s) for s in shapes)
            raise GraphError(f"shapes {shown} do not broadcast in {what}")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


# the arguments elementwise() may fold into the expression or unwrap: code that builds an
# elementwise node directly, as a shortcut, leaves operands of these ops to elementwise()
UNWRAPPED = frozenset((Op.CONST, Op.BROADCAST, Op.RESHAPE))

# (expression, what each argument is) -> (canonical expression, the arguments it keeps):
# graphs repeat a handful of expressions, so each is canonicalized once
_canonical_ew: dict[tuple, tuple[Expr, tuple[int, ...]]] = {}


def elementwise(expr: Expr, args: Sequence[Node], what: str = "") -> Node:
    """The node computing ``expr`` (over X[0..]) of ``args``, broadcast, in canonical form.

    Constants (broadcast or not) are folded into the expression, explicit broadcasts of
    the other arguments dropped where the result's shape allows (elementwise broadcasting
    does them), repeated arguments merged, unused ones dropped and the placeholders
    renumbered, so equal computations are one node.
    """
    args = tuple(args)  # (the same object when it is one)
    for a in args:
        if a.op is Op.BROADCAST or a.op is Op.RESHAPE:
            args = _implicit_broadcasts(args, what or "elementwise operation")
            break
    # one pass over the arguments: what each is (a constant's value, or the index of the
    # distinct node it is), and whether they all have one shape (the common case)
    kept: list[Node] = []
    pattern: list[object] = []
    shape = None  # the first array's: a scalar constant broadcasts to any shape
    same = True
    for a in args:
        op = a.op
        if op is Op.CONST:
            pattern.append((a.attr,))  # a 1-tuple: never equal to an index
            continue
        if shape is None:
            shape = a.shape
        elif a.shape != shape:
            same = False
        if op is Op.BROADCAST and a.args[0].op is Op.CONST:  # the same value everywhere
            pattern.append((a.args[0].attr,))  # (the result is broadcast to its shape below)
        elif a in kept:
            pattern.append(kept.index(a))
        else:
            pattern.append(len(kept))
            kept.append(a)
    if shape is None:
        shape = ()
    if not same:
        shape = broadcast_shapes(*(a.shape for a in args), what=what or "elementwise operation")
    key = (expr, tuple(pattern))
    hit = _canonical_ew.get(key)
    if hit is None:
        hit = ex.remember(_canonical_ew, key, canonical_form(expr, pattern))
    e, used = hit
    if e.bad:
        raise GraphError(f"{what or 'expression'} has a constant that is {e.bad}")
    if len(used) != len(kept):
        kept = [kept[j] for j in used]
    if not kept:
        node = const(e)
    elif e is X[0]:
        node = kept[0]
    else:
        inner = (
            shape if same or len(kept) == len(args) else broadcast_shapes(*(a.shape for a in kept))
        )
        batched = False
        for a in kept:
            if a.batched:
                batched = True
                break
        node = Node(Op.EW, tuple(kept), e, inner, batched)
    if node.shape != shape:
        node = broadcast(node, shape)
    return node


def _implicit_broadcasts(args: Sequence[Node], what: str) -> list[Node]:
    """``args`` without explicit broadcasts, nor reshapes that only add leading size-1 axes,
    where the elementwise result keeps its shape: elementwise broadcasting does both."""
    args = list(args)
    full = broadcast_shapes(*(a.shape for a in args), what=what)
    for i in range(len(args)):
        while True:
            a = args[i]
            if a.op is Op.BROADCAST:
                if a.args[0].op is Op.CONST:
                    break  # a constant: folded into the expression as one
            elif a.op is not Op.RESHAPE or (
                _leading_ones(a.shape) != _leading_ones(a.args[0].shape)
            ):
                break
            trial = args[:i] + [a.args[0]] + args[i + 1 :]
            if broadcast_shapes(*(t.shape for t in trial)) != full:
                break
            args = trial
    return args


def _leading_ones(shape: Shape) -> Shape:
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def canonical_form(expr: Expr, pattern: list) -> tuple[Expr, tuple[int, ...]]:
    """``expr`` with the constants of ``pattern`` folded in and its distinct arguments
    renumbered in order of use; and which distinct arguments it still reads."""
    n = len(pattern)
    values = {i: (p[0] if isinstance(p, tuple) else ex.arg(n + p)) for i, p in enumerate(pattern)}
    e = ex.substitute(expr, values)
    used = tuple(sorted(j - n for j in e.args_used))
    renumber = {n + j: ex.arg(k) for k, j in enumerate(used)}
    return ex.substitute(e, renumber), used


# the operators' expressions, made once (they are asked for once per node built)
_ADD, _SUB, _MUL, _DIV, _POW = X[0] + X[1], X[0] - X[1], X[0] * X[1], X[0] / X[1], X[0] ** X[1]
_NEG = -X[0]
_APPLIED: dict[str, Expr] = {}


def add(a: Node, b: Node) -> Node:
    return elementwise(_ADD, (a, b), "+")


def sub(a: Node, b: Node) -> Node:
    return elementwise(_SUB, (a, b), "-")


def mul(a: Node, b: Node) -> Node:
    return elementwise(_MUL, (a, b), "*")


def div(a: Node, b: Node) -> Node:
    return elementwise(_DIV, (a, b), "/")


def power(a: Node, b: Node) -> Node:
    return elementwise(_POW, (a, b), "**")


def neg(a: Node) -> Node:
    return elementwise(_NEG, (a,))


def apply(name: str, x: Node) -> Node:
    """A built-in elementwise function by its spec name (``sigmoid``, ``exp``, ...)."""
    e = _APPLIED.get(name)
    if e is None:
        e = _APPLIED[name] = ew.BUILTINS[name](X[0])  # (a KeyError for an unknown name)
    return elementwise(e, (x,), name)


# ------------------------------------------------------------------------ reductions


def _axes(axes, ndim: int, what: str) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise GraphError(f"{what}: axis {ax} is out of range for shape of rank {ndim}")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise GraphError(f"{what}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))


def reduce_sum(x: Node, axes=None) -> Node:
    axes = _axes(axes, x.ndim, "sum")
    if not axes:
        return x
    shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return Node(Op.SUM, (x,), axes, shape, x.batched)


def mean(x: Node, axes=None) -> Node:
    axes = _axes(axes, x.ndim, "mean")
    count = 1
    for ax in axes:
        count *= x.shape[ax]
    return elementwise(X[0] / count, (reduce_sum(x, axes),))


def batch_sum(x: Node) -> Node:
    """Sum over the examples; an unbatched value is the same for all n of them."""
    if not x.batched:
        return mul(batch_size(), x)
    if x.op is Op.DOT and not x.attr.sum_batch:
        return dot(x.args[0], x.args[1], _summed(x.attr))
    if x.op is Op.EW and x.attr is X[0] * X[1] and all(a.batched for a in x.args):
        scalar, other = sorted(x.args, key=lambda a: a.ndim)
        if scalar.ndim == 0:  # sum over examples of a scalar times a vector: one product
            letters = LETTERS[: other.ndim]
            return dot(scalar, other, Contraction("", letters, letters, sum_batch=True))
    return Node(Op.BATCH_SUM, (x,), None, x.shape, False)


@functools.lru_cache(maxsize=4096)
def _summed(c: Contraction) -> Contraction:
    return Contraction(c.a, c.b, c.out, sum_batch=True)


def keepdims(x: Node, axes: tuple[int, ...], full: Shape) -> Node:
    """Reinsert reduced ``axes`` of ``full`` as size-1 axes, for broadcasting back."""
    return reshape(x, tuple(1 if i in axes else d for i, d in enumerate(full)))


def logsumexp(x: Node, axes=None) -> Node:
    axes = _axes(axes, x.ndim, "logsumexp")
    if not axes:
        return x
    shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return Node(Op.LOGSUMEXP, (x,), axes, shape, x.batched)


def log_softmax(x: Node, axis: int = -1) -> Node:
    """x - logsumexp(x) along ``axis``: stable by construction."""
    axes = _axes(axis, x.ndim, "log_softmax")
    return sub(x, keepdims(logsumexp(x, axes), axes, x.shape))


def softmax(x: Node, axis: int = -1) -> Node:
    """exp(x - logsumexp(x)): never overflows, and its log simplifies to log_softmax."""
    axes = _axes(axis, x.ndim, "softmax")
    return elementwise(
        ex.call("exp", X[0] - X[1]), (x, keepdims(logsumexp(x, axes), axes, x.shape))
    )


def cross_entropy(logits: Node, target: Node) -> Node:
    """-sum(target * log_softmax(logits))."""
    if logits.shape != target.shape:
        raise GraphError(
            f"cross_entropy: logits {logits.shape} and target {target.shape} differ in shape"
        )
    return neg(reduce_sum(mul(target, log_softmax(logits))))


# ---------------------------------------------------------------------- contractions


@functools.lru_cache(maxsize=4096)
def _canonical(c: Contraction) -> Contraction:
    """Relabel axis letters in order of first appearance, so equal products hash equal
    (cached: a network has a handful of contractions, met once per product)."""
    rename: dict[str, str] = {}
    for ch in c.a + c.b + c.out:
        rename.setdefault(ch, LETTERS[len(rename)])
    a, b, out = ("".join(rename[ch] for ch in s) for s in (c.a, c.b, c.out))
    return Contraction(a, b, out, c.sum_batch)


def dot(a: Node, b: Node, c: Contraction) -> Node:
    """A general two-operand contraction; transposed operands are folded into the letters."""
    if a.op is Op.TRANSPOSE:
        perm = a.attr
        c = Contraction(
            "".join(c.a[perm.index(i)] for i in range(len(perm))), c.b, c.out, c.sum_batch
        )
        a = a.args[0]
    if b.op is Op.TRANSPOSE:
        perm = b.attr
        c = Contraction(
            c.a, "".join(c.b[perm.index(i)] for i in range(len(perm))), c.out, c.sum_batch
        )
        b = b.args[0]
    if (a.ndim == 0 or b.ndim == 0) and not (c.sum_batch and a.batched and b.batched):
        return _scale(a, b, c)
    shape, c, batched = _contracted(c, a.shape, b.shape, a.batched or b.batched)
    return Node(Op.DOT, (a, b), c, shape, batched)


@functools.lru_cache(maxsize=4096)
def _contracted(
    c: Contraction, sa: Shape, sb: Shape, either_batched: bool
) -> tuple[Shape, Contraction, bool]:
    """The output shape, the canonical contraction and whether the product is batched, for
    operands of shapes ``sa`` and ``sb`` (cached: a network has a handful of products)."""
    sizes: dict[str, int] = {}
    for letters, shape in ((c.a, sa), (c.b, sb)):
        assert len(letters) == len(shape), (letters, shape)
        for ch, d in zip(letters, shape):
            if sizes.setdefault(ch, d) != d:
                raise GraphError(f"contraction {c}: axis sizes {sizes[ch]} and {d} differ")
    if not set(c.out) <= set(sizes) or len(set(c.out)) != len(c.out):
        raise GraphError(f"contraction {c}: bad output letters")
    shape = tuple(sizes[ch] for ch in c.out)
    sum_batch = c.sum_batch and either_batched
    return (
        shape,
        _canonical(Contraction(c.a, c.b, c.out, sum_batch)),
        (either_batched and not sum_batch),
    )


def _scale(a: Node, b: Node, c: Contraction) -> Node:
    """A contraction with a scalar operand is a product with it (the seed of a gradient)."""
    scalar, other, letters = (a, b, c.b) if a.ndim == 0 else (b, a, c.a)
    summed = tuple(i for i, ch in enumerate(letters) if ch not in c.out)
    other = reduce_sum(other, summed)
    kept = [ch for ch in letters if ch in c.out]
    if set(kept) != set(c.out) or len(kept) != len(c.out):
        raise GraphError(f"contraction {c}: bad output letters")
    other = transpose(other, [kept.index(ch) for ch in c.out])
    out = mul(scalar, other)
    if c.sum_batch and out.batched:
        out = batch_sum(out)
    return out


def matmul(a: Node, b: Node) -> Node:
    """``a @ b`` with NumPy's matmul rules on per-example shapes (stacks must match)."""
    if a.ndim == 0 or b.ndim == 0:
        raise GraphError(f"matmul needs operands of rank 1 or more, got {a.shape} @ {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if ka != kb:
        raise GraphError(
            f"matmul shapes {a.shape} @ {b.shape} do not align: {ka} (last axis of the left)"
            f" != {kb} (first matrix axis of the right)"
        )
    sa = a.shape[:-2]
    sb = b.shape[:-2]
    if sa and sb and sa != sb:
        raise GraphError(f"matmul stacks {sa} and {sb} of {a.shape} @ {b.shape} differ")
    stack = "".join(LETTERS[3 + i] for i in range(max(len(sa), len(sb))))
    la = (stack[: len(sa)] + "ik") if a.ndim >= 2 else "k"
    lb = (stack[: len(sb)] + "kj") if b.ndim >= 2 else "k"
    out = stack + ("i" if a.ndim >= 2 else "") + ("j" if b.ndim >= 2 else "")
    return dot(a, b, Contraction(la, lb, out))


# -------------------------------------------------------------------------- movement


def transpose(x: Node, perm: Sequence[int] | None = None) -> Node:
    perm = tuple(range(x.ndim))[::-1] if perm is None else tuple(perm)
    if perm == tuple(range(x.ndim)):
        return x
    if x.op is Op.TRANSPOSE:
        inner = x.attr
        return transpose(x.args[0], tuple(inner[p] for p in perm))
    shape = tuple(x.shape[p] for p in perm)
    return Node(Op.TRANSPOSE, (x,), perm, shape, x.batched)


def reshape(x: Node, shape: Shape) -> Node:
    shape = tuple(shape)
    if x.size != _size(shape):
        raise GraphError(f"cannot reshape {x.shape} to {shape}")
    if shape == x.shape:
        return x
    if x.op is Op.RESHAPE:
        x = x.args[0]
        if shape == x.shape:
            return x
    if x.op is Op.BROADCAST and x.args[0].op is Op.CONST:  # still one value everywhere
        x = x.args[0]
    if x.ndim == 0:  # one value: a broadcast says so without a layout
        return broadcast(x, shape)
    return Node(Op.RESHAPE, (x,), shape, shape, x.batched)


def broadcast(x: Node, shape: Shape) -> Node:
    shape = tuple(shape)
    if broadcast_shapes(x.shape, shape, what="broadcast") != shape:
        raise GraphError(f"cannot broadcast {x.shape} to {shape}")
    if shape == x.shape:
        return x
    if x.op is Op.BROADCAST:
        x = x.args[0]
    return Node(Op.BROADCAST, (x,), shape, shape, x.batched)


def _size(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
