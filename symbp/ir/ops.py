"""Constructors for IR nodes: shape rules, and the small canonicalizations every build gets.

Every node is made by a constructor, by the parser, by ``grad`` and by the rewrite passes
alike, so the shape rules are written once. A constructor checks its arguments and raises
``GraphError`` quoting the shapes; it also folds what is trivially the same (a transpose of
a transpose, a reshape to the same shape, an elementwise expression that is just one of its
arguments). The same functions, with operator sugar on ``Node``, are the Python way to
build a network.

Here are the primitives, which the sugar and the constructors themselves build with.
``ir.node`` imports this module for the sugar, the package's one import cycle; to keep it
two modules long, nothing this module imports makes nodes. The other constructors live
beside it, in modules it does not import: the max and min reductions (``extrema``), the
compositions of these (``composites``: mean, softmax, cross_entropy) and dropout
(``randomness``); ``build.BUILD`` is every op's constructor, by op.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from fractions import Fraction

from ..errors import GraphError
from . import expr as ex
from . import indexing
from .expr import Expr, X
from .indexing import Entry, Unsliced
from .node import Contraction, Node, Op, Scatter, Shape
from .shape_rules import MAX_ELEMENTS, broadcast_shapes  # noqa: F401 (ops' own, for callers)
from .shape_rules import axes as _axes
from .shape_rules import check_shape as _check_shape
from .shape_rules import leading_ones as _leading_ones
from .shape_rules import size as _size

LETTERS = "ijklmnopqrstuvwxyzacdefgh"  # 'b' is the batch axis in generated einsums


# ---------------------------------------------------------------------------- leaves


def input_node(name: str, shape: Sequence[int] = (), integer: bool = False) -> Node:
    shape = _check_shape(shape, f"Input {name}")
    return Node(Op.INPUT, (), name, shape, True, "int" if integer else "float")


def param_node(name: str, shape: Sequence[int] = (), trained: bool = True) -> Node:
    """A Param; untrained, a Const (FROZEN: never differentiated, never folded as a number)."""
    op, kind = (Op.PARAM, "Param") if trained else (Op.FROZEN, "Const")
    return Node(op, (), name, _check_shape(shape, f"{kind} {name}"), False)


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


def elementwise(expr: Expr, args: Sequence[Node], what: str = "") -> Node:
    """The node computing ``expr`` (over X[0..]) of ``args``, broadcast, in canonical form.

    Constants (broadcast or not) are folded into the expression, explicit broadcasts of
    the other arguments dropped where the result's shape allows (elementwise broadcasting
    does them), repeated arguments merged, unused ones dropped and the placeholders
    renumbered, so that equal computations are one node.
    """
    args = tuple(args)
    n = len(args)
    # the usual case, and the hottest path of a compile: distinct arrays of one shape, no
    # constant, no view among them, so nothing to sort out
    shape = args[0].shape if args else ()
    plain = 0 < n < 64
    for a in args:
        if a.shape != shape or a.op in _SORTED_OUT:
            plain = False
            break
    if plain and (n == 1 or len(set(args)) == n):
        e, used = canonical_form(expr, _IDENTITY[n])
        inner = shape
    else:
        shape = broadcast_shapes(*(a.shape for a in args), what=what or "elementwise operation")
        if any(a.op is Op.BROADCAST or a.op is Op.RESHAPE for a in args):
            args = tuple(_implicit_broadcasts(list(args), shape))
        distinct: dict[Node, int] = {}
        e, used = canonical_form(expr, tuple([_role(a, distinct) for a in args]))
        args = tuple(distinct)
        inner = None  # the broadcast of the arguments kept
    if e.bad:
        raise GraphError(f"{what or 'expression'} has a constant that is {e.bad}")
    if len(used) < len(args):  # (args are the distinct ones now)
        args = tuple([args[j] for j in used])
    if not args:
        node = const(e)
    elif e is _X0:
        node = args[0]
    else:
        if inner is None:
            inner = broadcast_shapes(*[a.shape for a in args])
        batched = False
        for a in args:
            if a.batched:
                batched = True
                break
        node = Node(Op.EW, args, e, inner, batched)
    return node if node.shape == shape else broadcast(node, shape)


_X0 = X[0]
_IDENTITY = [tuple(range(n)) for n in range(64)]  # the pattern of n plain arguments


_SORTED_OUT = (Op.CONST, Op.BROADCAST, Op.RESHAPE)  # folded in, or dropped where they can be


def _role(a: Node, distinct: dict[Node, int]) -> tuple | int:
    """An argument's part in an elementwise node: (its value,) for a constant, else the
    index of the distinct node it is (numbered in order of first appearance)."""
    c = uniform_constant(a)
    if c is not None:
        return (c.attr,)  # a 1-tuple: never equal to an index
    return distinct.setdefault(a, len(distinct))


def uniform_constant(node: Node) -> Node | None:
    """The CONST whose value ``node`` has everywhere, if it has one."""
    if node.op is Op.CONST:
        return node
    if node.op is Op.BROADCAST and node.args[0].op is Op.CONST:
        return node.args[0]
    return None


def _implicit_broadcasts(args: list[Node], shape: Shape) -> list[Node]:
    """``args`` without explicit broadcasts, nor reshapes that only add leading size-1 axes,
    where the elementwise result keeps its ``shape``: elementwise broadcasting does both."""
    for i in range(len(args)):
        while args[i].op in (Op.BROADCAST, Op.RESHAPE) and uniform_constant(args[i]) is None:
            a = args[i]
            if a.op is Op.RESHAPE and _leading_ones(a.shape) != _leading_ones(a.args[0].shape):
                break
            trial = args[:i] + [a.args[0]] + args[i + 1 :]
            if broadcast_shapes(*(t.shape for t in trial)) != shape:
                break
            args = trial
    return args


@functools.lru_cache(maxsize=65536)  # graphs repeat a few expressions many times
def canonical_form(expr: Expr, pattern: tuple) -> tuple[Expr, tuple[int, ...]]:
    """``expr`` with the constants of ``pattern`` folded in and its distinct arguments
    renumbered in order of use; and which distinct arguments it still reads."""
    n = len(pattern)
    values = {i: (p[0] if isinstance(p, tuple) else ex.arg(n + p)) for i, p in enumerate(pattern)}
    e = ex.substitute(expr, values)
    used = tuple(sorted(j - n for j in e.args_used))
    renumber = {n + j: ex.arg(k) for k, j in enumerate(used)}
    return ex.substitute(e, renumber), used


def as_node(v) -> Node:
    """A node, or a Python number as a constant node."""
    if isinstance(v, Node):
        return v
    if isinstance(v, int | float | Fraction) and not isinstance(v, bool):
        return const(v)
    raise TypeError(f"expected a symbp node or a number, got {type(v).__name__}")


_ADD, _SUB, _MUL, _DIV, _POW, _NEG = (
    X[0] + X[1],
    X[0] - X[1],
    X[0] * X[1],
    X[0] / X[1],
    X[0] ** X[1],
    -X[0],
)


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


def apply(name: str, *args: Node) -> Node:
    """An elementwise function of ``symbp.ir.functions`` by name (``sigmoid``, ``exp``, ...)."""
    return elementwise(_call(name, len(args)), args, name)


@functools.cache
def _call(name: str, arity: int) -> Expr:
    return ex.call(name, *(X[i] for i in range(arity)))


# ------------------------------------------------------------------------ reductions


def reduce_sum(x: Node, axes=None) -> Node:
    axes = _axes(axes, x.ndim, "sum")
    if not axes:
        return x
    shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return Node(Op.SUM, (x,), axes, shape, x.batched)


def batch_sum(x: Node) -> Node:
    """Sum over the examples; an unbatched value is the same for all n of them."""
    if not x.batched:
        return mul(batch_size(), x)
    if x.op is Op.SCATTER_ADD:  # the examples' rows added into one table
        return scatter_add(*x.args, x.attr.rows, sum_batch=True)
    if x.op is Op.DOT and not x.attr.sum_batch:
        c = x.attr
        return dot(x.args[0], x.args[1], Contraction(c.a, c.b, c.out, sum_batch=True))
    if x.op is Op.EW and x.attr is X[0] * X[1] and all(a.batched for a in x.args):
        scalar, other = sorted(x.args, key=lambda a: a.ndim)
        if scalar.ndim == 0:  # sum over examples of a scalar times a vector: one product
            letters = LETTERS[: other.ndim]
            return dot(scalar, other, Contraction("", letters, letters, sum_batch=True))
    return Node(Op.BATCH_SUM, (x,), None, x.shape, False)


def keepdims(x: Node, axes: tuple[int, ...], full: Shape) -> Node:
    """Reinsert reduced ``axes`` of ``full`` as size-1 axes, for broadcasting back."""
    return reshape(x, tuple(1 if i in axes else d for i, d in enumerate(full)))


def logsumexp(x: Node, axes=None) -> Node:
    axes = _axes(axes, x.ndim, "logsumexp")
    if not axes:
        return x
    shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return Node(Op.LOGSUMEXP, (x,), axes, shape, x.batched)


# ---------------------------------------------------------------------- contractions


def _canonical(c: Contraction) -> Contraction:
    """Relabel axis letters in order of first appearance, so equal products hash equal."""
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


@functools.lru_cache(maxsize=4096)  # a network has a handful of products, each met many times
def _contracted(c: Contraction, sa: Shape, sb: Shape, batched: bool) -> tuple:
    """The output shape, the canonical contraction and whether the product is batched, for
    operands of shapes ``sa`` and ``sb`` (``batched``: is one of them?)."""
    sizes: dict[str, int] = {}
    for letters, shape in ((c.a, sa), (c.b, sb)):
        assert len(letters) == len(shape), (letters, shape)
        for ch, d in zip(letters, shape):
            if sizes.setdefault(ch, d) != d:
                raise GraphError(f"contraction {c}: axis sizes {sizes[ch]} and {d} differ")
    if not set(c.out) <= set(sizes) or len(set(c.out)) != len(c.out):
        raise GraphError(f"contraction {c}: bad output letters")
    sum_batch = c.sum_batch and batched
    canonical = _canonical(Contraction(c.a, c.b, c.out, sum_batch))
    return tuple(sizes[ch] for ch in c.out), canonical, batched and not sum_batch


def runtime_subscripts(node: Node) -> tuple[str, str, str]:
    """A DOT node's einsum letters over the arrays as they are at run time: "b", the batch
    axis, leads every batched operand and a batched result."""
    a, b = node.args
    c = node.attr
    return (
        "b" + c.a if a.batched else c.a,
        "b" + c.b if b.batched else c.b,
        "b" + c.out if node.batched else c.out,
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
    if shape == x.shape:
        return x
    if broadcast_shapes(x.shape, shape, what="broadcast") != shape:
        raise GraphError(f"cannot broadcast {x.shape} to {shape}")
    if x.op is Op.BROADCAST:
        x = x.args[0]
    return Node(Op.BROADCAST, (x,), shape, shape, x.batched)


# -------------------------------------------------------------------------- indexing


def getitem(x: Node, key) -> Node:
    """``x[key]``: NumPy's basic indexing of the per-example axes (``Node.__getitem__``)."""
    return slice_(x, indexing.entries(key, x.shape))


