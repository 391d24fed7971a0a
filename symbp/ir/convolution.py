"""Convolution and pooling: two primitives, patches and their fold, and the layers built on them.

``patches(x, window)`` (Op.PATCHES, im2col) takes every window of an image ``x`` of shape
(C, H, W), zeros beyond the edges, into a tensor of shape (Ho, Wo, C, kh, kw): one row of
C * kh * kw values per output pixel. ``fold`` (Op.FOLD, col2im) is its adjoint: it adds each
window's values back where they came from. The layers are compositions, so their gradients
are the rules of these two ops and of the ops they compose:

- ``conv2d(x, K)`` is the patches times the kernel as a matrix, one GEMM: its input gradient
  (a transposed convolution) folds the adjoint times the kernel, its kernel gradient is the
  adjoint times the patches summed over the batch;
- ``max_pool2d`` and ``avg_pool2d`` reduce each window's kh * kw values, so max-pooling's
  gradient at ties is the max reduction's (shared evenly among the tied entries).

The output size rule is PyTorch's: Ho = (H + 2 * padding - dilation * (kh - 1) - 1) // stride
+ 1, and the same for Wo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ..errors import GraphError
from .composites import mean
from .extrema import reduce_max
from .indexing import Span
from .node import Contraction, Node, Op
from .ops import dot, reshape, transpose, unslice
from .shape_rules import MAX_ELEMENTS

Pair = tuple[int, int]


class Window(NamedTuple):
    """How windows slide over an image: kernel (kh, kw), stride, zero padding on each side
    and dilation (the spacing of a kernel's taps), each (along H, along W)."""

    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)

    def __str__(self) -> str:
        parts = [f"{self.kernel[0]}x{self.kernel[1]}"]
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1)):
            value = getattr(self, name)
            if value != (default, default):
                parts.append(f"{name}={value[0] if value[0] == value[1] else value}")
        return ", ".join(parts)

    def keywords(self, skip: tuple[str, ...] = ()) -> str:
        """``, stride=2, padding=1`` for the settings that are not the default."""
        out = ""
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1)):
            value = getattr(self, name)
            if name not in skip and value != (default, default):
                out += f", {name}={value[0] if value[0] == value[1] else value}"
        return out


class Folded(NamedTuple):
    """FOLD's attribute: the window, and the image shape (C, H, W) the values fold into."""

    window: Window
    image: tuple[int, int, int]


def pair(value, what: str, least: int) -> Pair:
    """An int or a pair of ints, each at least ``least``, as a pair; a GraphError if not."""
    items = value if isinstance(value, tuple | list) else (value, value)
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise GraphError(f"{what} must be an integer or a pair of integers, got {value!r}")
    if min(items) < least:
        raise GraphError(f"{what} must be at least {least}, got {value!r}")
    return int(items[0]), int(items[1])


def window(kernel, stride=1, padding=0, dilation=1) -> Window:
    return Window(
        pair(kernel, "the kernel size", 1),
        pair(stride, "stride", 1),
        pair(padding, "padding", 0),
        pair(dilation, "dilation", 1),
    )


def out_size(size: int, k: int, stride: int, padding: int, dilation: int) -> int:
    """The output size along one axis (PyTorch's rule); 0 or less when the kernel does not fit."""
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def patches_shape(image: Sequence[int], w: Window, what: str = "patches") -> tuple[int, ...]:
    """(Ho, Wo, C, kh, kw) for an image of shape (C, H, W); a GraphError quoting the shapes
    and the output size rule when the windows do not fit."""
    if len(image) != 3:
        raise GraphError(f"{what}: the image must have shape (C, H, W) per example, got {image}")
    c, h, wd = image
    sizes = []
    for axis, size, k, s, p, d in zip("HW", (h, wd), w.kernel, w.stride, w.padding, w.dilation):
        o = out_size(size, k, s, p, d)
        if o < 1:
            raise GraphError(
                f"{what}: a {w.kernel[0]}x{w.kernel[1]} kernel does not fit the image {image}: "
                f"{axis} out = ({size} + 2*{p} - {d}*({k}-1) - 1) // {s} + 1 = {o}"
            )
        sizes.append(o)
    shape = (sizes[0], sizes[1], c, *w.kernel)
    total = 1
    for d in shape:
        total *= d
    if total > MAX_ELEMENTS:
        raise GraphError(f"{what}: the patches {shape} have more than 2**31 - 1 elements")
    return shape


# ---------------------------------------------------------------------- the primitives


def patches(x: Node, w: Window) -> Node:
    """Every window of the image ``x`` (C, H, W), zeros beyond its edges: (Ho, Wo, C, kh, kw)."""
    shape = patches_shape(x.shape, w)
    return Node(Op.PATCHES, (x,), w, shape, x.batched)


