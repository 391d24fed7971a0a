"""What every generated module shares, the C backend's Python wrapper included: its header
(the name, the title, the shapes of the Params, Consts and Inputs) and ``init_params``, the Params'
initializers as NumPy code."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from .. import __version__
from ..ir.graph import Graph, index_ranges
from ..ir.ops import is_ids
from ..passes.pipeline import Program
from .text import dict_text, doc_text, shape_text, title

# the helpers the initializer code may call, by name
HELPERS = {
    "_glorot": '''def _glorot(rng, shape, fan_in, fan_out):
    """Xavier uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)''',
    "_he": '''def _he(rng, shape, fan_in):
    """He normal: N(0, 2 / fan_in)."""
    return rng.normal(0.0, np.sqrt(2 / fan_in), shape)''',
}


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a Param: a Param[m, n] multiplies a vector of length n."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


@lru_cache(maxsize=4096)  # a network repeats a few kinds of Params
def initializer(init: tuple, shape: tuple[int, ...]) -> str:
    """NumPy code drawing a Param of ``shape`` as ``init`` says, from a generator ``rng``."""
    kind, *args = init
    text = shape_text(shape)
    fan_in, fan_out = fans(shape)
    if kind == "zeros":
        return f"np.zeros({text})"
    if kind == "ones":
        return f"np.ones({text})"
    if kind == "const":
        return f"np.full({text}, {args[0]!r})"
    if kind == "normal":
        return f"rng.normal(0.0, {args[0]!r}, {text})"
    if kind == "uniform":
        return f"rng.uniform({args[0]!r}, {args[1]!r}, {text})"
    if kind == "glorot":
        return f"_glorot(rng, {text}, fan_in={fan_in}, fan_out={fan_out})"
    if kind == "he":
        return f"_he(rng, {text}, fan_in={fan_in})"
    raise AssertionError(kind)


def context(program: Program, dtype: str) -> dict:
    """The templates' values for a module's header and its ``init_params``: (name text, code)
    per Param, then per Const (so that the Params draw what they would without Consts),
    whether any draws from the generator, and the helpers the code calls. ``consts_dict`` is
    empty for a network without Consts, whose module then never mentions them."""
    graph: Graph = program.graph
    declared = [*graph.params.items(), *graph.consts.items()]
    inits = [(repr(name), initializer(d.init, d.node.shape)) for name, d in declared]
    code = "\n".join(c for _, c in inits)
    consts = {k: d.node.shape for k, d in graph.consts.items()}
    ids = {}  # integer Input -> how many ids are valid (0 <= id < it)
    if any(is_ids(d.node) for d in graph.inputs.values()):
        ranges = index_ranges([n for _, n, _ in graph.equations] + program.roots)
        ids = {k: ranges[k] for k, d in graph.inputs.items() if is_ids(d.node)}
    return {
        "name": doc_text(graph.name),
        "title": title(graph),
        "version": __version__,
        "spec_file": doc_text(Path(graph.filename).name),
        "dtype": dtype,
        "loss_name": graph.loss_name,
        "params_dict": dict_text({k: d.node.shape for k, d in graph.params.items()}),
        "inputs_dict": dict_text({k: d.node.shape for k, d in graph.inputs.items()}),
        "consts_dict": dict_text(consts) if consts else "",
        "outputs_tuple": repr(tuple(program.outputs)),
        "int_inputs": ids,
        "int_inputs_dict": repr(ids),
        "inits": inits,
        "uses_rng": "rng" in code,
        "init_helpers": [h for name, h in HELPERS.items() if f"{name}(" in code],
        "random": program.random,  # dropout: training takes a key
    }
