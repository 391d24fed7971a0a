"""The rules of the indexing ops, which need no node: their attributes, shapes and text.

``entries(key, shape)`` reads a NumPy basic index of the per-example axes (ints, which
drop their axis, and slices, which keep it; NumPy's rules for negative and out-of-range
bounds) into the canonical attribute of a SLICE: one entry per axis, an int or a
``Span``. UNSLICE is its adjoint, the slice's values written into zeros of the sliced
shape; CONCAT joins tensors along an axis (``concatenate``), or along a new one
(``stack``). The constructors, in ``symbp.ir.ops``, build the nodes with these rules, which
raise a ``GraphError`` quoting the shapes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..errors import GraphError
from .shape_rules import MAX_ELEMENTS

Shape = tuple[int, ...]


class Span(NamedTuple):
    """The indices start, start + step, ... (``count`` of them) along one axis."""

    start: int
    count: int
    step: int

    def stop(self) -> int | None:
        """The stop of the Python slice ``start:stop:step`` (None: past the beginning)."""
        stop = self.start + self.count * self.step  # one step past the last index
        return None if stop < 0 else stop

    def as_slice(self) -> slice:
        return slice(self.start, self.stop(), self.step)


Entry = int | Span  # one axis of a SLICE's index: taken at an int (and dropped), or spanned


class Unsliced(NamedTuple):
    """UNSLICE's attribute: the index its argument is written at, in zeros of ``shape``."""

    index: tuple[Entry, ...]
    shape: Shape


class Joined(NamedTuple):
    """CONCAT's attribute: the per-example axis the parts join along; ``new``: stacked, each
    part gaining that axis (of size 1) first."""

    axis: int
    new: bool = False


def full(d: int) -> Span:
    return Span(0, d, 1)


# ------------------------------------------------------------------------ slicing


def entries(key: Any, shape: Shape) -> tuple[Entry, ...]:
    """The index ``x[key]`` takes of an ``x`` of ``shape``: ``key`` an int, a ``slice`` of
    ints (or None) or a tuple of them, over the per-example axes."""
    items = key if isinstance(key, tuple) else (key,)
    if not shape:
        raise GraphError("cannot index a scalar")
    if len(items) > len(shape):
        raise GraphError(f"too many indices ({len(items)}) for shape {shape}")
    index = tuple(_entry(item, axis, shape) for axis, item in enumerate(items))
    return index + tuple(full(d) for d in shape[len(index) :])


def _entry(item: Any, axis: int, shape: Shape) -> Entry:
    d = shape[axis]
    if isinstance(item, slice):
        parts = (item.start, item.stop, item.step)
        if not all(p is None or _is_int(p) for p in parts):
            raise GraphError(f"slice bounds must be integers, got {item}")
        if item.step == 0:
            raise GraphError("slice step cannot be zero")
        item = slice(*(None if p is None else int(p) for p in parts))
        start, stop, step = item.indices(d)
        count = len(range(start, stop, step))
        if count == 0:
            raise GraphError(
                f"{_slice_text(item)} selects no element of axis {axis} of shape {shape}"
                " (empty tensors are not supported)"
            )
        return Span(start, count, step)
    if not _is_int(item):
        raise GraphError(f"an index must be an integer or a slice, got {item!r}")
    if not -d <= item < d:
        raise GraphError(f"index {item} is out of range for axis {axis} of shape {shape}")
    return int(item) % d


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _slice_text(s: slice) -> str:
    parts = ["" if p is None else str(p) for p in (s.start, s.stop, s.step)]
    return ":".join(parts if s.step is not None else parts[:2])


def sliced_shape(index: Sequence[Entry]) -> Shape:
    return tuple(e.count for e in index if isinstance(e, Span))


def check_index(index: tuple, shape: Shape) -> None:
    """A GraphError unless ``index`` is a canonical index of ``shape``: an int or a Span
    within each axis."""
    if not isinstance(index, tuple) or len(index) != len(shape):
        raise GraphError(f"index {index} does not have one entry per axis of {shape}")
    for e, d in zip(index, shape):
        if isinstance(e, Span):
            last = e.start + (e.count - 1) * e.step
            if e.step == 0 or e.count < 1 or not (0 <= e.start < d and 0 <= last < d):
                raise GraphError(f"{e} is not within an axis of size {d}")
        elif not (_is_int(e) and 0 <= e < d):
            raise GraphError(f"index {e!r} is not within an axis of size {d}")


def is_whole(index: tuple[Entry, ...], shape: Shape) -> bool:
    return all(e == full(d) for e, d in zip(index, shape))


