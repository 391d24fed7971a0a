"""The IR: one immutable, hash-consed tensor node type over an ``Op`` enum.

A ``Node`` is an operation applied to argument nodes. Its ``shape`` is the shape of ONE
example; ``batched`` says whether the value differs between the examples of a mini-batch
(it depends on an ``Input``), in which case the runtime array has an extra leading batch
axis. ``dtype`` is "float", or "int" for an Input of integer ids, which can only index
(``E[ids]``, a GATHER). Building the same operation on the same arguments twice returns the
same object, so equal subexpressions are one node and common-subexpression elimination is
free.

Nodes carry no names and no source lines: those live in a ``Graph``, because one node can
belong to several graphs (the forward graph and its gradient graph share most nodes).
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Container, Iterable, Iterator
from enum import Enum, auto
from typing import Any, NamedTuple

from .interning import Interned

Shape = tuple[int, ...]


class Op(Enum):
    """What a node computes. An op is a member here and a row in each table that dispatches
    on it: ir.build.BUILD, ir.verify.SPEC, ir.interpret.EVALUATE, autodiff.rules.VJP, the
    printers' PRINT (backends.numpy.printer, explain.spec_printer) and backends.c.emit's
    STATEMENT; tests/test_tables.py names any it lacks."""

    # leaves: attr is the user's name (INPUT, PARAM) or the value (CONST, a Python number)
    INPUT = auto()
    PARAM = auto()
    CONST = auto()
    BATCH_SIZE = auto()  # the number of examples in the mini-batch, a runtime scalar

    # elementwise, with NumPy broadcasting of the per-example shapes:
    # attr is a symbp.ir.expr.Expr over the placeholders X[0], X[1], ... (one per argument)
    EW = auto()

    # reductions: SUM's attr is the tuple of per-example axes summed away;
    # BATCH_SUM sums a batched value over the examples; LOGSUMEXP's attr is its axes
    SUM = auto()
    BATCH_SUM = auto()
    LOGSUMEXP = auto()

    # contraction of two tensors, attr = Contraction (einsum subscripts, batch handling)
    DOT = auto()

    # movement: attr is the permutation (TRANSPOSE) or the target shape (RESHAPE, BROADCAST)
    TRANSPOSE = auto()
    RESHAPE = auto()
    BROADCAST = auto()

    # consts: a declared Const tensor (attr its user's name), read from params at run time
    # like a PARAM, but never differentiated, trained or folded
    FROZEN = auto()
    # randomness: inverted dropout of the one argument, attr = ops.Dropout (p, site, batched);
    # drawn from the key of the training step (symbp.ir.randomness)
    DROPOUT = auto()
    # indexing: SLICE's attr has one entry per axis of its argument, an int (the axis is
    # taken at that index and dropped) or an ir.indexing.Span (start, count, step); UNSLICE,
    # its adjoint, writes its argument at such an index into zeros (attr: ir.indexing.Unsliced);
    # CONCAT joins its arguments along an axis (attr: ir.indexing.Joined; new: stack them)
    SLICE = auto()
    UNSLICE = auto()
    CONCAT = auto()
    # indexing (gather): GATHER(table, ids) takes rows of the table's first per-example axis
    # at the integer ids (an integer INPUT); SCATTER_ADD(g, ids), its adjoint, adds g's rows
    # into zeros of the table's shape, attr = Scatter(rows, sum_batch)
    GATHER = auto()
    SCATTER_ADD = auto()
    # max and min: MAX and MIN reduce over the per-example axes of attr, as SUM does; NaN
    # propagates, as in NumPy
    MAX = auto()
    MIN = auto()
    # convolution (symbp.ir.convolution): PATCHES takes every window of an image (C, H, W)
    # into (Ho, Wo, C, kh, kw), attr the Window (im2col); FOLD, its adjoint, adds them back
    # into the image, attr a Folded (window, image shape) (col2im)
    PATCHES = auto()
    FOLD = auto()

    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code


LEAVES = (Op.INPUT, Op.PARAM, Op.CONST, Op.BATCH_SIZE, Op.FROZEN)
NAMED_LEAVES = (Op.INPUT, Op.PARAM, Op.FROZEN)  # the declared ones, attr their name


class Contraction(NamedTuple):
    """Einsum-style subscripts of a DOT over per-example axes.

    ``a``, ``b`` and ``out`` are strings of axis letters. The batch axis is implicit: a
    batched operand carries it, and the output keeps it unless ``sum_batch`` is set, in
    which case the product is summed over the examples (``delta.T @ a`` for a weight).
    """

    a: str
    b: str
    out: str
    sum_batch: bool = False

    def __str__(self) -> str:
        return f"{self.a},{self.b}->{self.out}" + (" summed over batch" if self.sum_batch else "")


class Scatter(NamedTuple):
    """A SCATTER_ADD's attribute: the table's number of ``rows``, and whether the examples'
    rows are added into one table (``sum_batch``, the gradient of a shared Param)."""

    rows: int
    sum_batch: bool = False

    def __str__(self) -> str:
        return f"rows={self.rows}" + (", summed over batch" if self.sum_batch else "")


class Node:
    """An immutable tensor expression; see the module docstring."""

    __slots__ = ("op", "args", "attr", "shape", "batched", "dtype", "__weakref__")

    op: Op
    args: tuple[Node, ...]
    attr: Any
    shape: Shape
    batched: bool
    dtype: str

    def __new__(
        cls,
        op: Op,
        args: tuple[Node, ...],
        attr: Any,
        shape: Shape,
        batched: bool,
        dtype: str = "float",
    ) -> Node:
        key = (op, args, attr, shape, batched, dtype)
        return _NODES.intern(key, _make)

    @staticmethod
    def find(
        op: Op, args: tuple[Node, ...], attr: Any, shape: Shape, batched: bool, dtype: str = "float"
    ) -> Node | None:
        """The node with these fields if one exists, without making it."""
        return _NODES.get((op, args, attr, shape, batched, dtype))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Node is immutable")

    def __reduce__(self):
        return (Node, (self.op, self.args, self.attr, self.shape, self.batched, self.dtype))

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        if self.op in NAMED_LEAVES:
            return f"{self.op.name.lower()}({self.attr!r}, {self.shape})"
        if self.op is Op.CONST:
            return f"const({self.attr!r})"
        return f"<{self.op.name} {self.attr} {self.shape}{' batched' if self.batched else ''}>"

    # Operator sugar for building networks in Python. The operations, with their shape
    # rules, live in symbp.ir.ops, which builds Nodes: the one import cycle of the package.
    def _apply(self, operation: str, other, swap: bool = False) -> Node:
        from . import ops

        other = ops.as_node(other)
        return getattr(ops, operation)(*((other, self) if swap else (self, other)))

    __add__ = lambda self, o: self._apply("add", o)
    __radd__ = lambda self, o: self._apply("add", o, True)
    __sub__ = lambda self, o: self._apply("sub", o)
    __rsub__ = lambda self, o: self._apply("sub", o, True)
    __mul__ = lambda self, o: self._apply("mul", o)
    __rmul__ = lambda self, o: self._apply("mul", o, True)
    __truediv__ = lambda self, o: self._apply("div", o)
    __rtruediv__ = lambda self, o: self._apply("div", o, True)
    __pow__ = lambda self, o: self._apply("power", o)
    __rpow__ = lambda self, o: self._apply("power", o, True)
    __matmul__ = lambda self, o: self._apply("matmul", o)
    __rmatmul__ = lambda self, o: self._apply("matmul", o, True)

    def __neg__(self) -> Node:
        from . import ops

        return ops.neg(self)

    def __lt__(self, other):
        raise TypeError(
            "symbp nodes have no < <= > >=: write symbp.less(a, b), less_equal, greater or"
            " greater_equal for a mask (== is identity: symbp.equal(a, b) compares values)"
        )

    __le__ = __gt__ = __ge__ = __lt__

    @property
    def T(self) -> Node:
        from . import ops

        return ops.transpose(self)

    def __getitem__(self, key) -> Node:
        """``x[2]``, ``x[1:4]``, ``x[-1, ::2]``: basic indexing of the per-example axes;
        ``E[ids]`` with ``ids`` an integer Input: the rows of E's first axis at the ids."""
        from . import ops

        if isinstance(key, Node):
            return ops.gather(self, key)
        return ops.getitem(self, key)

    __iter__ = None  # indexing does not make a node a sequence


