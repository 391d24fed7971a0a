"""Where C values live: index arithmetic over run-time shapes (the batch ``_n`` first), loop
nests, and the workspace plan that gives every statement a buffer by live range."""

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
    ints = math.prod(d for d in items if isinstance(d, int))
    syms = [str(d) for d in items if not isinstance(d, int)]
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
class Plan:
    """Pointer expression of every node's buffer, and the workspace size in elements."""

    pointer: dict[Node, str] = field(default_factory=dict)
    batched_size: int = 0  # per example
    fixed_size: int = 0

    def ws_size(self) -> str:
        parts = [f"{N}*{self.batched_size}" if self.batched_size else "", str(self.fixed_size)]
        return " + ".join(p for p in parts if p and p != "0") or "0"


def plan_memory(
    statements: list[Node],
    direct: dict[Node, str],
    inplace_ok: Callable[[Node, Node], bool],
    live_out: set[Node],
) -> Plan:
    """Give every statement node a buffer: ``direct`` ones write to the caller's arrays, the
    others share two workspace regions (per-example sized, and fixed) by live range.

    A buffer is free once the last statement reading it has run; an elementwise statement may
    take over, in place, the buffer of an argument it reads last at the same element.
    """
    plan = Plan()
    last_use: dict[Node, int] = {}
    alias: dict[Node, Node] = {}
    buffers = set(statements)

    def reads(node: Node):
        """The buffers a statement reads, through the expressions inlined into it."""
        for a in node.args:
            if a in buffers:
                yield a
            else:
                yield from reads(a)

    for i, node in enumerate(statements):
        for a in reads(node):
            root = alias.get(a, a)
            last_use[root] = i
        if node.op is Op.RESHAPE:
            alias[node] = alias.get(node.args[0], node.args[0])
    for node in live_out:
        last_use[alias.get(node, node)] = len(statements)
    free: dict[bool, list[tuple[int, int]]] = {True: [], False: []}  # (offset, size) holes
    top = {True: 0, False: 0}
    live: list[tuple[int, Node, int, int, bool]] = []  # (last use, node, offset, size, batched)
    for i, node in enumerate(statements):
        still = []
        for entry in live:
            if entry[0] < i:
                free[entry[4]].append((entry[2], entry[3]))
            else:
                still.append(entry)
        live = still
        if node.op is Op.RESHAPE:
            continue
        if node in direct:
            plan.pointer[node] = direct[node]
            continue
        size, batched = max(1, math.prod(node.shape)), node.batched
        spot = None
        for entry in live:  # in place: an argument dying here, read at the same element
            if (
                entry[0] == i
                and entry[3] == size
                and entry[4] == batched
                and entry[1] in node.args
                and inplace_ok(node, entry[1])
            ):
                spot = entry[2]
                live.remove(entry)
                break
        if spot is None:
            holes = sorted(free[batched])
            for k, (off, hole) in enumerate(holes):
                if hole >= size:
                    spot = off
                    holes[k : k + 1] = [(off + size, hole - size)] if hole > size else []
                    break
            free[batched] = holes
        if spot is None:
            spot = top[batched]
            top[batched] += size
        live.append((last_use.get(node, i), node, spot, size, batched))
        plan.pointer[node] = (spot, batched)  # resolved below
    plan.batched_size, plan.fixed_size = top[True], top[False]
    for node, where in list(plan.pointer.items()):
        if isinstance(where, tuple):
            off, batched = where
            base = f"{N}*{off}" if batched and off else ("0" if batched else None)
            if not batched:
                base = f"{N}*{plan.batched_size} + {off}" if plan.batched_size else str(off)
            base = base.removesuffix(" + 0")
            plan.pointer[node] = f"_ws + {base}" if base != "0" else "_ws"
    for node, root in alias.items():
        if root in plan.pointer:
            plan.pointer[node] = plan.pointer[root]
    return plan
