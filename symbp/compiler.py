"""``symbp.compile``: a Graph (or spec path) to a loaded generated module, or its source."""

from __future__ import annotations

import types
from pathlib import Path

from . import numpy_backend
from .ir import Graph
from .parse import parse
from .pipeline import Program, optimize

BACKENDS = ("numpy",)
DTYPES = ("float64", "float32")


def _graph(net: Graph | str | Path) -> Graph:
    return net if isinstance(net, Graph) else parse(net)


def check_options(backend: str, dtype: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")


def generate(net: Graph | str | Path, backend: str = "numpy", dtype: str = "float64") -> str:
    """The generated module's source text."""
    check_options(backend, dtype)
    program: Program = optimize(_graph(net))
    return numpy_backend.generate(program, dtype)


def compile(  # noqa: A001 - the verb users expect, as in symbp.compile(net)
    net: Graph | str | Path, backend: str = "numpy", dtype: str = "float64"
) -> types.ModuleType:
    """Compile a network to a loaded module with the API of SPEC.md §3."""
    graph = _graph(net)
    source = generate(graph, backend, dtype)
    return numpy_backend.load(source, f"symbp_{graph.name}")