_NODES = Interned()  # (op, args, attr, shape, batched, dtype) -> the node
# A node's fields are set once, as it is made, through their slots' descriptors: Node's own
# __setattr__ refuses (object.__setattr__ would do too, at several times the cost)
_SET_OP, _SET_ARGS, _SET_ATTR, _SET_SHAPE, _SET_BATCHED, _SET_DTYPE = (
    Node.__dict__[name].__set__ for name in Node.__slots__[:6]
)


def _make(key: tuple) -> Node:
    op, args, attr, shape, batched, dtype = key
    node = object.__new__(Node)
    _SET_OP(node, op)
    _SET_ARGS(node, args)
    _SET_ATTR(node, attr)
    _SET_SHAPE(node, shape)
    _SET_BATCHED(node, batched)
    _SET_DTYPE(node, dtype)
    return node


def toposort(roots: Iterable[Node]) -> list[Node]:
    """All nodes reachable from ``roots``, every node after its arguments.

    Iterative (graphs of 1e5 nodes are deeper than Python's recursion limit) and
    deterministic: arguments are visited in order, roots in the order given.
    """
    order: list[Node] = []
    seen: set[Node] = set()  # nodes hash by identity
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack: list[tuple[Node, Iterator[Node]]] = [(root, iter(root.args))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(child.args)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def order_and_uses(
    roots: Iterable[Node], stop: Container[Node] = ()
) -> tuple[list[Node], dict[Node, int]]:
    """``toposort(roots)``, and how many times each of those nodes is an argument (roots
    count once more). The arguments of a node in ``stop`` are not visited."""
    order: list[Node] = []
    counts: dict[Node, int] = {}
    for root in roots:
        seen = counts.get(root)
        counts[root] = 1 if seen is None else seen + 1
        if seen is not None:
            continue
        stack: list[tuple[Node, Iterator[Node]]] = [(root, iter(() if root in stop else root.args))]
        while stack:
            node, children = stack[-1]
            for child in children:
                c = counts.get(child)
                counts[child] = 1 if c is None else c + 1
                if c is None:
                    if not child.args or (stop and child in stop):
                        order.append(child)  # nothing below it to visit first
                        continue
                    stack.append((child, iter(child.args)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order, counts


def gc_paused(fn: Callable) -> Callable:
    """``fn`` run with the cyclic garbage collector paused. A compile allocates a great many
    small acyclic objects, which reference counting frees; the collector would only scan
    them again and again (BENCHMARKS.md, "Compile time at scale", measures what it costs)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return wrapper
