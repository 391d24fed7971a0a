"""The IR verifier: what every node of each op must satisfy, as a table.

Run after every pass in the test suite (``optimize(graph, verify=True)``): a rewrite that
produces a malformed node fails at the pass that made it, not at code generation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .build import BUILD
from .convolution import Folded, Window, patches_shape
from .expr import Expr
from .indexing import Joined, Span, Unsliced, check_index, sliced_shape
from .node import LEAVES, Contraction, Node, Op, Scatter, toposort
from .ops import GraphError, broadcast_shapes, is_ids
from .randomness import Dropout


class IRError(AssertionError):
    """A malformed graph: a bug in symbp, never a user error."""


def _leaf(batched: bool | None, attr_type: type | None = None):
    def check(n: Node):
        if n.args:
            return "a leaf has no arguments"
        if batched is not None and n.batched != batched:
            return f"batched must be {batched}"
        if attr_type is not None and not isinstance(n.attr, attr_type):
            return f"attr must be a {attr_type.__name__}"
        return None

    return check


def _const(n: Node):
    if n.args or n.shape != () or n.batched:
        return "a constant is an unbatched scalar leaf"
    if not (isinstance(n.attr, Expr) and n.attr.op == "num"):
        return f"constant {n.attr!r} is not a finite number"
    return None


def _ew(n: Node):
    if not n.args:
        return "an elementwise node has arguments (constants are CONST)"
    if not isinstance(n.attr, Expr):
        return "attr must be an Expr"
    if n.attr.bad:
        return f"expression has a constant that is {n.attr.bad}"
    wanted = frozenset(range(len(n.args)))
    if n.attr.args_used != wanted:
        return f"expression uses arguments {sorted(n.attr.args_used)}, has {len(n.args)}"
    if any(a.op is Op.CONST for a in n.args):
        return "constant arguments are folded into the expression"
    if len(set(map(id, n.args))) != len(n.args):
        return "repeated arguments are merged"
    if n.shape != broadcast_shapes(*(a.shape for a in n.args)):
        return "shape is not the broadcast of the arguments' shapes"
    if n.batched != any(a.batched for a in n.args):
        return "batched iff an argument is"
    return None


def _reduction(n: Node):
    (x,) = n.args if len(n.args) == 1 else (None,)
    if x is None:
        return "one argument"
    axes = n.attr
    if not axes or list(axes) != sorted(set(axes)) or not all(0 <= a < x.ndim for a in axes):
        return f"axes {axes} must be sorted, unique and within rank {x.ndim}"
    if n.shape != tuple(d for i, d in enumerate(x.shape) if i not in axes):
        return "shape is the argument's without the reduced axes"
    if n.batched != x.batched:
        return "batched as the argument"
    return None


def _batch_sum(n: Node):
    if len(n.args) != 1 or not n.args[0].batched or n.batched:
        return "sums one batched argument to an unbatched value"
    if n.shape != n.args[0].shape:
        return "keeps the per-example shape"
    return None


def _dot(n: Node):
    c = n.attr
    if not isinstance(c, Contraction) or len(n.args) != 2:
        return "two arguments and a Contraction"
    a, b = n.args
    if len(c.a) != a.ndim or len(c.b) != b.ndim:
        return f"subscripts {c} do not match ranks {a.ndim}, {b.ndim}"
    if "b" in c.a + c.b + c.out or len(set(c.out)) != len(c.out):
        return "letter 'b' is the batch's; output letters are unique"
    sizes: dict[str, int] = {}
    for letters, shape in ((c.a, a.shape), (c.b, b.shape)):
        for ch, d in zip(letters, shape):
            if sizes.setdefault(ch, d) != d:
                return f"axis {ch} has sizes {sizes[ch]} and {d}"
    if not set(c.out) <= set(sizes):
        return "output letters come from the operands"
    if n.shape != tuple(sizes[ch] for ch in c.out):
        return "shape follows the output letters"
    if c.sum_batch and not (a.batched or b.batched):
        return "sum_batch needs a batched operand"
    if n.batched != ((a.batched or b.batched) and not c.sum_batch):
        return "batched iff an operand is and the batch is not summed"
    return None


def _transpose(n: Node):
    (x,) = n.args
    if sorted(n.attr) != list(range(x.ndim)) or n.attr == tuple(range(x.ndim)):
        return f"{n.attr} is not a non-trivial permutation of {x.ndim} axes"
    if n.shape != tuple(x.shape[p] for p in n.attr) or n.batched != x.batched:
        return "shape is the permuted argument's"
    return None


def _reshape(n: Node):
    (x,) = n.args
    if n.attr != n.shape or n.size != x.size or n.shape == x.shape or n.batched != x.batched:
        return "a reshape keeps the size and changes the shape"
    return None


def _broadcast(n: Node):
    (x,) = n.args
    try:
        ok = broadcast_shapes(x.shape, n.shape) == n.shape != x.shape
    except GraphError:
        ok = False
    if not ok or n.attr != n.shape or n.batched != x.batched:
        return f"cannot broadcast {x.shape} to {n.shape}"
    return None


def _dropout(n: Node):
    (x,) = n.args
    a = n.attr
    if not isinstance(a, Dropout) or not 0 < a.p < 1 or type(a.site) is not int or a.site < 0:
        return "attr must be a Dropout with p in (0, 1) and a site number"
    if n.shape != x.shape or n.batched != a.batched or (x.batched and not a.batched):
        return "keeps the argument's shape; batched as its mask, which a batched argument has"
    return None


# indexing


def _index_ok(index, shape) -> bool:
    try:
        check_index(index, shape)
    except GraphError:
        return False
    return all(type(e) is int or type(e) is Span for e in index)


def _slice(n: Node):
    (x,) = n.args
    if not _index_ok(n.attr, x.shape):
        return f"{n.attr} is not an index of {x.shape}: an int or a Span within each axis"
    if n.shape != sliced_shape(n.attr) or n.batched != x.batched:
        return "shape is the spans' counts; batched as the argument"
    return None


def _unslice(n: Node):
    (g,) = n.args
    if not isinstance(n.attr, Unsliced) or not _index_ok(n.attr.index, n.shape):
        return f"{n.attr} is not an Unsliced index of {n.shape}"
    if n.attr.shape != n.shape or g.shape != sliced_shape(n.attr.index):
        return "the argument fills the index; shape is attr.shape"
    return None if n.batched == g.batched else "batched as the argument"


def _concat(n: Node):
    if not isinstance(n.attr, Joined) or not n.args:
        return "parts and a Joined"
    axis, new = n.attr
    first = n.args[0].shape
    if not 0 <= axis < len(first) + new:
        return f"axis {axis} out of range"
    if new:
        ok = all(p.shape == first for p in n.args)
        want = first[:axis] + (len(n.args),) + first[axis:]
    else:
        ok = len({p.shape[:axis] + p.shape[axis + 1 :] for p in n.args}) == 1
        ok = ok and all(p.ndim == len(first) for p in n.args)
        want = first[:axis] + (sum(p.shape[axis] for p in n.args),) + first[axis + 1 :]
    if not ok or n.shape != want:
        return f"parts {[p.shape for p in n.args]} do not join to {n.shape}"
    return None if n.batched == any(p.batched for p in n.args) else "batched iff a part is"


def _gather(n: Node):
    table, ids = n.args
    if not is_ids(ids) or table.ndim == 0 or n.attr is not None:
        return "gathers rows of a tensor at an integer Input's ids; no attr"
    if n.shape != ids.shape + table.shape[1:] or n.batched != (table.batched or ids.batched):
        return "shape is the ids' and a row's"
    return None


def _scatter_add(n: Node):
    g, ids = n.args
    if not is_ids(ids) or not isinstance(n.attr, Scatter) or g.shape[: ids.ndim] != ids.shape:
        return "adds values shaped as the ids and a row at the ids; attr a Scatter"
    if n.shape != (n.attr.rows, *g.shape[ids.ndim :]):
        return "shape is the table's"
    if n.attr.sum_batch and not (g.batched or ids.batched):
        return "sum_batch needs a batched operand"
    if n.batched != ((g.batched or ids.batched) and not n.attr.sum_batch):
        return "batched iff an operand is and the batch is not summed"
    return None


def _patches(n: Node):
    if not isinstance(n.attr, Window):
        return "attr a Window"
    if n.shape != patches_shape(n.args[0].shape, n.attr) or n.batched != n.args[0].batched:
        return "shape (Ho, Wo, C, kh, kw) of the image's windows; batched as the image"
    return None


def _fold(n: Node):
    if not isinstance(n.attr, Folded) or n.shape != n.attr.image:
        return "attr a Folded; shape its image's"
    if n.args[0].shape != patches_shape(n.shape, n.attr.window) or n.batched != n.args[0].batched:
        return "folds the patches of its image; batched as they are"
    return None


INDEXED = (Op.GATHER, Op.SCATTER_ADD)  # the ops whose second argument is integer ids


def _dtypes(node: Node) -> str | None:
    """Only an Input holds integers, and only as the ids of an indexing op."""
    if node.dtype != "float" and not is_ids(node):
        return f"dtype {node.dtype!r}"
    for k, a in enumerate(node.args):
        if a.dtype != "float" and not (k == 1 and node.op in INDEXED):
            return f"argument {k} has dtype {a.dtype!r}"
    return None


SPEC: dict[Op, Callable[[Node], str | None]] = {
    Op.INPUT: _leaf(True, str),
    Op.PARAM: _leaf(False, str),
    Op.CONST: _const,
    Op.BATCH_SIZE: _leaf(False),
    Op.EW: _ew,
    Op.SUM: _reduction,
    Op.LOGSUMEXP: _reduction,
    Op.BATCH_SUM: _batch_sum,
    Op.DOT: _dot,
    Op.TRANSPOSE: _transpose,
    Op.RESHAPE: _reshape,
    Op.BROADCAST: _broadcast,
    # consts
    Op.FROZEN: _leaf(False, str),
    # dropout
    Op.DROPOUT: _dropout,
    # indexing
    Op.SLICE: _slice,
    Op.UNSLICE: _unslice,
    Op.CONCAT: _concat,
    # indexing (gather)
    Op.GATHER: _gather,
    Op.SCATTER_ADD: _scatter_add,
    # max and min
    Op.MAX: _reduction,
    Op.MIN: _reduction,
    # convolution
    Op.PATCHES: _patches,
    Op.FOLD: _fold,
}


def _canonical(node: Node) -> str | None:
    """Every node is the one its constructor makes of its arguments: shapes right, constants
    folded, nothing a constructor would fold left over."""
    if node.op in LEAVES:
        return None
    try:
        built = BUILD[node.op](node.args, node.attr)
    except GraphError as e:
        return f"its constructor refuses it: {e}"
    return None if built is node else f"not the canonical node its constructor makes, {built!r}"


def verify(roots: Iterable[Node], where: str = "") -> None:
    """Raise ``IRError`` listing every malformed node below ``roots``."""
    problems = []
    for node in toposort(roots):
        message = _dtypes(node) or SPEC[node.op](node) or _canonical(node)
        if message:
            problems.append(f"{node!r}: {message}")
    if problems:
        head = f"malformed IR{' after ' + where if where else ''}:"
        raise IRError("\n  ".join([head, *problems[:20]]))
