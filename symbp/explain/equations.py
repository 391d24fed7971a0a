"""``symbp grad``: the backward equations of a network, per example, in spec notation."""

from __future__ import annotations

from ..codegen.printing import ATOM, MATMUL, SpecExprPrinter, matmul_form, print_expr
from ..codegen.schedule import Namer, comment_text, schedule
from ..ir.expr import X
from ..ir.node import Node, Op
from ..passes.pipeline import PARAM_GRADS_LINE, Program


class SpecPrinter:
    """Prints nodes for ONE example, as a spec would write them."""

    def __init__(self, names: dict[Node, str]) -> None:
        self.names = names
        self.printer = SpecExprPrinter()

    def term(self, node: Node) -> tuple[str, int]:
        if node in self.names:
            return self.names[node], ATOM
        return self.expression(node)

    def expression(self, node: Node) -> tuple[str, int]:
        op = node.op
        if op is Op.CONST:
            return print_expr(node.attr, [], self.printer)
        if op is Op.BATCH_SIZE:
            return "n", ATOM
        if op is Op.EW:
            if node.attr is X[0] / X[1] and node.args[1].op is Op.BATCH_SIZE:
                inner = node.args[0]
                text = (
                    self.term(inner.args[0])[0]
                    if inner.op is Op.BATCH_SUM
                    else (self.dot(inner, summed=False)[0] if inner.op is Op.DOT else None)
                )
                if text is not None:
                    return f"batch_mean({text})", ATOM
            args = [self.term(a) for a in node.args]
            return print_expr(node.attr, args, self.printer)
        x = [self.term(a)[0] for a in node.args]
        if op is Op.SUM:
            axes = node.attr
            if len(axes) == node.args[0].ndim:
                return f"sum({x[0]})", ATOM
            return f"sum({x[0]}, axis={axes[0] if len(axes) == 1 else axes})", ATOM
        if op is Op.BATCH_SUM:
            return f"batch_sum({x[0]})", ATOM
        if op is Op.LOGSUMEXP:
            return f"logsumexp({x[0]}, axis={node.attr})", ATOM
        if op is Op.TRANSPOSE:
            return f"transpose({x[0]}, {node.attr})", ATOM
        if op is Op.RESHAPE:
            return f"reshape({x[0]}, {node.attr})", ATOM
        if op is Op.BROADCAST:
            return f"broadcast({x[0]}, {node.attr})", ATOM
        if op is Op.DOT:
            return self.dot(node)
        raise AssertionError(op)

    def dot(self, node: Node, summed: bool = True) -> tuple[str, int]:
        c = node.attr
        a, b = (self.term(arg) for arg in node.args)
        text = None
        if len(c.out) == 2 and len(c.a) == 1 and len(c.b) == 1 and c.a + c.b == c.out:
            text = f"outer({a[0]}, {b[0]})"
        if text is None and len(c.a) == 1 and len(c.b) == 2 and c.out == c.b.replace(c.a, ""):
            # v @ M reads as the lecture's M.T @ v
            m = b[0] if b[1] >= ATOM else f"({b[0]})"
            text = f"{m}{'.T' if c.b[0] == c.a else ''} @ {a[0] if a[1] >= ATOM else f'({a[0]})'}"
        form = matmul_form(c.a, c.b, c.out)
        if text is None and form is not None:
            swap, ta, tb = form
            left, right = (b, a) if swap else (a, b)
            lt = (left[0] if left[1] >= ATOM else f"({left[0]})") + (".T" if ta else "")
            rt = (right[0] if right[1] >= ATOM else f"({right[0]})") + (".T" if tb else "")
            text = f"{lt} @ {rt}"
        if text is None:
            text = f'einsum("{c.a},{c.b}->{c.out}", {a[0]}, {b[0]})'
        if c.sum_batch and summed:
            return f"batch_sum({text})", ATOM
        return text, (MATMUL if " @ " in text and not c.sum_batch else ATOM)


def backward_equations(program: Program) -> str:
    """The backward pass as equations, one per line, each citing its spec line."""
    graph = program.graph
    roots = {graph.loss_name: program.loss, **{f"d{k}": v for k, v in program.grads.items()}}
    namer = Namer(set())
    leaves = {d.node: name for name, d in {**graph.params, **graph.inputs}.items()}
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
    body = [f"{t:<{width}}  # {n}" if n else t for t, n in rows]
    return "\n".join(head + body) + "\n"


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
