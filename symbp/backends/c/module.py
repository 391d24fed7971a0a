"""Program -> one C99 translation unit and its Python wrapper, through jinja2 templates.

The forward pass is one static function, ``forward_pass``, which leaves every forward value
in the workspace; ``forward``, ``loss``, ``loss_and_grads`` and ``train_step`` call it and go
on from there. Buffers live in one workspace laid out by live range (``layout.Workspace``):
the forward pass's first, then each function's own, which may take over the buffers of
forward values it no longer needs. Statements are written by ``emit``; names and
expressions are made C by ``names``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...codegen import runtime
from ...codegen.matmul import matmul_form, merged
from ...codegen.render import render
from ...codegen.schedule import Routine, schedule
from ...codegen.text import doc_text, shape_text
from ...ir.expr import X
from ...ir.graph import Graph
from ...ir.node import Node, Op, Shape, gc_paused
from ...ir.ops import is_ids, runtime_subscripts
from ...passes.pipeline import PARAM_GRADS_LINE, Program
from .dropout import DROPOUT_HELPERS
from .emit import SMALL_GEMM, CWriter, inplace_ok
from .layout import N, Workspace, index, loops, pointers, size_text, strides
from .names import C_RESERVED, CNamer, c_identifier, helpers


@dataclass
class Arg:
    name: str  # C parameter name
    key: str  # the user's name (dict key)
    shape: Shape
    batched: bool
    integer: bool = False  # an Input of integer ids: int64_t, not real

    @property
    def ctype(self) -> str:
        return "int64_t" if self.integer else "real"


@dataclass
class CFunction:
    name: str
    params: list[str]  # C parameter declarations
    doc: str
    body: list[str] = field(default_factory=list)
    static: bool = False  # file-local, with no return value


@dataclass
class _Part:
    """The statements of one function and the workspace once they are placed."""

    routine: Routine
    ws: Workspace


def _can_inline(node: Node, consumer: Node) -> bool:
    """C inlines constants, and elementwise values into the reductions that consume them;
    every other value gets a buffer."""
    if node.op is Op.CONST:
        return True
    if node.op is Op.BROADCAST and node.args[0].op is Op.CONST:  # a value, not a buffer
        return consumer.op not in (Op.DOT, Op.TRANSPOSE, Op.RESHAPE)
    return node.op is Op.EW and consumer.op in (Op.SUM, Op.BATCH_SUM, Op.MAX, Op.MIN)


def _reads(nodes, placed: set[Node]) -> set[Node]:
    """The placed nodes that computing ``nodes`` reads (through the values inlined)."""
    out: set[Node] = set()
    stack = [a for node in nodes for a in node.args]
    while stack:
        node = stack.pop()
        if node in placed:
            out.add(node)
        else:
            stack.extend(node.args)
    return out


class Generator:
    """Builds the C functions of one program."""

    def __init__(self, program: Program, dtype: str) -> None:
        self.program = program
        self.graph: Graph = program.graph
        self.dtype = dtype
        self.real = "float" if dtype == "float32" else "double"
        namer = CNamer(C_RESERVED)
        graph = self.graph
        self.params = [Arg(namer(k), k, d.node.shape, False) for k, d in graph.params.items()]
        self.inputs = [
            Arg(namer(k), k, d.node.shape, True, is_ids(d.node)) for k, d in graph.inputs.items()
        ]
        # the Consts are read-only arguments after the Params (their names are taken last)
        self.consts = [Arg(namer(k), k, d.node.shape, False) for k, d in graph.consts.items()]
        self.leaves = {graph.params[a.key].node: a.name for a in self.params}
        self.leaves.update({graph.inputs[a.key].node: a.name for a in self.inputs})
        self.leaves.update({graph.consts[a.key].node: a.name for a in self.consts})
        self.namer = namer
        self.writers: list[CWriter] = []
        # A weight gradient (delta.T @ a) / n folds into its update in train_step: one GEMM
        # with alpha = -lr/n and beta = 1 writes the new weights, after every read of the old.
        folded = {k: _batch_mean_product(g) for k, g in program.grads.items()}
        self.folded = {k: dot for k, dot in folded.items() if dot is not None}

    def functions(self) -> tuple[list[CFunction], str]:
        """The C functions, and the workspace size they need (in terms of ``_n``)."""
        prog = self.program
        # the forward pass names the adjoints it computes (da2 = a2 - y): the backward reads
        # them under those names
        fwd = schedule(prog, dict(prog.outputs), self.namer, self.leaves, 1, can_inline=_can_inline)
        known = {**self.leaves, **{st.node: st.name for st in fwd.statements}}
        if prog.random:  # training computes its own forward pass, with the dropout masks
            known = dict(self.leaves)
        lag_roots = {self.graph.loss_name: prog.training_loss, **prog.grads}
        step_roots = {self.graph.loss_name: prog.training_loss}
        for k, g in prog.grads.items():
            if k in self.folded:
                step_roots[f"_{k}_a"], step_roots[f"_{k}_b"] = self.folded[k].args
            else:
                step_roots[k] = g
        lag = self.backward(lag_roots, known)
        step = self.backward(step_roots, known)
        forward_values = set(fwd.variables)
        later = {prog.loss, *prog.outputs.values()}
        for routine in (lag, step):
            later |= _reads(routine.variables, forward_values)
            later |= {n for n in routine.returns.values() if n in forward_values}
        ws = Workspace()
        ws.place(fwd.variables, later, inplace_ok=inplace_ok)
        parts = {
            "forward": _Part(fwd, ws),
            "lag": self.continued(ws, lag, self.direct(lag)),
            "step": self.continued(ws, step, {}),
        }
        copies = self.param_copies(step_roots, parts["step"].ws)
        fixed = max(p.ws.top[False] for p in parts.values())
        batched = max(p.ws.top[True] for p in parts.values())
        pointer = {k: pointers(p.ws, fixed) for k, p in parts.items()}
        functions = [
            self.forward_pass(fwd, pointer["forward"]),
            self.forward(fwd, pointer["forward"]),
            self.loss(fwd, pointer["forward"]),
            self.loss_and_grads(parts["lag"].routine, pointer["lag"], fwd),
            self.train_step(parts["step"].routine, pointer["step"], fwd, copies),
        ]
        return functions, size_text(fixed, batched)

    def used(self) -> set[str]:
        """The functions whose C helpers the code calls."""
        return set().union(*(w.printer.used for w in self.writers))

    def backward(self, roots: dict[str, Node], known: dict[Node, str]) -> Routine:
        """The routine computing ``roots`` from the forward values (``known``)."""
        namer = CNamer(set(self.namer.taken) | set(known.values()))
        return schedule(self.program, roots, namer, known, 1, can_inline=_can_inline)

    def direct(self, routine: Routine) -> dict[Node, str]:
        """The gradients loss_and_grads computes straight into the caller's arrays."""
        direct: dict[Node, str] = {}
        statements = set(routine.variables)
        for a in self.params:
            g = self.program.grads[a.key]
            if g in statements and g not in direct and g.op is not Op.RESHAPE:
                if g.shape == a.shape and not g.batched:
                    direct[g] = f"_out_{a.name}"
        return direct

    @staticmethod
    def continued(ws: Workspace, routine: Routine, direct: dict[Node, str]) -> _Part:
        own = ws.copy()
        own.place(routine.variables, set(routine.returns.values()), direct, inplace_ok)
        return _Part(routine, own)

    def param_copies(self, roots: dict[str, Node], ws: Workspace) -> dict[str, tuple]:
        """Gradients that are Params themselves (L = sum(W ** 2) / 2): train_step copies them
        before any update, into buffers of their own."""
        copies = {}
        for a in self.params:
            g = roots.get(a.key)
            while g is not None and g.op is Op.RESHAPE:
                g = g.args[0]
            if g is not None and g.op is Op.PARAM:
                copies[a.key] = (g, ws.reserve(max(1, math.prod(a.shape))))
        return copies

    # ------------------------------------------------------------------ the functions

    def signature(
        self, outs: list[str] = (), extra: list[str] = (), mutable=False, train=False
    ) -> list[str]:
        """A function's parameters; with dropout, training takes the key of its masks."""
        real = self.real
        if train and self.program.random:
            extra = [*extra, "uint64_t _key"]
        params = [f"{'' if mutable else 'const '}{real} *{a.name}" for a in self.params]
        params += [f"const {real} *{a.name}" for a in self.consts]
        params += [f"const {'int64_t' if a.integer else real} *{a.name}" for a in self.inputs]
        return [*params, f"long {N}", *extra, *(f"{real} *{o}" for o in outs), f"{real} *_ws"]

    def call_forward_pass(self) -> str:
        args = [a.name for a in self.params + self.consts + self.inputs]
        return f"forward_pass({', '.join([*args, N, '_ws'])});"

    def forward_pass(self, fwd: Routine, pointer: dict[Node, str]) -> CFunction:
        doc = "Every forward value, left in the workspace for the functions below."
        f = CFunction("forward_pass", self.signature(), doc, static=True)
        writer = self.writer(f, fwd.variables, fwd.names, pointer, fwd.variables)
        self.statements(f, writer, fwd)
        return f

    def forward(self, fwd: Routine, pointer: dict[Node, str]) -> CFunction:
        outputs = self.program.outputs
        outs = [
            Arg(f"_out_{c_identifier(k)}", k, n.shape, self.graph.has_batch)
            for k, n in outputs.items()
        ]
        doc = f"Every Output and the per-example {self.graph.loss_name}."
        f = CFunction("forward", self.signature([o.name for o in outs]), doc)
        writer = self.writer(f, outputs.values(), fwd.names, pointer)
        f.body.append(self.call_forward_pass())
        for o in outs:
            f.body += self.copy_out(writer, outputs[o.key], o)
        f.body.append("return 0;")
        return f

    def loss(self, fwd: Routine, pointer: dict[Node, str]) -> CFunction:
        f = CFunction(
            "loss", self.signature(), f"The mean of {self.graph.loss_name} over the batch."
        )
        writer = self.writer(f, [self.program.loss], fwd.names, pointer)
        f.body += [self.call_forward_pass(), *self.mean_loss(writer), "return _loss;"]
        return f

    def loss_and_grads(self, lag: Routine, pointer, fwd: Routine) -> CFunction:
        outs = [f"_out_{a.name}" for a in self.params]
        doc = "The mean loss; writes the gradient of every Param."
        f = CFunction("loss_and_grads", self.signature(outs, train=True), doc)
        grads = self.program.grads
        names = {**fwd.names, **lag.names}
        loss = self.program.training_loss
        used = [*lag.variables, *grads.values(), loss]
        writer = self.writer(f, used, names, pointer, lag.variables)
        if not self.program.random:
            f.body.append(self.call_forward_pass())
        self.statements(f, writer, lag)
        for a, out in zip(self.params, outs):
            if pointer.get(grads[a.key]) != out:  # not written in place: copy it there
                f.body += self.copy_out(writer, grads[a.key], Arg(out, a.key, a.shape, False))
        f.body += [*self.mean_loss(writer, loss), "return _loss;"]
        return f

    def train_step(self, step: Routine, pointer, fwd: Routine, copies: dict) -> CFunction:
        doc = "One step of gradient descent in place; the loss before it."
        extra = [f"{self.real} _lr"]
        f = CFunction("train_step", self.signature(extra=extra, mutable=True, train=True), doc)
        names = {**fwd.names, **step.names}
        used = [*step.variables, *step.returns.values()]
        writer = self.writer(f, used, names, pointer, step.variables)
        if not self.program.random:
            f.body.append(self.call_forward_pass())
        self.statements(f, writer, step)
        # the loss before the update (it may read a param); a step whose loss is not finite
        # changes nothing
        loss = self.program.training_loss
        f.body += [*self.mean_loss(writer, loss), "if (!isfinite(_loss)) return _loss;"]
        f.body += self.updates(writer, step.returns, copies)
        f.body.append("return _loss;")
        return f

    def updates(self, writer: CWriter, roots: dict[str, Node], copies: dict) -> list[str]:
        lines = []
        for key, (g, (offset, _)) in copies.items():
            name = f"_g_{key}"
            size = max(1, math.prod(g.shape))
            lines += [
                f"{self.real} *const {name} = _ws + {offset};",
                f"memcpy({name}, {writer.pointer[g]}, {size} * sizeof(real));",
            ]
            writer.pointer[g] = name
        for a in self.params:
            if a.key in self.folded:
                mm = writer.matmul(self.folded[a.key])
                lines.append(writer.gemm(mm, a.name, alpha=f"-_lr / {N}", beta=1))
                continue
            idx = [f"_i{k}" for k in range(len(a.shape))]
            value = writer.element(roots[a.key], _space(a), idx)
            target = f"{a.name}[{index(idx, strides(list(a.shape)))}]"
            lines += loops(idx, list(a.shape), [f"{target} -= _lr * {value};"])
        return lines

    # ------------------------------------------------------------------ their parts

    def writer(self, f: CFunction, nodes, names, pointer, computed=()) -> CWriter:
        """A writer for function ``f``, which computes the nodes ``computed`` and refers to
        ``nodes``: it declares a named pointer to each buffer they read, in the order the
        buffers were placed (the forward values first)."""
        nodes = list(nodes)
        placed = {n: i for i, n in enumerate(pointer)}
        inlined = [n for n in nodes if n not in placed]
        wanted = {n for n in nodes if n in placed} | _reads([*computed, *inlined], set(placed))
        writer = CWriter(self.dtype, dict(self.leaves))
        self.writers.append(writer)
        first: dict[str, str] = {}  # pointer text -> the first name declared for it
        for node in sorted(wanted, key=placed.__getitem__):
            if node in self.leaves:
                continue
            if node.op is Op.RESHAPE and node.args[0] in writer.pointer:  # the same elements
                writer.pointer[node] = writer.pointer[node.args[0]]
                continue
            name, where = names[node], pointer[node]
            writer.pointer[node] = name
            note = f"  /* reuses {first[where]}'s buffer */" if where in first else ""
            first.setdefault(where, name)
            f.body.append(f"{self.real} *const {name} = {where};{note}")
        return writer

    def statements(self, f: CFunction, writer: CWriter, routine: Routine) -> None:
        """The routine's statements, a comment citing the spec line before each run."""
        last = None
        for st in routine.statements:
            lines = writer.statement(st.node)
            if (st.line, st.backward) != last and st.line and lines:  # (a view has none)
                last = st.line, st.backward
                f.body.append(self.heading(st.line, st.backward))
            f.body += lines

    def heading(self, line: int, backward: bool) -> str:
        if line == PARAM_GRADS_LINE:
            return "/* gradients of the mean loss over the batch */"
        kind = "grad of line" if backward else "line"
        return f"/* {kind} {line}: {doc_text(self.graph.source_line(line))} */"

    def mean_loss(self, writer: CWriter, loss: Node | None = None) -> list[str]:
        """Sets double _loss to the mean of ``loss`` (default: the evaluation loss)."""
        loss = self.program.loss if loss is None else loss
        if loss.batched:
            elem = writer.element(loss, loss, ["_b"])
            return [
                "double _loss = 0;",
                f"for (long _b = 0; _b < {N}; _b++) _loss += {elem};",
                f"_loss /= {N};",
            ]
        return [f"double _loss = {writer.element(loss, loss, [])};"]

    def copy_out(self, writer: CWriter, node: Node, out: Arg) -> list[str]:
        """Copy (broadcasting) ``node`` into the caller's array ``out``."""
        space = _space(out)
        ds = ([N] if out.batched else []) + list(out.shape)
        idx = [f"_i{k}" for k in range(len(ds))]
        value = writer.element(node, space, idx)
        return loops(idx, ds, [f"{out.name}[{index(idx, strides(ds))}] = {value};"])


