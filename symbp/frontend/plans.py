"""Plans of the parser's fast path (``symbp.frontend.shapes``): the statement of a line
turned, once per statement shape, into a function that makes the ``symbp.ir.ops`` calls of
every line of that shape on the line's own names, the checks on its constants already done.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from functools import partial
from operator import itemgetter

from ..ir import composites, extrema, ops
from ..ir.expr import X
from ..ir.functions import FUNCTIONS, SPEC_FUNCTIONS
from ..ir.graph import Decl
from ..ir.node import Node, Op
from .expressions import BINOPS
from .integer_ids import FloatValues, make_input
from .tensors import CONSTRUCTORS

DECLARED = (Op.INPUT, Op.PARAM, Op.FROZEN)  # nodes whose line is their declaration's

CONST = Op.CONST
# a declaration's kind -> the Graph's table of them and their constructor
LEAF_KINDS = {
    "Input": ("inputs", ops.input_node),
    "Param": ("params", ops.param_node),
    "Const": ("consts", partial(ops.param_node, trained=False)),
}
MAX_DEPTH = 60  # deeper statements (long chains) are left to the general reader
# The words a shape keeps as written: the statements' own and the language's, so that the
# lines using them share a shape (and an attribute's name, .T, is no plain name).
FIXED = "def|return|T|axis|Input|Param|Loss|Output|zeros|ones|glorot|he|normal|uniform|Const"
# A plain name: an identifier that is no fixed word and is not called. Keywords are plain
# names here, so a spec with one where a name stands goes to the general reader. A line's
# shape has a $ for each (symbp.frontend.shapes); a plan reads the line's names in order.
NAME = re.compile(rf"\b(?!(?:{FIXED})\b)([A-Za-z_]\w*+)(?![ \t]*\()", re.ASCII)

# the operators and built-in calls a plan makes (the operators: the general reader's)
BINARY = BINOPS
REDUCE = {
    "sum": ops.reduce_sum,
    "mean": composites.mean,
    "logsumexp": ops.logsumexp,
    # max and min
    "max": extrema.reduce_max,
    "min": extrema.reduce_min,
}
SOFTMAX = {"softmax": composites.softmax, "log_softmax": composites.log_softmax}
BUILT_IN = {*SPEC_FUNCTIONS, *REDUCE, *SOFTMAX, "cross_entropy", *CONSTRUCTORS}


class General(Exception):
    """A plan met what it does not cover: the general reader reads this line."""


class NoPlan(Exception):
    """A shape no plan covers: each of its lines is read by the general reader."""


Getter = Callable[[list], Node]


class Planner:
    """Turns the statement of one line into a plan for every line of its shape.

    A plan is called with the spec's plain names, where its line's start, its line number
    and its text without comment."""

    def __init__(self, parser, code: str, names: list[str], normalized: bool) -> None:
        self.parser = parser
        self.code = code
        self.normalized = normalized  # the line is its statement's text as the graph keeps it
        self.slots = {m.start(): k for k, m in enumerate(NAME.finditer(code))}
        if len(self.slots) != len(names):
            raise NoPlan
        self.names = names
        self.used: set[int] = set()
        self.reads: list[int | str] = []  # each value read: the index of its $, or its name

    def slot(self, e: ast.Name) -> int | str:
        """The index of name ``e``'s $, or the name itself if it is a fixed word."""
        k = self.slots.get(e.col_offset)
        if k is None:
            return e.id
        if k in self.used or e.id != self.names[k] or e.end_col_offset != e.col_offset + len(e.id):
            raise NoPlan
        self.used.add(k)
        return k

    def statement(self, body: list[ast.stmt]):
        if len(body) != 1:
            raise NoPlan
        stmt = body[0]
        tail = self.code[stmt.end_col_offset :] if stmt.end_lineno == 1 else "?"
        if stmt.col_offset != 0 or tail.strip(" \t\f"):
            raise NoPlan  # the statement's text must be the whole line's
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            return self.equation(stmt.targets[0], stmt.value, None)
        if isinstance(stmt, ast.AnnAssign):
            return self.declaration(stmt)
        raise NoPlan

    def target(self, t: ast.expr) -> int:
        """The index of the $ of the name bound (binding a fixed word is left to the general
        reader, which refuses most of them)."""
        if not isinstance(t, ast.Name) or t.col_offset not in self.slots:
            raise NoPlan
        return self.slot(t)

    def finish(self) -> None:
        if len(self.used) != len(self.names):
            raise NoPlan  # a $ that is no plain name here (a keyword argument's name)

    def equation(self, t: ast.expr, e: ast.expr, kind: str | None):
        """The plan of ``t = e`` (``kind`` None), or of ``t: Loss = e`` / ``t: Output = e``:
        what ``_Parser.bind`` and ``_Parser.declaration`` do."""
        target = self.target(t)
        value = self.getter(e, 0)
        if value is None:
            raise NoPlan  # a constant value: the general reader folds and checks it
        self.finish()
        parser = self.parser
        values, functions, graph = parser.values, parser.functions, parser.graph
        names_of, equations, statements, lines = (
            graph.names,
            graph.equations,
            graph.statements,
            graph.lines,
        )
        view = FloatValues(values, parser.index_lines) if parser.index_lines else values
        resolve, normalized = _resolver(tuple(self.reads), view), self.normalized

        def run(names: list[str], pos: int, line: int, code: str) -> None:
            node = value(resolve(names, pos))
            name = names[pos + target]
            if name in values or name in functions:
                raise General
            if kind == "Loss" and (graph.loss is not None or node.shape != ()):
                raise General
            values[name] = (node, line)
            names_of.setdefault(node, name)
            equations.append((name, node, line))
            statements[line] = code if normalized else " ".join(code.split())
            stack = [node]
            while stack:  # as _Parser.bind_line
                made = stack.pop()
                if made in lines or made.op in DECLARED:
                    continue
                lines[made] = line
                stack.extend(made.args)
            if kind == "Loss":
                graph.loss, graph.loss_name = node, name
            elif kind == "Output":
                graph.outputs[name] = node

        return run

    def declaration(self, stmt: ast.AnnAssign):
        ann = stmt.annotation
        kind, dims = (ann.value, ann.slice) if isinstance(ann, ast.Subscript) else (ann, None)
        if not isinstance(kind, ast.Name) or kind.col_offset in self.slots:
            raise NoPlan
        kind = kind.id
        if kind in ("Loss", "Output") and dims is None and stmt.value is not None:
            return self.equation(stmt.target, stmt.value, kind)
        if kind not in LEAF_KINDS or (kind == "Input") != (stmt.value is None):
            raise NoPlan
        target = self.target(stmt.target)
        parser = self.parser
        shape = parser.shape(dims, kind)
        init = None if kind == "Input" else parser.initializer(stmt.value)
        self.finish()
        values, functions = parser.values, parser.functions
        decls = getattr(parser.graph, LEAF_KINDS[kind][0])
        make = partial(make_input, parser.index_lines) if kind == "Input" else LEAF_KINDS[kind][1]

        def run(names: list[str], pos: int, line: int, code: str) -> None:
            name = names[pos + target]
            if name in values or name in functions:
                raise General
            node = make(name, shape)
            decls[name] = Decl(node, line) if init is None else Decl(node, line, init)
            values[name] = (node, line)

        return run

    # ------------------------------------------------------------------ values

    def getter(self, e: ast.expr, depth: int) -> Getter | None:
        """A function of the values read giving ``e``'s node, or None if ``e`` is a constant.

        Constants are read by the general reader now, once per shape (they do not depend on
        names); so are the checks that depend on them (a division by zero). A name may stand
        for a constant node, and an operation may fold into one: where the general reader
        checks such a node (a divisor, the base of a power, a function's argument), the plan
        sends its line to the general reader instead."""
        if depth > MAX_DEPTH:
            raise NoPlan
        if _constant(e):
            return None
        if isinstance(e, ast.Name):
            self.reads.append(self.slot(e))
            return itemgetter(len(self.reads) - 1)
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.UAdd | ast.USub):
            inner = self.getter(e.operand, depth + 1)
            return inner if isinstance(e.op, ast.UAdd) else _applied(ops.neg, inner)
        if isinstance(e, ast.BinOp) and type(e.op) in BINARY:
            return self.binop(e, depth)
        if isinstance(e, ast.Attribute) and e.attr == "T":
            return _applied(ops.transpose, self.getter(e.value, depth + 1))
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            if e.func.col_offset in self.slots:
                raise NoPlan
            return self.call(e, depth)
        raise NoPlan

    def operand(self, e: ast.expr, depth: int) -> tuple[Getter | None, object, Node | None]:
        """A getter for operand ``e`` (None for a constant), what the general reader's checks
        see of it (a symbol for a node), and its node if it is a constant."""
        get = self.getter(e, depth)
        if get is not None:
            return get, X[0], None
        value = self.parser.expr(e)
        return None, self.parser.constant(value), self.parser.as_node(value)

    def binop(self, e: ast.BinOp, depth: int) -> Getter:
        left, a, left_node = self.operand(e.left, depth + 1)
        right, b, right_node = self.operand(e.right, depth + 1)
        if isinstance(e.op, ast.Div):
            self.parser.check_divisor(e, b)
            right = right and _node_only(right)
        if isinstance(e.op, ast.Pow):
            self.parser.check_power(e, a, b)
            left = left and _node_only(left)
        op = BINARY[type(e.op)]
        if left is None:
            return _applied(partial(op, left_node), right)
        if right is None:
            return lambda v: op(left(v), right_node)
        return lambda v: op(left(v), right(v))

    def call(self, e: ast.Call, depth: int) -> Getter:
        name = e.func.id
        axis = None
        if e.keywords:
            if name not in REDUCE and name not in SOFTMAX:
                raise NoPlan
            if len(e.keywords) != 1 or e.keywords[0].arg != "axis":
                raise NoPlan
            axis = self.parser.axis(e.keywords[0].value)
        if any(isinstance(a, ast.Starred) for a in e.args):
            raise NoPlan
        args = [self.getter(a, depth + 1) for a in e.args]
        if None in args:
            raise NoPlan  # a constant argument: its checks are the general reader's
        if name in SPEC_FUNCTIONS and FUNCTIONS[name].arity == len(args) == 1:
            return _applied(partial(ops.apply, name), _node_only(args[0]))
        if name in SPEC_FUNCTIONS and FUNCTIONS[name].arity == len(args):
            nodes = [_node_only(a) for a in args]
            return lambda v: ops.apply(name, *(a(v) for a in nodes))
        if name in REDUCE and len(args) == 1:
            return _applied(lambda x: REDUCE[name](x, axis), args[0])
        if name in SOFTMAX and len(args) == 1:
            f, axis = SOFTMAX[name], -1 if axis is None else axis
            return _applied(lambda x: f(x, axis) if x.shape else _general(), args[0])
        if name == "cross_entropy" and len(args) == 2:
            logits, target = args

            def cross_entropy(v: list) -> Node:
                x = logits(v)
                return composites.cross_entropy(x, target(v)) if x.shape else _general()

            return cross_entropy
        if name in BUILT_IN:
            raise NoPlan
        functions = self.parser.functions
        args = [_node_only(a) for a in args]

        def user(v: list) -> Node:
            arity, body, _ = functions.get(name) or (-1, None, 0)
            if arity != len(args):
                raise General
            return ops.elementwise(body, [a(v) for a in args], name)

        return user


