"""The spec as text, for the parser: its lines, Python's syntax tree of it, its number
literals, and errors located in it.

``SpecSource`` is what the readers of ``symbp.frontend`` share: a ``SpecError`` at an AST node or
at a (line, column), Python's own syntax errors made ``SpecError``s, what users call each
construct, and the source text of one, for messages and for the statements generated code
cites.
"""

from __future__ import annotations

import ast
import io
import math
import re
import textwrap
import tokenize
import warnings

from ..errors import SpecError

STATEMENT_NAMES = {
    ast.For: "a for loop",
    ast.AsyncFor: "a for loop",
    ast.While: "a while loop",
    ast.If: "an if statement",
    ast.Import: "an import",
    ast.ImportFrom: "an import",
    ast.AugAssign: "augmented assignment (bind a new name instead)",
    ast.ClassDef: "a class",
    ast.With: "a with statement",
    ast.AsyncWith: "a with statement",
    ast.Return: "return outside a def",
    ast.Delete: "del",
    ast.Global: "global",
    ast.Nonlocal: "nonlocal",
    ast.Try: "try",
    ast.TryStar: "try",
    ast.Raise: "raise",
    ast.Assert: "assert",
    ast.AsyncFunctionDef: "an async def",
    ast.Pass: "pass",
    ast.Break: "break",
    ast.Continue: "continue",
    ast.Match: "a match statement",
}
EXPRESSION_NAMES = {  # what users call the constructs the language leaves out
    ast.Compare: "a comparison",
    ast.Subscript: "indexing",
    ast.Lambda: "a lambda",
    ast.IfExp: "a conditional expression",
    ast.BoolOp: "and/or",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "an assignment expression (:=)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Starred: "* unpacking",
    ast.Slice: "a slice",
    ast.Call: "a call of an expression",
}
OPERATOR_NAMES = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Not: "not",
    ast.Invert: "~",
}


def split_lines(source: str) -> list[str]:
    """The lines of ``source`` as Python counts them (any of the three newlines)."""
    return re.split(r"\r\n|\r|\n", source) if "\r" in source else source.split("\n")


class SpecSource:
    """One spec's text: where its constructs are and what they are called."""

    def __init__(self, source: str, filename: str) -> None:
        self.source = source
        self.filename = filename
        self.lines = split_lines(source)

    def error(self, where: ast.AST | tuple[int, int], message: str) -> SpecError:
        """A ``SpecError`` at an AST node (its UTF-8 byte offset made a column) or (line, col)."""
        if isinstance(where, tuple):
            line, col = where
        else:
            line = getattr(where, "lineno", 1)
            text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
            offset = getattr(where, "col_offset", 0)
            col = len(text.encode("utf-8")[:offset].decode("utf-8", "replace")) + 1
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return SpecError(message, self.filename, line, col, text)

    def syntax_tree(self) -> ast.Module:
        """``ast.parse``, with its errors (and silenced warnings) turned into ``SpecError``."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. SyntaxWarning: invalid escape sequence
                return ast.parse(self.source, self.filename)
        except SyntaxError as e:
            line, col, message = e.lineno or 1, e.offset or 0, e.msg
            text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
            if isinstance(e, IndentationError):  # Python's column varies; the text's start
                col = len(text) - len(text.lstrip()) + 1
            if "integer string conversion" in message:  # Python's 4300-digit limit
                message = "integer literal with too many digits"
                digits = re.search(r"[0-9_]{4000,}", text)
                col = digits.start() + 1 if digits else col
            raise self.error((line, max(col, 1)), f"syntax error: {message}") from None
        except (RecursionError, MemoryError):
            raise self.error(
                self._too_deep(), "the expression is nested too deeply to parse"
            ) from None

    def _too_deep(self) -> tuple[int, int]:
        """Where ``ast.parse`` ran out of stack: the first logical line too deep on its own."""
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(self.source).readline))
        except (tokenize.TokenError, SyntaxError):
            return (1, 1)
        skip = (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)
        start = None
        for tok in tokens:
            if start is None and tok.type not in skip:
                start = tok.start
            if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER) and start is not None:
                chunk = textwrap.dedent("\n".join(self.lines[start[0] - 1 : tok.end[0]]))
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ast.parse(chunk)
                except (RecursionError, MemoryError):
                    return (start[0], start[1] + 1)
                except SyntaxError:
                    pass
                start = None
        return (1, 1)

    def source_of(self, node: ast.AST) -> str:
        """The source text of ``node``, from the lines already split.

        (``ast.get_source_segment`` splits the whole source again on every call, which made
        parsing quadratic in the length of the spec.)
        """
        end_line = getattr(node, "end_lineno", None)
        end = getattr(node, "end_col_offset", None)
        if end_line is None or end is None:
            return ""
        lines = [text.encode("utf-8") for text in self.lines[node.lineno - 1 : end_line]]
        if len(lines) == 1:
            return lines[0][node.col_offset : end].decode("utf-8", "replace")
        lines[0], lines[-1] = lines[0][node.col_offset :], lines[-1][:end]
        return b"\n".join(lines).decode("utf-8", "replace")

    def segment(self, e: ast.AST, limit: int = 60) -> str:
        """The source text of ``e`` on one line, shortened to ``limit`` characters."""
        seg = " ".join(self.source_of(e).split())
        return seg if len(seg) <= limit else seg[: limit - 3] + "..."

    def describe(self, e: ast.AST) -> str:
        """What a user calls construct ``e``, with its source: "a comparison `a < 2`"."""
        if isinstance(e, ast.BinOp | ast.UnaryOp) and type(e.op) in OPERATOR_NAMES:
            what = f"the operator {OPERATOR_NAMES[type(e.op)]}"
        elif isinstance(e, ast.BinOp) and isinstance(e.op, ast.MatMult):
            what = "the operator @"
        else:
            what = EXPRESSION_NAMES.get(type(e), type(e).__name__)
        seg = self.segment(e)
        return f"{what} `{seg}`" if seg else what

    @staticmethod
    def describe_statement(stmt: ast.stmt) -> str:
        """What a user calls statement ``stmt``: "a for loop"."""
        if isinstance(stmt, ast.Expr):
            return "an expression statement (bind it to a name)"
        return STATEMENT_NAMES.get(type(stmt), f"a {type(stmt).__name__} statement")

    def literal(self, e: ast.expr) -> float | None:
        """A (signed) number literal as a float, or None if ``e`` is not one."""
        sign = 1
        while isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.UAdd)):
            sign *= -1 if isinstance(e.op, ast.USub) else 1
            e = e.operand
        if isinstance(e, ast.Constant) and type(e.value) in (int, float):
            return self.finite(e, e.value) * sign
        return None

    def finite(self, e: ast.expr, value: int | float) -> float:
        """A literal as a float; one that overflows (1e999, a 400-digit integer) is an error."""
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self.error(e, "number is too large for a float (at most about 1.8e308)")
        return number
