"""The IR: one immutable, hash-consed tensor node type over an ``Op`` enum.

A ``Node`` is an operation applied to argument nodes. Its ``shape`` is the shape of ONE
example; ``batched`` says whether the value differs between the examples of a mini-batch
(it depends on an ``Input``), in which case the runtime array has an extra leading batch
axis. Building the same operation on the same arguments twice returns the same object, so
equal subexpressions are one node and common-subexpression elimination is free.

Nodes carry no names and no source lines: those live in a ``Graph``, because one node can
belong to several graphs (the forward graph and its gradient graph share most nodes).
"""

from __future__ import annotations

import functools
import gc
import weakref
from _weakref import _remove_dead_weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

Shape = tuple[int, ...]


def gc_paused(fn: Callable) -> Callable:
    """Run ``fn`` with the cyclic garbage collector paused.

    Building a graph allocates millions of small acyclic objects; the collector, triggered
    by allocation counts, would scan every one of them again and again (a 1e5-node network
    spent a third of its compile time there). Reference counting still frees them.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            # what was made meanwhile is all in the youngest generation, and the first
            # allocation after enable() would scan it in one go (0.3-0.6 s at 1e5 nodes):
            # freeze() and unfreeze() move every object to the oldest generation instead,
            # in constant time, where only the collector's rare full collections look. (So
            # do the caller's young objects. A process that froze objects itself, to share
            # them with forked workers, keeps them frozen: it is left alone.)
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()

    return wrapper


class Op(Enum):
    # leaves: attr is the user's name (INPUT, PARAM) or the value (CONST, a Python number)
    INPUT = auto()
    PARAM = auto()
    CONST = auto()
    BATCH_SIZE = auto()  # the number of examples in the mini-batch, a runtime scalar

    # elementwise, with NumPy broadcasting of the per-example shapes:
    # attr is a symbp.expr.Expr over the placeholders X[0], X[1], ... (one per argument)
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

    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code


LEAVES = (Op.INPUT, Op.PARAM, Op.CONST, Op.BATCH_SIZE)


@dataclass(frozen=True)
class Contraction:
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


class _Entry(weakref.ref):
    """The hash-consing table's weak reference to a node, knowing its key: when the node
    dies, the callback removes the entry (the entry a newer node put there stays)."""

    __slots__ = ("key",)


def _forget(entry: _Entry) -> None:
    # removes the key only if its entry is dead, in one step (a thread may have put a live
    # entry there meanwhile); WeakValueDictionary relies on the same function
    _remove_dead_weakref(_NODES, entry.key)


_NODES: dict[tuple, _Entry] = {}  # (op, args, attr, shape, batched, dtype) -> weak entry


class _Fields:
    """A node's fields, writable: ``Node.__new__`` fills them in and then makes the object
    a Node (plain attribute stores are several times cheaper than ``object.__setattr__``,
    and this runs a million times per large compile)."""

    __slots__ = ("op", "args", "attr", "shape", "batched", "dtype", "__weakref__")


class Node(_Fields):
    """An immutable tensor expression; see the module docstring."""

    __slots__ = ()

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
        # the table is a plain dict of weak references rather than a WeakValueDictionary:
        # this runs a million times per large compile, and that class's methods are Python
        key = (op, args, attr, shape, batched, dtype)
        entry = _NODES.get(key)
        if entry is not None:
            node = entry()
            if node is not None:
                return node
        node = object.__new__(_Fields)
        node.op = op
        node.args = args
        node.attr = attr
        node.shape = shape
        node.batched = batched
        node.dtype = dtype
        node.__class__ = cls  # from here on, immutable
        entry = _Entry(node, _forget)
        entry.key = key
        _NODES[key] = entry
        return node

    @staticmethod
    def find(
        op: Op, args: tuple[Node, ...], attr: Any, shape: Shape, batched: bool, dtype: str = "float"
    ) -> Node | None:
        """The node with these fields if one exists, without making it."""
        entry = _NODES.get((op, args, attr, shape, batched, dtype))
        return None if entry is None else entry()

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
        if self.op in (Op.INPUT, Op.PARAM):
            return f"{self.op.name.lower()}({self.attr!r}, {self.shape})"
        if self.op is Op.CONST:
            return f"const({self.attr!r})"
        return f"<{self.op.name} {self.attr} {self.shape}{' batched' if self.batched else ''}>"

    # Operator sugar for building graphs in Python; the rules live in symbp.ops.
    def _bin(self, other, fn, reverse=False):
        from ..frontend import builder as build
        from . import ops

        a, b = (build._node(other), self) if reverse else (self, build._node(other))
        return getattr(ops, fn)(a, b)

    def __add__(self, o):
        return self._bin(o, "add")  # noqa: E704

    def __radd__(self, o):
        return self._bin(o, "add", True)  # noqa: E704

    def __sub__(self, o):
        return self._bin(o, "sub")  # noqa: E704

    def __rsub__(self, o):
        return self._bin(o, "sub", True)  # noqa: E704

    def __mul__(self, o):
        return self._bin(o, "mul")  # noqa: E704

    def __rmul__(self, o):
        return self._bin(o, "mul", True)  # noqa: E704

    def __truediv__(self, o):
        return self._bin(o, "div")  # noqa: E704

    def __rtruediv__(self, o):
        return self._bin(o, "div", True)  # noqa: E704

    def __pow__(self, o):
        return self._bin(o, "power")  # noqa: E704

    def __rpow__(self, o):
        return self._bin(o, "power", True)  # noqa: E704

    def __matmul__(self, o):
        return self._bin(o, "matmul")  # noqa: E704

    def __rmatmul__(self, o):
        return self._bin(o, "matmul", True)  # noqa: E704

    def __neg__(self):
        from . import ops

        return ops.neg(self)

    @property
    def T(self) -> Node:
        from . import ops

        return ops.transpose(self)


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


def order_and_uses(roots: Iterable[Node]) -> tuple[list[Node], dict[Node, int]]:
    """``toposort(roots)``, and how many times each of those nodes is an argument (roots
    count once more), in one traversal: every argument edge is followed exactly once."""
    order: list[Node] = []
    counts: dict[Node, int] = {}
    get = counts.get
    for root in roots:
        seen = get(root)
        counts[root] = 1 if seen is None else seen + 1
        if seen is not None:
            continue
        stack: list[tuple[Node, Iterator[Node]]] = [(root, iter(root.args))]
        while stack:
            node, children = stack[-1]
            for child in children:
                c = get(child)
                counts[child] = 1 if c is None else c + 1
                if c is None:
                    stack.append((child, iter(child.args)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order, counts
