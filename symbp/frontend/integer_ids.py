"""Inputs of integer ids: which Inputs a spec uses as an index (``E[ids]``).

Nodes are immutable, so whether an Input holds integer ids is settled before any node is
made, by one pass over the statements; both readers (``parser`` and the fast path of
``shapes``) ask it here, and build such an Input with ``dtype`` "int".
"""

from __future__ import annotations

import ast

from ..ir import ops
from ..ir.node import Node


def integer_inputs(tree: ast.Module) -> dict[str, int]:
    """The Inputs a spec uses as an index (``E[ids]``), which hold integer ids, and the first
    line where each indexes: settled before any node is made, as nodes are immutable."""
    inputs = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            kind = stmt.annotation
            kind = kind.value if isinstance(kind, ast.Subscript) else kind
            if isinstance(kind, ast.Name) and kind.id == "Input":
                inputs.add(stmt.target.id)
    lines: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Name):
            if node.slice.id in inputs:
                line = min(node.lineno, lines.get(node.slice.id, node.lineno))
                lines[node.slice.id] = line
    return lines


def make_input(ids: dict, name: str, shape: tuple[int, ...]) -> Node:
    return ops.input_node(name, shape, integer=name in ids)


class FloatValues:
    """The values bound, but for the Inputs of integer ids (``ids``): a plan reading one
    leaves its line to the general reader, which allows them only as an index."""

    def __init__(self, values: dict, ids: dict) -> None:
        self.values, self.ids = values, ids

    def get(self, name: str):
        return None if name in self.ids else self.values.get(name)
