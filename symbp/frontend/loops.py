"""Loops of the spec language: ``for t in range(N):``, unrolled while the spec is read.

A loop's bounds fold to integer constants (literals, arithmetic of them and of the variables
of enclosing loops: ``range(t + 1)``). Its body is read once per iteration with the loop
variable bound to the iteration's number, the constant a literal gives, so ``t + 1`` and
``0.5 * t`` fold. The graph that comes out has no loop, only each iteration's nodes: an
unrolled loop of T steps costs O(T) nodes.

Scoping, as a reader of the spec would expect from Python with one difference:

- a name bound before the loop by an equation may be rebound in the body (the state the
  loop carries, ``h = tanh(W @ h + b)``); after the loop it holds its last value;
- a name first bound in the body is local to one iteration: it is new in the next one, and
  unbound after the loop (Python would keep its last value; here a name that must outlive
  the loop is bound before it). The loop variable is unbound after the loop too;
- in a body, a value bound by an equation may be rebound, also with ``h += ...``;
  declarations, ``Loss``/``Output``, ``def``, ``break``, ``continue``, ``else:`` are not
  allowed in a loop.

Each iteration's values keep the user's name with the iteration appended (``h_t3``, or
``s_i1_j0`` in nested loops) and cite their body line; an error in a body says in which
iteration it happened.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from ..errors import SpecError
from ..ir import expr as ex
from ..ir import ops
from ..ir.graph import Graph
from .expressions import BINOPS, Expressions

MAX_UNROLLED = 20_000  # body statements read over every iteration of every loop (10^4 steps
# of an RNN cell compile in about 7 s)


@dataclass
class _Frame:
    """One enclosing loop, at the iteration being read."""

    var: str
    line: int
    binds: frozenset[str]  # the names its body binds
    value: int = 0
    fresh: list[str] = field(default_factory=list)  # names first bound in this iteration
    times: dict[str, int] = field(default_factory=dict)  # name -> bindings in this iteration


def bound_in(body: list[ast.stmt]) -> list[str]:
    """The names a loop body binds (its nested loops' included), in order."""
    names: list[str] = []
    for stmt in body:
        if isinstance(stmt, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
        elif isinstance(stmt, ast.For):
            if isinstance(stmt.target, ast.Name):
                names.append(stmt.target.id)
            names += bound_in(stmt.body)
    return names


class Loops(Expressions):
    """The reading of ``for`` loops, and the rules for names bound in them."""

    def __init__(self, source: str, filename: str) -> None:
        super().__init__(source, filename)
        self.loops: list[_Frame] = []  # the enclosing loops, outermost first
        self.unrolled = 0  # body statements read so far
        self.ended: dict[str, str] = {}  # a name unbound when its loop ended -> why
        self.variables: set[str] = set()  # the names of loop variables
        self.rebindable: set[str] = set()  # names bound by equations
        self.graph: Graph  # the reader's graph

    # ------------------------------------------------------------------ loops

    def loop(self, stmt: ast.For | ast.AsyncFor) -> None:
        """Read ``for var in range(...):`` by reading its body once per iteration."""
        if isinstance(stmt, ast.AsyncFor):
            raise self.error(stmt, "unsupported construct: an async for loop")
        if stmt.orelse:
            raise self.error(
                stmt.orelse[0], "`else:` on a for loop is not supported: every loop runs to its end"
            )
        var = self.loop_variable(stmt)
        steps = self.steps(stmt, var)
        frame = _Frame(var, stmt.lineno, frozenset(bound_in(stmt.body)))
        self.variables.add(var)
        self.loops.append(frame)
        for value in steps:
            frame.value, frame.fresh, frame.times = value, [], {}
            self.values[var] = (ex.num(value), stmt.lineno)
            for body in stmt.body:
                self.unrolled += 1
                if self.unrolled > MAX_UNROLLED:
                    outer = self.loops[0].line
                    raise self.error(
                        (outer, self.lines[outer - 1].find("for") + 1),
                        f"the loops unroll to more than {MAX_UNROLLED} statements: loops are "
                        "unrolled at compile time, so their sizes are limited",
                    )
                self.line = body.lineno
                self.body_statement(body)
            for name in frame.fresh:
                del self.values[name]
                self.ended[name] = (
                    f"'{name}' is local to the body of the loop at line {stmt.lineno} and "
                    "unbound after it; to keep its last value, bind it before the loop "
                    "and rebind it in the body"
                )
        self.loops.pop()
        del self.values[var]
        self.ended[var] = f"'{var}' is the variable of the loop at line {stmt.lineno} and "
        self.ended[var] += "unbound after it"

    def loop_variable(self, stmt: ast.For) -> str:
        t = stmt.target
        if not isinstance(t, ast.Name):
            raise self.error(t, f"a for loop binds one plain name, got {self.describe(t)}")
        if t.id in self.values or t.id in self.functions:
            where = self.values[t.id][1] if t.id in self.values else self.functions[t.id][2]
            raise self.error(
                t, f"'{t.id}' is already bound at line {where}: a loop variable is a new name"
            )
        return t.id

    def steps(self, stmt: ast.For, var: str) -> range:
        """The iterations of ``stmt``: ``range(...)`` of integer constants, not empty."""
        it = stmt.iter
        is_range = isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
        if not (is_range and it.func.id == "range"):  # (a value named range is no function)
            raise self.error(
                stmt,
                f"a for loop runs over range(...) only, not `{self.segment(stmt.iter)}`: "
                f"write `for {var} in range(N):`",
            )
        if it.keywords or not 1 <= len(it.args) <= 3:
            raise self.error(
                it,
                "range() takes one to three integers: range(stop), "
                "range(start, stop) or range(start, stop, step)",
            )
        bounds = [self.integer(a, "a bound of range()") for a in it.args]
        if len(bounds) == 3 and bounds[2] == 0:
            raise self.error(it.args[2], "the step of range() must not be zero")
        steps = range(*bounds)
        if not steps:
            raise self.error(
                it,
                f"range{tuple(bounds) if len(bounds) > 1 else f'({bounds[0]})'} is empty: "
                "the loop would never run",
            )
        if len(steps) > MAX_UNROLLED:
            raise self.error(
                it,
                f"range() of {len(steps)} iterations: loops are unrolled at compile time, "
                f"to at most {MAX_UNROLLED} statements",
            )
        return steps

    def body_statement(self, stmt: ast.stmt) -> None:
        """One statement of a loop body; an error in it names the iteration."""
        try:
            if isinstance(stmt, ast.Break | ast.Continue):
                word = "break" if isinstance(stmt, ast.Break) else "continue"
                raise self.error(
                    stmt,
                    f"`{word}` is not supported: a loop is unrolled at compile time and "
                    "runs all its iterations (choose its range instead)",
                )
            if isinstance(stmt, ast.AnnAssign):
                raise self.error(stmt, self.declared_in_loop(stmt))
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                raise self.error(stmt, "define functions at the top of the spec, not in a loop")
            if isinstance(stmt, ast.AugAssign):
                return self.augmented(stmt)
            self.statement(stmt)
        except SpecError as err:
            if getattr(err, "iteration", False):
                raise
            where = ", ".join(f"{f.var} = {f.value}" for f in self.loops)
            located = SpecError(
                f"{err.message} (in iteration {where})",
                err.filename,
                err.line,
                err.col,
                err.source_line,
            )
            located.iteration = True
            raise located from None

    def declared_in_loop(self, stmt: ast.AnnAssign) -> str:
        ann = stmt.annotation
        kind = ann.value if isinstance(ann, ast.Subscript) else ann
        kind = kind.id if isinstance(kind, ast.Name) else self.segment(kind)
        if kind in ("Loss", "Output"):
            article = "an" if kind == "Output" else "a"
            return (
                f"{article} {kind} cannot be declared in a loop: bind the value in the loop "
                f"and declare it after the loop, `name: {kind} = ...`"
            )
        return f"a declaration ({kind}) cannot stand in a loop: declare it before the loop"

    def augmented(self, stmt: ast.AugAssign) -> None:
        """``h += e`` in a loop body: ``h = h + e``."""
        if type(stmt.op) not in BINOPS:
            raise self.error(stmt, f"unsupported construct: {self.describe_statement(stmt)}")
        if not isinstance(stmt.target, ast.Name):
            raise self.error(stmt.target, "only a plain name can be bound")
        name = stmt.target.id
        if name not in self.values:
            self.name(stmt.target)  # the error saying why it is not bound
        self.target(stmt.target)
        left = self.values[name][0]
        right = self.expr(stmt.value)
        try:
            value = self.checked(stmt, self.binop(stmt, left, right))
        except ops.GraphError as err:
            raise self.error(stmt, str(err)) from None
        self.bind(name, value, stmt)

    # ------------------------------------------------------------------ names

    def rebinding(self, name: str) -> str | None:
        """Why ``name``, already bound, may not be rebound here; None if it may."""
        if not self.loops:
            return (
                f"'{name}' is already bound at line {self.values[name][1]}: "
                "each name is bound once (pick a new name)"
            )
        graph = self.graph
        if name in graph.outputs or (graph.loss is not None and name == graph.loss_name):
            kind = "an Output" if name in graph.outputs else "the Loss"
            return f"'{name}' is {kind}: it cannot be rebound"
        if any(f.var == name for f in self.loops):
            return f"'{name}' is a loop variable: it cannot be rebound in its loop"
        if name not in self.rebindable:
            return (
                f"'{name}' is declared at line {self.values[name][1]}: only a value bound "
                "by an equation may be rebound in a loop"
            )
        return None

    def iteration_name(self, name: str) -> str:
        """``name`` as generated code calls its value in this iteration: h_t3, s_i1_j0, and
        h_t3_2 for the second value a body binds to h in iteration 3."""
        times = self.loops[-1].times
        times[name] = times.get(name, 0) + 1
        shown = name
        for f in self.loops:
            shown += f"_{f.var}{f.value}" if f.value >= 0 else f"_{f.var}m{-f.value}"
        return shown if times[name] == 1 else f"{shown}_{times[name]}"

    def note_binding(self, name: str) -> None:
        """``name`` is about to be bound by an equation."""
        self.rebindable.add(name)
        if self.loops and name not in self.values:
            self.loops[-1].fresh.append(name)

    def why_unbound(self, name: str) -> str | None:
        for f in self.loops:
            if name in f.binds and name not in self.variables:
                return (
                    f"'{name}' is read before the loop body binds it: to carry '{name}' "
                    f"from one iteration to the next, bind it before the loop "
                    f"(e.g. `{name} = zeros(...)`)"
                )
        return self.ended.get(name)
