"""Spec text -> ``Graph``: the ``.sbp`` language of SPEC.md §1, read with ``ast``.

Nothing in a spec is executed or evaluated: the parser walks the syntax tree and accepts
only the constructs the language lists, building IR nodes through ``symbp.ir.ops``. Every
problem is a ``SpecError`` located at the offending construct.

This is the general reader, and the reference. Large specs are read by the fast path of
``symbp.frontend.shapes``, which parses each statement shape once and hands back to this reader
what it does not cover; on any problem the spec is read here from its start.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

from ..errors import SpecError
from ..ir import ops
from ..ir.expr import Expr
from ..ir.graph import Decl, Graph
from ..ir.node import Node, gc_paused
from . import hints
from .expressions import INITIALIZERS, Value
from .integer_ids import integer_inputs
from .loops import Loops, bound_in
from .plans import DECLARED
from .shapes import FALLBACK, read_by_shapes
from .source import split_lines

DECLARATIONS = ("Input", "Param", "Loss", "Output", "Const")


def parse(path: str | Path) -> Graph:
    """Parse the spec file at ``path``; an unreadable file is a ``SpecError`` too."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(f"cannot read spec: {e.strerror}", str(path)) from None
    return parse_bytes(data, str(path), path.stem)


def parse_bytes(data: bytes, filename: str = "<spec>", name: str | None = None) -> Graph:
    """Parse a spec given as bytes, which must be UTF-8 (a leading BOM is allowed)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = split_lines(data[: e.start].decode("utf-8"))
        line, col = len(before), len(before[-1]) + 1
        text = split_lines(data.decode("utf-8", "replace"))[line - 1]
        raise SpecError(
            f"the spec is not valid UTF-8 (byte 0x{data[e.start]:02x}); save it as UTF-8",
            filename,
            line,
            col,
            text,
        ) from None
    return parse_text(source, filename, name)


@gc_paused
def parse_text(source: str, filename: str = "<spec>", name: str | None = None) -> Graph:
    """Parse spec ``source``; ``filename`` is used in error messages and generated code."""
    if name is None:
        name = Path(filename).stem if filename != "<spec>" else "spec"
    source = source.removeprefix("\ufeff")
    try:  # the fast path: it gives up on any problem, which the general reader reports
        return read_by_shapes(_Parser(source, filename, name))
    except FALLBACK:
        return _Parser(source, filename, name).run()


class _Parser(Loops):
    """One reading of one spec: statements in order, each name bound once, into a Graph."""

    def __init__(self, source: str, filename: str, name: str) -> None:
        super().__init__(source, filename)
        self.graph = Graph(name=name, source=source, filename=filename)
        self.values: dict[str, tuple[Value, int]] = {}  # bound names -> (value, line)
        self.functions: dict[str, tuple[int, Expr, int]] = {}  # name -> (arity, body, line)
        self.terms: dict[str, tuple[int, list[int]]] = {}  # user function -> its size with
        # calls expanded, and the uses of each of its parameters
        self.later: dict[str, int] = {}  # every name bound at top level -> its line
        self.line = 0  # the line of the statement being read
        self.sites = 0  # dropout calls met so far: the next one's site (symbp.ir.randomness)
        self.index_lines: dict[str, int] = {}  # integer Input -> the first line indexing

    # ------------------------------------------------------------- statements

    def run(self) -> Graph:
        if "\x00" in self.source:
            line = next(i for i, text in enumerate(self.lines, 1) if "\x00" in text)
            col = self.lines[line - 1].index("\x00") + 1
            raise self.error((line, col), "the spec contains a NUL byte")
        tree = self.syntax_tree()
        for stmt in tree.body:
            for target in self._bound_names(stmt):
                self.later.setdefault(target, stmt.lineno)
        self.index_lines = integer_inputs(tree)
        for stmt in tree.body:
            self.line = stmt.lineno
            try:
                self.statement(stmt)
            except RecursionError:
                raise self.error(stmt, "expression nested too deeply") from None
        if self.graph.loss is None:
            last = max(len(self.lines) - (self.lines[-1] == ""), 1)
            raise self.error((last, 1), "the spec has no Loss: declare one as `C: Loss = ...`")
        return self.graph

    @staticmethod
    def _bound_names(stmt: ast.stmt) -> list[str]:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            return [stmt.target.id]
        if isinstance(stmt, ast.Assign):
            return [t.id for t in stmt.targets if isinstance(t, ast.Name)]
        if isinstance(stmt, ast.FunctionDef):
            return [stmt.name]
        if isinstance(stmt, ast.For):
            return bound_in([stmt])
        return []

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            if isinstance(stmt.value.value, str):
                return  # a docstring
        if isinstance(stmt, ast.FunctionDef):
            return self.function(stmt)
        if isinstance(stmt, ast.AnnAssign):
            return self.declaration(stmt)
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1:
                raise self.error(stmt, "bind one name per equation (no chained `a = b = ...`)")
            target = self.target(stmt.targets[0])
            value = self.expr(stmt.value)
            return self.bind(target, value, stmt)
        if isinstance(stmt, ast.For | ast.AsyncFor):
            return self.loop(stmt)
        hint = hints.construct_hint(stmt, self.known_functions())
        raise self.error(stmt, f"unsupported construct: {self.describe_statement(stmt)}{hint}")

    def target(self, t: ast.expr) -> str:
        if not isinstance(t, ast.Name):
            raise self.error(t, "only a plain name can be bound")
        name = t.id
        if name in self.values:
            why = self.rebinding(name)
            if why is not None:
                raise self.error(t, why)
        if name in self.functions:
            raise self.error(
                t, f"'{name}' is already a function (defined at line {self.functions[name][2]})"
            )
        return name

    def bind(self, name: str, value: Value, stmt: ast.stmt) -> Node:
        node = self.as_node(value)
        self.bind_line(name, node, stmt.lineno, self.source_of(stmt))
        return node

    def bind_line(self, name: str, node: Node, line: int, text: str) -> None:
        """Bind ``name`` to ``node``, the value of the statement at ``line`` written ``text``."""
        self.note_binding(name)
        self.values[name] = (node, line)
        if self.loops:
            name = self.iteration_name(name)
        graph = self.graph
        graph.names.setdefault(node, name)
        graph.equations.append((name, node, line))
        graph.statements[line] = " ".join(text.split())
        lines = graph.lines
        stack = [node]
        while stack:  # the line of every node the statement made
            node = stack.pop()
            if node in lines or node.op in DECLARED:
                continue
            lines[node] = line
            stack.extend(node.args)

    def declaration(self, stmt: ast.AnnAssign) -> None:
        name = self.target(stmt.target)
        ann = stmt.annotation
        kind, dims = ann, None
        if isinstance(ann, ast.Subscript):
            kind = ann.value
            dims = ann.slice
        if not isinstance(kind, ast.Name) or kind.id not in DECLARATIONS:
            raise self.error(
                ann,
                "unknown annotation: expected Input[...], Param[...], Const[...], Loss or Output",
            )
        kind = kind.id
        if kind in ("Input", "Param", "Const"):
            return self.leaf(stmt, name, kind, self.shape(dims, kind))
        if dims is not None:
            raise self.error(ann, f"{kind} takes no shape: its shape is its expression's")
        if stmt.value is None:
            raise self.error(stmt, f"{kind} '{name}' needs an expression: `{name}: {kind} = ...`")
        value = self.expr(stmt.value)
        node = self.bind(name, value, stmt)
        if kind == "Output":
            self.graph.outputs[name] = node
            return
        if self.graph.loss is not None:
            first = self.values[self.graph.loss_name][1]
            raise self.error(
                stmt,
                f"a second Loss: the spec already has '{self.graph.loss_name}' at line {first}",
            )
        if node.shape != ():
            raise self.error(
                stmt.value,
                f"the Loss must be a scalar per example, got shape "
                f"{node.shape}; reduce it with sum(...) or mean(...)",
            )
        self.graph.loss = node
        self.graph.loss_name = name

    def leaf(self, stmt: ast.AnnAssign, name: str, kind: str, shape: tuple[int, ...]) -> None:
        """An Input, or a Param or Const with its initializer."""
        if kind == "Input":
            if stmt.value is not None:
                raise self.error(stmt.value, "an Input takes no value")
            node = ops.input_node(name, shape, integer=name in self.index_lines)
            self.graph.inputs[name] = Decl(node, stmt.lineno)
        else:
            if stmt.value is None:
                example = "zeros" if kind == "Param" else "0.5"
                raise self.error(
                    stmt,
                    f"{kind} '{name}' needs an initializer, e.g. `{name}: {kind}[...] = {example}`",
                )
            init = self.initializer(stmt.value)
            trained = kind == "Param"
            node = ops.param_node(name, shape, trained)
            table = self.graph.params if trained else self.graph.consts
            table[name] = Decl(node, stmt.lineno, init)
        self.values[name] = (node, stmt.lineno)

    def shape(self, dims: ast.expr | None, kind: str) -> tuple[int, ...]:
        if dims is None:
            return ()
        elts = dims.elts if isinstance(dims, ast.Tuple) else [dims]
        if not elts:
            raise self.error(dims, f"an empty shape: a scalar {kind} is written without brackets")
        shape = []
        for d in elts:
            ok = isinstance(d, ast.Constant) and type(d.value) is int and d.value > 0
            if not ok:
                got = f", got {self.describe(d)}" if not isinstance(d, ast.Constant) else ""
                raise self.error(d, f"{kind} dimensions must be positive integer literals{got}")
            if d.value > ops.MAX_ELEMENTS:
                shown = d.value if d.value.bit_length() < 64 else "with so many digits"
                raise self.error(d, f"dimension {shown} is too large (at most {ops.MAX_ELEMENTS})")
            shape.append(d.value)
        if math.prod(shape) > ops.MAX_ELEMENTS:
            raise self.error(
                dims, f"{kind} of shape {tuple(shape)} has more than {ops.MAX_ELEMENTS} elements"
            )
        return tuple(shape)

    def initializer(self, e: ast.expr) -> tuple:
        number = self.literal(e)
        if number is not None:
            return ("const", number)
        if isinstance(e, ast.Name) and INITIALIZERS.get(e.id) == 0:
            return (e.id,)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in INITIALIZERS:
            arity = INITIALIZERS[e.func.id]
            if arity == 0:
                raise self.error(
                    e, f"bad initializer: {e.func.id} takes no arguments, write `= {e.func.id}`"
                )
            args = [self.literal(a) for a in e.args]
            if e.keywords or len(args) != arity or None in args:
                usage = {"normal": "normal(std)", "uniform": "uniform(low, high)"}[e.func.id]
                raise self.error(e, f"bad initializer: use {usage} with number literals")
            args = [a + 0.0 for a in args]  # -0.0 is 0.0 (numpy's normal refuses a std of -0.0)
            if e.func.id == "normal" and args[0] < 0:
                raise self.error(e, "bad initializer: normal(std) needs std >= 0")
            if e.func.id == "normal" and not math.isfinite(args[0] * 64):
                raise self.error(
                    e, "bad initializer: normal(std) with so large a std draws infinite values"
                )
            if e.func.id == "uniform" and not args[0] <= args[1]:
                raise self.error(e, "bad initializer: uniform(low, high) needs low <= high")
            if e.func.id == "uniform" and not math.isfinite(args[1] - args[0]):
                raise self.error(
                    e, "bad initializer: uniform(low, high) needs high - low to be a finite number"
                )
            return (e.func.id, *args)
        raise self.error(
            e,
            "bad initializer: expected a number, zeros, ones, normal(std), "
            "uniform(low, high), glorot or he",
        )
