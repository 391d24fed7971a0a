"""``symbp grad``: the backward equations of a network, per example, in spec notation."""

from __future__ import annotations

import re

from ..codegen.schedule import Namer, schedule
from ..codegen.text import comment_text
from ..passes.pipeline import PARAM_GRADS_LINE, Program
from .spec_printer import SpecPrinter


def backward_equations(program: Program) -> str:
    """The backward pass as equations, one per line, each citing its spec line."""
    graph = program.graph
    roots = {
        graph.loss_name: program.training_loss,
        **{f"d{k}": v for k, v in program.grads.items()},
    }
    namer = Namer(set())
    leaves = {d.node: name for name, d in {**graph.params, **graph.consts, **graph.inputs}.items()}
    routine = schedule(program, roots, namer, leaves)
    names = dict(routine.names)
    printer = SpecPrinter(names)
    user = {n for n in program.names if n not in program.backward}
    rows: list[tuple[str, str]] = []
    for st in routine.statements:
        if st.node in user:
            continue  # the spec's own equations
        del names[st.node]
        text = f"{st.name} = {printer.term(st.node)[0]}"
        names[st.node] = st.name
        if st.line == PARAM_GRADS_LINE:
            note = "mean over the batch" if graph.has_batch else ""
        elif st.line:
            note = f"line {st.line}: {comment_text(graph.source_line(st.line))}"
        else:
            note = ""
        rows.append((text, note))
    for pname, g in program.grads.items():
        if routine.names.get(g) != f"d{pname}":  # the gradient is another value, or zero
            rows.append((f"d{pname} = {printer.term(g)[0]}", ""))
    rows = _read(rows)
    width = max((len(t) for t, _ in rows), default=0)
    head = [
        f"# backward pass of {graph.filename.rsplit('/', 1)[-1]}, for one example:",
        f"# d<v> is the adjoint d{graph.loss_name}/d<v>; "
        + (
            "batch_mean(e) averages e over the mini-batch."
            if graph.has_batch
            else "the loss is the network's value."
        ),
    ]
    if graph.consts:
        head.append(
            f"# the Consts {', '.join(graph.consts)} are not trained: they have no gradient"
        )
    body = [f"{t:<{width}}  # {n}" if n else t for t, n in rows]
    return "\n".join(head + body) + "\n"


def _read(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The rows without the temporaries no other row reads: a layer that prints as itself
    (conv2d) hides the pieces the compiler shares between its forward and backward pass."""
    kept = list(rows)
    changed = True
    while changed:
        changed = False
        for row in list(kept):
            name = row[0].split(" = ", 1)[0]
            if not re.fullmatch(r"t\d+", name):
                continue
            used = re.compile(rf"\b{name}\b")
            if not any(
                used.search(other[0].split(" = ", 1)[1]) for other in kept if other is not row
            ):
                kept.remove(row)
                changed = True
    return kept


def pass_report(program: Program) -> str:
    """The passes in the order they ran: the rule sets each applied, the graph's node count
    before and after (nodes no root reaches any more are gone: that is dead-code
    elimination), and how often each rule fired. Differentiation runs between the forward
    pass "stabilize" and the rest."""
    stats = program.pass_stats()
    sets = [", ".join(rs.name for rs in st.sets) for st in stats]
    width = max([len("rule sets"), *map(len, sets)])
    lines = [f"{'pass':<11} {'rule sets':<{width}} nodes before -> after   rules fired"]
    for st, names in zip(stats, sets):
        fired = ", ".join(f"{k} x{v}" for k, v in sorted(st.fired.items())) or "-"
        lines.append(
            f"{st.name:<11} {names:<{width}} {st.nodes_before:>12} -> {st.nodes_after:<6}  {fired}"
        )
    lines.append("\nrule sets:")
    docs = {rs.name: rs.doc for st in stats for rs in st.sets}
    lines += [f"  {name:<14} {doc}" for name, doc in docs.items()]
    return "\n".join(lines) + "\n"
