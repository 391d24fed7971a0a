"""Program -> Routines: statement order, variable names and spec-line comments.

A ``Routine`` is the language-neutral description of one generated function: which nodes
become variables (in order), what each is called and which spec line it cites, and what is
returned. Nodes that are not variables are printed inline into their single consumer.
Renderers for each language turn routines into code.
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass, field

from .ir import Node, Op
from .pipeline import Program


class Namer:
    """Hands out identifiers: the wanted one if free, else with ``_`` appended until free."""

    def __init__(self, reserved: set[str]) -> None:
        self.taken = set(reserved)

    def __call__(self, want: str) -> str:
        name = want
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name


PYTHON_RESERVED = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))


@dataclass
class Statement:
    node: Node
    name: str
    line: int  # spec line, 0 if none, PARAM_GRADS_LINE for the final gradients
    backward: bool  # made by differentiation


@dataclass
class Routine:
    """One generated function: variables in order and the nodes it returns."""

    statements: list[Statement]
    returns: dict[str, Node]
    names: dict[Node, str] = field(default_factory=dict)  # variable name of each variable

    def uses(self, node: Node) -> bool:
        return any(node is s.node for s in self.statements) or node in self.returns.values()


def leaf_name(node: Node) -> str:
    if node.op is Op.BATCH_SIZE:
        return "n"
    return node.attr


def schedule(
    program: Program,
    roots: dict[str, Node],
    namer: Namer,
    leaves: dict[Node, str] | None = None,
    max_inline: int = 6,
    forward_only: bool = False,
    can_inline=None,
) -> Routine:
    """Order and name what ``roots`` need.

    A node becomes a variable when it is named (by the user, or as the adjoint of a named
    value), used more than once, returned, or when inlining it would nest more than
    ``max_inline`` operations deep. ``forward_only`` routines ignore the adjoint names.
    ``can_inline(node, consumer)``, asked of every consumer, may forbid inlining further
    (the C backend inlines only elementwise nodes into the reductions that consume them).
    """
    order, uses = _order_and_uses(list(roots.values()))
    consumers: dict[Node, list[Node]] = {}
    if can_inline is not None:
        for node in order:
            for a in node.args:
                consumers.setdefault(a, []).append(node)
    returned = set(roots.values())  # nodes hash by identity
    names: dict[Node, str] = dict(leaves or {})
    statements: list[Statement] = []
    depth: dict[Node, int] = {}
    temp = 0
    user_names = program.names
    lines = program.lines
    backward = program.backward
    leaf_ops = (Op.INPUT, Op.PARAM, Op.BATCH_SIZE)
    broadcast, const = Op.BROADCAST, Op.CONST
    for node in order:
        if node.op in leaf_ops and node not in names:
            names[node] = namer(leaf_name(node))
    for node in order:
        op = node.op
        if op in leaf_ops or op is const:
            depth[node] = 0
            continue
        d = 0
        for a in node.args:
            da = depth[a]
            if da > d:
                d = da
        named = user_names.get(node)
        if forward_only and named is not None and node in backward:
            named = None
        if op is broadcast and node.args[0].op is const and named is None:
            variable = node in returned  # a constant: print it where it is used
        else:
            variable = named is not None or uses[node] > 1 or d >= max_inline or node in returned
        if not variable and can_inline is not None:
            variable = not all(can_inline(node, c) for c in consumers.get(node, ()))
        if not variable:
            depth[node] = d + 1
            continue
        if named is None:
            temp += 1
            named = f"t{temp}"
        names[node] = name = namer(named)
        depth[node] = 0
        statements.append(Statement(node, name, lines.get(node, 0), node in backward))
    return Routine(statements, dict(roots), names)


def _order_and_uses(roots: list[Node]) -> tuple[list[Node], dict[Node, int]]:
    """``toposort(roots)`` and ``use_counts(roots)`` in one traversal."""
    order: list[Node] = []
    uses: dict[Node, int] = {}
    append = order.append
    for root in roots:
        if root in uses:
            uses[root] += 1
            continue
        uses[root] = 1
        stack = [(root, iter(root.args))]
        push, pop = stack.append, stack.pop
        while stack:
            node, children = stack[-1]
            for child in children:
                if child in uses:
                    uses[child] += 1
                else:
                    uses[child] = 1
                    push((child, iter(child.args)))
                    break
            else:
                pop()
                append(node)
    return order, uses


_UNSAFE = re.compile(r"[^\x20-\x5b\x5d-\x7e\u00a0-\ud7ff\ue000-\ufffd]")


def comment_text(text: str) -> str:
    """A spec line made safe for a one-line comment in any language."""
    if text.isascii() and text.isprintable() and "\\" not in text:  # the usual, all safe
        return text.rstrip()
    return _UNSAFE.sub("#", text).rstrip()


def doc_text(text: str) -> str:
    """User text (a file name, a title, a spec line) made safe inside a docstring or a C
    comment: no quote to close it, no comment delimiter, no trigraph."""
    return (comment_text(text).replace('"', "'").replace("*/", "*_/").replace("/*", "/_*")
            .replace("??", "?_?"))