def _general() -> Node:
    raise General


def _applied(f: Callable[[Node], Node], inner: Getter) -> Getter:
    return lambda v: f(inner(v))


def _node_only(inner: Getter) -> Getter:
    """``inner``, sending the line to the general reader when its node is a constant."""

    def node(v: list) -> Node:
        x = inner(v)
        return _general() if x.op is CONST else x

    return node


def _constant(e: ast.expr) -> bool:
    """Whether ``e`` reads no name and calls no user function: its value is the same on
    every line of the shape, whatever the state of the spec."""
    if isinstance(e, ast.Name):
        return False
    if isinstance(e, ast.Call):
        if not isinstance(e.func, ast.Name) or e.func.id not in BUILT_IN:
            return False
        return all(_constant(a) for a in [*e.args, *(k.value for k in e.keywords)])
    return all(_constant(c) for c in ast.iter_child_nodes(e))


def _resolver(reads: tuple[int | str, ...], values: dict):
    """The function of a line's names giving the nodes its plan reads."""
    get = values.get
    if len(reads) == 1 and type(reads[0]) is int:
        (a,) = reads

        def one(names: list[str], pos: int) -> tuple[Node]:
            x = get(names[pos + a])
            return _general() if x is None else (x[0],)

        return one
    if len(reads) == 2 and type(reads[0]) is int and type(reads[1]) is int:
        a, b = reads

        def two(names: list[str], pos: int) -> tuple[Node, Node]:
            x, y = get(names[pos + a]), get(names[pos + b])
            if x is None or y is None:
                raise General
            return x[0], y[0]

        return two

    def resolve(names: list[str], pos: int) -> list[Node]:
        bound = [get(names[pos + r] if type(r) is int else r) for r in reads]
        if None in bound:
            raise General
        return [x[0] for x in bound]

    return resolve
