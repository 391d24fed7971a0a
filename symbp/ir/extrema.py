"""The max and min reductions: the largest or smallest entry along axes (Op.MAX, Op.MIN).

Their elementwise kin, ``maximum``, ``minimum``, ``clip``, ``where`` and the comparisons, are
function records of ``symbp.ir.functions``, built by ``ops.apply``.
"""

from __future__ import annotations

from .node import Node, Op
from .shape_rules import axes as _axes


def reduce_max(x: Node, axes=None) -> Node:
    """The largest entry along ``axes`` (None: all per-example axes); NaN propagates."""
    return _extremum(Op.MAX, x, _axes(axes, x.ndim, "max"))


def reduce_min(x: Node, axes=None) -> Node:
    """The smallest entry along ``axes`` (None: all per-example axes); NaN propagates."""
    return _extremum(Op.MIN, x, _axes(axes, x.ndim, "min"))


def _extremum(op: Op, x: Node, axes: tuple[int, ...]) -> Node:
    if not axes:
        return x
    shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return Node(op, (x,), axes, shape, x.batched)
