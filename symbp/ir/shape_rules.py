"""Shape arithmetic of the IR's constructors (``symbp.ir.ops``), free of nodes: the shapes a
network may have, NumPy's broadcasting, and the error a constructor raises."""

from __future__ import annotations

from collections.abc import Sequence

Shape = tuple[int, ...]
MAX_ELEMENTS = 2**31 - 1


class GraphError(ValueError):
    """An operation that cannot be built: shapes that do not fit, a constant that is not a
    finite number. The parser adds the spec location."""


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