def _batch_mean_product(g: Node) -> Node | None:
    """The matrix product summed over the batch whose mean ``g`` is (a weight gradient), if
    it is one. A reshape on either side views the same elements in the same order; the
    product is a matrix once the axes side by side are joined, as the writer's GEMM joins
    them ('bpo,bpk->ok' is 'bo,bk->ok', the batch and p one contracted axis)."""
    g = _unviewed(g)
    if not (g.op is Op.EW and g.attr is X[0] / X[1] and g.args[1].op is Op.BATCH_SIZE):
        return None
    dot = _unviewed(g.args[0])
    if dot.op is not Op.DOT or not dot.attr.sum_batch:
        return None
    sa, sb, so, _ = merged(*runtime_subscripts(dot))
    return dot if len(so) == 2 and matmul_form(sa, sb, so) is not None else None


def _unviewed(node: Node) -> Node:
    """The node whose elements a chain of reshapes views."""
    while node.op is Op.RESHAPE:
        node = node.args[0]
    return node


def _space(a: Arg) -> Node:
    """A node standing for the index space of a caller's array."""
    return Node(Op.INPUT if a.batched else Op.PARAM, (), "__space__", a.shape, a.batched)


@gc_paused
def package_files(program: Program, dtype: str) -> tuple[dict[str, str], str, str, str]:
    """(files of the package folder, cffi declarations, extension name, C file name)."""
    graph = program.graph
    gen = Generator(program, dtype)
    functions, ws = gen.functions()
    ident = c_identifier(graph.name)
    ext = f"_{ident}" if ident.isidentifier() else "_network"
    c_file = f"{ext[1:] or 'network'}.c"
    prefix = f"symbp_{ident}_"
    sizes = _slot_sizes(gen, dtype)
    common = runtime.context(program, dtype)
    c_context = dict(
        name=common["name"],
        version=common["version"],
        spec_file=common["spec_file"],
        dtype=dtype,
        real=gen.real,
        blas="s" if dtype == "float32" else "d",
        prefix=prefix,
        functions=functions,
        helpers=helpers(gen.used(), dtype) + ([DROPOUT_HELPERS] if program.random else []),
        random=program.random,
        gemm=any(w.gemm_helpers for w in gen.writers),
        small_gemm=SMALL_GEMM,
        workspace=ws,
        slots=len(gen.params) + len(gen.consts) + len(gen.inputs),
        input_size=sum(x["size"] * x["words"] for x in sizes["inputs"]),
        slot_types=["real"] * (len(gen.params) + len(gen.consts)) + [a.ctype for a in gen.inputs],
        int_inputs=any(a.integer for a in gen.inputs),
        param_size=sum(p["size"] for p in sizes["params"]),
        **sizes,
    )
    source = render("c_module.c.j2", **c_context)
    cdef = render("c_cdef.h.j2", **c_context)
    wrapper = _wrapper(program, gen, common, ext, prefix)
    return {"__init__.py": wrapper, c_file: source}, cdef, ext, c_file


