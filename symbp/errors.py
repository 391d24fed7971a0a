"""The one error users see for bad specs: ``SpecError``, with file:line:col and a caret."""

from __future__ import annotations


class SpecError(ValueError):
    """A problem in a spec, located: ``file:line:col: error: message``, the line, a caret."""

    def __init__(
        self, message: str, filename: str = "<spec>", line: int = 0, col: int = 0,
        source_line: str = "",
    ) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        self.col = col
        self.source_line = source_line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        head = f"{self.filename}:{self.line}:{self.col}: error: {self.message}"
        if not self.source_line:
            return head
        text = self.source_line.expandtabs(4)
        caret = " " * max(self.col - 1, 0) + "^"
        return f"{head}\n    {text}\n    {caret}"
