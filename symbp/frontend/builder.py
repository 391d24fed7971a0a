"""Building networks in Python: the spec language's operations as functions and operators.

    x = symbp.input("x", 4)
    W = symbp.param("W", 3, 4, init="glorot")
    b = symbp.param("b", 3)
    a = symbp.sigmoid(W @ x + b)
    net = symbp.network(loss=0.5 * symbp.sum((a - y) ** 2), outputs={"a": a})

The result is the same ``Graph`` the parser makes, compiled the same way.
"""

from __future__ import annotations

import builtins
import itertools
import keyword
import numbers
import weakref
from collections.abc import Callable
from typing import Any

from ..ir import composites, extrema, ops, randomness
from ..ir.functions import FUNCTIONS as RECORDS
from ..ir.functions import SPEC_FUNCTIONS
from ..ir.graph import Decl, Graph
from ..ir.indexing import target_shape
from ..ir.node import NAMED_LEAVES, Node, Op, toposort

_INITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # param -> (order, init)
_ORDER = itertools.count()


_node = ops.as_node


def _init(init: Any) -> tuple:
    if isinstance(init, numbers.Real) and not isinstance(init, bool):
        return ("const", float(init))
    if init in ("zeros", "ones", "glorot", "he"):
        return (init,)
    if isinstance(init, tuple) and init and init[0] in ("normal", "uniform"):
        arity = 1 if init[0] == "normal" else 2
        if len(init) == arity + 1 and builtins.all(isinstance(a, numbers.Real) for a in init[1:]):
            return tuple(init[:1]) + tuple(float(a) for a in init[1:])
    raise ValueError(
        f"init: expected a number, 'zeros', 'ones', 'glorot', 'he', "
        f"('normal', std) or ('uniform', low, high), got {init!r}"
    )


def _name(name: str, what: str) -> str:
    """A name as a spec could write it: a Python identifier, not a keyword."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{what}: {name!r} is not a valid name (a Python identifier)")
    return name


def input(name: str, *shape: int, integer: bool = False) -> Node:  # noqa: A001
    """A per-example Input; the compiler adds the batch axis. An ``integer`` one holds ids
    and can only index a tensor: ``E[ids]``."""
    node = ops.input_node(_name(name, "input"), shape, integer=integer)
    _INITS.setdefault(node, (next(_ORDER), None))
    return node


def param(name: str, *shape: int, init: Any = "zeros") -> Node:
    """A trainable Param, shared by all examples, with its initializer."""
    node = ops.param_node(_name(name, "param"), shape)
    _INITS[node] = (next(_ORDER), _init(init))
    return node


def const(name: str, *shape: int, init: Any) -> Node:
    """A Const: shared by all examples like a Param and initialized the same way, but never
    trained (``symbp.const("P", 4, 8, init=0.125)``)."""
    node = ops.param_node(_name(name, "const"), shape, trained=False)
    _INITS[node] = (next(_ORDER), _init(init))
    return node


def _function(name: str) -> Callable[..., Node]:
    def apply(*args) -> Node:
        return ops.apply(name, *map(_node, args))

    apply.__name__ = apply.__qualname__ = name
    apply.__doc__ = f"The elementwise {name} of symbp.ir.functions."
    return apply


# symbp.sigmoid, symbp.exp, ...: every elementwise function a spec may call
FUNCTIONS: dict[str, Callable[..., Node]] = {name: _function(name) for name in SPEC_FUNCTIONS}


def sum(x, axis=None) -> Node:  # noqa: A001
    return ops.reduce_sum(_node(x), axis)


def mean(x, axis=None) -> Node:
    return composites.mean(_node(x), axis)


def logsumexp(x, axis=None) -> Node:
    return ops.logsumexp(_node(x), axis)


def softmax(x, axis: int = -1) -> Node:
    return composites.softmax(_node(x), axis)


def log_softmax(x, axis: int = -1) -> Node:
    return composites.log_softmax(_node(x), axis)


def cross_entropy(logits, target) -> Node:
    return composites.cross_entropy(_node(logits), _node(target))


_SITES = itertools.count()  # dropout sites of networks built in Python, in order of building


def dropout(x, p: float, site: int | None = None) -> Node:
    """Inverted dropout (``dropout(h, 0.5)`` in a spec). Each call draws its own mask: its
    ``site`` is the next number of this process unless given."""
    return randomness.dropout(_node(x), p, next(_SITES) if site is None else site)


# indexing (x[1:3] is Node.__getitem__)


def concatenate(parts, axis: int = 0) -> Node:
    """NumPy's ``concatenate`` of per-example axes; numbers are constants."""
    return ops.concat([_node(p) for p in parts], axis)


def stack(parts, axis: int = 0) -> Node:
    """NumPy's ``stack`` of per-example axes; numbers are constants."""
    return ops.concat([_node(p) for p in parts], axis, new=True)


def reshape(x, *shape) -> Node:
    """``reshape(x, (4, 20))`` or ``reshape(x, 4, 20)``; one size may be -1."""
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = tuple(shape[0])
    x = _node(x)
    return ops.reshape(x, target_shape(x.shape, shape))


