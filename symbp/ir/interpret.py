"""A reference interpreter: the value of IR nodes on a mini-batch, straight from the IR.

Slow and plain on purpose: it is the meaning of each op written once, against which the
rewrite passes are tested (a pass must never change a value) without generating code.
"""

from __future__ import annotations

import numpy as np

from ..codegen.printing import runtime_subscripts
from .expr import Expr
from .node import Node, Op, toposort


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


FUNCTIONS = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0.0),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "sin": np.sin,
    "cos": np.cos,
    "step": lambda x: (x > 0).astype(float),
    "sign": np.sign,
}
BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power}


def expression(e: Expr, args: list) -> np.ndarray | float:
    """``e`` with ``arg(i)`` the array ``args[i]``."""
    memo: dict[Expr, object] = {}

    def go(t: Expr):
        if t not in memo:
            if t.op == "arg":
                memo[t] = args[t.value]
            elif t.op == "num":
                memo[t] = float(t.value)
            elif t.op == "neg":
                memo[t] = -go(t.args[0])
            elif t.op in BINARY:
                memo[t] = BINARY[t.op](go(t.args[0]), go(t.args[1]))
            elif t.op in FUNCTIONS:
                memo[t] = FUNCTIONS[t.op](go(t.args[0]))
            else:
                raise ValueError(f"cannot evaluate {t.op}")
        return memo[t]

    return go(e)


def _aligned(value, arg: Node, node: Node):
    """A batched argument of lower rank gets size-1 axes after its batch axis."""
    if arg.batched and node.batched and arg.ndim < node.ndim:
        return np.reshape(value, value.shape[:1] + (1,) * (node.ndim - arg.ndim) + value.shape[1:])
    return value


def evaluate(roots: list[Node], leaves: dict[str, np.ndarray], n: int) -> list[np.ndarray]:
    """The values of ``roots``; ``leaves`` maps Input and Param names to arrays (Inputs with
    the batch axis first), ``n`` is the batch size."""
    values: dict[Node, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for node in toposort(roots):
            x = [values[a] for a in node.args]
            op = node.op
            shift = 1 if node.args and node.args[0].batched else 0
            if op in (Op.INPUT, Op.PARAM):
                v = np.asarray(leaves[node.attr], dtype=float)
            elif op is Op.CONST:
                v = np.asarray(float(node.attr.value))
            elif op is Op.BATCH_SIZE:
                v = np.asarray(float(n))
            elif op is Op.EW:
                v = np.asarray(
                    expression(node.attr, [_aligned(xv, a, node) for xv, a in zip(x, node.args)])
                )
            elif op is Op.SUM:
                v = np.sum(x[0], axis=tuple(a + shift for a in node.attr))
            elif op is Op.LOGSUMEXP:
                axes = tuple(a + shift for a in node.attr)
                m = np.max(x[0], axis=axes, keepdims=True)
                v = np.squeeze(m, axis=axes) + np.log(np.sum(np.exp(x[0] - m), axis=axes))
            elif op is Op.BATCH_SUM:
                v = np.sum(x[0], axis=0)
            elif op is Op.DOT:
                sa, sb, so = runtime_subscripts(node)
                if node.attr.sum_batch:
                    so = so.replace("b", "")
                v = np.einsum(f"{sa},{sb}->{so}", x[0], x[1])
            elif op is Op.TRANSPOSE:
                perm = tuple(p + shift for p in node.attr)
                v = np.transpose(x[0], (0, *perm) if shift else perm)
            elif op in (Op.RESHAPE, Op.BROADCAST):
                shape = ((n,) if node.batched else ()) + node.shape
                a = _aligned(x[0], node.args[0], node)
                if op is Op.RESHAPE:
                    v = np.reshape(a, shape)
                else:
                    v = np.broadcast_to(a, shape)
            else:
                raise ValueError(f"cannot evaluate {op}")
            values[node] = v
    return [values[r] for r in roots]
