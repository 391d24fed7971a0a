"""IR nodes as C statements: one loop nest (or one GEMM call) writing each node's buffer.

An elementwise expression is one loop; a reduction accumulates the elementwise expression
feeding it without storing it; a contraction that is a matrix product is one GEMM
(transposes as flags; axes side by side in every operand, such as the batch and the rows of
a per-example matrix, joined into one matrix dimension), other contractions are loops.
``STATEMENT`` holds the statement of every op that gets a buffer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ...codegen.matmul import matmul_form, merged
from ...ir.indexing import Span
from ...ir.node import Node, Op
from ...ir.notation import ATOM, print_expr
from ...ir.ops import runtime_subscripts
from .dropout import dropout
from .layout import N, arg_strides, dims, index, loops, product, runs, strides
from .names import CExprPrinter
from .windows import fold, patches

EXTREMA = {Op.MAX: ("-INFINITY", ">"), Op.MIN: ("INFINITY", "<")}  # start, and who wins
SMALL_GEMM = 16384  # multiply-adds below which loops beat a BLAS call (the C helper agrees)


@dataclass
class Matmul:
    """C = op(A) op(B), row-major: op(A) is m x k, op(B) k x n; ld* are leading dimensions."""

    ta: bool
    tb: bool
    m: str | int
    n: str | int
    k: str | int
    a: str
    lda: str | int
    b: str
    ldb: str | int
    ldc: str | int


class CWriter:
    """Writes the C statements of one function given where each node's values live."""

    def __init__(self, dtype: str, pointer: dict[Node, str]) -> None:
        self.real = "float" if dtype == "float32" else "double"
        self.blas = "s" if dtype == "float32" else "d"
        self.printer = CExprPrinter(dtype)
        self.pointer = pointer  # node -> C pointer to its buffer
        self.gemm_helpers = False  # whether the code calls gemm_small_ or gemm_
        self.merged: list[list[int]] | None = None  # the axes each loop walks, in element()

    def statement(self, node: Node) -> list[str]:
        """The C statements computing ``node`` into its buffer."""
        return STATEMENT[node.op](self, node)

    def buffer(self, node: Node) -> str | None:
        """The pointer to ``node``'s values, if they are in memory: its own buffer, or that
        of the value a reshape views (a Param, an Input, another buffer)."""
        while node not in self.pointer and node.op is Op.RESHAPE:
            node = node.args[0]
        return self.pointer.get(node)

    def element(self, node: Node, space: Node, idx: list[str]) -> str:
        """C expression of ``node``'s element at ``idx`` of the index space of ``space``."""
        if node.op is Op.CONST:
            return f"({print_expr(node.attr, [], self.printer)[0]})"
        if node.op is Op.BROADCAST and node.args[0].op is Op.CONST:
            return f"({print_expr(node.args[0].attr, [], self.printer)[0]})"
        if node.op is Op.BATCH_SIZE:
            return f"(({self.real}){N})"
        if self.buffer(node) is not None:
            st = arg_strides(space, node)
            if self.merged is not None:  # a loop runs over each group of axes
                st = [st[g[-1]] for g in self.merged]
            return f"{self.buffer(node)}[{index(idx, st)}]"
        if node.op is Op.EW:  # inlined: its index space is its consumer's
            return f"({self.ew_value(node, space, idx)})"
        raise AssertionError(f"{node!r} has no buffer and cannot be inlined")

    def ew_value(self, node: Node, space: Node, idx: list[str]) -> str:
        args = [(self.element(a, space, idx), ATOM) for a in node.args]
        return print_expr(node.attr, args, self.printer)[0]

    def elementwise(self, node: Node) -> list[str]:
        dst = self.pointer[node]
        ds = dims(node)
        flat = [strides(ds), ["0"] * len(ds)]
        if all(arg_strides(node, a) in flat for a in node.args if self.buffer(a) is not None):
            if not ds:
                return [f"{dst}[0] = {self.ew_value_flat(node, '0')};"]
            value = self.ew_value_flat(node, "_i")  # the same layout everywhere: one loop
            return loops(["_i"], [product(ds)], [f"{dst}[_i] = {value};"])
        groups = self.runs(node, node.args, list(range(len(ds))), [strides(ds)])
        idx = [f"_i{k}" for k in range(len(groups))]
        value = self.merged_value(groups, lambda: self.ew_value(node, node, idx))
        at = index(idx, [strides(ds)[g[-1]] for g in groups])
        return loops(
            idx, [product([ds[a] for a in g]) for g in groups], [f"{dst}[{at}] = {value};"]
        )

    def runs(self, space: Node, read: tuple, axes: list[int], extra: list[list[str]]) -> list:
        """``layout.runs`` of ``axes`` of ``space`` for the buffers of ``read`` (and those of
        the values inlined there) and the strides ``extra``."""
        reads, stack = [], list(read)
        while stack:
            n = stack.pop()
            if self.buffer(n) is not None:
                reads.append(arg_strides(space, n))
            elif n.op is Op.EW:
                stack.extend(n.args)
        return runs(dims(space), axes, reads + extra)

    def merged_value(self, groups: list[list[int]], value: Callable[[], str]) -> str:
        """``value()``, its elements read with one index per group of axes."""
        self.merged = groups
        try:
            return value()
        finally:
            self.merged = None

    def ew_value_flat(self, node: Node, flat: str) -> str:
        """The elementwise value at flat index ``flat`` when every argument buffer has the
        node's own layout (or is a single value)."""
        args = []
        for a in node.args:
            if self.buffer(a) is not None and dims(a) == dims(node):  # element by element
                text = f"{self.buffer(a)}[{flat}]"
            else:
                text = self.element(a, node, ["0"] * len(dims(node)))
            args.append((text, ATOM))
        return print_expr(node.attr, args, self.printer)[0]

    def reduce(self, node: Node) -> list[str]:
        """SUM, LOGSUMEXP, MAX or MIN over per-example axes; the summand is computed in the
        loop."""
        x = node.args[0]
        xd = dims(x)
        red = {a + int(x.batched) for a in node.attr}
        out = ["0"] * len(xd)  # the result's strides over x's axes
        for k, st in zip([k for k in range(len(xd)) if k not in red], strides(dims(node))):
            out[k] = st
        groups = sorted(
            self.runs(x, [x], [k for k in range(len(xd)) if k not in red], [out])
            + self.runs(x, [x], sorted(red), [out])
        )
        idx = [f"_i{k}" for k in range(len(groups))]
        kept = [k for k, g in enumerate(groups) if g[0] not in red]
        inner = [k for k, g in enumerate(groups) if g[0] in red]
        size = [product([xd[a] for a in g]) for g in groups]
        elem = self.merged_value(groups, lambda: self.element(x, x, idx))
        at = index([idx[k] for k in kept], [out[groups[k][-1]] for k in kept])
        dst = f"{self.pointer[node]}[{at}]"

        def over(body: list[str], reduction: str | None = None) -> list[str]:
            return loops([idx[k] for k in inner], [size[k] for k in inner], body, reduction)

        if node.op is Op.SUM:
            body = [f"{self.real} _acc = 0;", *over([f"_acc += {elem};"], "_acc"), f"{dst} = _acc;"]
        elif node.op in EXTREMA:  # NaN, once met, stays: NumPy's max and min propagate it
            start, wins = EXTREMA[node.op]
            body = [
                f"{self.real} _m = {start};",
                *over([f"{self.real} _v = {elem};", f"if (_v {wins} _m || _v != _v) _m = _v;"]),
                f"{dst} = _m;",
            ]
        else:
            body = [
                f"{self.real} _m = -INFINITY;",
                *over([f"_m = fmax(_m, {elem});"]),
                "if (!isfinite(_m)) _m = 0;",
                f"{self.real} _acc = 0;",
                *over([f"_acc += exp({elem} - _m);"], "_acc"),
                f"{dst} = _m + log(_acc);",
            ]
        if not kept:
            return ["{", *("  " + b for b in body), "}"]
        return loops([idx[k] for k in kept], [size[k] for k in kept], body)

    def batch_sum(self, node: Node) -> list[str]:
        x = node.args[0]
        idx = ["_b"] + [f"_i{k}" for k in range(node.ndim)]
        size = product(list(node.shape))
        dst = self.pointer[node]
        body = [f"{dst}[{index(idx[1:], strides(list(node.shape)))}] += {self.element(x, x, idx)};"]
        return [
            _zero(dst, size),
            *loops(idx, [N, *node.shape], body),
        ]

    def copy(self, node: Node) -> list[str]:
        """A broadcast or a transpose, element by element."""
        x = node.args[0]
        ds = dims(node)
        idx = [f"_i{k}" for k in range(len(ds))]
        if node.op is Op.BROADCAST:
            elem = self.element(x, node, idx)
        else:  # TRANSPOSE: out[idx] = x[idx permuted back]
            lead = int(node.batched)
            x_idx = list(idx)
            for out_axis, in_axis in enumerate(node.attr):
                x_idx[in_axis + lead] = idx[out_axis + lead]
            elem = f"{self.buffer(x)}[{index(x_idx, strides(dims(x)))}]"
        return loops(idx, ds, [f"{self.pointer[node]}[{index(idx, strides(ds))}] = {elem};"])

    def dot(self, node: Node) -> list[str]:
        mm = self.matmul(node)
        if mm is not None:
            return [self.gemm(mm, self.pointer[node])]
        per_example = self.per_example(node)
        if per_example is not None:
            return per_example
        a, b = node.args
        sa, sb, so = runtime_subscripts(node)
        pa, pb, dst = self.buffer(a), self.buffer(b), self.pointer[node]
        sizes = _letter_sizes(node)
        letters = list(dict.fromkeys(so + sa + sb))
        at = index([f"_l{ch}" for ch in sa], strides([sizes[ch] for ch in sa]))
        bt = index([f"_l{ch}" for ch in sb], strides([sizes[ch] for ch in sb]))
        ot = index([f"_l{ch}" for ch in so], strides([sizes[ch] for ch in so]))
        total = product([sizes[ch] for ch in so])
        return [
            _zero(dst, total),
            *loops(
                [f"_l{ch}" for ch in letters],
                [sizes[ch] for ch in letters],
                [f"{dst}[{ot}] += {pa}[{at}] * {pb}[{bt}];"],
            ),
        ]

    def matmul(self, node: Node) -> Matmul | None:
        """The GEMM computing a DOT node, when it is a product of (batches of) matrices once
        the axes side by side in every operand are joined (``merged``): the batch with a
        per-example matrix's rows, for one."""
        a, b = node.args
        sa, sb, so, groups = merged(*runtime_subscripts(node))
        form = matmul_form(sa, sb, so)
        if form is None:
            return None
        sizes = _letter_sizes(node)
        sizes.update({ch: product([sizes[c] for c in run]) for ch, run in groups.items()})
        swap, ta, tb = form
        (la, pl), (lb, pr) = ((sb, b), (sa, a)) if swap else ((sa, a), (sb, b))
        k = ((set(la) & set(lb)) - set(so)).pop()
        m, nn = la.replace(k, ""), lb.replace(k, "")
        cols = sizes[nn] if nn else 1
        rows = sizes[m] if m else 1
        ldb = sizes[lb[-1]] if len(lb) == 2 else 1
        a_ptr, b_ptr = self.buffer(pl), self.buffer(pr)
        return Matmul(ta, tb, rows, cols, sizes[k], a_ptr, sizes[la[-1]], b_ptr, ldb, cols)

    def per_example(self, node: Node) -> list[str] | None:
        """One GEMM per example, when the product of each example's matrices is one (the
        patches of an image times a kernel): into each example's output, or added up into
        one (a kernel's gradient, summed over the batch)."""
        a, b = node.args
        sa, sb, so = runtime_subscripts(node)
        core = [s[1:] if s.startswith("b") else s for s in (sa, sb, so)]
        form = matmul_form(*core)
        if not (a.batched or b.batched) or any("b" in s for s in core) or form is None:
            return None
        sizes = _letter_sizes(node)
        swap, ta, tb = form
        (la, pl), (lb, pr) = ((core[1], b), (core[0], a)) if swap else ((core[0], a), (core[1], b))
        k = ((set(la) & set(lb)) - set(core[2])).pop()
        m, nn = la.replace(k, ""), lb.replace(k, "")
        cols = sizes[nn] if nn else 1
        ldb = sizes[lb[-1]] if len(lb) == 2 else 1

        def at(x: Node) -> str:  # example _b's matrix
            return f"{self.buffer(x)} + _b*{x.size}" if x.batched else self.buffer(x)

        mm = Matmul(
            ta, tb, sizes[m] if m else 1, cols, sizes[k], at(pl), sizes[la[-1]], at(pr), ldb, cols
        )
        dst = self.pointer[node]
        if node.batched:
            return loops(["_b"], [N], [self.gemm(mm, f"{dst} + _b*{node.size}")])
        return [_zero(dst, str(node.size)), *loops(["_b"], [N], [self.gemm(mm, dst, beta=1)])]

    def gemm(self, mm: Matmul, dst: str, alpha: str = "1", beta: int = 0) -> str:
        """dst = alpha op(A) op(B) + beta dst. Decided here where the size is known: loops
        the compiler vectorizes (gemm_small_) for products too small for a BLAS call to pay,
        the BLAS for the others, the C helper gemm_ choosing at run time where the size
        depends on the batch."""
        args = f"{mm.m}, {mm.n}, {mm.k}, {alpha}, {mm.a}, {mm.lda}, {mm.b}, {mm.ldb}, {beta}"
        args += f", {dst}, {mm.ldc}"
        work = product([mm.m, mm.n, mm.k])
        factor = int(work.split("*")[-1]) if work.split("*")[-1].isdigit() else 1
        if work.isdigit() and int(work) <= SMALL_GEMM:
            self.gemm_helpers = True
            return f"gemm_small_({int(mm.ta)}, {int(mm.tb)}, {args});"
        if factor > SMALL_GEMM:  # large for any batch
            flags = ("CblasTrans" if t else "CblasNoTrans" for t in (mm.ta, mm.tb))
            return f"scipy_cblas_{self.blas}gemm(CblasRowMajor, {', '.join(flags)}, {args});"
        self.gemm_helpers = True
        return f"gemm_({int(mm.ta)}, {int(mm.tb)}, {args});"

    # indexing: loops over the slice, O(its size); an unslice zeroes its buffer first

    def slice(self, node: Node) -> list[str]:
        """dst[idx] = x[start + idx * step, ...]: the source index is affine in the loop's."""
        (x,) = node.args
        ds, xs = dims(node), [int(st) for st in strides(dims(x))]
        idx = [f"_i{k}" for k in range(len(ds))]
        terms, offset = _placed(node.attr, idx, xs, node.batched)
        src = f"{self.buffer(x)}[{_affine(terms, offset)}]"
        return loops(idx, ds, [f"{self.pointer[node]}[{index(idx, strides(ds))}] = {src};"])

    def unslice(self, node: Node) -> list[str]:
        """Zeros, then dst[start + idx * step, ...] = g[idx]."""
        (g,) = node.args
        gd, ns = dims(g), [int(st) for st in strides(dims(node))]
        idx = [f"_i{k}" for k in range(len(gd))]
        terms, offset = _placed(node.attr.index, idx, ns, node.batched)
        dst = f"{self.pointer[node]}[{_affine(terms, offset)}]"
        body = [f"{dst} = {self.element(g, g, idx)};"]
        return [_zero(self.pointer[node], product(dims(node))), *loops(idx, gd, body)]

    def concat(self, node: Node) -> list[str]:
        """Each part copied to its place; an unbatched part to every example's."""
        axis, new = node.attr
        ns = [int(st) for st in strides(dims(node))]
        lead = int(node.batched)
        out: list[str] = []
        offset = 0
        for i, part in enumerate(node.args):
            pd = ([N] if node.batched else []) + list(part.shape)
            idx = [f"_i{k}" for k in range(len(pd))]
            terms = [(v, ns[k + (new and k >= axis + lead)]) for k, v in enumerate(idx)]
            at = (i if new else offset) * ns[axis + lead]
            own = idx[lead - int(part.batched) :]  # the part's own index space
            value = self.element(part, part, own)
            out += loops(idx, pd, [f"{self.pointer[node]}[{_affine(terms, at)}] = {value};"])
            offset += 0 if new else part.shape[axis]
        return out

    # indexing (gather)

    def gather(self, node: Node) -> list[str]:
        """table[ids], row by row (the wrapper has checked every id is in range)."""
        table, ids = node.args
        per, width = math.prod(ids.shape), math.prod(table.shape[1:])
        src = self.buffer(table)
        if src is None:  # one value everywhere (a constant folded into the table)
            value = self.element(table, table, [])
        else:
            lead = [("_b", table.size)] if table.batched else []
            value = f"{src}[{_at([*lead, ('_r', width), ('_j', 1)], per, width)}]"
        out = _at([("_b", per * width), ("_k", width), ("_j", 1)], per, width)
        return self.rows(ids, per, width, f"{self.pointer[node]}[{out}] = {value};")

    def scatter_add(self, node: Node) -> list[str]:
        """The adjoint of table[ids]: zeros, then each example's rows added at its ids, in
        order (repeated ids add up); into one table, or one per example."""
        g, ids = node.args
        per, width = math.prod(ids.shape), math.prod(node.shape[1:])
        src = self.buffer(g)
        if src is None:
            value = self.element(g, g, [])
        else:
            lead = [("_b", per * width)] if g.batched else []
            value = f"{src}[{_at([*lead, ('_k', width), ('_j', 1)], per, width)}]"
        lead = [("_b", node.size)] if node.batched else []
        out = _at([*lead, ("_r", width), ("_j", 1)], per, width)
        dst = self.pointer[node]
        return [
            _zero(dst, product(dims(node))),
            *self.rows(ids, per, width, f"{dst}[{out}] += {value};"),
        ]

    def rows(self, ids: Node, per: int, width: int, assign: str) -> list[str]:
        """``assign`` in loops over the examples ``_b``, their ids ``_k`` (the id read as
        ``_r``) and the ``_j`` elements of a row; a loop of one element is left out."""
        read = f"const long _r = (long){self.buffer(ids)}[{_at([('_b', per), ('_k', 1)], per)}];"
        body = loops(["_j"], [width], [assign]) if width > 1 else [assign]
        if per == 1:
            return loops(["_b"], [N], [read, *body])
        return loops(["_b", "_k"], [N, per], [read, *body])


