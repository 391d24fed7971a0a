"""IR nodes as C statements: one loop nest (or one GEMM call) writing each node's buffer.

An elementwise expression is one loop; a reduction accumulates the elementwise expression
feeding it without storing it; a contraction that is a matrix product is one GEMM
(transposes as flags, the batch folded into a matrix dimension), other contractions are
loops. ``STATEMENT`` holds the statement of every op that gets a buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...codegen.matmul import matmul_form
from ...ir.node import Node, Op
from ...ir.notation import ATOM, print_expr
from ...ir.ops import runtime_subscripts
from .layout import N, arg_strides, dims, index, loops, product, strides
from .names import CExprPrinter

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
            return f"{self.buffer(node)}[{index(idx, arg_strides(space, node))}]"
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
        idx = [f"_i{k}" for k in range(len(ds))]
        value = self.ew_value(node, node, idx)
        return loops(idx, ds, [f"{dst}[{index(idx, strides(ds))}] = {value};"])

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
        idx = [f"_i{k}" for k in range(len(xd))]
        red = {a + int(x.batched) for a in node.attr}
        kept = [k for k in range(len(xd)) if k not in red]
        inner = [k for k in range(len(xd)) if k in red]
        elem = self.element(x, x, idx)
        dst = f"{self.pointer[node]}[{index([idx[k] for k in kept], strides(dims(node)))}]"

        def over(body: list[str], reduction: str | None = None) -> list[str]:
            return loops([idx[k] for k in inner], [xd[k] for k in inner], body, reduction)

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
        return loops([idx[k] for k in kept], [xd[k] for k in kept], body)

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
        """The GEMM computing a DOT node, when it is a product of (batches of) matrices."""
        a, b = node.args
        sa, sb, so = runtime_subscripts(node)
        form = matmul_form(sa, sb, so)
        if form is None:
            return None
        sizes = _letter_sizes(node)
        swap, ta, tb = form
        (la, pl), (lb, pr) = ((sb, b), (sa, a)) if swap else ((sa, a), (sb, b))
        k = ((set(la) & set(lb)) - set(so)).pop()
        m, nn = la.replace(k, ""), lb.replace(k, "")
        cols = sizes[nn] if nn else 1
        rows = sizes[m] if m else 1
        ldb = sizes[lb[-1]] if len(lb) == 2 else 1
        a_ptr, b_ptr = self.buffer(pl), self.buffer(pr)
        return Matmul(ta, tb, rows, cols, sizes[k], a_ptr, sizes[la[-1]], b_ptr, ldb, cols)

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
    # max and min
    Op.MAX: CWriter.reduce,
    Op.MIN: CWriter.reduce,
}