def _slot_sizes(gen: Generator, dtype: str) -> dict[str, list[dict]]:
    """The templates' rows for the inputs, params and consts: each one's size in entries
    and, for an input, the reals an entry takes (an int64 id takes two float32 reals)."""
    words = 1 if dtype == "float64" else 2  # the reals an int64_t takes
    return {
        "inputs": [
            {
                "index": i,
                "key_text": doc_text(a.key),
                "size": max(1, math.prod(a.shape)),
                "integer": a.integer,
                "words": words if a.integer else 1,
            }
            for i, a in enumerate(gen.inputs)
        ],
        "params": [
            {"key_text": doc_text(a.key), "size": max(1, math.prod(a.shape))} for a in gen.params
        ],
        "consts": [
            {"key_text": doc_text(a.key), "size": max(1, math.prod(a.shape))} for a in gen.consts
        ],
    }


def _wrapper(program: Program, gen: Generator, common: dict, ext: str, prefix: str) -> str:
    """The package's Python wrapper (its ``__init__.py``), which calls the extension."""
    batch = ["n"] if program.graph.has_batch else []
    return render(
        "c_wrapper.py.j2",
        **common,
        ext=ext,
        real=gen.real,
        prefix=prefix,
        outputs=[
            {"key": k, "shape_expr": shape_text([*batch, *n.shape])}
            for k, n in program.outputs.items()
        ],
        params=[{"key": a.key, "shape_text": shape_text(a.shape)} for a in gen.params],
        consts=[{"key": a.key, "shape_text": shape_text(a.shape)} for a in gen.consts],
        inputs=[
            {
                "key": a.key,
                "shape_text": shape_text(["n", *a.shape]),
                "integer": a.integer,
                "count": common["int_inputs"].get(a.key),
            }
            for a in gen.inputs
        ],
        slots=len(gen.params) + len(gen.consts) + len(gen.inputs),
    )