def _placed(index: tuple, idx: list[str], st: list[int], batched: bool) -> tuple[list, int]:
    """The affine map from the loop indices ``idx`` over a slice to the flat index, of
    strides ``st``, of the element they select: its terms (index, coefficient) and offset."""
    terms = [(idx[0], st[0])] if batched else []
    offset, k = 0, int(batched)
    for axis, e in enumerate(index):
        stride = st[axis + int(batched)]
        if isinstance(e, Span):
            offset += e.start * stride
            terms.append((idx[k], e.step * stride))
            k += 1
        else:
            offset += e * stride
    return terms, offset


def _affine(terms: list[tuple[str, int]], offset: int) -> str:
    """C text of offset + sum of index * coefficient."""
    text = ""
    for var, c in terms:
        term = var if abs(c) == 1 else f"{var}*{abs(c)}"
        text += (" - " if c < 0 else " + ") + term if text else ("-" if c < 0 else "") + term
    if offset or not text:
        text = f"{text} + {offset}" if text else str(offset)
    return text


def _at(terms: list[tuple[str, int]], per: int, width: int = 1) -> str:
    """C text of the offset sum of index * stride, without the loops left out (``_k`` for
    one id per example, ``_j`` for rows of one element)."""
    absent = {"_k"} if per == 1 else set()
    absent |= {"_j"} if width == 1 else set()
    parts = [i if s == 1 else f"{i}*{s}" for i, s in terms if i not in absent]
    return " + ".join(parts) or "0"


