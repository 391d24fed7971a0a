"""Program -> one C99 translation unit and its Python wrapper, through jinja2 templates.

Every scheduled node is one loop nest writing a buffer: an elementwise expression is one
loop; a reduction accumulates the elementwise expression feeding it without storing it; a
contraction that is a matrix product is one GEMM (transposes as flags, the batch folded
into a matrix dimension), inline loops when it is small; other contractions are loops.
Buffers live in one workspace laid out by ``plan_memory`` from the statements' live ranges
(``symbp.c_layout``); names and expressions are made C by ``symbp.c_names``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ... import __version__
from ...codegen.printing import matmul_form, print_expr, runtime_subscripts
from ...codegen.render import render
from ...codegen.schedule import Routine, doc_text, schedule
from ...ir.expr import ATOM, X
from ...ir.graph import Graph
from ...ir.node import Node, Op, Shape, gc_paused
from ...passes.pipeline import PARAM_GRADS_LINE, Program
from .layout import N, Plan, arg_strides, dims, index, loops, plan_memory, product, strides
from .names import C_RESERVED, CExprPrinter, CNamer, c_identifier

# ------------------------------------------------------------------------ the writer


@dataclass
class CFunction:
    name: str
    params: list[str]  # C parameter declarations
    doc: str
    body: list[str]
    ws: str  # workspace elements needed, in terms of n
    returns: str  # "double" (the mean loss) or "void"


class CWriter:
    """Writes the C statements of one routine given where each node's values live."""

    def __init__(self, dtype: str) -> None:
        self.real = "float" if dtype == "float32" else "double"
        self.printer = CExprPrinter(dtype)
        self.pointer: dict[Node, str] = {}

    def element(self, node: Node, space: Node, idx: list[str]) -> str:
        """C expression of ``node``'s element at ``idx`` of the index space of ``space``."""
        if node.op is Op.CONST:
            return f"({print_expr(node.attr, [], self.printer)[0]})"
        if node.op is Op.BROADCAST and node.args[0].op is Op.CONST:
            return f"({print_expr(node.args[0].attr, [], self.printer)[0]})"
        if node.op is Op.BATCH_SIZE:
            return f"(({self.real}){N})"
        if node in self.pointer:
            return f"{self.pointer[node]}[{index(idx, arg_strides(space, node))}]"
        if node.op is Op.EW:  # inlined: its index space is its consumer's
            return f"({self.ew_value(node, space, idx)})"
        raise AssertionError(f"{node!r} has no buffer and cannot be inlined")

    def ew_value(self, node: Node, space: Node, idx: list[str]) -> str:
        args = [(self.element(a, space, idx), ATOM) for a in node.args]
        return print_expr(node.attr, args, self.printer)[0]

    def statement(self, node: Node) -> list[str]:
        op = node.op
        dst = self.pointer[node]
        ds = dims(node)
        idx = [f"_i{k}" for k in range(len(ds))]
        if op is Op.EW:
            if all(
                arg_strides(node, a) in (strides(ds), ["0"] * len(ds))
                for a in node.args
                if a in self.pointer
            ):
                if not ds:
                    return [f"{dst}[0] = {self.ew_value_flat(node, '0')};"]
                value = self.ew_value_flat(node, "_i")  # the same layout everywhere: one loop
                return loops(["_i"], [product(ds)], [f"{dst}[_i] = {value};"])
            value = self.ew_value(node, node, idx)
            return loops(idx, ds, [f"{dst}[{index(idx, strides(ds))}] = {value};"])
        if op in (Op.SUM, Op.LOGSUMEXP):
            return self.reduce(node)
        if op is Op.BATCH_SUM:
            return self.batch_sum(node)
        if op is Op.DOT:
            return self.dot(node)
        if op in (Op.TRANSPOSE, Op.BROADCAST):
            return self.copy(node)
        raise AssertionError(f"no C statement for {op}")

    def ew_value_flat(self, node: Node, flat: str) -> str:
        """The elementwise value at flat index ``flat`` when every argument buffer has the
        node's own layout (or is a single value)."""
        args = []
        for a in node.args:
            if a in self.pointer and dims(a) == dims(node):  # read along, element by element
                text = f"{self.pointer[a]}[{flat}]"
            else:
                text = self.element(a, node, ["0"] * len(dims(node)))
            args.append((text, ATOM))
        return print_expr(node.attr, args, self.printer)[0]

    def reduce(self, node: Node) -> list[str]:
        """SUM or LOGSUMEXP over per-example axes; the summand is computed in the loop."""
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
            f"for (long _i = 0; _i < {size}; _i++) {dst}[_i] = 0;",
            *loops(idx, [N, *node.shape], body),
        ]

    def copy(self, node: Node) -> list[str]:
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
            elem = f"{self.pointer[x]}[{index(x_idx, strides(dims(x)))}]"
        return loops(idx, ds, [f"{self.pointer[node]}[{index(idx, strides(ds))}] = {elem};"])

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
        return Matmul(
            ta,
            tb,
            sizes[m] if m else 1,
            cols,
            sizes[k],
            self.pointer[pl],
            sizes[la[-1]],
            self.pointer[pr],
            sizes[lb[-1]] if len(lb) == 2 else 1,
            cols,
        )

    def dot(self, node: Node) -> list[str]:
        mm = self.matmul(node)
        if mm is not None:
            return self.gemm(mm, self.pointer[node])
        a, b = node.args
        sa, sb, so = runtime_subscripts(node)
        pa, pb, dst = self.pointer[a], self.pointer[b], self.pointer[node]
        sizes = _letter_sizes(node)
        letters = list(dict.fromkeys(so + sa + sb))
        at = index([f"_l{ch}" for ch in sa], strides([sizes[ch] for ch in sa]))
        bt = index([f"_l{ch}" for ch in sb], strides([sizes[ch] for ch in sb]))
        ot = index([f"_l{ch}" for ch in so], strides([sizes[ch] for ch in so]))
        total = product([sizes[ch] for ch in so])
        return [
            f"for (long _i = 0; _i < {total}; _i++) {dst}[_i] = 0;",
            *loops(
                [f"_l{ch}" for ch in letters],
                [sizes[ch] for ch in letters],
                [f"{dst}[{ot}] += {pa}[{at}] * {pb}[{bt}];"],
            ),
        ]

    def gemm(self, mm: Matmul, dst: str, alpha: str = "1", beta: int = 0) -> list[str]:
        """dst = alpha * op(A) op(B) + beta * dst: loops the compiler can vectorize for
        small products (a BLAS call costs more than their arithmetic), CBLAS otherwise."""
        r = self.real
        a_ik = f"_A[_k * {mm.lda} + _i]" if mm.ta else f"_A[_i * {mm.lda} + _k]"
        scale = "" if alpha == "1" else f"({alpha}) * "
        head = [
            f"const {r} *restrict _A = {mm.a};",
            f"const {r} *restrict _B = {mm.b};",
            f"{r} *restrict _C = {dst};",
        ]
        if mm.tb:  # C[i, j] = A[i, :] . B[j, :]
            keep = "" if beta == 0 else f"_C[_i * {mm.ldc} + _j] + "
            small = loops(
                ["_i", "_j"],
                [mm.m, mm.n],
                [
                    f"{r} _acc = 0;",
                    *loops(["_k"], [mm.k], [f"_acc += {a_ik} * _B[_j * {mm.ldb} + _k];"], "_acc"),
                    f"_C[_i * {mm.ldc} + _j] = {keep}{scale}_acc;",
                ],
            )
        else:  # C[i, :] += A[i, k] B[k, :]
            zero = (
                [] if beta else loops(["_j"], [mm.n], [f"_C[_i * {mm.ldc} + _j] = 0;"], simd=True)
            )
            small = loops(
                ["_i"],
                [mm.m],
                [
                    *zero,
                    *loops(
                        ["_k"],
                        [mm.k],
                        [
                            f"const {r} _a = {scale}{a_ik};",
                            *loops(
                                ["_j"],
                                [mm.n],
                                [f"_C[_i * {mm.ldc} + _j] += _a * _B[_k * {mm.ldb} + _j];"],
                                simd=True,
                            ),
                        ],
                    ),
                ],
            )
        blas = (
            f"scipy_cblas_{'s' if r == 'float' else 'd'}gemm(CblasRowMajor, "
            f"{'CblasTrans' if mm.ta else 'CblasNoTrans'}, "
            f"{'CblasTrans' if mm.tb else 'CblasNoTrans'}, {mm.m}, {mm.n}, {mm.k}, "
            f"{alpha}, _A, {mm.lda}, _B, {mm.ldb}, {beta}, _C, {mm.ldc});"
        )
        work = product([mm.m, mm.n, mm.k])
        if work.isdigit():  # known when generating: choose now
            body = small if int(work) <= SMALL_GEMM else [blas]
        else:
            body = [
                f"if ((long)({work}) <= {SMALL_GEMM}) {{",
                *("  " + x for x in small),
                "} else {",
                "  " + blas,
                "}",
            ]
        return ["{", *("  " + x for x in head + body), "}"]


