"""The parser's fast path: a spec read shape by shape instead of node by node.

A speed device, kept because it carries a large share of compiling a long spec (about 40%
for the 1e4-line graphs of ``bench/scale.py``; BENCHMARKS.md). A large spec repeats a few
statement shapes with different names (``h7 = tanh(h3) * h5``, ``W9: Param[8, 8] =
glorot``). The general reader of ``symbp.frontend.parser`` builds an ``ast`` tree for every
line and walks it; here every line is reduced to its shape, the line with its comment
dropped and each plain name replaced by ``$``, and each shape is parsed once into a plan:
the ``symbp.ir.ops`` calls its statement makes, the checks on its constants already done.
Each line of that shape runs the plan on its own names.

The general reader stays the reference. It reads the statements this path has no plan for
(``def`` blocks, statements over several lines, unusual shapes, the lines up to the last
string or backslash), and whenever a plan meets something it does not cover (an unbound
name, a constant divisor, a second Loss) it reads that line. When anything fails, or the
spec holds what this path does not read (a keyword where a name stands), the spec is read
again from its start by the general reader, so every error is the general reader's.
``tests/test_parse_shapes.py`` checks that both readers build the same graph.
"""

from __future__ import annotations

import ast
import keyword
import re
import warnings
from collections.abc import Callable
from functools import partial
from operator import itemgetter

from ..errors import SpecError
from ..ir import ops
from ..ir.expr import X
from ..ir.functions import FUNCTIONS, SPEC_FUNCTIONS
from ..ir.graph import Decl, Graph
from ..ir.node import Node, Op
from .integer_ids import FloatValues, integer_inputs, make_input
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
# names here, so a spec with one where a name stands goes to the general reader.
NAME = re.compile(rf"\b(?!(?:{FIXED})\b)([A-Za-z_]\w*+)(?![ \t]*\()", re.ASCII)
KEYWORDS = frozenset([*keyword.kwlist, "__debug__"])
COMMENT = re.compile(r"#[^\n]*")
LOOP = re.compile(r"^[ \t]*(?:async[ \t]+)?for\b", re.MULTILINE)
INDEX = re.compile(r"\[\s*[^\W\d]\w*\s*\]")  # a tensor indexed by a name, as E[ids]
NOT_READ = ("'", '"', "\\")  # strings and continuations: the general reader's alone
BINARY = {
    ast.Add: ops.add,
    ast.Sub: ops.sub,
    ast.Mult: ops.mul,
    ast.Div: ops.div,
    ast.Pow: ops.power,
    ast.MatMult: ops.matmul,
}
REDUCE = {
    "sum": ops.reduce_sum,
    "mean": ops.mean,
    "logsumexp": ops.logsumexp,
    # max and min
    "max": ops.reduce_max,
    "min": ops.reduce_min,
}
SOFTMAX = {"softmax": ops.softmax, "log_softmax": ops.log_softmax}
BUILT_IN = {*SPEC_FUNCTIONS, *REDUCE, *SOFTMAX, "cross_entropy", *CONSTRUCTORS}


class Unsupported(Exception):
    """The fast path does not read this spec; the general reader does."""


class _General(Exception):
    """A plan met what it does not cover: the general reader reads this line."""


class _NoPlan(Exception):
    """A shape no plan covers: each of its lines is read by the general reader."""


# What a line's shape is: its kind, how many $ it holds and by how much it opens brackets.
# A shape is planned the second time it is met (a spec of all different lines costs what
# the general reader costs); until then, like OTHER lines, its line is the general reader's.
BLANK, NEW, OTHER, STATEMENT = 0, 1, 2, 3

# Errors after which the spec is read again by the general reader (see parse_text).
FALLBACK = (Unsupported, SpecError, ops.GraphError, SyntaxError, RecursionError, MemoryError)


