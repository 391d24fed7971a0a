"""Program -> a standalone, readable NumPy module (SPEC.md §3), through a jinja2 template.

The template owns the file's structure: the network's functions first (forward, loss,
loss_and_grads, train_step, init_params), then, after a banner, the runtime every module
shares (the helpers the network calls, argument checks, the optimizers). This module decides
what goes in it: the routines scheduled and printed, the initializers, the helpers. The output
is deterministic: the same spec and options give the same bytes.
"""

from __future__ import annotations

import linecache
import sys
import types
from dataclasses import dataclass

from ...codegen import runtime
from ...codegen.render import render
from ...codegen.schedule import PYTHON_RESERVED, Namer, Routine, schedule
from ...codegen.text import comment_text, shape_text
from ...ir import randomness
from ...ir.node import Node, Op, gc_paused
from ...passes.pipeline import PARAM_GRADS_LINE, Program
from .printer import SPELLINGS, NumpyPrinter, helpers

# helpers of the runtime that printed code may call
RUNTIME_HELPERS = {
    "_logsumexp": '''def _logsumexp(x, axis):
    """log(sum(exp(x), axis)), shifted by the maximum so that it never overflows."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))''',
    "_full": '''def _full(x, shape):
    """A fresh array of ``shape`` holding ``x`` broadcast."""
    return np.array(np.broadcast_to(x, shape), dtype=DTYPE)''',
    # dropout: symbp.ir.randomness's generator, in uint64 arithmetic that wraps
    "_dropout": f'''def _dropout(x, key, site, p, shape):
    """Inverted dropout: x (broadcast to ``shape``) where the mask of dropout ``site``
    under ``key`` keeps it, times 1 / (1 - p), and 0 elsewhere. Element i is kept when
    splitmix64's output i + 1, from a stream of (key, site), has its top 53 bits at least
    p * 2**53: the same bits as the C backend draws."""
    z = (key + {randomness.GOLDEN:#x} * (site + 1)) & {randomness.MASK64:#x}
    z = ((z ^ (z >> 30)) * {randomness.MIX1:#x}) & {randomness.MASK64:#x}
    z = ((z ^ (z >> 27)) * {randomness.MIX2:#x}) & {randomness.MASK64:#x}
    stream = np.uint64(z ^ (z >> 31))
    z = np.arange(1, int(np.prod(shape)) + 1, dtype=np.uint64)
    z *= np.uint64({randomness.GOLDEN:#x})  # uint64 arithmetic wraps, as in C
    z += stream
    z ^= z >> np.uint64(30)
    z *= np.uint64({randomness.MIX1:#x})
    z ^= z >> np.uint64(27)
    z *= np.uint64({randomness.MIX2:#x})
    z ^= z >> np.uint64(31)
    keep = z >= np.uint64(np.ceil(p * 2.0**53)) << np.uint64(11)  # (z >> 11) >= ceil(...)
    kept = np.broadcast_to(np.asarray(x, dtype=DTYPE), shape) * np.dtype(DTYPE).type(1 / (1 - p))
    return np.where(keep.reshape(shape), kept, 0)''',
    # indexing
    "_unslice": '''def _unslice(g, shape, index):
    """Zeros of ``shape`` with ``g`` written at ``index``: the adjoint of x[index]."""
    out = np.zeros(shape, dtype=DTYPE)
    out[index] = g
    return out''',
    # indexing (gather)
    "_gather": '''def _gather(table, ids):
    """table[ids] for every example: a table of the batch indexed by that example's ids."""
    n = ids.shape[0]
    return table[np.arange(n).reshape((n,) + (1,) * (ids.ndim - 1)), ids]''',
    "_scatter_add": '''def _scatter_add(g, ids, shape, summed):
    """The adjoint of table[ids]: zeros of the table's ``shape`` with g's rows added at the
    ids (repeated ids add up, in order), one table summed over the examples, or one table
    per example. Element (row, j) of the tables is bin row * width + j of one bincount."""
    n, rows = ids.shape[0], shape[0]
    width = int(np.prod(shape[1:]))
    at = ids.reshape(n, -1)
    if not summed:  # example b's rows are b * rows + id
        at = at + rows * np.arange(n).reshape(n, 1)
    bins = (at.reshape(-1, 1) * width + np.arange(width)).reshape(-1)
    g = np.broadcast_to(g, ids.shape + shape[1:]).reshape(-1)
    size = rows * width * (1 if summed else n)
    out = np.bincount(bins, weights=g, minlength=size).astype(DTYPE, copy=False)
    return out.reshape(shape if summed else (n,) + shape)''',
    # convolution
    "_patches": '''def _patches(x, kernel, stride, padding, dilation):
    """Every window of the images x (..., C, H, W), zeros beyond the edges, as an array
    (..., Ho, Wo, C, kh, kw) (im2col): a strided view of the padded images."""
    (ph, pw), (dh, dw) = padding, dilation
    x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)])
    span = (dh * (kernel[0] - 1) + 1, dw * (kernel[1] - 1) + 1)
    views = np.lib.stride_tricks.sliding_window_view(x, span, axis=(-2, -1))
    views = views[..., :: stride[0], :: stride[1], ::dh, ::dw]  # (..., C, Ho, Wo, kh, kw)
    return np.moveaxis(views, -5, -3)''',
    "_fold": '''def _fold(g, shape, kernel, stride, padding, dilation):
    """The adjoint of _patches (col2im): zeros of the images' shape (..., C, H, W) with each
    window's values of g (..., Ho, Wo, C, kh, kw) added where they came from, a strided
    slice of the padded images per tap of the kernel."""
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    ho, wo = g.shape[-5:-3]
    out = np.zeros(shape[:-2] + (shape[-2] + 2 * ph, shape[-1] + 2 * pw), dtype=DTYPE)
    g = np.moveaxis(g, -3, -5)  # (..., C, Ho, Wo, kh, kw)
    for i in range(kernel[0]):
        rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
        for j in range(kernel[1]):
            out[..., rows, j * dw : j * dw + sw * (wo - 1) + 1 : sw] += g[..., i, j]
    return out[..., ph : ph + shape[-2], pw : pw + shape[-1]]''',
}

# the module's own names, which a spec's names must not shadow inside its functions
MODULE_NAMES = {
    "np",
    "PARAMS",
    "INPUTS",
    "CONSTS",
    "_consts",
    "INT_INPUTS",
    "_ids",
    "OUTPUTS",
    "DTYPE",
    "init_params",
    "forward",
    "loss",
    "loss_and_grads",
    "train_step",
    "train_epoch",
    "key",
    "_key",
    "RANDOM",
    "params",
    "inputs",
    "lr",
    "grads",
    "_array",
    "_params",
    "_inputs",
    *RUNTIME_HELPERS,
    *runtime.HELPERS,
    *(s.name for s in SPELLINGS.values()),
}

INDENT = "\n    "


@dataclass
class Function:
    """One generated function; ``body`` is its code after the docstring, each line
    starting with a newline and the indent."""

    name: str
    signature: str
    annotation: str
    doc: str
    body: str


class _Writer:
    """Writes the functions of one program, remembering which helpers they call."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.graph = program.graph
        self.used: set[str] = set()  # helpers the code calls
        self.done: dict[tuple, tuple] = {}  # routines written, by their roots
        self.headings: dict[tuple[int, bool], str] = {}

    def function(
        self, name: str, roots: dict[str, Node], doc: str, ann: str, finish, forward_only=True
    ) -> Function:
        """The function computing ``roots``; ``finish(routine, printer, batch)`` gives the
        lines that return its result."""
        key = (tuple(roots.values()), forward_only)
        if key not in self.done:  # (the same statements for another function: written once)
            prologue, routine, printer, batch = self.routine(roots, forward_only)
            self.done[key] = prologue, routine, printer, batch, self.statements(routine, printer)
        prologue, routine, printer, batch, lines = self.done[key]
        epilogue = finish(routine, printer, batch)
        self.used |= printer.exprs.used | printer.helpers
        body = "".join(
            [*(INDENT + line for line in prologue), *lines, *(INDENT + line for line in epilogue)]
        )
        return Function(name, "params, /, **inputs", ann, doc, body)

    def routine(self, roots: dict[str, Node], forward_only: bool):
        graph = self.graph
        namer = Namer(PYTHON_RESERVED | MODULE_NAMES)
        declared = (*graph.params.items(), *graph.consts.items(), *graph.inputs.items())
        leaves = {d.node: namer(k) for k, d in declared}
        pnames = [leaves[d.node] for d in graph.params.values()]
        inames = [leaves[d.node] for d in graph.inputs.values()]
        prologue = [f"{_target(pnames)} = _params(params)" if pnames else "_params(params)"]
        if graph.consts:
            cnames = [leaves[d.node] for d in graph.consts.values()]
            prologue.append(f"{_target(cnames)} = _consts(params)")
        if graph.has_batch:
            batch = namer("n")
            leaves[Node(Op.BATCH_SIZE, (), None, (), False)] = batch
            target = _target(inames) if len(inames) == 1 else f"({_target(inames)})"
            prologue.append(f"{target}, {batch} = _inputs(inputs)")
        else:
            batch = "n"
            prologue.append("_inputs(inputs)")
        routine = schedule(self.program, roots, namer, leaves, forward_only=forward_only)
        return prologue, routine, NumpyPrinter(routine.names, batch), batch

    def statements(self, routine: Routine, printer: NumpyPrinter) -> list[str]:
        """The routine's statements, with a comment before each run of statements from one
        spec line."""
        lines: list[str] = []
        last = None
        for st in routine.statements:
            if (st.line, st.backward) != last:
                last = st.line, st.backward
                if last not in self.headings:
                    self.headings[last] = self.heading(*last)
                heading = self.headings[last]
                if heading:
                    lines.append(INDENT + heading)
            lines.append(f"{INDENT}{st.name} = {printer(st.node)}")
        return lines

    def heading(self, line: int, backward: bool) -> str:
        """The comment heading the statements of spec ``line`` ("" for none)."""
        if line == PARAM_GRADS_LINE:
            if not self.graph.has_batch:
                return "# gradients of the loss"
            return "# gradients of the mean loss over the batch"
        if not line:
            return ""
        source = comment_text(self.graph.source_line(line))
        return f"# {'grad of line' if backward else 'line'} {line}: {source}"

    def value(self, routine: Routine, printer: NumpyPrinter, node: Node, shape, batched) -> str:
        """A returned value as a fresh array of the declared shape."""
        text = routine.names.get(node) or printer(node)
        if node.op in _FILLED or node.shape != shape or node.batched != batched or _views(node):
            self.used.add("_full")
            dims = ((printer.n,) if batched else ()) + shape
            return f"_full({text}, {shape_text(dims)})"
        if not shape and not batched:  # NumPy arithmetic on 0-d arrays gives scalars
            return f"np.asarray({text}, dtype=DTYPE)"
        return text


_FILLED = frozenset((Op.PARAM, Op.INPUT, Op.CONST, Op.BROADCAST, Op.FROZEN))  # returned filled


def _views(node: Node) -> bool:
    """Is ``node`` printed as a view of a caller's array (a slice, a transpose, a reshape of
    a Param or an Input)? It is returned as a copy, as the leaves themselves are: train_step
    updates the Params in place."""
    while node.op in (Op.SLICE, Op.TRANSPOSE, Op.RESHAPE):
        node = node.args[0]
    return node.op in (Op.PARAM, Op.INPUT)


def _target(names: list[str]) -> str:
    """An assignment target unpacking ``names``."""
    return f"({names[0]},)" if len(names) == 1 else ", ".join(names)


def _mean(text: str, node: Node) -> str:
    return f"float(np.mean({text}))" if node.batched else f"float({text})"


def _functions(program: Program, w: _Writer) -> list[Function]:
    graph = program.graph
    loss = program.loss
    training = program.training_loss  # (with dropout, the loss with its masks)

    def outputs(routine, printer, batch):
        items = [
            f"    {name!r}: {w.value(routine, printer, node, node.shape, graph.has_batch)},"
            for name, node in program.outputs.items()
        ]
        return ["return {", *items, "}"]

    def mean_loss(routine, printer, batch):
        return [f"return {_mean(routine.names.get(loss) or printer(loss), loss)}"]

    def loss_and_grads(routine, printer, batch):
        items = [
            f"    {k!r}: {w.value(routine, printer, g, graph.params[k].node.shape, False)},"
            for k, g in program.grads.items()
        ]
        value = _mean(routine.names.get(training) or printer(training), training)
        return ["grads = {", *items, "}", f"return {value}, grads"]

    grad_roots = {graph.loss_name: training, **{f"d{k}": v for k, v in program.grads.items()}}
    functions = [
        w.function(
            "forward",
            dict(program.outputs),
            f"Every Output and the per-example {graph.loss_name}, batch on axis 0.",
            " -> dict",
            outputs,
        ),
        w.function(
            "loss",
            {graph.loss_name: loss},
            f"The mean of {graph.loss_name} over the batch.",
            " -> float",
            mean_loss,
        ),
        w.function(
            "loss_and_grads",
            grad_roots,
            "The mean loss and its gradient with respect to every Param.",
            " -> tuple",
            loss_and_grads,
            forward_only=False,
        ),
    ]
    if program.random:  # training draws its masks from the key it is given
        lag = functions[-1]
        lag.signature = "params, key, /, **inputs"
        lag.doc += "\n    Dropout masks are drawn from ``key``, an integer in [0, 2**64)."
        lag.body = f"{INDENT}key = _key(key){lag.body}"
    return functions


@gc_paused
def generate(program: Program, dtype: str = "float64") -> str:
    """The NumPy module for ``program``, as source text."""
    w = _Writer(program)
    functions = _functions(program, w)
    used = helpers(w.used) + [code for name, code in RUNTIME_HELPERS.items() if name in w.used]
    return render(
        "numpy_module.py.j2", **runtime.context(program, dtype), functions=functions, helpers=used
    )


def load(source: str, name: str) -> types.ModuleType:
    """Import generated source as a module object (it is symbp's own output, never user text)."""
    filename = f"<symbp:{name}>"
    module = types.ModuleType(name)
    module.__file__ = filename
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102
    sys.modules.pop(name, None)
    return module
