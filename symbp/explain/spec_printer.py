"""IR nodes in spec notation, for ONE example: how ``symbp grad`` and ``symbp graph`` show
values. ``PRINT`` holds the printing of every op; a value of the batch reads as the lecture
writes it (``batch_mean(outer(dz, x))``), the batch axis otherwise left implicit."""

from __future__ import annotations

from collections.abc import Callable

from ..codegen.matmul import matmul_form
from ..ir.convolution import border, unpadded
from ..ir.expr import X
from ..ir.indexing import index_text
from ..ir.node import Node, Op
from ..ir.notation import ATOM, MATMUL, SPEC_NOTATION, Term, paren, print_expr


class SpecPrinter:
    """Prints nodes for ONE example, as a spec would write them; ``names`` are the values
    already named, the others print where they are used."""

    def __init__(self, names: dict[Node, str]) -> None:
        self.names = names

    def term(self, node: Node) -> Term:
        if node in self.names:
            return self.names[node], ATOM
        return self.expression(node)

    def expression(self, node: Node) -> Term:
        """What ``node`` computes (never just its own name)."""
        return PRINT[node.op](self, node)

    def elementwise(self, node: Node) -> Term:
        if node.attr is X[0] / X[1] and node.args[1].op is Op.BATCH_SIZE:
            inner = node.args[0]
            if inner.op is Op.BATCH_SUM:
                return f"batch_mean({self.term(inner.args[0])[0]})", ATOM
            if inner.op is Op.DOT:
                return f"batch_mean({self.dot(inner, summed=False)[0]})", ATOM
            if inner.op is Op.SCATTER_ADD and inner.attr.sum_batch:  # a gathered Param's
                return f"batch_mean({_scattered(self, inner)})", ATOM
            if inner.op is Op.RESHAPE and inner not in self.names:  # a kernel's
                text = _reshape(self, inner)[0]
                if text.startswith("batch_sum("):
                    return "batch_mean(" + text.removeprefix("batch_sum("), ATOM
        return print_expr(node.attr, [self.term(a) for a in node.args], SPEC_NOTATION)

    def sum(self, node: Node, name: str = "sum") -> Term:
        """A reduction over axes, ``sum`` or another written as it is (``max``)."""
        axes, x = node.attr, self.term(node.args[0])[0]
        if len(axes) == node.args[0].ndim:
            return f"{name}({x})", ATOM
        return f"{name}({x}, axis={axes[0] if len(axes) == 1 else axes})", ATOM

    def dot(self, node: Node, summed: bool = True) -> Term:
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


# indexing


def _unslice(p: SpecPrinter, node: Node) -> Term:
    """The lecture's "dx[index] = dy, zero elsewhere", in JAX's words."""
    index, shape = node.attr
    zeros = f"zeros({shape[0]})" if len(shape) == 1 else f"zeros({shape})"
    g = p.term(node.args[0])[0]
    return f"{zeros}.at[{index_text(index, shape)}].set({g})", ATOM


def _concat(p: SpecPrinter, node: Node) -> Term:
    parts = ", ".join(p.term(a)[0] for a in node.args)
    name = "stack" if node.attr.new else "concatenate"
    return f"{name}([{parts}], axis={node.attr.axis})", ATOM


def _call(name: str) -> Callable[[SpecPrinter, Node], Term]:
    """A node printed as ``name(argument, attribute)``."""
    return lambda p, node: (f"{name}({p.term(node.args[0])[0]}, {node.attr})", ATOM)


def _gather(p: SpecPrinter, node: Node) -> Term:
    table, ids = (p.term(a) for a in node.args)
    return f"{paren(table, ATOM)}[{ids[0]}]", ATOM


def _scattered(p: SpecPrinter, node: Node) -> str:
    g, ids = (p.term(a)[0] for a in node.args)
    return f"scatter_add({g}, {ids}, rows={node.attr.rows})"


def _scatter_add(p: SpecPrinter, node: Node) -> Term:
    text = _scattered(p, node)
    return (f"batch_sum({text})" if node.attr.sum_batch else text), ATOM


# convolution


# A convolution is a product of the kernel as a matrix and the image's patches (its input
# gradient the fold of the adjoint times that matrix): they print as the layers they are.


def _unreshaped(node: Node) -> Node:
    while node.op is Op.RESHAPE:
        node = node.args[0]
    return node


def _convolution(node: Node) -> tuple[Node, Node] | None:
    """(the 4-D node, the other operand unreshaped) of a 2-D DOT of a kernel, reshaped to
    a matrix, and another matrix; None if ``node`` is not one."""
    if node.op is not Op.DOT or len(node.attr.a) != 2 or len(node.attr.b) != 2:
        return None
    a, b = (_unreshaped(x) for x in node.args)
    for kernel, other in ((a, b), (b, a)):
        if kernel.ndim == 4 and not kernel.batched:
            return kernel, other
    return None


