"""A reference interpreter: the value of IR nodes on a mini-batch, straight from the IR.

Slow and plain on purpose: ``EVALUATE`` is the meaning of each op written once, against which
the rewrite passes are tested (a pass must never change a value) without generating code.
Arrays are as the generated code holds them: a batched value has the batch on axis 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .expr import Expr, definition
from .functions import FUNCTIONS
from .indexing import Span
from .node import Node, Op, toposort
from .ops import runtime_subscripts
from .randomness import keep_mask, scale

OPERATORS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "neg": np.negative,
}


def expression(e: Expr, args: list) -> np.ndarray | float:
    """``e`` with ``arg(i)`` the array ``args[i]``."""
    memo: dict[Expr, object] = {}

    def go(t: Expr):
        if t not in memo:
            if t.op == "arg":
                memo[t] = args[t.value]
            elif t.op == "num":
                memo[t] = float(t.value)
            elif t.op in OPERATORS:
                memo[t] = OPERATORS[t.op](*map(go, t.args))
            elif t.op in FUNCTIONS:
                memo[t] = function(t.op, [go(a) for a in t.args])
            else:
                raise ValueError(f"cannot evaluate {t.op}")
        return memo[t]

    return go(e)


def function(name: str, values: list):
    """Function ``name`` of ``symbp.ir.functions`` on arrays: its reference, else its formula."""
    reference = FUNCTIONS[name].reference
    if reference is not None:
        return reference(*values)
    return expression(definition(name), values)


def _aligned(value, arg: Node, node: Node):
    """A batched argument of lower rank gets size-1 axes after its batch axis."""
    if arg.batched and node.batched and arg.ndim < node.ndim:
        return np.reshape(value, value.shape[:1] + (1,) * (node.ndim - arg.ndim) + value.shape[1:])
    return value


def _axes(node: Node) -> tuple[int, ...]:
    """A reduction's axes in the runtime array (after the batch axis, if any)."""
    return tuple(a + node.args[0].batched for a in node.attr)


class Run(NamedTuple):
    leaves: dict[str, np.ndarray]  # Input, Param and Const values by name (Inputs batch first)
    n: int  # the batch size
    key: int = 0  # the training step's key, which dropout masks are drawn from


def _logsumexp(node: Node, x: list, run: Run):
    axes = _axes(node)
    m = np.max(x[0], axis=axes, keepdims=True)
    return np.squeeze(m, axis=axes) + np.log(np.sum(np.exp(x[0] - m), axis=axes))


def _dot(node: Node, x: list, run: Run):
    sa, sb, so = runtime_subscripts(node)
    if node.attr.sum_batch:
        so = so.replace("b", "")
    return np.einsum(f"{sa},{sb}->{so}", x[0], x[1])


def _transpose(node: Node, x: list, run: Run):
    shift = int(node.batched)
    perm = tuple(p + shift for p in node.attr)
    return np.transpose(x[0], (0, *perm) if shift else perm)


def _runtime_shape(node: Node, run: Run) -> tuple[int, ...]:
    return ((run.n,) if node.batched else ()) + node.shape


def _dropout(node: Node, x: list, run: Run):
    """Kept elements scaled by 1 / (1 - p), the others 0 (symbp.ir.randomness)."""
    p, site, _ = node.attr
    shape = _runtime_shape(node, run)
    keep = keep_mask(run.key, site, p, shape)
    return np.where(
        keep, np.broadcast_to(_aligned(x[0], node.args[0], node), shape) * scale(p), 0.0
    )


# indexing


def numpy_index(index: tuple, batched: bool) -> tuple:
    """A SLICE's index as NumPy's, over the runtime array (the batch axis first, whole)."""
    items = tuple(e.as_slice() if isinstance(e, Span) else e for e in index)
    return (slice(None), *items) if batched else items


def _unslice(node: Node, x: list, run: Run):
    out = np.zeros(_runtime_shape(node, run))
    out[numpy_index(node.attr.index, node.batched)] = x[0]
    return out


def _concat(node: Node, x: list, run: Run):
    parts = [
        np.broadcast_to(v, (run.n, *p.shape)) if node.batched and not p.batched else v
        for v, p in zip(x, node.args)
    ]
    join = np.stack if node.attr.new else np.concatenate
    return join(parts, axis=node.attr.axis + node.batched)


def _gather(node: Node, x: list, run: Run):
    table, ids = x
    if not node.args[0].batched:
        return table[ids]
    examples = np.arange(run.n).reshape((run.n,) + (1,) * (ids.ndim - 1))
    return table[examples, ids]


def _scatter_add(node: Node, x: list, run: Run):
    """Each example's rows of g added at its ids, one example after another."""
    g, ids = x
    g = np.broadcast_to(g, ids.shape + node.shape[1:])  # an unbatched g: every example's
    out = np.zeros(_runtime_shape(node, run))
    for b in range(run.n):
        np.add.at(out if node.attr.sum_batch else out[b], ids[b], g[b])
    return out


# convolution: each window's taps as index arrays into the zero-padded image


def _taps(node: Node, window, image) -> tuple:
    """Index arrays (channel, row, column) broadcasting to (Ho, Wo, C, kh, kw): where each
    entry of the patches lies in the image padded by ``window.padding``."""
    ho, wo = out_shape = (node if node.op is Op.PATCHES else node.args[0]).shape[:2]
    (kh, kw), (sh, sw), (dh, dw) = window.kernel, window.stride, window.dilation
    rows = np.arange(ho)[:, None] * sh + np.arange(kh)[None, :] * dh  # (Ho, kh)
    cols = np.arange(wo)[:, None] * sw + np.arange(kw)[None, :] * dw  # (Wo, kw)
    assert out_shape == (rows.shape[0], cols.shape[0])
    channel = np.arange(image[0])[None, None, :, None, None]
    return channel, rows[:, None, None, :, None], cols[None, :, None, None, :]


def _padded(value, window) -> np.ndarray:
    (ph, pw) = window.padding
    return np.pad(value, [(0, 0)] * (value.ndim - 2) + [(ph, ph), (pw, pw)])


def _patches(node: Node, x: list, run: Run):
    return _padded(x[0], node.attr)[(..., *_taps(node, node.attr, node.args[0].shape))]


def _fold(node: Node, x: list, run: Run):
    """Every entry of the patches added at its place in the padded image, then cropped."""
    window, (c, h, w) = node.attr
    (ph, pw) = window.padding
    out = _padded(np.zeros(_runtime_shape(node, run)), window)
    np.add.at(out, (..., *_taps(node, window, node.shape)), x[0])
    return out[..., ph : ph + h, pw : pw + w]


# op -> the value of a node, given its arguments' values
EVALUATE: dict[Op, Callable[[Node, list, Run], np.ndarray]] = {
    Op.INPUT: lambda node, x, run: np.asarray(run.leaves[node.attr], dtype=node.dtype),
    Op.PARAM: lambda node, x, run: np.asarray(run.leaves[node.attr], dtype=float),
    Op.CONST: lambda node, x, run: np.asarray(float(node.attr.value)),
    Op.BATCH_SIZE: lambda node, x, run: np.asarray(float(run.n)),
    Op.EW: lambda node, x, run: np.asarray(
        expression(node.attr, [_aligned(v, a, node) for v, a in zip(x, node.args)])
    ),
    Op.SUM: lambda node, x, run: np.sum(x[0], axis=_axes(node)),
    Op.LOGSUMEXP: _logsumexp,
    Op.BATCH_SUM: lambda node, x, run: np.sum(x[0], axis=0),
    Op.DOT: _dot,
    Op.TRANSPOSE: _transpose,
    Op.RESHAPE: lambda node, x, run: np.reshape(x[0], _runtime_shape(node, run)),
    Op.BROADCAST: lambda node, x, run: np.broadcast_to(
        _aligned(x[0], node.args[0], node), _runtime_shape(node, run)
    ),
    # consts
    Op.FROZEN: lambda node, x, run: np.asarray(run.leaves[node.attr], dtype=float),
    # dropout
    Op.DROPOUT: _dropout,
    # indexing
    Op.SLICE: lambda node, x, run: x[0][numpy_index(node.attr, node.batched)],
    Op.UNSLICE: _unslice,
    Op.CONCAT: _concat,
    # indexing (gather)
    Op.GATHER: _gather,
    Op.SCATTER_ADD: _scatter_add,
    # max and min
    Op.MAX: lambda node, x, run: np.max(x[0], axis=_axes(node)),
    Op.MIN: lambda node, x, run: np.min(x[0], axis=_axes(node)),
    # convolution
    Op.PATCHES: _patches,
    Op.FOLD: _fold,
}


def evaluate(
    roots: list[Node], leaves: dict[str, np.ndarray], n: int, key: int = 0
) -> list[np.ndarray]:
    """The values of ``roots``; ``leaves`` maps Input, Param and Const names to arrays
    (Inputs with the batch axis first), ``n`` is the batch size, ``key`` the key dropouts
    draw from."""
    run = Run(leaves, n, key)
    values: dict[Node, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for node in toposort(roots):
            values[node] = EVALUATE[node.op](node, [values[a] for a in node.args], run)
    return [values[r] for r in roots]
