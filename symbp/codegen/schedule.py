"""Program -> Routines: statement order, variable names and spec-line comments.

A ``Routine`` is the language-neutral description of one generated function: which nodes
become variables (in order), what each is called, which spec line it cites, and what is
returned. Nodes that are not variables are printed inline into their single consumer.
Each backend turns routines into code.
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from ..ir.expr import Expr
from ..ir.node import Node, Op, order_and_uses
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


class Statement(NamedTuple):
    node: Node
    name: str
    line: int  # spec line, 0 if none, PARAM_GRADS_LINE for the final gradients
    backward: bool  # made by differentiation


@dataclass
class Routine:
    """One generated function: a statement per variable, in order, and the nodes it
    returns; ``names`` holds the name of every variable and of every leaf it reads."""

    statements: list[Statement]
    returns: dict[str, Node]
    names: dict[Node, str]

    @property
    def variables(self) -> list[Node]:
        return [st.node for st in self.statements]


def _traverse(roots: dict[str, Node], names: dict[Node, str], consumers: bool) -> tuple:
    """The nodes ``roots`` need (not through the values ``names`` has, computed before),
    arguments first; how often each is used (an argument an expression reads twice counts
    twice); and, if asked for, the consumers of each."""
    known = {node for node in names if node.args}  # values computed before (not Inputs)
    order, uses = order_and_uses(list(roots.values()), stop=known)
    users: dict[Node, list[Node]] = {}
    for node in order:
        if node in known:
            continue
        if consumers:
            for a in node.args:
                users.setdefault(a, []).append(node)
        if node.op is Op.EW:
            for i in _read_twice(node.attr):
                uses[node.args[i]] += 1
    return order, uses, users


@lru_cache(maxsize=65536)  # a program repeats a few expressions many times
def _read_twice(e: Expr) -> tuple[int, ...]:
    """The arguments ``e`` reads more than once."""
    return tuple(i for i in e.args_used if e.uses(i) > 1)


def leaf_name(node: Node) -> str:
    return "n" if node.op is Op.BATCH_SIZE else node.attr


def schedule(
    program: Program,
    roots: dict[str, Node],
    namer: Namer,
    leaves: dict[Node, str] | None = None,
    max_inline: int = 6,
    forward_only: bool = False,
    can_inline: Callable[[Node, Node], bool] | None = None,
) -> Routine:
    """Order and name what ``roots`` need.

    ``leaves`` names nodes the routine reads without computing them: the Inputs and Params,
    and values computed before it runs. A node becomes a variable when it is named (by the
    user, or as the adjoint of a named value), used more than once, returned, or when
    inlining it would nest more than ``max_inline`` operations deep (an expression that reads
    an argument twice counts as two uses). ``forward_only``
    routines ignore the adjoint names. ``can_inline(node, consumer)``, asked of every
    consumer, may forbid inlining further (the C backend inlines only elementwise nodes into
    the reductions that consume them).
    """
    names: dict[Node, str] = dict(leaves or {})
    order, uses, consumers = _traverse(roots, names, can_inline is not None)
    operations = [node for node in order if node.args and node not in names]
    for node in order:  # the leaves first: their names are the spec's
        if not node.args and node not in names and node.op is not Op.CONST:
            names[node] = namer(leaf_name(node))  # (constants print where they are used)
    returned = set(roots.values())
    user_names, backward = program.names, program.backward
    statements: list[Statement] = []
    depth: dict[Node, int] = {}  # operations an inlined node nests; 0 for the others
    temporaries = 0
    for node in operations:
        name = user_names.get(node)
        if forward_only and name is not None and node in backward:
            name = None
        if node.op is Op.BROADCAST and node.args[0].op is Op.CONST and name is None:
            variable = node in returned  # a constant: print it where it is used
        else:
            variable = name is not None or uses[node] > 1 or node in returned
        if not variable:
            d = 1 + max([depth.get(a, 0) for a in node.args])
            variable = d > max_inline
        if not variable and can_inline is not None:
            variable = not all(can_inline(node, c) for c in consumers.get(node, ()))
        if not variable:
            depth[node] = d
            continue
        if name is None:
            temporaries += 1
            while f"t{temporaries}" in namer.taken:  # after an earlier routine's temporaries
                temporaries += 1
            name = f"t{temporaries}"
        name = names[node] = namer(name)
        statements.append(Statement(node, name, program.lines.get(node, 0), node in backward))
    return Routine(statements, dict(roots), names)