def _letter_sizes(node: Node) -> dict[str, str | int]:
    """The size of every einsum letter of a DOT node, the batch's "b" included."""
    a, b = node.args
    sizes: dict[str, str | int] = {"b": N}
    sizes.update(zip(node.attr.a, a.shape))
    sizes.update(zip(node.attr.b, b.shape))
    return sizes


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


SMALL_GEMM = 16384  # multiply-adds below which inline loops beat a BLAS call


def _inplace_ok(node: Node, arg: Node) -> bool:
    """May ``node`` overwrite ``arg``'s buffer as it goes? Only an elementwise node reading
    ``arg`` at the very element it writes."""
    return node.op is Op.EW and arg_strides(node, arg) == strides(dims(node))


# ------------------------------------------------------------------ the translation unit


@dataclass
class Arg:
    name: str  # C parameter name
    key: str  # the user's name (dict key)
    shape: Shape
    batched: bool


class Generator:
    """Builds the C source, its cffi declarations and the wrapper for one program."""

    def __init__(self, program: Program, dtype: str) -> None:
        self.program = program
        self.graph: Graph = program.graph
        self.dtype = dtype
        self.real = "float" if dtype == "float32" else "double"
        namer = CNamer(C_RESERVED)
        self.params = [Arg(namer(k), k, d.node.shape, False) for k, d in self.graph.params.items()]
        self.inputs = [Arg(namer(k), k, d.node.shape, True) for k, d in self.graph.inputs.items()]
        self.taken = set(namer.taken)

    def namer(self) -> CNamer:
        return CNamer(set(self.taken))

    def leaves(self) -> dict[Node, str]:
        out = {self.graph.params[a.key].node: a.name for a in self.params}
        out.update({self.graph.inputs[a.key].node: a.name for a in self.inputs})
        return out

    def function(
        self,
        name: str,
        doc: str,
        roots: dict[str, Node],
        outs: list[Arg],
        forward_only: bool,
        finish: Callable[[CWriter, dict[str, Node]], list[str]],
        direct_ok: bool = True,
        extra: list[str] = (),
        mutable: bool = False,
    ) -> CFunction:
        namer = self.namer()
        leaves = self.leaves()
        out_names = [f"_out_{o.name}" for o in outs]

        def can_inline(node: Node, consumer: Node) -> bool:
            if node.op is Op.CONST:
                return True
            if node.op is Op.BROADCAST and node.args[0].op is Op.CONST:  # a value, not a buffer
                return consumer.op not in (Op.DOT, Op.TRANSPOSE, Op.RESHAPE)
            return node.op is Op.EW and consumer.op in (Op.SUM, Op.BATCH_SUM)

        routine: Routine = schedule(
            self.program,
            roots,
            namer,
            leaves,
            max_inline=1,
            forward_only=forward_only,
            can_inline=can_inline,
        )
        statements = [s.node for s in routine.statements]
        direct: dict[Node, str] = {}
        if direct_ok:
            for o, cname in zip(outs, out_names):
                node = roots[o.key]
                if (
                    node in statements
                    and node not in direct
                    and node.op is not Op.RESHAPE
                    and node.shape == o.shape
                    and node.batched == o.batched
                ):
                    direct[node] = cname
        live_out = {roots[k] for k in roots}  # read after the last statement
        plan = plan_memory(statements, direct, _inplace_ok, live_out)
        writer = CWriter(self.dtype)
        writer.plan = plan
        writer.pointer = dict(leaves)
        body: list[str] = []
        for st in routine.statements:  # one named pointer per value, as in the spec
            if st.node.op is Op.RESHAPE:  # the same elements: the same pointer
                writer.pointer[st.node] = writer.pointer[st.node.args[0]]
                continue
            writer.pointer[st.node] = st.name
            body.append(f"{self.real} *const {st.name} = {plan.pointer[st.node]};")
        last = None
        for st in routine.statements:
            key = (st.line, st.backward)
            if key != last and st.line:
                if st.line == PARAM_GRADS_LINE:
                    body.append("/* gradients of the mean loss over the batch */")
                else:
                    kind = "grad of line" if st.backward else "line"
                    body.append(
                        f"/* {kind} {st.line}: {_c_comment(self.graph.source_line(st.line))} */"
                    )
                last = key
            if st.node.op is Op.RESHAPE:
                continue
            body += writer.statement(st.node)
        # outputs not written in place: copy (broadcasting) into the caller's arrays
        for o, cname in zip(outs, out_names):
            node = roots[o.key]
            if direct.get(node) == cname:
                continue
            space = _space(o)
            idx = [f"_i{k}" for k in range(len(dims(space)))]
            body += loops(
                idx,
                dims(space),
                [
                    f"{cname}[{index(idx, strides(dims(space)))}] = "
                    f"{writer.element(node, space, idx)};"
                ],
            )
        body += finish(writer, roots)
        params = [f"{'' if mutable else 'const '}{self.real} *{a.name}" for a in self.params]
        params += [f"const {self.real} *{a.name}" for a in self.inputs]
        params += [f"long {N}"] + list(extra)
        params += [f"{self.real} *{c}" for c in out_names]
        params += [f"{self.real} *_ws"]
        return CFunction(name, params, doc, body, plan.ws_size(), "double")

    def generate(self) -> tuple[str, str, dict]:
        """(C source, cffi cdef, wrapper context)."""
        prog, graph = self.program, self.graph
        loss_name = graph.loss_name
        batched = graph.has_batch
        outputs = [Arg(c_identifier(k), k, node.shape, batched) for k, node in prog.outputs.items()]
        grads = [Arg(a.name, a.key, a.shape, False) for a in self.params]
        loss_node = prog.loss

        def loss_value(writer: CWriter) -> list[str]:
            """Sets double _loss to the mean loss."""
            if loss_node.batched:
                elem = writer.element(loss_node, loss_node, ["_b"])
                return [
                    "double _loss = 0;",
                    f"for (long _b = 0; _b < {N}; _b++) _loss += {elem};",
                    f"_loss /= {N};",
                ]
            return [f"double _loss = {writer.element(loss_node, loss_node, [])};"]

        def mean_loss(writer: CWriter, roots) -> list[str]:
            return [*loss_value(writer), "return _loss;"]

        fwd = self.function(
            "forward",
            f"Every Output and the per-example {loss_name}.",
            dict(prog.outputs),
            outputs,
            True,
            lambda w, r: ["return 0;"],
        )
        loss = self.function(
            "loss",
            f"The mean of {loss_name} over the batch.",
            {loss_name: loss_node},
            [],
            True,
            mean_loss,
        )
        lag = self.function(
            "loss_and_grads",
            "The mean loss; writes the gradient of every Param.",
            {loss_name: loss_node, **prog.grads},
            grads,
            False,
            mean_loss,
        )

        def update(writer: CWriter, roots) -> list[str]:
            # the loss before the update (it may read a param); a step whose loss is not
            # finite changes nothing
            lines = [*loss_value(writer), "if (!isfinite(_loss)) return _loss;"]
            plan: Plan = writer.plan
            grad_of: dict[str, str] = {}
            for a in self.params:
                if a.key in folded:
                    continue
                g = roots[a.key]
                while g.op is Op.RESHAPE:
                    g = g.args[0]
                if g.op is Op.PARAM:  # a gradient that is a param: copy it before any update
                    size = max(1, math.prod(a.shape))
                    end = f"{N}*{plan.batched_size} + " if plan.batched_size else ""
                    name = f"_g_{a.name}"
                    lines += [
                        f"{self.real} *const {name} = _ws + {end}{plan.fixed_size};",
                        f"memcpy({name}, {writer.pointer[g]}, {size} * sizeof(real));",
                    ]
                    plan.fixed_size += size
                    grad_of[a.key] = name
            for a in self.params:
                if a.key in folded:
                    mm = writer.matmul(folded[a.key])
                    lines += writer.gemm(mm, a.name, alpha=f"-_lr / {N}", beta=1)
                    continue
                g = roots[a.key]
                idx = [f"_i{k}" for k in range(len(a.shape))]
                space = _space(a)
                if a.key in grad_of:
                    value = f"{grad_of[a.key]}[{index(idx, strides(list(a.shape)))}]"
                else:
                    value = writer.element(g, space, idx)
                target = f"{a.name}[{index(idx, strides(list(a.shape)))}]"
                lines += loops(idx, list(a.shape), [f"{target} -= _lr * {value};"])
            return [*lines, "return _loss;"]

        # A weight gradient (delta.T @ a) / n folds into its update: one GEMM with
        # alpha = -lr/n and beta = 1 writes the new weights, after every read of the old.
        folded = {k: g.args[0] for k, g in prog.grads.items() if _is_batch_mean_product(g)}
        step_roots = {loss_name: loss_node}
        for k, g in prog.grads.items():
            if k in folded:
                step_roots[f"_{k}_a"], step_roots[f"_{k}_b"] = folded[k].args
            else:
                step_roots[k] = g
        step = self.function(
            "train_step",
            "One step of gradient descent in place; the loss before it.",
            step_roots,
            [],
            False,
            update,
            direct_ok=False,
            extra=[f"{self.real} _lr"],
            mutable=True,
        )
        functions = [fwd, loss, lag, step]
        prefix = f"symbp_{c_identifier(graph.name)}_"
        sizes = dict(
            inputs=[
                {"key_text": _c_comment(a.key), "size": max(1, math.prod(a.shape))}
                for a in self.inputs
            ],
            params=[
                {"key_text": _c_comment(a.key), "size": max(1, math.prod(a.shape))}
                for a in self.params
            ],
        )
        sizes["input_size"] = sum(x["size"] for x in sizes["inputs"])
        sizes["param_size"] = sum(p["size"] for p in sizes["params"])
        source = render(
            "c_module.c.j2",
            name=doc_text(graph.name),
            version=__version__,
            **sizes,
            slots=len(self.params) + len(self.inputs),
            spec_file=doc_text(Path(graph.filename).name),
            dtype=self.dtype,
            real=self.real,
            blas=("s" if self.dtype == "float32" else "d"),
            prefix=prefix,
            functions=functions,
        )
        cdef = render(
            "c_cdef.h.j2",
            real=self.real,
            prefix=prefix,
            functions=functions,
            slots=len(self.params) + len(self.inputs),
        )
        context = dict(outputs=outputs, params=self.params, inputs=self.inputs, prefix=prefix)
        return source, cdef, context


