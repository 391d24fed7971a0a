"""``BUILD``: every op's node from its arguments and attribute, through its constructor.

The rewrite passes rebuild nodes with it and the verifier checks that a node is what its
constructor makes; leaves are never rebuilt. It is a module of its own so that it may reach
the constructors beside ``symbp.ir.ops`` (which ``ops``, in the import cycle with
``ir.node``, does not import).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .convolution import fold, patches
from .extrema import reduce_max, reduce_min
from .node import Node, Op
from .ops import (
    batch_sum,
    broadcast,
    concat,
    dot,
    elementwise,
    gather,
    logsumexp,
    reduce_sum,
    reshape,
    scatter_add,
    slice_,
    transpose,
    unslice,
)

BUILD: dict[Op, Callable[[tuple[Node, ...], Any], Node]] = {
    Op.EW: lambda args, attr: elementwise(attr, args),
    Op.SUM: lambda args, axes: reduce_sum(args[0], axes),
    Op.BATCH_SUM: lambda args, attr: batch_sum(args[0]),
    Op.LOGSUMEXP: lambda args, axes: logsumexp(args[0], axes),
    Op.DOT: lambda args, contraction: dot(args[0], args[1], contraction),
    Op.TRANSPOSE: lambda args, perm: transpose(args[0], perm),
    Op.RESHAPE: lambda args, shape: reshape(args[0], shape),
    Op.BROADCAST: lambda args, shape: broadcast(args[0], shape),
    # dropout (made by symbp.ir.randomness.dropout; attr.batched is the node's)
    Op.DROPOUT: lambda args, attr: Node(Op.DROPOUT, args, attr, args[0].shape, attr.batched),
    # indexing
    Op.SLICE: lambda args, index: slice_(args[0], index),
    Op.UNSLICE: lambda args, attr: unslice(args[0], attr.index, attr.shape),
    Op.CONCAT: lambda args, attr: concat(args, attr.axis, attr.new),
    # indexing (gather)
    Op.GATHER: lambda args, attr: gather(args[0], args[1]),
    Op.SCATTER_ADD: lambda args, attr: scatter_add(args[0], args[1], attr.rows, attr.sum_batch),
    # max and min
    Op.MAX: lambda args, axes: reduce_max(args[0], axes),
    Op.MIN: lambda args, axes: reduce_min(args[0], axes),
    # convolution
    Op.PATCHES: lambda args, w: patches(args[0], w),
    Op.FOLD: lambda args, attr: fold(args[0], attr.window, attr.image),
}
