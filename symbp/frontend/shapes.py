"""The parser's fast path: a spec read shape by shape instead of node by node.

A speed device, kept because it carries a large share of compiling a long spec (about 40%
for the 1e4-line graphs of ``bench/scale.py``; BENCHMARKS.md). A large spec repeats a few
statement shapes with different names (``h7 = tanh(h3) * h5``, ``W9: Param[8, 8] =
glorot``). The general reader of ``symbp.frontend.parser`` builds an ``ast`` tree for every
line and walks it; here every line is reduced to its shape, the line with its comment
dropped and each plain name replaced by ``$``, and each shape is parsed once into a plan
(``symbp.frontend.plans``): the ``symbp.ir.ops`` calls its statement makes, the checks on
its constants already done. Each line of that shape runs the plan on its own names.

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

from ..errors import SpecError
from ..ir import ops
from ..ir.graph import Graph
from .integer_ids import integer_inputs
from .plans import NAME, General, NoPlan, Planner

KEYWORDS = frozenset([*keyword.kwlist, "__debug__"])
COMMENT = re.compile(r"#[^\n]*")
LOOP = re.compile(r"^[ \t]*(?:async[ \t]+)?for\b", re.MULTILINE)
INDEX = re.compile(r"\[\s*[^\W\d]\w*\s*\]")  # a tensor indexed by a name, as E[ids]
NOT_READ = ("'", '"', "\\")  # strings and continuations: the general reader's alone


class Unsupported(Exception):
    """The fast path does not read this spec; the general reader does."""


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
    head = _general_head(code, codes)
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
            except General:
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


def _general_head(code: str, codes: list[str]) -> int:
    """How many lines at the top go to the general reader: those up to the last with a
    string or a backslash (a docstring at the top, say), and the indented block it may be
    in; after them, a # always starts a comment."""
    head = max(code.rfind(c) for c in NOT_READ)
    head = code.count("\n", 0, head) + 1 if head >= 0 else 0
    while 0 < head < len(codes) and (not codes[head] or codes[head][0] in " \t\f"):
        head += 1
    return head


def _parse(text: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text)


def _general_line(names: list[str], pos: int, line: int, code: str) -> None:
    raise General


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
            planner = Planner(self.parser, code, names, " ".join(shape.split()) == shape)
            run = planner.statement(tree.body)
        except (NoPlan, SpecError, ops.GraphError, RecursionError):
            run = _general_line
        return (STATEMENT, count, 0, run)
