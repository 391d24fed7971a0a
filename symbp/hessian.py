"""Higher order: a gradient is a graph, so ``grad`` applies to it again.

``hvp(net)`` builds the graph of s(θ, v) = Σ_p <∇_p C̄(θ), v_p> (C̄ the batch-mean loss), whose
gradient in θ is the Hessian-vector product H v, and compiles it like any network: the
directions v are extra Params of the new graph, so the generated ``loss_and_grads`` returns
H v for the network's own Params (its Consts stay constants of the new graph).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path

from .frontend.parser import parse
from .ir import ops
from .ir.graph import Decl, Graph
from .passes.pipeline import optimize


def hvp_graph(graph: Graph) -> tuple[Graph, dict[str, str]]:
    """The graph of s = Σ <grad_p, v_p>, and the name of each direction Param."""
    grads = optimize(graph).grads
    taken = {*graph.params, *graph.consts, *graph.inputs, *graph.names.values()}
    directions: dict[str, str] = {}
    params = dict(graph.params)
    total = ops.const(0)
    for name, decl in graph.params.items():
        v_name = f"v_{name}"
        while v_name in taken:
            v_name += "_"
        taken.add(v_name)
        directions[name] = v_name
        v = ops.param_node(v_name, decl.node.shape)
        params[v_name] = Decl(v, 0, ("zeros",))
        total = ops.add(total, ops.reduce_sum(ops.mul(grads[name], v)))
    hvp = Graph(
        name=f"{graph.name}_hvp",
        filename=f"{graph.name}_hvp",
        inputs=dict(graph.inputs),
        params=params,
        consts=dict(graph.consts),
        loss_name="s",
        loss=total,
    )
    hvp.names[total] = "s"
    return hvp, directions


def hvp(net: Graph | str | Path, backend: str = "numpy", dtype: str = "float64") -> Callable:
    """A function ``f(params, vectors, /, **inputs) -> {name: H v}`` for the Hessian of the
    batch-mean loss of ``net`` with respect to its Params, applied to ``vectors``."""
    from .compiler import compile

    graph = net if isinstance(net, Graph) else parse(net)
    second, directions = hvp_graph(graph)
    module: types.ModuleType = compile(second, backend=backend, dtype=dtype)

    def apply(params: dict, vectors: dict, /, *key: int, **inputs) -> dict:
        """H v at ``params``; with dropout, under the masks of the ``key`` given after v."""
        missing = [k for k in graph.params if k not in vectors]
        if missing or len(vectors) != len(graph.params):
            raise ValueError(f"vectors: expected one per Param, {list(graph.params)}")
        both = dict(params)
        both.update({directions[k]: v for k, v in vectors.items()})
        _, grads = module.loss_and_grads(both, *key, **inputs)
        return {k: grads[k] for k in graph.params}

    apply.module = module
    return apply
