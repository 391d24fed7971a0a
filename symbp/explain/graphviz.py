"""``symbp graph``: the computation graph as Graphviz DOT, forward and, with --grad, backward.

Every node shows the user's name when it has one, what it computes (in spec notation, over
the names of its arguments) and its per-example shape. Inputs, Params and Consts are boxes;
values the backward pass makes are filled orange, so the adjoint sums (the sum where a node
has several children) stand out next to the forward values they come from.
"""

from __future__ import annotations

import shutil
import subprocess

from ..ir.node import NAMED_LEAVES, Node, Op, toposort
from ..passes.pipeline import Program
from .spec_printer import SpecPrinter


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_dot(program: Program, grad: bool = False) -> str:
    """DOT text of the program's forward graph (and its gradient graph with ``grad``)."""
    graph = program.graph
    roots = list(program.outputs.values())
    if grad:  # (with dropout, the gradient is of the training loss, masks and all)
        roots += [program.training_loss, *program.grads.values()]
    order = toposort(roots)
    ids = {node: f"n{i}" for i, node in enumerate(order)}
    names: dict[Node, str] = {}
    for node in order:
        if node.op in NAMED_LEAVES:
            names[node] = node.attr
        elif node in program.names and (grad or node not in program.backward):
            names[node] = program.names[node]
    grads = {g: f"d{k}" for k, g in program.grads.items()} if grad else {}
    printer = SpecPrinter(dict(names))  # unnamed arguments print inline
    lines = [
        f'digraph "{_escape(graph.name)}" {{',
        "  rankdir=BT;",
        '  node [shape=ellipse, fontname="Helvetica", fontsize=11];',
        '  edge [color="#555555", arrowsize=0.7];',
    ]
    for node in order:
        shape = str(node.shape) if node.shape else "scalar"
        if node.op in NAMED_LEAVES:
            kind = {Op.INPUT: "Input", Op.PARAM: "Param", Op.FROZEN: "Const"}[node.op]
            label = f"{node.attr}\n{kind} {shape}"
            style = 'shape=box, style=filled, fillcolor="#dde8f5"'
            if node.op is Op.FROZEN:  # not trained: dashed and grey
                style = 'shape=box, style="filled,dashed", fillcolor="#eeeeee"'
        else:
            expr = printer.expression(node)[0]  # what it computes, not its own name
            name = names.get(node) or grads.get(node)
            head = f"{name} = " if name else ""
            if len(expr) > 48:
                expr = expr[:45] + "..."
            also = grads.get(node) if name != grads.get(node) else None
            label = f"{head}{expr}" + (f"  (= {also})" if also else "") + f"\n{shape}"
            backward = node in program.backward
            style = (
                'style=filled, fillcolor="#f6c28b"'
                if backward
                else ('style=filled, fillcolor="#f2f2f2"')
            )
            if node is program.loss:
                style = 'style="filled,bold", fillcolor="#c8e6c9"'
        lines.append(f'  {ids[node]} [label="{_escape(label)}", {style}];')
    for node in order:
        for arg in dict.fromkeys(node.args):
            lines.append(f"  {ids[arg]} -> {ids[node]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


class GraphvizMissing(RuntimeError):
    """``dot`` is needed to draw SVG or PNG."""


def render(dot_text: str, fmt: str) -> bytes:
    """SVG or PNG bytes from DOT text, through Graphviz's ``dot``."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing(
            f"writing {fmt.upper()} needs Graphviz's `dot` (e.g. apt-get install graphviz); "
            "-o FILE.dot writes the graph without it"
        )
    done = subprocess.run(
        [dot, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=120
    )
    if done.returncode != 0:
        raise GraphvizMissing(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