def fold(g: Node, w: Window, image: Sequence[int]) -> Node:
    """Zeros of the image's shape with each window's values of ``g`` added where they came
    from: the adjoint of ``patches``."""
    image = tuple(image)
    if g.shape != patches_shape(image, w, "fold"):
        raise GraphError(f"fold: {g.shape} are not the {w} patches of an image {image}")
    return Node(Op.FOLD, (g,), Folded(w, image), image, g.batched)


# -------------------------------------------------------------------------- the layers


def conv2d(x: Node, kernel: Node, w: Window, groups: int = 1) -> Node:
    """PyTorch's conv2d of one image ``x`` (C, H, W) with ``kernel`` (O, C / groups, kh, kw):
    the patches times the kernel as a matrix, giving (O, Ho, Wo)."""
    if x.ndim != 3 or kernel.ndim != 4:
        raise GraphError(
            f"conv2d needs an image (C, H, W) and a kernel (O, C, kh, kw), got {x.shape} "
            f"and {kernel.shape}"
        )
    o, cg, kh, kw = kernel.shape
    c = x.shape[0]
    if not isinstance(groups, int) or groups < 1 or c % groups or o % groups:
        raise GraphError(
            f"conv2d: groups={groups} must divide the input channels ({c}) and the output "
            f"channels ({o})"
        )
    if cg * groups != c:
        raise GraphError(
            f"conv2d: the kernel {kernel.shape} takes {cg * groups} input channels "
            f"({cg} per group x {groups} groups), the image {x.shape} has {c}"
        )
    w = w._replace(kernel=(kh, kw))
    cols = patches(_padded(x, w.padding), w._replace(padding=(0, 0)))
    ho, wo = cols.shape[:2]
    if groups == 1:  # (O, C kh kw) @ (Ho Wo, C kh kw).T
        product = dot(
            reshape(kernel, (o, cg * kh * kw)),
            reshape(cols, (ho * wo, c * kh * kw)),
            Contraction("ok", "pk", "op"),
        )
    else:  # one product per group g: (O/G, Cg kh kw) @ (Ho Wo, Cg kh kw).T
        product = dot(
            reshape(kernel, (groups, o // groups, cg * kh * kw)),
            reshape(cols, (ho * wo, groups, cg * kh * kw)),
            Contraction("gok", "pgk", "gop"),
        )
    return reshape(product, (o, ho, wo))


def _padded(x: Node, padding: Pair) -> Node:
    """``x`` (C, H, W) inside a border of zeros: the windows then need no test at the edges
    (their code is a plain copy), and the adjoint crops the border off again."""
    (ph, pw), (c, h, w) = padding, x.shape
    if (ph, pw) == (0, 0):
        return x
    index = (Span(0, c, 1), Span(ph, h, 1), Span(pw, w, 1))
    return unslice(x, index, (c, h + 2 * ph, w + 2 * pw))


def border(index: tuple, shape: tuple[int, ...]) -> Pair | None:
    """The padding (ph, pw) if ``index`` takes an image out of a symmetric zero border of
    ``shape`` (C, H + 2 ph, W + 2 pw), as ``_padded`` puts it there; else None."""
    if len(shape) != 3 or len(index) != 3 or not all(isinstance(e, Span) for e in index):
        return None
    c, hh, ww = shape
    ph, pw = index[1].start, index[2].start
    h, w = hh - 2 * ph, ww - 2 * pw
    if h < 1 or w < 1 or index != (Span(0, c, 1), Span(ph, h, 1), Span(pw, w, 1)):
        return None
    return ph, pw


def unpadded(x: Node) -> tuple[Node, Pair]:
    """The image and padding that ``_padded`` made ``x`` of ((x, (0, 0)) for another node)."""
    if x.op is Op.UNSLICE:
        padding = border(x.attr.index, x.shape)
        if padding is not None:
            return x.args[0], padding
    return x, (0, 0)


def _pool(x: Node, k, stride, what: str) -> tuple[Node, tuple[int, int, int]]:
    """The k x k windows of ``x`` (C, H, W), each window's values along the last axes, and
    the pooled shape (C, Ho, Wo)."""
    if x.ndim != 3:
        raise GraphError(f"{what} needs an image of shape (C, H, W) per example, got {x.shape}")
    w = window(k, k if stride is None else stride)
    cols = patches(x, w)
    return cols, (x.shape[0], cols.shape[0], cols.shape[1])


def max_pool2d(x: Node, k, stride=None) -> Node:
    """The largest value of each k x k window (stride k unless given); ties share the
    gradient evenly, as the max reduction's do."""
    cols, _ = _pool(x, k, stride, "max_pool2d")
    return transpose(reduce_max(cols, (3, 4)), (2, 0, 1))


def avg_pool2d(x: Node, k, stride=None) -> Node:
    """The mean of each k x k window (stride k unless given)."""
    cols, _ = _pool(x, k, stride, "avg_pool2d")
    return transpose(mean(cols, (3, 4)), (2, 0, 1))