def flatten(x) -> Node:
    """All per-example axes as one."""
    x = _node(x)
    return ops.reshape(x, (x.size,))


# literal-shape tensors
def _shape(shape, what: str) -> tuple[int, ...]:
    dims = shape if isinstance(shape, tuple) else (shape,)
    if not builtins.all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(f"{what}: shape must be a positive int or a tuple of them, got {shape!r}")
    return dims


def full(shape, value) -> Node:
    """A constant tensor of ``shape`` filled with the number ``value``, shared by all
    examples (the spec's ``full(shape, c)``)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"full: value must be a number, got {value!r}")
    return ops.broadcast(ops.const(value), _shape(shape, "full"))


def zeros(shape) -> Node:
    """The spec's ``zeros(shape)``."""
    return ops.broadcast(ops.const(0), _shape(shape, "zeros"))


def ones(shape) -> Node:
    """The spec's ``ones(shape)``."""
    return ops.broadcast(ops.const(1), _shape(shape, "ones"))


def _check_ids(order: list[Node], results: list[Node]) -> None:
    """An integer Input is only an index (the second argument of E[ids])."""
    for node in order:
        for k, a in enumerate(node.args):
            if a.dtype != "float" and not (k == 1 and node.op is Op.GATHER):
                raise ValueError(f"integer Input {a.attr!r} can only be used as an index")
    for node in results:
        if node.dtype != "float":
            raise ValueError(f"integer Input {node.attr!r} can only be used as an index")


# max and min, and the comparisons. A comparison is a function named as NumPy names it, not
# an operator on nodes: == must stay identity (nodes are hash-consed), and a < b giving a
# node would make Python's own max(a, b), sorted() and `if a < b:` silently wrong. So
# comparing two nodes with < raises TypeError, and symbp.less(a, b) is the mask a < b.
def max(x, axis=None) -> Node:  # noqa: A001
    """The largest entry along ``axis`` (None: all per-example axes); for the elementwise
    larger of two values, ``maximum(a, b)``."""
    return extrema.reduce_max(_node(x), axis)


def min(x, axis=None) -> Node:  # noqa: A001
    """The smallest entry along ``axis`` (None: all per-example axes)."""
    return extrema.reduce_min(_node(x), axis)


_NUMPY_NAMES = {
    "<": "less",
    "<=": "less_equal",
    ">": "greater",
    ">=": "greater_equal",
    "==": "equal",
    "!=": "not_equal",
}


def _comparison(name: str, symbol: str) -> Callable[..., Node]:
    def compare(a, b) -> Node:
        return ops.apply(name, _node(a), _node(b))

    compare.__name__ = compare.__qualname__ = _NUMPY_NAMES[symbol]
    compare.__doc__ = f"The mask a {symbol} b: 1 where it holds, else 0 (no gradient)."
    return compare


# symbp.less, symbp.greater_equal, ...: the spec's comparisons
COMPARISONS: dict[str, Callable[..., Node]] = {
    _NUMPY_NAMES[f.operator]: _comparison(name, f.operator)
    for name, f in RECORDS.items()
    if f.operator
}


def network(
    loss: Node,
    outputs: dict[str, Node] | None = None,
    names: dict[str, Node] | None = None,
    name: str = "net",
    loss_name: str = "C",
) -> Graph:
    """A Graph from a per-example scalar ``loss`` and named ``outputs``.

    Inputs, Params and Consts are found in the graph; ``names`` names intermediate values
    so that the generated code uses them.
    """
    loss = _node(loss)
    _name(loss_name, "loss_name")
    for key in [*(outputs or {}), *(names or {})]:
        _name(key, "outputs and names")
    if loss.shape != ():
        raise ValueError(f"loss: must be a scalar per example, got shape {loss.shape}")
    outputs = {k: _node(v) for k, v in (outputs or {}).items()}
    graph = Graph(name=name, filename=f"{name}.py", loss_name=loss_name, loss=loss)
    seen: dict[str, Node] = {}
    order = toposort([*outputs.values(), loss])
    _check_ids(order, [*outputs.values(), loss])
    leaves = [n for n in order if n.op in NAMED_LEAVES]
    tables = {Op.INPUT: graph.inputs, Op.PARAM: graph.params, Op.FROZEN: graph.consts}
    for node in sorted(leaves, key=lambda n: _INITS.get(n, (-1, None))[0]):  # creation order
        if node.attr in seen and seen[node.attr] is not node:
            raise ValueError(f"two different leaves are named {node.attr!r}")
        seen[node.attr] = node
        tables[node.op][node.attr] = Decl(node, 0, _INITS.get(node, (0, None))[1] or ("zeros",))
    graph.outputs = outputs
    for key, node in [*(names or {}).items(), *outputs.items(), (loss_name, loss)]:
        graph.names.setdefault(_node(node), key)
        graph.equations.append((key, _node(node), 0))
    return graph