def _zero(dst: str, size: str) -> str:
    """C zeroing the ``size`` elements at ``dst`` (one element: no loop)."""
    if size == "1":
        return f"{dst}[0] = 0;"
    return f"for (long _i = 0; _i < {size}; _i++) {dst}[_i] = 0;"


def _letter_sizes(node: Node) -> dict[str, str | int]:
    """The size of every einsum letter of a DOT node, the batch's "b" included."""
    a, b = node.args
    sizes: dict[str, str | int] = {"b": N}
    sizes.update(zip(node.attr.a, a.shape))
    sizes.update(zip(node.attr.b, b.shape))
    return sizes


def inplace_ok(node: Node, arg: Node) -> bool:
    """May ``node`` overwrite ``arg``'s buffer as it goes? Only an elementwise node reading
    ``arg`` at the very element it writes."""
    return node.op is Op.EW and arg_strides(node, arg) == strides(dims(node))


# op -> the statements computing a node of it into its buffer (leaves have no statement)
STATEMENT: dict[Op, Callable[[CWriter, Node], list[str]]] = {
    Op.EW: CWriter.elementwise,
    Op.SUM: CWriter.reduce,
    Op.LOGSUMEXP: CWriter.reduce,
    Op.BATCH_SUM: CWriter.batch_sum,
    Op.DOT: CWriter.dot,
    Op.TRANSPOSE: CWriter.copy,
    Op.BROADCAST: CWriter.copy,
    Op.RESHAPE: lambda writer, node: [],  # a view: its buffer is its argument's
    # dropout
    Op.DROPOUT: dropout,
    # indexing
    Op.SLICE: CWriter.slice,
    Op.UNSLICE: CWriter.unslice,
    Op.CONCAT: CWriter.concat,
    # indexing (gather)
    Op.GATHER: CWriter.gather,
    Op.SCATTER_ADD: CWriter.scatter_add,
    # max and min
    Op.MAX: CWriter.reduce,
    Op.MIN: CWriter.reduce,
    # convolution
    Op.PATCHES: patches,
    Op.FOLD: fold,
}