def read_by_shapes(parser) -> Graph:
    """The graph of ``parser``'s spec (a fresh ``frontend.parser._Parser``), read shape by
    shape.

    Raises one of ``FALLBACK`` when the spec must be read by the general reader instead."""
    source = parser.source
    if "\x00" in source:
        raise Unsupported("a NUL byte")
    text = source.replace("\r\n", "\n").replace("\r", "\n") if "\r" in source else source
    code = COMMENT.sub("", text) if "#" in text else text
    if "$" in code:
        raise Unsupported("a $")
    if LOOP.search(code):
        raise Unsupported("a loop")  # unrolled by the general reader, which scopes its names
    if INDEX.search(code):  # which Inputs hold integer ids is settled before any node is made
        parser.index_lines = integer_inputs(_parse(text))
    parts = NAME.split(code)  # text, name, text, name, ..., text
    names = parts[1::2]
    codes = code.split("\n")
    lines = "$".join(parts[0::2]).split("\n")  # the shapes of the lines
    # The lines up to the last with a string or a backslash (a docstring at the top, say),
    # and the indented block it may be in, go to the general reader; after them, a # always
    # starts a comment.
    head = max(code.rfind(c) for c in NOT_READ)
    head = code.count("\n", 0, head) + 1 if head >= 0 else 0
    while 0 < head < len(codes) and (not codes[head] or codes[head][0] in " \t\f"):
        head += 1
    pos = sum(shape.count("$") for shape in lines[:head])
    if not KEYWORDS.isdisjoint(names[pos:]):
        raise Unsupported("a keyword")
    reader = _Reader(parser)
    if head:
        reader.general(0, head)
    shapes: dict[str, tuple] = {}
    depth = 0
    first = None  # the first line of the statements gathered for the general reader
    for i in range(head, len(lines)):
        shape = lines[i]
        known = shapes.get(shape)
        if known is None:
            known = shapes[shape] = _first_sight(shape)
        elif known[0] is NEW:
            count = known[1]
            known = shapes[shape] = reader.plan(shape, codes[i], names[pos : pos + count])
        kind, count, opens, run = known
        if kind is STATEMENT and depth == 0:
            if first is not None:
                reader.general(first, i)
                first = None
            try:
                run(names, pos, i + 1, codes[i])
            except _General:
                reader.general(i, i + 1)
        elif kind is not BLANK:
            first = i if first is None else first
            depth += opens
        pos += count
    if first is not None:
        reader.general(first, len(codes))
    if parser.graph.loss is None:
        raise Unsupported("no Loss")
    return parser.graph


def _parse(text: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text)


def _general_line(names: list[str], pos: int, line: int, code: str) -> None:
    raise _General


def _first_sight(shape: str) -> tuple:
    """(kind, number of $, brackets opened, no plan) for a shape met the first time."""
    if not shape.strip(" \t\f"):
        return (BLANK, shape.count("$"), 0, None)
    opens = sum(shape.count(c) for c in "([{") - sum(shape.count(c) for c in ")]}")
    return (NEW, shape.count("$"), opens, None)


class _Reader:
    """Plans for the shapes of one spec, run against one parser's state."""

    def __init__(self, parser) -> None:
        self.parser = parser

    def general(self, start: int, end: int) -> None:
        """The general reader reads lines ``start`` to ``end`` (0-based, end excluded)."""
        parser = self.parser
        # Its lines numbered as in the spec: after as many blank lines, unless so many that
        # renumbering the tree costs less (a short block far down a long spec).
        pad = start <= 64 * (end - start) + 1000
        try:
            text = "\n".join(parser.lines[start:end])
            tree = _parse("\n" * start + text if pad else text)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
            raise Unsupported("a syntax error") from e
        if not pad:
            ast.increment_lineno(tree, start)
        for stmt in tree.body:
            parser.line = stmt.lineno
            parser.statement(stmt)

    def plan(self, shape: str, code: str, names: list[str]) -> tuple:
        """(kind, number of $, brackets opened, plan) for ``shape``, met a second time in
        ``code``, whose plain names are ``names``."""
        count, opens = len(names), _first_sight(shape)[2]
        if not shape.isascii():
            return (OTHER, count, opens, None)
        try:
            tree = _parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return (OTHER, count, opens, None)
        try:
            planner = _Planner(self.parser, code, names, " ".join(shape.split()) == shape)
            run = planner.statement(tree.body)
        except (_NoPlan, SpecError, ops.GraphError, RecursionError):
            run = _general_line
        return (STATEMENT, count, 0, run)


