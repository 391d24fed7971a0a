"""Shape rules that need no node: NumPy's broadcasting, axis arguments, valid shapes.

The constructors of ``symbp.ir.ops`` raise these rules' ``GraphError``s, quoting the shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import GraphError

Shape = tuple[int, ...]
MAX_ELEMENTS = 2**31 - 1


def check_shape(shape: Sequence[int], what: str) -> Shape:
    shape = tuple(shape)
    size = 1
    for d in shape:
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise GraphError(f"{what}: dimensions must be positive integers, got {shape}")
        size *= d
    if size > MAX_ELEMENTS:
        raise GraphError(f"{what}: {shape} has {size} elements, more than {MAX_ELEMENTS}")
    return shape


def broadcast_shapes(*shapes: Shape, what: str = "elementwise operation") -> Shape:
    """NumPy's broadcasting of per-example shapes; a GraphError quoting them if they do not."""
    distinct = set(shapes)
    distinct.discard(())  # a scalar never changes a shape
    if len(distinct) <= 1:
        return distinct.pop() if distinct else ()
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(ndim):
        dims = {s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            shown = " and ".join(str(s) for s in shapes)
            raise GraphError(f"shapes {shown} do not broadcast in {what}")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def axes(axes, ndim: int, what: str) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise GraphError(f"{what}: axis {ax} is out of range for shape of rank {ndim}")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise GraphError(f"{what}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))


def size(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def leading_ones(shape: Shape) -> Shape:
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape
