"""Program -> a standalone, readable NumPy module (SPEC.md §3), through a jinja2 template.

The template owns the file's structure; this module decides what goes in it: the routines
(forward, loss, loss_and_grads) scheduled and printed, the initializers, the helpers the
code uses. The output is deterministic: the same spec and options give the same bytes.
"""

from __future__ import annotations

import math
import re
import sys
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ... import __version__
from ...codegen.printing import NumpyPrinter
from ...codegen.render import render
from ...codegen.schedule import PYTHON_RESERVED, Namer, Routine, comment_text, doc_text, schedule
from ...ir.graph import Graph
from ...ir.node import Node, Op, Shape, gc_paused
from ...passes.pipeline import PARAM_GRADS_LINE, Program

MODULE_NAMES = {
    "np",
    "PARAMS",
    "INPUTS",
    "OUTPUTS",
    "DTYPE",
    "init_params",
    "forward",
    "loss",
    "loss_and_grads",
    "train_step",
    "params",
    "inputs",
    "lr",
    "grads",
    "_array",
    "_params",
    "_inputs",
    "_full",
    "_sigmoid",
    "_softplus",
    "_relu",
    "_step",
    "_logsumexp",
    "_glorot",
    "_he",
}

HELPERS = {
    "_sigmoid": '''def _sigmoid(x):
    """1 / (1 + exp(-x)), as exp(x) / (1 + exp(x)) for x < 0: never exp of a large x."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)''',
    "_softplus": '''def _softplus(x):
    """log(1 + exp(x)), as max(x, 0) + log(1 + exp(-|x|)): never exp of a large x."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))''',
    "_relu": """def _relu(x):
    return np.maximum(x, 0.0)""",
    "_step": '''def _step(x):
    """relu'(x): 1 where x > 0, else 0."""
    return np.heaviside(x, 0.0)''',
    "_logsumexp": '''def _logsumexp(x, axis):
    """log(sum(exp(x), axis)), shifted by the maximum so that it never overflows."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))''',
    "_glorot": '''def _glorot(rng, shape, fan_in, fan_out):
    """Xavier uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)''',
    "_he": '''def _he(rng, shape, fan_in):
    """He normal: N(0, 2 / fan_in)."""
    return rng.normal(0.0, np.sqrt(2 / fan_in), shape)''',
    "_full": '''def _full(x, shape):
    """A fresh array of ``shape`` holding ``x`` broadcast."""
    return np.array(np.broadcast_to(x, shape), dtype=DTYPE)''',
}


@dataclass
class Function:
    """One generated function; ``body`` is its code after the docstring, each line
    starting with a newline and the indent."""

    name: str
    signature: str
    annotation: str
    doc: str
    body: str
    code: list[str]  # the right-hand sides of its statements and its epilogue


INDENT = "\n    "


def _tuple_target(names: list[str]) -> str:
    if len(names) == 1:
        return f"({names[0]},)"
    return ", ".join(names)