Getter = Callable[[list], Node]


class _Planner:
    """Turns the statement of one line into a plan for every line of its shape.

    A plan is called with the spec's plain names, where its line's start, its line number
    and its text without comment."""

    def __init__(self, parser, code: str, names: list[str], normalized: bool) -> None:
        self.parser = parser
        self.code = code
        self.normalized = normalized  # the line is its statement's text as the graph keeps it
        self.slots = {m.start(): k for k, m in enumerate(NAME.finditer(code))}
        if len(self.slots) != len(names):
            raise _NoPlan
        self.names = names
        self.used: set[int] = set()
        self.reads: list[int | str] = []  # each value read: the index of its $, or its name

    def slot(self, e: ast.Name) -> int | str:
        """The index of name ``e``'s $, or the name itself if it is a fixed word."""
        k = self.slots.get(e.col_offset)
        if k is None:
            return e.id
        if k in self.used or e.id != self.names[k] or e.end_col_offset != e.col_offset + len(e.id):
            raise _NoPlan
        self.used.add(k)
        return k

    def statement(self, body: list[ast.stmt]):
        if len(body) != 1:
            raise _NoPlan
        stmt = body[0]
        tail = self.code[stmt.end_col_offset :] if stmt.end_lineno == 1 else "?"
        if stmt.col_offset != 0 or tail.strip(" \t\f"):
            raise _NoPlan  # the statement's text must be the whole line's
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            return self.equation(stmt.targets[0], stmt.value, None)
        if isinstance(stmt, ast.AnnAssign):
            return self.declaration(stmt)
        raise _NoPlan

    def target(self, t: ast.expr) -> int:
        """The index of the $ of the name bound (binding a fixed word is left to the general
        reader, which refuses most of them)."""
        if not isinstance(t, ast.Name) or t.col_offset not in self.slots:
            raise _NoPlan
        return self.slot(t)

    def finish(self) -> None:
        if len(self.used) != len(self.names):
            raise _NoPlan  # a $ that is no plain name here (a keyword argument's name)

    def equation(self, t: ast.expr, e: ast.expr, kind: str | None):
        """The plan of ``t = e`` (``kind`` None), or of ``t: Loss = e`` / ``t: Output = e``:
        what ``_Parser.bind`` and ``_Parser.declaration`` do."""
        target = self.target(t)
        value = self.getter(e, 0)
        if value is None:
            raise _NoPlan  # a constant value: the general reader folds and checks it
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
                raise _General
            if kind == "Loss" and (graph.loss is not None or node.shape != ()):
                raise _General
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
            raise _NoPlan
        kind = kind.id
        if kind in ("Loss", "Output") and dims is None and stmt.value is not None:
            return self.equation(stmt.target, stmt.value, kind)
        if kind not in LEAF_KINDS or (kind == "Input") != (stmt.value is None):
            raise _NoPlan
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
                raise _General
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
            raise _NoPlan
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
                raise _NoPlan
            return self.call(e, depth)
        raise _NoPlan

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
                raise _NoPlan
            if len(e.keywords) != 1 or e.keywords[0].arg != "axis":
                raise _NoPlan
            axis = self.parser.axis(e.keywords[0].value)
        if any(isinstance(a, ast.Starred) for a in e.args):
            raise _NoPlan
        args = [self.getter(a, depth + 1) for a in e.args]
        if None in args:
            raise _NoPlan  # a constant argument: its checks are the general reader's
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
                return ops.cross_entropy(x, target(v)) if x.shape else _general()

            return cross_entropy
        if name in BUILT_IN:
            raise _NoPlan
        functions = self.parser.functions
        args = [_node_only(a) for a in args]

        def user(v: list) -> Node:
            arity, body, _ = functions.get(name) or (-1, None, 0)
            if arity != len(args):
                raise _General
            return ops.elementwise(body, [a(v) for a in args], name)

        return user


def _general() -> Node:
    raise _General


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
                raise _General
            return x[0], y[0]

        return two

    def resolve(names: list[str], pos: int) -> list[Node]:
        bound = [get(names[pos + r] if type(r) is int else r) for r in reads]
        if None in bound:
            raise _General
        return [x[0] for x in bound]

    return resolve