def _is_batch_mean_product(g: Node) -> bool:
    """Is ``g`` a matrix product summed over the batch, divided by n (a weight gradient)?"""
    if not (
        g.op is Op.EW
        and g.attr is X[0] / X[1]
        and g.args[1].op is Op.BATCH_SIZE
        and g.args[0].op is Op.DOT
        and g.args[0].attr.sum_batch
        and len(g.args[0].attr.out) == 2
    ):
        return False
    return matmul_form(*runtime_subscripts(g.args[0])) is not None


def _space(a: Arg) -> Node:
    """A node standing for the index space of a caller's array."""
    return (
        Node(Op.PARAM, (), "__space__", a.shape, a.batched)
        if not a.batched
        else Node(Op.INPUT, (), "__space__", a.shape, True)
    )


def _c_comment(text: str) -> str:
    return doc_text(text)


@gc_paused
def package_files(program: Program, dtype: str) -> tuple[dict[str, str], str, str, str]:
    """(files of the package folder, cffi declarations, extension name, C file name)."""
    import re

    from ..numpy.module import HELPERS, _dict_text, _initializers, _shape_text, _title

    graph = program.graph
    gen = Generator(program, dtype)
    source, cdef, ctx = gen.generate()
    ident = c_identifier(graph.name)
    ext = f"_{ident}" if ident.isidentifier() else "_network"
    c_file = f"{ext[1:] or 'network'}.c"
    inits, uses_rng = _initializers(graph)
    helpers = [
        code
        for name, code in HELPERS.items()
        if re.search(rf"\b{name}\(", "\n".join(code for _, code in inits))
    ]
    batched = graph.has_batch
    outputs = [
        {"key": a.key, "shape_expr": _shape_text((["n"] if batched else []) + [*a.shape])}
        for a in ctx["outputs"]
    ]
    wrapper_params = [{"key": a.key, "shape_text": _shape_text(a.shape)} for a in gen.params]
    wrapper_inputs = [
        {"key": a.key, "shape_text": _shape_text(["n", *a.shape])} for a in gen.inputs
    ]
    wrapper = render(
        "c_wrapper.py.j2",
        name=doc_text(graph.name),
        title=_title(graph),
        version=__version__,
        spec_file=doc_text(Path(graph.filename).name),
        dtype=dtype,
        ext=ext,
        real=gen.real,
        prefix=ctx["prefix"],
        loss_name=graph.loss_name,
        outputs=outputs,
        params_dict=_dict_text({k: d.node.shape for k, d in graph.params.items()}),
        inputs_dict=_dict_text({k: d.node.shape for k, d in graph.inputs.items()}),
        outputs_tuple=repr(tuple(program.outputs)),
        helpers=helpers,
        inits=inits,
        uses_rng=uses_rng,
        params=wrapper_params,
        inputs=wrapper_inputs,
        slots=len(wrapper_params) + len(wrapper_inputs),
    )
    return {"__init__.py": wrapper, c_file: source}, cdef, ext, c_file
