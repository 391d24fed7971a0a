"""A network: its declarations, named values and where each came from in the spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .node import Node, Op, toposort


def index_ranges(roots: list[Node]) -> dict[str, int]:
    """Integer Input name -> how many ids are valid (0 <= id < it): the fewest rows of the
    tables it indexes below ``roots``."""
    ranges: dict[str, int] = {}
    for node in toposort(roots):
        if node.op is Op.GATHER or node.op is Op.SCATTER_ADD:
            rows = node.args[0].shape[0] if node.op is Op.GATHER else node.attr.rows
            name = node.args[1].attr
            ranges[name] = min(rows, ranges.get(name, rows))
    return ranges


@dataclass
class Decl:
    """A declared Input, Param or Const: its node plus what the spec said about it."""

    node: Node
    line: int = 0
    init: tuple = (
        "zeros",
    )  # Params and Consts only: ("zeros",), ("normal", std), ("const", v), ...


@dataclass
class Graph:
    """A network: declarations, named results and where each came from.

    ``outputs`` maps Output names to nodes, ``loss`` is the per-example Loss. ``names``
    gives the user's name of a node (first binding wins) and ``lines`` the spec line that
    produced it; generated code uses both. ``equations`` keeps every equation in spec order
    as (name, node, line) for printing. ``consts`` are declared like ``params`` and given
    with them at run time, but never differentiated or trained.
    """

    name: str
    source: str = ""
    filename: str = "<spec>"
    inputs: dict[str, Decl] = field(default_factory=dict)
    params: dict[str, Decl] = field(default_factory=dict)
    equations: list[tuple[str, Node, int]] = field(default_factory=list)
    outputs: dict[str, Node] = field(default_factory=dict)
    loss_name: str = "C"
    loss: Node | None = None
    names: dict[Node, str] = field(default_factory=dict)
    lines: dict[Node, int] = field(default_factory=dict)
    functions: dict[str, Any] = field(default_factory=dict)  # user defs: (arity, body)
    statements: dict[int, str] = field(default_factory=dict)  # line -> its statement's text
    consts: dict[str, Decl] = field(default_factory=dict)  # Consts: like params, never trained

    @property
    def has_batch(self) -> bool:
        return bool(self.inputs)

    def source_line(self, line: int) -> str:
        """The statement at ``line`` as written, without its comment."""
        if line in self.statements:
            return self.statements[line]
        lines = self.source.splitlines()
        return lines[line - 1].strip() if 0 < line <= len(lines) else ""
