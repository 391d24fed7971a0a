"""``symbp.compile``: a Graph (or spec path) to a loaded generated module, or its source."""

from __future__ import annotations

import types
from pathlib import Path

from . import c_backend, cbuild, numpy_backend
from .ir import Graph
from .parse import parse
from .pipeline import Program, optimize

BACKENDS = ("numpy", "c")
DTYPES = ("float64", "float32")


def _graph(net: Graph | str | Path) -> Graph:
    return net if isinstance(net, Graph) else parse(net)


def check_options(backend: str, dtype: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")


def generate(net: Graph | str | Path, backend: str = "numpy", dtype: str = "float64") -> str:
    """The generated module's source text (for the C backend, the C translation unit)."""
    check_options(backend, dtype)
    program: Program = optimize(_graph(net))
    if backend == "c":
        files, _, _, c_file = c_backend.package_files(program, dtype)
        return files[c_file]
    return numpy_backend.generate(program, dtype)


def c_package(net: Graph | str | Path, dtype: str = "float64") -> Path:
    """Build (or find in the cache) the C package folder of a network."""
    check_options("c", dtype)
    files, cdef, ext, c_file = c_backend.package_files(optimize(_graph(net)), dtype)
    return cbuild.cached_package(files, cdef, ext, c_file)


def compile(  # noqa: A001 - the verb users expect, as in symbp.compile(net)
    net: Graph | str | Path, backend: str = "numpy", dtype: str = "float64"
) -> types.ModuleType:
    """Compile a network to a loaded module with the API of SPEC.md §3."""
    graph = _graph(net)
    if backend == "c":
        entry = c_package(graph, dtype)
        return cbuild.load_package(entry, f"symbp_c_{entry.name}")
    source = generate(graph, backend, dtype)
    return numpy_backend.load(source, f"symbp_{graph.name}")