def _reshape(p: SpecPrinter, node: Node) -> Term:
    """A reshape, or the conv2d (or its kernel gradient) that one finishes."""
    parts = _convolution(node.args[0])
    if parts is not None and parts[1].op is Op.PATCHES:
        kernel, cols = parts
        img, w = _image(p, cols)
        if node.shape == (kernel.shape[0], *cols.shape[:2]):
            return f"conv2d({img}, {p.term(kernel)[0]}{w.keywords()})", ATOM
    summed = node.args[0]
    if summed.op is Op.DOT and summed.attr.sum_batch and len(node.shape) == 4:
        a, b = (_unreshaped(x) for x in summed.args)
        g, cols = (a, b) if b.op is Op.PATCHES else (b, a)
        if cols.op is Op.PATCHES and g.shape == (node.shape[0], *cols.shape[:2]):
            img, w = _image(p, cols)
            text = f"conv2d_weight({img}, {p.term(g)[0]}{w.keywords()})"
            return f"batch_sum({text})", ATOM
    return f"reshape({p.term(node.args[0])[0]}, {node.attr})", ATOM


def _image(p: SpecPrinter, cols: Node) -> tuple[str, object]:
    """The text of the image whose patches ``cols`` are, and their window, the zero border
    the layer put around the image as its padding."""
    image, padding = unpadded(cols.args[0])
    w = cols.attr
    if padding != (0, 0):
        w = w._replace(padding=padding)
    return p.term(image)[0], w


def _transposed(p: SpecPrinter, node: Node) -> str | None:
    """``conv_transpose2d(g, K, ...)`` if ``node`` is the fold of an adjoint times a kernel
    (cropped by ``crop``, the padding, when the layer padded its image)."""
    parts = _convolution(_unreshaped(node.args[0]))
    if parts is None or parts[1].shape != (parts[0].shape[0], *node.args[0].shape[:2]):
        return None
    kernel, g = parts
    return f"conv_transpose2d({p.term(g)[0]}, {p.term(kernel)[0]}" + "{}" + ")"


def _slice(p: SpecPrinter, node: Node) -> Term:
    """x[index], or a transposed convolution with its padding cropped off."""
    (x,) = node.args
    if x.op is Op.FOLD and node.args[0] not in p.names:
        text = _transposed(p, x)
        padding = border(node.attr, x.shape)
        if text is not None and padding is not None:
            w = x.attr.window._replace(padding=padding)
            return text.format(w.keywords()), ATOM
    return paren(p.term(x), ATOM) + f"[{index_text(node.attr, x.shape)}]", ATOM


def _patches(p: SpecPrinter, node: Node) -> Term:
    w = node.attr
    return f"patches({p.term(node.args[0])[0]}, {w.kernel}{w.keywords()})", ATOM


def _fold(p: SpecPrinter, node: Node) -> Term:
    """A fold, or the transposed convolution of an adjoint with the kernel that it is."""
    w, image = node.attr
    text = _transposed(p, node)
    if text is not None:
        return text.format(w.keywords()), ATOM
    return f"fold({p.term(node.args[0])[0]}, {image}, {w.kernel}{w.keywords()})", ATOM


# op -> how a node prints, given the printer (its arguments print through printer.term)
PRINT: dict[Op, Callable[[SpecPrinter, Node], Term]] = {
    Op.INPUT: lambda p, node: (node.attr, ATOM),
    Op.PARAM: lambda p, node: (node.attr, ATOM),
    Op.CONST: lambda p, node: print_expr(node.attr, [], SPEC_NOTATION),
    Op.BATCH_SIZE: lambda p, node: ("n", ATOM),
    Op.EW: SpecPrinter.elementwise,
    Op.DOT: SpecPrinter.dot,
    Op.SUM: SpecPrinter.sum,
    Op.BATCH_SUM: lambda p, node: (f"batch_sum({p.term(node.args[0])[0]})", ATOM),
    Op.LOGSUMEXP: _call("logsumexp"),
    Op.TRANSPOSE: _call("transpose"),
    Op.RESHAPE: _reshape,
    Op.BROADCAST: _call("broadcast"),
    # consts
    Op.FROZEN: lambda p, node: (node.attr, ATOM),
    # dropout: the site names the mask, which the forward value and its adjoint share
    Op.DROPOUT: lambda p, node: (
        f"dropout({p.term(node.args[0])[0]}, {node.attr.p!r}, site={node.attr.site})",
        ATOM,
    ),
    # indexing
    Op.SLICE: _slice,
    Op.UNSLICE: _unslice,
    Op.CONCAT: _concat,
    # indexing (gather)
    Op.GATHER: _gather,
    Op.SCATTER_ADD: _scatter_add,
    # max and min
    Op.MAX: lambda p, node: p.sum(node, "max"),
    Op.MIN: lambda p, node: p.sum(node, "min"),
    # convolution
    Op.PATCHES: _patches,
    Op.FOLD: _fold,
}