def composed(inner: tuple[Entry, ...], outer: tuple[Entry, ...]) -> tuple[Entry, ...]:
    """The index of ``x[inner][outer]`` into ``x``."""
    rest = iter(outer)
    out: list[Entry] = []
    for e in inner:
        if not isinstance(e, Span):
            out.append(e)
            continue
        o = next(rest)
        if isinstance(o, Span):
            out.append(Span(e.start + o.start * e.step, o.count, e.step * o.step))
        else:
            out.append(e.start + o * e.step)
    return tuple(out)


# ------------------------------------------------------------------------ joining


def joined_shape(shapes: list[Shape], axis: int, new: bool) -> tuple[Shape, Joined]:
    """The shape of ``concatenate`` (``stack`` if ``new``) of parts of ``shapes`` along
    ``axis``, and the CONCAT attribute, NumPy's rules (a negative axis counts from the end)."""
    what = "stack" if new else "concatenate"
    if not shapes:
        raise GraphError(f"{what} needs at least one tensor")
    ndim = len(shapes[0]) + new
    if ndim == 0:
        raise GraphError("concatenate needs tensors of rank 1 or more, got scalars")
    if not -ndim <= axis < ndim:
        raise GraphError(f"{what}: axis {axis} is out of range for a result of rank {ndim}")
    axis %= ndim
    if new and len(set(shapes)) > 1:
        raise GraphError(f"stack needs tensors of one shape, got {_shown(shapes)}")
    if any(len(s) != len(shapes[0]) for s in shapes):
        raise GraphError(f"{what}: the tensors' ranks differ: {_shown(shapes)}")
    if len({s[:axis] + s[axis + 1 :] for s in shapes}) > 1:
        raise GraphError(
            f"concatenate along axis {axis}: the other axes of {_shown(shapes)} differ"
        )
    if new:
        shape = shapes[0][:axis] + (len(shapes),) + shapes[0][axis:]
    else:
        shape = shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1 :]
    if math.prod(shape) > MAX_ELEMENTS:
        raise GraphError(f"{what}: the result {shape} has more than 2**31 - 1 elements")
    return shape, Joined(axis, new)


def _shown(shapes: list[Shape]) -> str:
    return ", ".join(str(s) for s in shapes)


def part_index(attr: Joined, shapes: list[Shape], shape: Shape, i: int) -> tuple[Entry, ...]:
    """The index at which part ``i`` (of ``shapes``) lies in their join, of ``shape``."""
    axis, new = attr
    whole: list[Entry] = [full(d) for d in shape]
    if new:
        whole[axis] = i
    else:
        whole[axis] = Span(sum(s[axis] for s in shapes[:i]), shapes[i][axis], 1)
    return tuple(whole)


def part_at(attr: Joined, shapes: list[Shape], shape: Shape, index: tuple) -> int | None:
    """The part of a join that ``index`` selects exactly, if it selects one."""
    for i in range(len(shapes)):
        if part_index(attr, shapes, shape, i) == index:
            return i
    return None


# -------------------------------------------------------------------------- text


def index_text(index: tuple, shape: tuple, batched: bool = False) -> str:
    """A SLICE's index as Python writes it, shortest form: ``:, 4, 2:10``."""
    items = [":"] if batched else []
    for e, d in zip(index, shape):
        items.append(span_text(e, d) if isinstance(e, Span) else str(e))
    while len(items) > 1 and items[-1] == ":":  # trailing whole axes go without saying
        items.pop()
    return ", ".join(items)


def span_text(e: Span, d: int) -> str:
    """``start:stop:step`` of a Span along an axis of size ``d``, the defaults left out."""
    default_start = 0 if e.step > 0 else d - 1
    start = "" if e.start == default_start else str(e.start)
    open_ended = len(range(*slice(e.start, None, e.step).indices(d))) == e.count
    stop = "" if open_ended else str(e.stop())
    return f"{start}:{stop}" + ("" if e.step == 1 else f":{e.step}")


# ---------------------------------------------------------------------- reshaping


def target_shape(shape: Shape, wanted: Sequence[int]) -> Shape:
    """``wanted`` with its one -1 (if any) made the size that keeps the number of
    elements of ``shape``: NumPy's reshape rule, a GraphError quoting both shapes."""
    wanted = tuple(wanted)
    if not all(_is_int(d) and (d >= 1 or d == -1) for d in wanted):
        raise GraphError(f"cannot reshape {shape} to {wanted}: sizes are positive integers")
    size = math.prod(shape)
    if wanted.count(-1) > 1:
        raise GraphError(f"cannot reshape {shape} to {wanted}: only one size may be -1")
    if -1 in wanted:
        known = math.prod(d for d in wanted if d != -1)
        if size % known:
            raise GraphError(f"cannot reshape {shape} ({size} elements) to {wanted}")
        wanted = tuple(size // known if d == -1 else d for d in wanted)
    if math.prod(wanted) != size:
        raise GraphError(
            f"cannot reshape {shape} ({size} elements) to {wanted} ({math.prod(wanted)})"
        )
    return wanted