def _shape_text(shape) -> str:
    """Python text of a tuple of dimensions (numbers, or names such as the batch's n)."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


_tuple_text = lru_cache(4096)(_shape_text)  # for tuples, which a big network repeats


class _Writer:
    def __init__(self, program: Program, dtype: str) -> None:
        self.program = program
        self.graph: Graph = program.graph
        self.dtype = dtype
        self.forms: dict = {}  # NumpyPrinter's patterns, shared by the routines
        self.headings: dict[tuple[int, bool], str] = {}
        self.sources = _plain_sources(self.graph)  # comment_text of spec lines, by line
        self.done: dict[tuple, tuple] = {}  # routines already written, by their roots

    def heading(self, line: int, backward: bool) -> str:
        """The comment line heading the statements of spec ``line`` ("" for none)."""
        graph = self.graph
        if line == PARAM_GRADS_LINE:
            if not graph.has_batch:
                return f"{INDENT}# gradients of the loss"
            return f"{INDENT}# gradients of the mean loss over the batch"
        if not line:
            return ""
        source = self.sources.get(line)
        if source is None:
            source = graph.statements.get(line)  # what source_line says, without a call
            source = comment_text(graph.source_line(line) if source is None else source)
            self.sources[line] = source
        if backward:
            return f"{INDENT}# grad of line {line}: {source}"
        return f"{INDENT}# line {line}: {source}"

    def function(
        self,
        name: str,
        roots: dict[str, Node],
        doc: str,
        sig: str,
        ann: str,
        finish,
        forward_only: bool = True,
    ) -> Function:
        key = (tuple(roots.values()), forward_only)
        if key in self.done:  # the same statements (another function with the same roots)
            prologue, routine, printer, batch, lines, code = self.done[key]
        else:
            prologue, routine, printer, batch = self.routine(roots, forward_only)
            lines, code = self.statements(routine, printer)
            self.done[key] = prologue, routine, printer, batch, lines, code
        epilogue = finish(routine, printer, batch)
        body = "".join(
            [*(INDENT + line for line in prologue), *lines, *(INDENT + line for line in epilogue)]
        )
        return Function(name, sig, ann, doc, body, [*code, *epilogue])

    def routine(self, roots: dict[str, Node], forward_only: bool):
        graph = self.graph
        namer = Namer(PYTHON_RESERVED | MODULE_NAMES)
        leaves: dict[Node, str] = {}
        pnames = [namer(p) for p in graph.params]
        for p, local in zip(graph.params.values(), pnames):
            leaves[p.node] = local
        inames = [namer(i) for i in graph.inputs]
        for i, local in zip(graph.inputs.values(), inames):
            leaves[i.node] = local
        prologue = []
        if pnames:
            prologue.append(f"{_tuple_target(pnames)} = _params(params)")
        else:
            prologue.append("_params(params)")
        if graph.has_batch:
            batch = namer("n")
            leaves[Node(Op.BATCH_SIZE, (), None, (), False)] = batch
            target = f"({inames[0]},)" if len(inames) == 1 else f"({', '.join(inames)})"
            prologue.append(f"{target}, {batch} = _inputs(inputs)")
        else:
            batch = "n"
            prologue.append("_inputs(inputs)")
        routine = schedule(self.program, roots, namer, leaves, forward_only=forward_only)
        printer = NumpyPrinter(routine.names, batch, self.forms)
        return prologue, routine, printer, batch

    def statements(self, routine: Routine, printer: NumpyPrinter):
        """The routine's statements as body text (with a comment before each run of
        statements from one spec line), and their right-hand sides."""
        lines: list[str] = []
        code = list(map(printer, routine.variables))
        names = map(routine.names.__getitem__, routine.variables)
        headings = self.headings
        last = None
        for name, text, key in zip(names, code, zip(routine.lines, routine.backward)):
            if key != last:
                last = key
                heading = headings.get(key)
                if heading is None:
                    heading = headings[key] = self.heading(*key)
                if heading:
                    lines.append(heading)
            lines.append(f"{INDENT}{name} = {text}")
        return lines, code

    def value(
        self,
        routine: Routine,
        printer: NumpyPrinter,
        node: Node,
        batch: str,
        shape: Shape,
        batched: bool,
    ) -> str:
        """A returned value as a fresh array of the declared shape."""
        text = routine.names.get(node) or printer(node)
        if node.op in _FILLED or node.shape != shape or node.batched != batched:
            return f"_full({text}, {_tuple_text(((batch,) if batched else ()) + shape)})"
        if not shape and not batched:  # NumPy arithmetic on 0-d arrays gives scalars
            return f"np.asarray({text}, dtype=DTYPE)"
        return text


_FILLED = frozenset((Op.PARAM, Op.INPUT, Op.CONST, Op.BROADCAST))  # values returned filled


def _plain_sources(graph: Graph) -> dict[int, str]:
    """The statements of the spec as comments, when all of them are plain (printable ASCII,
    no backslash; checked at once), else none: comment_text of each line, done in bulk."""
    joined = "".join(graph.statements.values())
    if joined.isascii() and joined.isprintable() and "\\" not in joined:
        return {line: text.rstrip() for line, text in graph.statements.items()}
    return {}


def _calls(name: str, body: str) -> bool:
    """Does ``body`` call ``name``? (``name(`` not preceded by a letter, digit or underscore;
    found with str.find, as a regex takes a second on the body of a 1e5-node network.)"""
    call = f"{name}("
    at = body.find(call)
    while at != -1:
        if at == 0 or not _WORD.match(body, at - 1):
            return True
        at = body.find(call, at + 1)
    return False


_WORD = re.compile(r"\w")


@gc_paused
def generate(program: Program, dtype: str = "float64") -> str:
    """The NumPy module for ``program``, as source text."""
    graph = program.graph
    w = _Writer(program, dtype)
    batched = graph.has_batch
    loss_name = graph.loss_name

    def finish_forward(routine, printer, batch):
        items = []
        for name, node in program.outputs.items():
            value = w.value(routine, printer, node, batch, node.shape, batched)
            items.append(f"{name!r}: {value},")
        return ["return {", *("    " + i for i in items), "}"]

    def finish_loss(routine, printer, batch):
        node = program.loss
        text = routine.names.get(node) or printer(node)
        return [f"return float(np.mean({text}))"] if node.batched else [f"return float({text})"]

    def finish_grads(routine, printer, batch):
        node = program.loss
        text = routine.names.get(node) or printer(node)
        head = f"float(np.mean({text}))" if node.batched else f"float({text})"
        items = []
        for name, g in program.grads.items():
            shape = graph.params[name].node.shape
            items.append(f"{name!r}: {w.value(routine, printer, g, batch, shape, False)},")
        return ["grads = {", *("    " + i for i in items), "}", f"return {head}, grads"]

    fwd_roots = dict(program.outputs)
    functions = [
        w.function(
            "forward",
            fwd_roots,
            f"Every Output and the per-example {loss_name}, batch on axis 0.",
            "params, /, **inputs",
            " -> dict",
            finish_forward,
        ),
        w.function(
            "loss",
            {loss_name: program.loss},
            f"The mean of {loss_name} over the batch.",
            "params, /, **inputs",
            " -> float",
            finish_loss,
        ),
        w.function(
            "loss_and_grads",
            {loss_name: program.loss, **{f"d{k}": v for k, v in program.grads.items()}},
            "The mean loss and its gradient with respect to every Param.",
            "params, /, **inputs",
            " -> tuple",
            finish_grads,
            forward_only=False,
        ),
    ]
    inits, uses_rng = _initializers(graph)
    body = "\n".join([*(line for f in functions for line in f.code), *(code for _, code in inits)])
    helpers = [code for name, code in HELPERS.items() if _calls(name, body)]
    params_dict = _dict_text({k: d.node.shape for k, d in graph.params.items()})
    inputs_dict = _dict_text({k: d.node.shape for k, d in graph.inputs.items()})
    outputs = tuple(program.outputs)
    return render(
        "numpy_module.py.j2",
        name=doc_text(graph.name),
        title=_title(graph),
        version=__version__,
        spec_file=doc_text(Path(graph.filename).name),
        dtype=dtype,
        loss_name=loss_name,
        params_dict=params_dict,
        inputs_dict=inputs_dict,
        outputs_tuple=repr(outputs),
        helpers=helpers,
        inits=inits,
        uses_rng=uses_rng,
        functions=functions,
        train_step=True,
    )


def _dict_text(d: dict[str, Shape]) -> str:
    if not d:
        return "{}"
    return "{\n" + "".join(f"    {k!r}: {_tuple_text(v)},\n" for k, v in d.items()) + "}"


def _title(graph: Graph) -> str:
    source = graph.source
    size = 4096
    while True:  # the first lines only: splitting all of a 1e5-line spec takes 10 ms
        lines = source[:size].splitlines()
        for i, line in enumerate(lines):
            line = line.strip()
            if line and i == len(lines) - 1 and size < len(source):
                break  # maybe cut short: read more
            if line.startswith("#"):
                return doc_text(line.lstrip("#").strip())[:100] or "a symbp network"
            if line:
                return "a symbp network"
        else:
            if size >= len(source):
                return "a symbp network"
        size *= 16


def fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a Param: a Param[m, n] multiplies a vector of length n."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _initializers(graph: Graph) -> tuple[list[tuple[str, str]], bool]:
    out = []
    codes: dict[tuple[str, Shape], str] = {}  # by the initializer's text and the shape
    for name, decl in graph.params.items():
        key = (repr(decl.init), decl.node.shape)
        code = codes.get(key)
        if code is None:
            code = codes[key] = _initializer(decl.init, decl.node.shape)
        out.append((repr(name), code))
    return out, any("rng" in code for code in codes.values())


def _initializer(init: tuple, shape: Shape) -> str:
    kind, *args = init
    text = _tuple_text(shape)
    fan_in, fan_out = fans(shape)
    if kind == "zeros":
        return f"np.zeros({text})"
    if kind == "ones":
        return f"np.ones({text})"
    if kind == "const":
        return f"np.full({text}, {args[0]!r})"
    if kind == "normal":
        return f"rng.normal(0.0, {args[0]!r}, {text})"
    if kind == "uniform":
        return f"rng.uniform({args[0]!r}, {args[1]!r}, {text})"
    if kind == "glorot":
        return f"_glorot(rng, {text}, fan_in={fan_in}, fan_out={fan_out})"
    if kind == "he":
        return f"_he(rng, {text}, fan_in={fan_in})"
    raise AssertionError(kind)


def load(source: str, name: str) -> types.ModuleType:
    """Import generated source as a module object (it is symbp's own output, never user text)."""
    import linecache

    filename = f"<symbp:{name}>"
    module = types.ModuleType(name)
    module.__file__ = filename
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102
    sys.modules.pop(name, None)
    return module