def slice_(x: Node, index: tuple[Entry, ...]) -> Node:
    """``x`` at a canonical ``index`` (ir.indexing): one int or Span per axis."""
    indexing.check_index(index, x.shape)
    if indexing.is_whole(index, x.shape):
        return x
    shape = indexing.sliced_shape(index)
    c = uniform_constant(x)
    if c is not None:
        return broadcast(c, shape)
    if x.op is Op.SLICE:  # a slice of a slice is one slice
        return slice_(x.args[0], indexing.composed(x.attr, index))
    if x.op is Op.UNSLICE and x.attr.index == index:  # the values written there
        return x.args[0]
    if x.op is Op.CONCAT:
        i = indexing.part_at(x.attr, [p.shape for p in x.args], x.shape, index)
        if i is not None:
            return x.args[i]
    return Node(Op.SLICE, (x,), index, shape, x.batched, x.dtype)  # ids[1:] of integer ids


def unslice(g: Node, index: tuple[Entry, ...], shape: Shape) -> Node:
    """Zeros of ``shape`` with ``g`` written at ``index``: the adjoint of ``x[index]``."""
    indexing.check_index(index, shape)
    if g.shape != indexing.sliced_shape(index):
        raise GraphError(f"unslice: {g.shape} does not fill {indexing.sliced_shape(index)}")
    if indexing.is_whole(index, shape):
        return g
    return Node(Op.UNSLICE, (g,), Unsliced(index, tuple(shape)), tuple(shape), g.batched)


