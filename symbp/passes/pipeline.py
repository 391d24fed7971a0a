"""The pipeline: every pass by name, in order, from a parsed network to an optimized program.

    stabilize (the forward graph: stabilize, canonicalize, constant_fold, simplify, cse)
    -> grad -> simplify (canonicalize, constant_fold, simplify, cse, specialize)
    -> fuse (for the C backend: ``optimize(fuse=False)`` leaves it out)

Each pass is one traversal applying one or more rule sets of ``symbp.rules``. Every
traversal rebuilds the nodes above any node it rewrites (nodes are immutable), so the
passes are few and each does all it can: the forward graph is simplified along with its
stabilization, before differentiation, and ``grad`` builds its adjoints in the form the
rules would give them (constants folded, a repeated costly part split out), so that after
it the rules fire where there is something new to do, and not in a cascade.

``optimize`` returns a ``Program``: the forward roots, the gradient of every Param, and the
names and spec lines that generated code and ``symbp grad`` print.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..autodiff import backward as autodiff
from ..ir.graph import Graph
from ..ir.node import Node, Op, gc_paused, toposort
from . import rewrite, rules
from .rewrite import Pass, PassStats

FORWARD_PASSES = [
    Pass(
        "stabilize",
        [rules.STABILIZE, rules.CANONICALIZE, rules.CONSTANT_FOLD, rules.SIMPLIFY, rules.CSE],
    )
]
PARAM_GRADS_LINE = -1  # the "line" of the final Param gradients: they gather all lines
# Rule sets that cannot undo each other share a traversal; fusion must not inline a value
# specialize is about to reuse, so it comes last, on its own.
FUSE_PASS = Pass("fuse", [rules.FUSE])  # the C backend's loops; NumPy programs skip it
GRADIENT_PASSES = [
    Pass(
        "simplify",
        [rules.CANONICALIZE, rules.CONSTANT_FOLD, rules.SIMPLIFY, rules.CSE, rules.SPECIALIZE],
    ),
    FUSE_PASS,
]


@dataclass
class Program:
    """An optimized network: forward values, gradients, and what to call each node."""

    graph: Graph
    outputs: dict[str, Node]  # Output names, then the Loss name -> per-example node
    grads: dict[str, Node]  # Param name -> gradient of the batch-mean loss
    names: dict[Node, str]  # user names, and "d<name>" for adjoints of named values
    lines: dict[Node, int]  # spec line each node comes from
    backward: set[Node] = field(default_factory=set)  # nodes made by grad
    stats: list[PassStats] = field(default_factory=list)  # the last one's nodes_after is
    # counted when asked for, by pass_stats()

    @property
    def loss(self) -> Node:
        return self.outputs[self.graph.loss_name]

    def pass_stats(self) -> list[PassStats]:
        """What each pass did, every node count filled in."""
        for st in self.stats:
            if st.nodes_after < 0:  # the last pass's: the program's own count
                st.nodes_after = len(
                    toposort(list(self.outputs.values()) + list(self.grads.values()))
                )
        return self.stats


def _follow(mapping: dict[Node, Node], table: dict[Node, object]) -> dict[Node, object]:
    """Carry a node-keyed table through a rewrite (``mapping``: the nodes it changed); the
    first key (in the table's order) to land on a node wins. The result's order is not
    the table's: nothing reads these tables in order."""
    if mapping.keys().isdisjoint(table):
        return table
    moved = [k for k in mapping if k in table]
    if len(moved) < len(table) // 8:  # a few keys move: the others stay where they are
        out = dict(table)
        for k in moved:
            del out[k]
        landed: dict[Node, object] = {}
        for k in moved:
            new = mapping[k]
            if new in out or new in landed:  # two keys land on one node: the table's
                break  # order decides which wins, below
            landed[new] = table[k]
        else:
            out.update(landed)
            return out
    out = {}
    for node, value in table.items():
        out.setdefault(mapping.get(node, node), value)
    return out


@gc_paused
def optimize(graph: Graph, verify: bool | None = None, trace=None, fuse: bool = True) -> Program:
    """Stabilize, differentiate and optimize ``graph``; see the module docstring.

    ``fuse=False`` leaves out the fuse pass. Its fusion groups are the C backend's loops;
    the NumPy backend needs none, as its printer writes a value used once into the
    expression that uses it (the examples' modules are the same either way).

    With ``verify`` (default: the environment variable SYMBP_VERIFY=1, as in the tests)
    the IR verifier checks the graph after every pass. ``trace(where, outputs, grads)``, if
    given, sees the program after each step ("parse", "grad", then each pass by name; grads
    is empty before "grad").
    """
    if verify is None:
        verify = os.environ.get("SYMBP_VERIFY") == "1"
    check = _verifier if verify else (lambda roots, where: None)
    trace = trace or (lambda where, outputs, grads: None)
    stats: list[PassStats] = []
    outputs = dict(graph.outputs)
    outputs[graph.loss_name] = graph.loss
    names = dict(graph.names)
    lines = dict(graph.lines)
    keep = set(names)  # named values stay variables (a set of nodes: they hash by identity)
    check(list(outputs.values()), "parse")
    trace("parse", outputs, {})

    for p in FORWARD_PASSES:
        mapping, st = rewrite.run_pass(p, list(outputs.values()), keep)
        stats.append(st)
        outputs = {k: mapping.get(v, v) for k, v in outputs.items()}
        names, lines = _follow(mapping, names), _follow(mapping, lines)
        check(list(outputs.values()), p.name)
        trace(p.name, outputs, {})

    if stats and stats[-1].nodes_after < 0:  # differentiation comes next: count it now
        stats[-1].nodes_after = len(toposort(list(outputs.values())))
    stable = Graph(**{**graph.__dict__, "loss": outputs[graph.loss_name]})
    origin: dict[Node, Node] = {}
    adjoints: dict[Node, Node] = {}
    grads = autodiff.grad(stable, origin, adjoints)
    check(list(grads.values()), "grad")
    trace("grad", outputs, grads)
    forward = set(lines)
    for adj, fwd in origin.items():
        if adj not in forward and fwd in lines:
            lines.setdefault(adj, lines[fwd])
    # an adjoint that is an unnamed forward value (the adjoint of a2 in a quadratic cost is
    # a2 - y) is shown, and named, as the adjoint it is
    backward = {n for n in origin if n not in forward or n not in names}
    forward_names = dict(names)
    for pname, g in grads.items():
        if g.op not in (Op.PARAM, Op.INPUT, Op.CONST, Op.BROADCAST):
            names.setdefault(g, "d" + pname)
    for fwd, adj in adjoints.items():
        if fwd in forward_names and adj.op not in (Op.CONST, Op.BROADCAST) and adj in backward:
            names.setdefault(adj, "d" + forward_names[fwd])
    keep = set(names)

    roots = list(outputs.values()) + list(grads.values())
    for p in GRADIENT_PASSES if fuse else [p for p in GRADIENT_PASSES if p is not FUSE_PASS]:
        mapping, st = rewrite.run_pass(p, roots, keep)
        stats.append(st)
        outputs = {k: mapping.get(v, v) for k, v in outputs.items()}
        grads = {k: mapping.get(v, v) for k, v in grads.items()}
        before = lines
        names, lines = _follow(mapping, names), _follow(mapping, lines)
        made_backward = {new for new, old in st.born.items() if old in backward}
        if not mapping.keys().isdisjoint(backward):
            backward = {mapping.get(n, n) for n in backward}
        backward |= made_backward
        for new, old in st.born.items():  # a node a rule made cites its origin's line
            if old in before:
                lines.setdefault(new, before[old])
        roots = list(outputs.values()) + list(grads.values())
        check(roots, p.name)
        trace(p.name, outputs, grads)
    _count_after(stats, roots)
    # a backward node a rewrite turned into a named forward value (u + u into the Output
    # f = 2 u) is that forward value: forward() computes it under its own name
    user = set(graph.names.values())
    backward -= set(outputs.values()) | {n for n, name in names.items() if name in user}
    for g in grads.values():
        if g.op not in (Op.PARAM, Op.INPUT) and lines.get(g, 0) <= 0:
            backward.add(g)
            lines[g] = PARAM_GRADS_LINE
    return Program(graph, outputs, grads, names, lines, backward, stats)


def _count_after(stats: list[PassStats], roots: list[Node]) -> None:
    """Each pass's node count after it, where not counted yet: the next pass counted it as
    its count before; the last pass's count is the program's, made when asked for
    (``Program.pass_stats``): a traversal of the whole program a compile does not need. The
    nodes the passes made are forgotten here: the Program keeps no intermediate graph."""
    for k, st in enumerate(stats):
        if st.nodes_after < 0 and k < len(stats) - 1:
            st.nodes_after = stats[k + 1].nodes_before
        st.born = {}


def _verifier(roots: list[Node], where: str) -> None:
    from ..ir.verify import verify

    verify(roots, where)
