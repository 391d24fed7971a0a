"""The one error users see for bad specs: ``SpecError``, with file:line:col and a caret."""

from __future__ import annotations

import unicodedata

TAB = 4  # tab stops when showing a source line
WIDTH = 100  # longer source lines are shown as a window around the column


class GraphError(ValueError):
    """An operation that cannot be built: shapes that do not fit, a constant that is not a
    finite number. The parser adds the spec location. (Raised by ``symbp.ir.ops`` and the
    rules it builds on, ``symbp.ir.shape_rules`` and ``symbp.ir.indexing``.)"""


class SpecError(ValueError):
    """A problem in a spec, located: ``file:line:col: error: message``, the line, a caret.

    ``line`` and ``col`` are 1-based (``col`` counts characters, not bytes); ``line`` 0
    means the problem is the file as a whole (say, it cannot be read).
    """

    def __init__(
        self,
        message: str,
        filename: str = "<spec>",
        line: int = 0,
        col: int = 0,
        source_line: str = "",
    ) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        self.col = col
        self.source_line = source_line
        super().__init__(self.__str__())

    def __reduce__(self):  # keep the location through pickling (multiprocessing, pytest-xdist)
        return (type(self), (self.message, self.filename, self.line, self.col, self.source_line))

    def __str__(self) -> str:
        if self.line < 1:
            return f"{self.filename}: error: {self.message}"
        head = f"{self.filename}:{self.line}:{self.col}: error: {self.message}"
        if not self.source_line:
            return head
        text, caret = excerpt(self.source_line, self.col)
        return f"{head}\n    {text}\n    {caret}"


def excerpt(line: str, col: int) -> tuple[str, str]:
    """A source line as printable text and the caret line under character ``col``.

    Tabs are expanded the same way in both lines, so the caret stays under its character;
    control characters (form feed, NUL, ...) show as "?"; a long line is cut to a window
    around the column, marked with "...".
    """
    shown: list[str] = []
    caret_at = None
    for i, ch in enumerate(line):
        if i == col - 1:
            caret_at = len(shown)
        if ch == "\t":
            shown.extend(" " * (TAB - len(shown) % TAB))
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            shown.append("?")
        else:
            shown.append(ch)
    if caret_at is None:  # the column is past the end of the line (end of input)
        caret_at = len(shown) + max(col - 1 - len(line), 0)
    start = 0
    if len(shown) > WIDTH:
        start = min(max(caret_at - WIDTH // 2, 0), len(shown) - WIDTH)
        end = start + WIDTH
        shown = (
            (["..."] if start else []) + shown[start:end] + (["..."] if end < len(shown) else [])
        )
        caret_at = caret_at - start + (3 if start else 0)
    return "".join(shown), " " * caret_at + "^"
