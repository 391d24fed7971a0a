"""Constructors that are compositions of the primitives of ``symbp.ir.ops`` and have no op
of their own: ``mean``, ``log_softmax``, ``softmax`` and ``cross_entropy``."""

from __future__ import annotations

from ..errors import GraphError
from . import expr as ex
from .expr import X
from .node import Node
from .ops import elementwise, keepdims, logsumexp, mul, neg, reduce_sum, sub
from .shape_rules import axes as _axes


def mean(x: Node, axes=None) -> Node:
    axes = _axes(axes, x.ndim, "mean")
    count = 1
    for ax in axes:
        count *= x.shape[ax]
    return elementwise(X[0] / count, (reduce_sum(x, axes),))


def log_softmax(x: Node, axis: int = -1) -> Node:
    """x - logsumexp(x) along ``axis``: stable by construction."""
    axes = _axes(axis, x.ndim, "log_softmax")
    return sub(x, keepdims(logsumexp(x, axes), axes, x.shape))


def softmax(x: Node, axis: int = -1) -> Node:
    """exp(x - logsumexp(x)): never overflows, and its log simplifies to log_softmax."""
    axes = _axes(axis, x.ndim, "softmax")
    return elementwise(
        ex.call("exp", X[0] - X[1]), (x, keepdims(logsumexp(x, axes), axes, x.shape))
    )


def cross_entropy(logits: Node, target: Node) -> Node:
    """-sum(target * log_softmax(logits))."""
    if logits.shape != target.shape:
        raise GraphError(
            f"cross_entropy: logits {logits.shape} and target {target.shape} differ in shape"
        )
    return neg(reduce_sum(mul(target, log_softmax(logits))))
