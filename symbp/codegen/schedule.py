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
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat

from ..ir.node import Node, Op
from ..passes.pipeline import Program


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
    """One generated function: its variables in order (one statement computing each), what
    each is called, the spec line it cites and whether differentiation made it, and the
    nodes it returns. ``statements`` has the same, one object per variable."""

    variables: list[Node]
    returns: dict[str, Node]
    names: dict[Node, str]  # variable name of each variable (and of each leaf)
    lines: list[int]  # per variable: spec line, 0 if none, PARAM_GRADS_LINE for the gradients
    backward: list[bool]  # per variable: made by differentiation

    @cached_property
    def statements(self) -> list[Statement]:
        names = self.names
        return [
            Statement(node, names[node], line, back)
            for node, line, back in zip(self.variables, self.lines, self.backward)
        ]


def leaf_name(node: Node) -> str:
    if node.op is Op.BATCH_SIZE:
        return "n"
    return node.attr


_LEAF, _CONST, _BROADCAST = 1, 2, 3
_KIND = {
    Op.INPUT: _LEAF,
    Op.PARAM: _LEAF,
    Op.BATCH_SIZE: _LEAF,
    Op.CONST: _CONST,
    Op.BROADCAST: _BROADCAST,
}


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
    order, leaf_nodes, uses = _order_and_uses(list(roots.values()))
    consumers: dict[Node, list[Node]] = {}
    if can_inline is not None:
        for node in order:
            for a in node.args:
                consumers.setdefault(a, []).append(node)
    returned = set(roots.values())  # nodes hash by identity
    names: dict[Node, str] = dict(leaves or {})
    for node in leaf_nodes:
        kind = _KIND.get(node.op)
        if kind == _LEAF and node not in names:
            names[node] = namer(leaf_name(node))
        elif kind != _LEAF and kind != _CONST:
            raise AssertionError(f"{node.op} without arguments")
    variables: list[Node] = []
    depth: dict[Node, int] = {}  # operations an inlined node nests; 0 for the others
    depth_of = depth.get
    temp = 0
    user_names = program.names.get
    backward = program.backward
    kind_of = _KIND.get
    plain, taken = type(namer) is Namer, namer.taken
    for node in order:  # the operations
        kind = kind_of(node.op)
        named = user_names(node)
        if forward_only and named is not None and node in backward:
            named = None
        d = -1  # not yet needed
        if kind == _BROADCAST and named is None and node.args[0].op is Op.CONST:
            variable = node in returned  # a constant: print it where it is used
        elif named is not None or uses[node] > 1 or node in returned:
            variable = True
        else:
            d = 0
            for a in node.args:
                da = depth_of(a, 0)
                if da > d:
                    d = da
            variable = d >= max_inline
        if not variable and can_inline is not None:
            variable = not all(can_inline(node, c) for c in consumers.get(node, ()))
        if not variable:
            if d < 0:
                d = max([depth_of(a, 0) for a in node.args], default=0)
            depth[node] = d + 1
            continue
        if named is None:
            temp += 1
            named = f"t{temp}"
        if plain and named not in taken:  # what Namer would do, without the call
            taken.add(named)
            names[node] = named
        else:
            names[node] = namer(named)
        variables.append(node)
    lines = list(map(program.lines.get, variables, repeat(0)))
    back = list(map(backward.__contains__, variables))
    return Routine(variables, dict(roots), names, lines, back)


def _order_and_uses(roots: list[Node]) -> tuple[list[Node], list[Node], dict[Node, int]]:
    """``toposort(roots)`` split into the operations and the leaves (the nodes without
    arguments), each in that order, and the use counts of ``ir.order_and_uses(roots)``,
    in one traversal."""
    inner: list[Node] = []
    leaves: list[Node] = []
    uses: dict[Node, int] = {}
    append, leaf, count = inner.append, leaves.append, uses.get
    for root in roots:
        if root in uses:
            uses[root] += 1
            continue
        uses[root] = 1
        if not root.args:
            leaf(root)
            continue
        stack = [(root, iter(root.args))]
        push, pop = stack.append, stack.pop
        while stack:
            node, children = stack[-1]
            for child in children:
                n = count(child)
                if n is not None:
                    uses[child] = n + 1
                elif child.args:
                    uses[child] = 1
                    push((child, iter(child.args)))
                    break
                else:  # a leaf: done as soon as seen
                    uses[child] = 1
                    leaf(child)
            else:
                pop()
                append(node)
    return inner, leaves, uses


_UNSAFE = re.compile(r"[^\x20-\x5b\x5d-\x7e\u00a0-\ud7ff\ue000-\ufffd]")


def comment_text(text: str) -> str:
    """A spec line made safe for a one-line comment in any language."""
    if text.isascii() and text.isprintable() and "\\" not in text:  # the usual, all safe
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
