"""Where C values live: index arithmetic over run-time shapes (the batch ``_n`` first), loop
nests, and the workspace that gives every statement a buffer by live range."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ...ir.node import Node, Op

# ---------------------------------------------------------------- index arithmetic


N = "_n"  # the batch size; every name the generator invents starts with "_", user names never


def dims(node: Node) -> list[str | int]:
    """Runtime dimensions: the batch ``n`` first for batched nodes."""
    return ([N] if node.batched else []) + list(node.shape)


def product(items: list[str | int]) -> str:
    """C text of the product of sizes, its integer factors (those of a product's text, as
    in "_n*784", too) multiplied out: "_n*117600"."""
    factors = [f for d in items for f in str(d).split("*")]
    ints = math.prod(int(f) for f in factors if f.isdigit())
    syms = [f for f in factors if not f.isdigit()]
    if not syms:
        return str(ints)
    return "*".join(syms + ([str(ints)] if ints != 1 else []))


def strides(shape: list[str | int]) -> list[str]:
    """Row-major strides of a runtime shape."""
    return [product(list(shape[i + 1 :])) for i in range(len(shape))]


def arg_strides(space: Node, arg: Node) -> list[str]:
    """Strides of ``arg`` over the index space of ``space``; "0" where it broadcasts.

    The batch axis aligns with the batch axis, per-example axes from the right, as in
    the NumPy module.
    """
    out = ["0"] * len(dims(space))
    own = strides(dims(arg))
    if arg.batched:
        out[0] = own[0]
    lead_out, lead_arg = int(space.batched), int(arg.batched)
    for k in range(1, arg.ndim + 1):
        if arg.shape[-k] != 1:
            out[lead_out + space.ndim - k] = own[lead_arg + arg.ndim - k]
    return out


def runs(ds: list[str | int], axes: list[int], stride_lists: list[list[str]]) -> list[list[int]]:
    """``axes`` (in order) as runs of adjacent axes that one loop can walk: every array of
    ``stride_lists`` steps through a run as through one axis (its stride on an axis is the
    next axis's times that axis's size). Fewer, longer loops build faster and vectorize."""
    groups: list[list[int]] = []
    for a in axes:
        last = groups[-1][-1] if groups else None
        if last == a - 1 and isinstance(ds[a], int):
            if all(int(st[last]) == int(st[a]) * ds[a] for st in stride_lists):
                groups[-1].append(a)
                continue
        groups.append([a])
    return groups


def index(idx: list[str], st: list[str]) -> str:
    terms = [i if s == "1" else f"{i}*{s}" for i, s in zip(idx, st) if s != "0"]
    return " + ".join(terms) or "0"


def loops(
    idx: list[str],
    bounds: list[str | int],
    body: list[str],
    reduction: str | None = None,
    simd: bool = False,
) -> list[str]:
    """Nested for-loops around ``body``. ``simd`` asks to vectorize the innermost loop, whose
    iterations are independent; ``reduction`` names a sum it may vectorize (reassociating
    it, as BLAS does)."""
    lines = []
    for depth, (i, d) in enumerate(zip(idx, bounds)):
        if reduction and depth == len(idx) - 1:
            lines.append("  " * depth + f"#pragma omp simd reduction(+:{reduction})")
        elif simd and depth == len(idx) - 1:
            lines.append("  " * depth + "#pragma omp simd")
        brace = " {" if depth == len(idx) - 1 and len(body) > 1 else ""
        lines.append("  " * depth + f"for (long {i} = 0; {i} < {d}; {i}++)" + brace)
    pad = "  " * len(idx)
    lines += [pad + line for line in body]
    if idx and len(body) > 1:
        lines.append("  " * (len(idx) - 1) + "}")
    return lines


# ------------------------------------------------------------------ memory planning


@dataclass
class _Buffer:
    node: Node
    offset: int
    size: int
    batched: bool  # in the region of per-example buffers (n times size), else the fixed one
    last: int  # the index of the statement that reads it last


@dataclass
class Workspace:
    """Buffers for a sequence of statements in one workspace, laid out by live range.

    Two regions: per-example buffers (``_n`` times their size) and fixed ones. A buffer is
    free once the last statement reading it has run; an elementwise statement may take over,
    in place, the buffer of an argument it reads last at the same element. ``place`` may be
    called again on a ``copy`` to continue the sequence (the shared forward pass, then each
    function's own statements): the buffers still live stay where they are.
    """

    buffers: dict[Node, _Buffer] = field(default_factory=dict)  # live ones, by node
    where: dict[Node, tuple[int, bool] | str] = field(default_factory=dict)  # every placement
    holes: dict[bool, list[tuple[int, int]]] = field(default_factory=lambda: {True: [], False: []})
    top: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})
    alias: dict[Node, Node] = field(default_factory=dict)  # a reshape -> the node it views
    shared: dict[Node, Node] = field(default_factory=dict)  # node -> the node it took over

    def copy(self) -> Workspace:
        return Workspace(
            {k: _Buffer(**vars(b)) for k, b in self.buffers.items()},
            dict(self.where),
            {k: list(v) for k, v in self.holes.items()},
            dict(self.top),
            dict(self.alias),
            dict(self.shared),
        )

    def place(
        self,
        statements: list[Node],
        live_after: set[Node],
        direct: dict[Node, str] | None = None,
        inplace_ok: Callable[[Node, Node], bool] = lambda node, arg: False,
    ) -> None:
        """Give every statement node a buffer; ``direct`` ones write to the caller's arrays
        (named), and ``live_after`` stays live past the last statement."""
        direct = direct or {}
        last = self._last_uses(statements, live_after)
        for buf in self.buffers.values():  # what the new statements read, from before
            buf.last = last.get(buf.node, -1)
        for i, node in enumerate(statements):
            self._free(i)
            if node.op is Op.RESHAPE:
                self.alias[node] = self.alias.get(node.args[0], node.args[0])
            elif node in direct:
                self.where[node] = direct[node]
            else:
                self._allocate(node, i, last.get(node, i), inplace_ok)

    def _last_uses(self, statements: list[Node], live_after: set[Node]) -> dict[Node, int]:
        """The statement reading each buffer last (through expressions inlined into it)."""
        placed = set(statements) | set(self.buffers) | set(self.alias)

        def reads(node: Node):
            for a in node.args:
                if a in placed:
                    yield self.alias.get(a, a)
                else:
                    yield from reads(a)

        last: dict[Node, int] = {}
        for i, node in enumerate(statements):
            if node.op is Op.RESHAPE:
                self.alias[node] = self.alias.get(node.args[0], node.args[0])
            for a in reads(node):
                last[a] = i
        for node in live_after:
            last[self.alias.get(node, node)] = len(statements)
        return last

    def _free(self, i: int) -> None:
        for node, buf in list(self.buffers.items()):
            if buf.last < i:
                self.holes[buf.batched].append((buf.offset, buf.size))
                del self.buffers[node]

    def _allocate(self, node: Node, i: int, last: int, inplace_ok) -> None:
        size, batched = max(1, math.prod(node.shape)), node.batched
        for arg in node.args:  # in place: an argument dying here, read at the same element
            buf = self.buffers.get(arg)
            if (
                buf is not None
                and buf.last == i
                and (buf.size, buf.batched) == (size, batched)
                and inplace_ok(node, arg)
            ):
                del self.buffers[arg]
                self.shared[node] = arg
                self._put(node, buf.offset, size, batched, last)
                return
        holes = sorted(self.holes[batched])
        for k, (offset, hole) in enumerate(holes):
            if hole >= size:
                holes[k : k + 1] = [(offset + size, hole - size)] if hole > size else []
                self.holes[batched] = holes
                self._put(node, offset, size, batched, last)
                return
        self._put(node, self.top[batched], size, batched, last)
        self.top[batched] += size

    def _put(self, node: Node, offset: int, size: int, batched: bool, last: int) -> None:
        self.buffers[node] = _Buffer(node, offset, size, batched, last)
        self.where[node] = (offset, batched)

    def reserve(self, size: int) -> tuple[int, bool]:
        """A fixed buffer of ``size`` elements that is never freed."""
        offset = self.top[False]
        self.top[False] += size
        return offset, False


def pointers(ws: Workspace, fixed: int) -> dict[Node, str]:
    """C text of the pointer to each buffer ``ws`` placed (a reshape points where the node
    it views does), the fixed region (``fixed`` elements) first in the workspace ``_ws``,
    the per-example region after it."""
    out = {}
    for node, place in ws.where.items():
        if isinstance(place, str):  # the caller's array
            out[node] = place
            continue
        offset, batched = place
        if batched:
            parts = [str(fixed) if fixed else "", f"{N}*{offset}" if offset else ""]
        else:
            parts = [str(offset) if offset else ""]
        parts = [p for p in parts if p]
        out[node] = "_ws + " + " + ".join(parts) if parts else "_ws"
    for node, root in ws.alias.items():
        if root in out:
            out[node] = out[root]
    return out


def size_text(fixed: int, batched: int) -> str:
    """C text of a workspace of ``fixed`` elements and ``batched`` per example."""
    parts = [str(fixed) if fixed else "", f"{N}*{batched}" if batched else ""]
    return " + ".join(p for p in parts if p) or "0"
