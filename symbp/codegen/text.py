"""Text every generated file needs: user text made safe in comments and docstrings, shapes
and dicts of shapes as Python, and a spec's title."""

from __future__ import annotations

import io
import re

from ..ir.graph import Graph

_UNSAFE = re.compile(r"[^\x20-\x5b\x5d-\x7e\u00a0-\ud7ff\ue000-\ufffd]")


def comment_text(text: str) -> str:
    """A spec line made safe for a one-line comment in any language."""
    if text.isascii() and text.isprintable() and "\\" not in text:  # (the usual: all safe)
        return text.rstrip()
    return _UNSAFE.sub("#", text).rstrip()


def doc_text(text: str) -> str:
    """User text (a file name, a title, a spec line) made safe inside a docstring or a C
    comment: no quote to close it, no comment delimiter, no trigraph."""
    return (
        comment_text(text)
        .replace('"', "'")
        .replace("*/", "*_/")
        .replace("/*", "/_*")
        .replace("??", "?_?")
    )


def shape_text(shape) -> str:
    """Python text of a tuple of dimensions (numbers, or names such as the batch's n)."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def dict_text(d: dict[str, tuple]) -> str:
    """Python text of a dict of shapes, one entry a line."""
    if not d:
        return "{}"
    return "{\n" + "".join(f"    {k!r}: {shape_text(v)},\n" for k, v in d.items()) + "}"


def title(graph: Graph) -> str:
    """The spec's first comment, if it opens with one."""
    for line in io.StringIO(graph.source):  # (line by line: a spec may be long)
        line = line.strip()
        if line.startswith("#"):
            return doc_text(line.lstrip("#").strip())[:100] or "a symbp network"
        if line:
            break
    return "a symbp network"
