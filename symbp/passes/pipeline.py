"""The pipeline: every pass by name, in order, from a parsed network to an optimized program.

    stabilize (the forward graph: stabilize, canonicalize, constant_fold, simplify, cse)
    -> grad -> simplify (canonicalize, constant_fold, simplify, cse, specialize)
    -> fuse (for the C backend: ``optimize(fuse=False)`` leaves it out)

Each pass is one traversal applying one or more rule sets of ``passes.rules``. Every
traversal rebuilds the nodes above any node it rewrites (nodes are immutable), so the
passes are few and each does all it can: the forward graph is simplified along with its
stabilization, before differentiation, and ``grad`` builds its adjoints in the form the
rules would give them (constants folded, a repeated costly part split out), so that after
it the rules fire where there is something new to do, and not in a cascade.

``optimize`` returns a ``Program``: the forward roots, the gradient of every Param, and the
names and spec lines that generated code and ``symbp grad`` print.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from ..autodiff.backward import grad
from ..ir.graph import Graph
from ..ir.node import NAMED_LEAVES, Node, Op, gc_paused, toposort
from ..ir.verify import verify as verify_ir
from . import rewrite, rules
from .rewrite import Context, Pass, PassStats

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
    stats: list[PassStats] = field(default_factory=list)  # what each pass did
    # dropout: the per-example loss of training, with its masks (``outputs`` are the network
    # in evaluation, without them); None for a network without randomness
    train_loss: Node | None = None

    @property
    def loss(self) -> Node:
        """The per-example loss in evaluation (``forward``, ``loss``)."""
        return self.outputs[self.graph.loss_name]

    @property
    def training_loss(self) -> Node:
        """The per-example loss ``loss_and_grads`` computes and differentiates."""
        return self.loss if self.train_loss is None else self.train_loss

    @property
    def random(self) -> bool:
        """Does training draw (dropout)? Then loss_and_grads and train_step take a key."""
        return self.train_loss is not None

    @property
    def roots(self) -> list[Node]:
        extra = [] if self.train_loss is None else [self.train_loss]
        return list(self.outputs.values()) + extra + list(self.grads.values())

    def pass_stats(self) -> list[PassStats]:
        """What each pass did; the last one's node count is the program's, counted when
        asked for (a compile does not need it)."""
        if self.stats and self.stats[-1].nodes_after < 0:
            self.stats[-1].nodes_after = len(toposort(self.roots))
        return self.stats


def _follow(mapping: dict[Node, Node], table: dict[Node, object]) -> dict[Node, object]:
    """Carry a node-keyed table through a rewrite (``mapping``: the nodes it changed). Where
    keys land on one node, a key the rewrite left alone keeps its entry, else the first
    moved one (in the rewrite's order)."""
    moved = [node for node in mapping if node in table]
    if not moved:
        return table
    out = dict(table)
    for node in moved:
        del out[node]
    for node in moved:
        out.setdefault(mapping[node], table[node])
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
    run = _Run(graph, verify, trace or (lambda where, outputs, grads: None))
    run.step("parse")
    for p in FORWARD_PASSES:
        run.rewrite(p)
    run.differentiate()
    for p in GRADIENT_PASSES:
        if fuse or p is not FUSE_PASS:
            run.rewrite(p)
    return run.program()


class _Run:
    """One optimization: the program as it stands after each step."""

    def __init__(self, graph: Graph, verify: bool, trace) -> None:
        self.graph, self.verify, self.trace = graph, verify, trace
        self.outputs = {**graph.outputs, graph.loss_name: graph.loss}
        self.grads: dict[str, Node] = {}
        self.names, self.lines = dict(graph.names), dict(graph.lines)
        # with dropout, ``outputs`` is the training loss alone and ``evaluation`` the outputs
        # without the masks (forward and loss); without, ``evaluation`` is empty
        self.evaluation = _without_dropout(self.outputs, self.names, self.lines)
        if self.evaluation:
            self.outputs = {graph.loss_name: graph.loss}
        self.keep = set(self.names)  # named values stay variables
        self.backward: set[Node] = set()  # the nodes differentiation made
        self.stats: list[PassStats] = []

    def roots(self) -> list[Node]:
        values = [*self.outputs.values(), *self.evaluation.values()]
        return values + list(self.grads.values())

    def step(self, where: str) -> None:
        if self.verify:
            verify_ir(self.roots(), where)
        self.trace(where, self.outputs, self.grads)

    def rewrite(self, p: Pass) -> None:
        """Run pass ``p``; names, spec lines and the backward set follow the nodes."""
        mapping, st = rewrite.run_pass(p, self.roots(), self.keep)
        if self.stats and self.stats[-1].nodes_after < 0:
            self.stats[-1].nodes_after = st.nodes_before
        self.stats.append(st)
        self.outputs = {k: mapping.get(v, v) for k, v in self.outputs.items()}
        self.evaluation = {k: mapping.get(v, v) for k, v in self.evaluation.items()}
        self.grads = {k: mapping.get(v, v) for k, v in self.grads.items()}
        before = self.lines
        self.names, self.lines = _follow(mapping, self.names), _follow(mapping, self.lines)
        born_backward = {new for new, old in st.born.items() if old in self.backward}
        self.backward = {mapping.get(n, n) for n in self.backward} | born_backward
        for new, old in st.born.items():  # a node a rule made cites its origin's line
            if old in before:
                self.lines.setdefault(new, before[old])
        st.born = {}  # the Program keeps no intermediate graph
        self.step(p.name)

    def differentiate(self) -> None:
        """The gradient graph, its nodes citing the lines they differentiate and named
        after the values they are adjoints of."""
        loss = self.outputs[self.graph.loss_name]
        forward = toposort(list(self.outputs.values()))
        self.stats[-1].nodes_after = len(forward)
        # the adjoints are built as cse and specialize would leave them, reusing forward values
        normalize = _sharing(Context(nodes=set(forward)))
        origin: dict[Node, Node] = {}
        adjoints: dict[Node, Node] = {}
        stable = Graph(**{**self.graph.__dict__, "loss": loss})
        self.grads = grad(stable, origin, adjoints, normalize, forward)
        lines, names = self.lines, self.names
        known = set(lines)
        for adj, fwd in origin.items():
            if adj not in known and fwd in lines:
                lines.setdefault(adj, lines[fwd])
        # an adjoint that is an unnamed forward value (the adjoint of a2 in a quadratic cost
        # is a2 - y) is shown, and named, as the adjoint it is
        self.backward = {n for n in origin if n not in known or n not in names}
        forward_names = dict(names)
        for pname, g in self.grads.items():
            if g.op not in (Op.PARAM, Op.INPUT, Op.CONST, Op.BROADCAST, Op.FROZEN):
                names.setdefault(g, "d" + pname)
        for fwd, adj in adjoints.items():
            if fwd in forward_names and adj.op not in (Op.CONST, Op.BROADCAST):
                if adj in self.backward:
                    names.setdefault(adj, "d" + forward_names[fwd])
        self.keep = set(names)
        self.step("grad")

    def program(self) -> Program:
        # a backward node a rewrite turned into a named forward value (u + u into the Output
        # f = 2 u) is that forward value: forward() computes it under its own name
        user = set(self.graph.names.values())
        named = {n for n, name in self.names.items() if name in user}
        outputs = self.evaluation or self.outputs
        train_loss = self.outputs[self.graph.loss_name] if self.evaluation else None
        backward = self.backward - {*self.outputs.values(), *outputs.values()} - named
        for g in self.grads.values():
            if g.op not in NAMED_LEAVES and self.lines.get(g, 0) <= 0:
                backward.add(g)
                self.lines[g] = PARAM_GRADS_LINE
        return Program(
            self.graph,
            outputs,
            self.grads,
            self.names,
            self.lines,
            backward,
            self.stats,
            train_loss,
        )


def _without_dropout(
    outputs: dict[str, Node], names: dict[Node, str], lines: dict[Node, int]
) -> dict[str, Node]:
    """``outputs`` in evaluation, every dropout the identity, if there is a dropout (else
    {}); a value that changes keeps its name and spec line."""
    order = toposort(list(outputs.values()))
    if not any(node.op is Op.DROPOUT for node in order):
        return {}
    plain: dict[Node, Node] = {}
    for node in order:
        args = tuple(plain.get(a, a) for a in node.args)
        if node.op is Op.DROPOUT:
            plain[node] = args[0]
        elif args != node.args:
            plain[node] = rewrite.rebuild(node, args)
    for old, new in plain.items():
        if old in names:
            names.setdefault(new, names[old])
        if old in lines:
            lines.setdefault(new, lines[old])
    return {k: plain.get(v, v) for k, v in outputs.items()}


def _sharing(ctx: Context):
    return functools.partial(rules.share_costly, ctx=ctx)
