"""``symbp.compile``: a Graph (or spec path) to a loaded generated module, or its source.

A C build compiled from a spec file is found again without parsing: an index in the build
cache maps a key of the spec's bytes, the options, symbp's own sources and templates and the
toolchain to the cache entry, whose files are still checked against their manifest before the
module is loaded. A Graph built in Python or parsed beforehand takes the whole pipeline, which
ends at the same content-addressed entry.
"""

from __future__ import annotations

import hashlib
import os
import sys
import types
from collections import Counter
from functools import cache
from pathlib import Path

import jinja2
import numpy

from .backends.c import cache as build_cache
from .backends.c import module as c_backend
from .backends.c.toolchain import toolchain_stamp, unavailable
from .backends.numpy import module as numpy_backend
from .codegen.render import template_dir
from .frontend.parser import parse, parse_bytes
from .ir.graph import Graph
from .ir.node import Node
from .passes.pipeline import Program, optimize

BACKENDS = ("numpy", "c")
CHOICES = ("auto", *BACKENDS)  # auto: c where it builds, else numpy
DTYPES = ("float64", "float32")

# How each C compile from a spec file went: "index hit" (loaded without parsing) or
# "index miss" (parsed, optimized, rendered, then built or found by content).
cache_events: Counter = Counter()


def _graph(net: Graph | str | Path) -> Graph:
    return net if isinstance(net, Graph) else parse(net)


def resolve(backend: str) -> str:
    """The backend ``backend`` names: "auto" is ``SYMBP_BACKEND`` if set, else C where a C
    compiler builds (checked once per process), else NumPy with a one-line note saying why."""
    if backend != "auto":
        return backend
    chosen = os.environ.get("SYMBP_BACKEND", "").strip()
    if chosen:
        if chosen not in BACKENDS:
            raise ValueError(
                f"SYMBP_BACKEND: expected one of {', '.join(BACKENDS)}, got {chosen!r}"
            )
        return chosen
    why = unavailable()
    if why is None:
        return "c"
    _note_numpy(why)
    return "numpy"


@cache
def _note_numpy(why: str) -> None:
    print(f"symbp: using the NumPy backend: {why}", file=sys.stderr)


def check_options(backend: str, dtype: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")


def generate(net: Graph | str | Path, backend: str = "numpy", dtype: str = "float64") -> str:
    """The generated module's source text (for the C backend, the C translation unit)."""
    check_options(backend, dtype)
    program: Program = optimize(_graph(net), fuse=backend == "c")
    if backend == "c":
        files, _, _, c_file = c_backend.package_files(program, dtype)
        return files[c_file]
    return numpy_backend.generate(program, dtype)


# ------------------------------------------------------------ what the compiler is made of


def source_files(roots: tuple[Path, ...] | None = None) -> list[Path]:
    """symbp's Python sources and its templates: everything that decides generated code."""
    if roots is None:
        roots = (Path(__file__).resolve().parent, template_dir().resolve())
    files: dict[Path, None] = {}  # in order, once (installed, the templates are inside)
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.suffix in (".py", ".j2") and "__pycache__" not in p.parts:
                files.setdefault(p)
    return list(files)


def _stats(files: list[Path]) -> tuple:
    out = []
    for f in files:
        try:
            s = f.stat()
            out.append((str(f), s.st_size, s.st_mtime_ns, s.st_ino))
        except OSError:
            out.append((str(f), None))
    return tuple(out)


@cache
def _contents_hash(snapshot: tuple) -> str | None:
    digest = hashlib.sha256()
    for entry in snapshot:
        try:
            data = Path(entry[0]).read_bytes()
        except OSError:
            return None
        digest.update(f"{entry[0]}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


_LOADED = _stats(source_files())  # the sources as this process imported them


def fingerprint() -> str | None:
    """A hash of the contents of symbp's sources and templates, read once per process; None
    when a file changed (or appeared) since symbp was imported: this process then runs other
    code than the files hold, and must neither trust nor fill the spec index."""
    if _stats(source_files()) != _LOADED:
        return None
    return _contents_hash(_LOADED)


def spec_key(data: bytes, filename: str, backend: str, dtype: str) -> str | None:
    """The spec index's key for a spec file's bytes under these options; None if the compiler
    cannot be fingerprinted (see ``fingerprint``)."""
    compiler_hash = fingerprint()
    if compiler_hash is None:
        return None
    parts = [
        "symbp spec index 1",
        compiler_hash,
        hashlib.sha256(data).hexdigest(),
        filename,
        backend,
        dtype,
        jinja2.__version__,
        numpy.__version__,
        sys.version,
        sys.prefix,
        sys.executable,
        toolchain_stamp(),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


# -------------------------------------------------------------------------------- compile


def _build(graph: Graph, dtype: str) -> tuple[Path, str, str]:
    """(cache entry, extension name, C file name) of a Graph's C package."""
    files, cdef, ext, c_file = c_backend.package_files(optimize(graph), dtype)
    return build_cache.cached_package(files, cdef, ext, c_file), ext, c_file


def c_package(net: Graph | str | Path, dtype: str = "float64") -> Path:
    """Build (or find in the cache) the C package folder of a network."""
    check_options("c", dtype)
    if isinstance(net, Graph):
        return _build(net, dtype)[0]
    path = Path(net)
    try:
        data = path.read_bytes()
    except OSError:
        return _build(parse(path), dtype)[0]  # raises the parser's SpecError
    key = spec_key(data, str(path), "c", dtype)
    if key is not None:
        entry = build_cache.indexed(key)
        if entry is not None:
            cache_events["index hit"] += 1
            return entry
    cache_events["index miss"] += 1
    entry, ext, c_file = _build(parse_bytes(data, str(path), path.stem), dtype)
    if key is not None and spec_key(data, str(path), "c", dtype) == key:  # nothing changed
        build_cache.remember(key, entry, ext, c_file)
    return entry


def compile(  # noqa: A001 - the verb users expect, as in symbp.compile(net)
    net: Graph | str | Path, backend: str = "auto", dtype: str = "float64"
) -> types.ModuleType:
    """Compile a network to a loaded module with the API of SPEC.md §3; ``backend`` "auto"
    is C where a C compiler builds, else NumPy (``resolve``)."""
    backend = resolve(backend)
    if backend == "c":
        entry = c_package(net, dtype)
        return build_cache.load_package(entry, f"symbp_c_{entry.name}")
    graph = _graph(net)
    source = generate(graph, backend, dtype)
    return numpy_backend.load(source, f"symbp_{graph.name}")


def grad(net: Graph | str | Path) -> dict[str, Node]:
    """The optimized gradient graph: Param name -> node of d(mean loss)/d(param)."""
    return optimize(_graph(net)).grads