def concat(parts, axis: int = 0, new: bool = False) -> Node:
    """NumPy's ``concatenate(parts, axis)`` of per-example axes; ``stack`` if ``new``."""
    parts = tuple(parts)
    shape, attr = indexing.joined_shape([p.shape for p in parts], axis, new)
    if not new:  # a join of joins along one axis is one join
        parts = [
            q for p in parts for q in (p.args if p.op is Op.CONCAT and p.attr == attr else [p])
        ]
    parts = tuple(parts)
    if len(parts) == 1 and not new:
        return parts[0]
    return Node(Op.CONCAT, parts, attr, shape, any(p.batched for p in parts))


# ------------------------------------------------------------------ indexing (gather)


def is_ids(node: Node) -> bool:
    """Is ``node`` integer ids, which may index a table (an integer Input)?"""
    return node.op is Op.INPUT and node.dtype == "int"


def gather(table: Node, ids: Node) -> Node:
    """``table[ids]``: the rows of the table's first per-example axis at the ids, giving the
    shape ``ids.shape + table.shape[1:]``."""
    if not is_ids(ids) or table.ndim == 0 or table.dtype != "float":
        raise GraphError(
            f"indexing {table.shape} by {ids.shape}: rows of a float tensor are indexed by ids"
        )
    shape = ids.shape + table.shape[1:]
    return Node(Op.GATHER, (table, ids), None, shape, table.batched or ids.batched)


def scatter_add(g: Node, ids: Node, rows: int, sum_batch: bool = False) -> Node:
    """Zeros of a table of ``rows`` rows with g's rows added at the ids (repeated ids add
    up): the adjoint of a gather; summed over the examples with ``sum_batch``."""
    if not is_ids(ids) or g.shape[: ids.ndim] != ids.shape or g.dtype != "float" or rows < 1:
        raise GraphError(f"scatter_add: values of shape {g.shape} for ids of shape {ids.shape}")
    batched = g.batched or ids.batched
    attr, shape = Scatter(rows, sum_batch and batched), (rows, *g.shape[ids.ndim :])
    return Node(Op.SCATTER_ADD, (g, ids), attr, shape, batched and not sum_batch)
