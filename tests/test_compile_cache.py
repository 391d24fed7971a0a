"""The spec index of the C build cache (symbp/compiler.py, symbp/backends/c/cache.py).

``symbp.compile(path, backend="c")`` finds a spec file compiled before without parsing it:
a key of the spec's bytes and name, the options, a fingerprint of symbp's sources and
templates and the toolchain maps to a cache entry, whose files are still checked against
their manifest. Any change to one of those misses, and a damaged entry or record is never
loaded. Hits and misses are read from ``symbp.compiler.cache_events``, never from timings.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symbp
from symbp import compiler
from symbp.backends.c import cache as cbuild
from symbp.backends.c import module as c_backend
from symbp.backends.c import toolchain

pytestmark = pytest.mark.skipif(
    not (shutil.which(os.environ.get("CC", "cc").split()[0]) or shutil.which("gcc")),
    reason="no C compiler",
)

SPEC = "x: Input[2]\nw: Param[2] = {k}.5\nC: Loss = (sum(w * x) - {k}) ** 2\n"

# A fresh process compiles the spec and reports what happened.
CHILD = """\
import json, sys
import numpy as np
import symbp
from symbp import compiler
m = symbp.compile(sys.argv[1], backend="c", dtype=sys.argv[2])
params = {k: np.full(s, 0.25, dtype=m.DTYPE) for k, s in m.PARAMS.items()}
inputs = {k: np.linspace(-1, 1, 3 * int(np.prod(s))).reshape(3, *s).astype(m.DTYPE)
          for k, s in m.INPUTS.items()}
print(json.dumps({"events": dict(compiler.cache_events), "file": m.__file__,
                  "loss": float(m.loss(params, **inputs)).hex()}))
"""


def spec_file(folder: Path, k: int, name: str = "tiny") -> Path:
    path = folder / f"{name}{k}.sbp"
    path.write_text(SPEC.format(k=k), encoding="utf-8")
    return path


def child(spec: Path, root: Path, dtype: str = "float64") -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(spec), dtype],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SYMBP_CACHE_DIR": str(root)},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def events(run) -> dict:
    """The cache events while ``run()`` runs."""
    before = dict(compiler.cache_events)
    run()
    return {
        k: v - before.get(k, 0) for k, v in compiler.cache_events.items() if v != before.get(k, 0)
    }


def records(root: Path) -> list[Path]:
    folder = root / cbuild.INDEX
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("SYMBP_CACHE_DIR", str(root))
    return root


def test_a_fresh_process_finds_the_spec_without_parsing(tmp_path):
    spec = spec_file(tmp_path, 1)
    root = tmp_path / "cache"
    first = child(spec, root)
    assert first["events"] == {"index miss": 1}
    [record] = records(root)
    second = child(spec, root)
    assert second["events"] == {"index hit": 1}
    assert second["file"] == first["file"] and second["loss"] == first["loss"]
    assert records(root) == [record]
    assert float.fromhex(second["loss"]) == pytest.approx(
        symbp.compile(spec).loss({"w": np.full(2, 0.25)}, x=np.linspace(-1, 1, 6).reshape(3, 2)),
        rel=1e-12,
    )


def test_a_hit_runs_none_of_the_pipeline(tmp_path, cache, monkeypatch):
    spec = spec_file(tmp_path, 2)
    built = symbp.compile(spec, backend="c")

    def broken(*args, **kwargs):
        raise AssertionError("the pipeline ran on an index hit")

    for module, name in [
        (compiler, "parse"),
        (compiler, "parse_bytes"),
        (compiler, "optimize"),
        (c_backend, "package_files"),
        (cbuild, "build_package"),
        (cbuild, "cache_key"),
    ]:
        monkeypatch.setattr(module, name, broken)
    assert events(lambda: symbp.compile(spec, backend="c")) == {"index hit": 1}
    assert compiler.c_package(spec) == Path(built.__file__).parent


def test_what_changes_the_build_misses(tmp_path, cache, monkeypatch):
    spec = spec_file(tmp_path, 3)
    assert events(lambda: compiler.c_package(spec)) == {"index miss": 1}
    entry = compiler.c_package(spec)  # a hit
    assert events(lambda: compiler.c_package(spec)) == {"index hit": 1}

    # the spec's text, even where the generated code is the same: a miss, the same entry
    spec.write_text(SPEC.format(k=3) + "# a comment\n", encoding="utf-8")
    assert events(lambda: compiler.c_package(spec)) == {"index miss": 1}
    assert compiler.c_package(spec) == entry
    # another file name (the module's name and the spec name in the code come from it)
    other = spec_file(tmp_path, 3, name="other")
    assert events(lambda: compiler.c_package(other)) == {"index miss": 1}
    assert compiler.c_package(other) != entry
    # the options
    assert events(lambda: compiler.c_package(spec, "float32")) == {"index miss": 1}
    assert compiler.c_package(spec, "float32") != entry
    # the compiler: symbp's sources and templates
    with monkeypatch.context() as mp:
        mp.setattr(compiler, "_contents_hash", lambda snapshot: "another symbp")
        assert events(lambda: compiler.c_package(spec)) == {"index miss": 1}
    assert events(lambda: compiler.c_package(spec)) == {"index hit": 1}


@pytest.mark.parametrize("change", ["SYMBP_CFLAGS", "SYMBP_SANITIZE", "CC", "cpu", "cffi"])
def test_what_changes_the_toolchain_changes_the_key(tmp_path, monkeypatch, change):
    spec = SPEC.format(k=4).encode()
    key = compiler.spec_key(spec, "tiny4.sbp", "c", "float64")
    assert key == compiler.spec_key(spec, "tiny4.sbp", "c", "float64")
    if change == "cpu":
        monkeypatch.setattr(toolchain, "_cpu_identity", lambda: "another cpu")
    elif change == "cffi":
        import _cffi_backend

        monkeypatch.setattr(_cffi_backend, "__version__", "0.0.1")
    elif change == "CC":
        fake = tmp_path / "cc"
        fake.write_text('#!/bin/sh\nexec gcc "$@"\n')
        fake.chmod(0o755)
        monkeypatch.setenv("CC", str(fake))
    else:
        monkeypatch.setenv(change, "-O1" if change == "SYMBP_CFLAGS" else "address")
    assert compiler.spec_key(spec, "tiny4.sbp", "c", "float64") != key


def test_the_fingerprint_reads_every_source(tmp_path):
    files = {p.resolve() for p in compiler.source_files()}
    package = Path(compiler.__file__).resolve().parent
    assert {p.resolve() for p in package.rglob("*.py")} <= files  # every subpackage's too
    names = {p.name for p in files}
    assert {"c_module.c.j2", "c_wrapper.py.j2", "c_cdef.h.j2", "_checks.py.j2"} <= names

    root = tmp_path / "fake"
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text("A = 1\n")
    (root / "sub" / "t.j2").write_text("{{ x }}\n")

    def fingerprint():  # as a fresh process computes it (a process reads the files once)
        snapshot = compiler._stats(compiler.source_files((root,)))
        return compiler._contents_hash.__wrapped__(snapshot)

    first = fingerprint()
    assert first == fingerprint()
    before = (root / "a.py").stat()
    (root / "a.py").write_text("A = 2\n")  # same size, same time: the contents decide
    os.utime(root / "a.py", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert fingerprint() != first
    (root / "a.py").write_text("A = 1\n")
    os.utime(root / "a.py", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert fingerprint() == first
    (root / "sub" / "t.j2").write_text("{{ y }}\n")
    assert fingerprint() != first
    (root / "sub" / "t.j2").write_text("{{ x }}\n")
    (root / "b.py").write_text("")
    assert fingerprint() != first


def test_sources_changed_since_import_turn_the_index_off(tmp_path, cache, monkeypatch):
    """A process whose symbp files changed on disk runs other code than they hold: it
    neither trusts nor fills the index."""
    spec = spec_file(tmp_path, 5)
    compiler.c_package(spec)  # recorded
    [record] = records(cache)
    loaded = list(compiler._LOADED)
    loaded[0] = (loaded[0][0], -1, 0, 0)
    monkeypatch.setattr(compiler, "_LOADED", tuple(loaded))
    assert compiler.fingerprint() is None
    assert compiler.spec_key(b"", "x.sbp", "c", "float64") is None
    assert events(lambda: compiler.c_package(spec)) == {"index miss": 1}
    spec2 = spec_file(tmp_path, 6)
    compiler.c_package(spec2)
    assert records(cache) == [record]


def test_a_damaged_entry_behind_the_index_is_rebuilt(tmp_path):
    spec = spec_file(tmp_path, 7)
    root = tmp_path / "cache"
    first = child(spec, root)  # built and recorded by a process that is gone
    entry = Path(first["file"]).parent
    [so] = [p for p in entry.iterdir() if p.name.endswith(".so")]
    so.write_bytes(so.read_bytes()[: so.stat().st_size // 2])
    again = child(spec, root)
    assert again["events"] == {"index miss": 1}
    assert again["file"] == first["file"] and again["loss"] == first["loss"]
    assert child(spec, root)["events"] == {"index hit": 1}


@pytest.mark.parametrize(
    "record",
    [
        b"\x00{garbage",
        b"[]",
        b"{}",
        json.dumps({"entry": "..", "module": "_tiny8", "c_file": "tiny8.c"}).encode(),
        json.dumps({"entry": "../elsewhere", "module": "_tiny8", "c_file": "tiny8.c"}).encode(),
        json.dumps({"entry": 3, "module": "_tiny8", "c_file": "tiny8.c"}).encode(),
    ],
)
def test_a_garbled_record_is_a_miss(tmp_path, cache, record):
    spec = spec_file(tmp_path, 8)
    compiler.c_package(spec)
    [path] = records(cache)
    path.write_bytes(record)
    assert events(lambda: compiler.c_package(spec)) == {"index miss": 1}
    assert events(lambda: compiler.c_package(spec)) == {"index hit": 1}  # written anew


def test_graphs_take_the_pipeline(tmp_path, cache):
    graph = symbp.parse(spec_file(tmp_path, 9))
    assert events(lambda: compiler.c_package(graph)) == {}
    assert records(cache) == []


def test_an_unreadable_spec_is_the_parsers_error(tmp_path, cache):
    with pytest.raises(symbp.SpecError, match="cannot read spec"):
        symbp.compile(tmp_path / "missing.sbp", backend="c")


def test_cache_clear_removes_the_index(tmp_path, cache):
    compiler.c_package(spec_file(tmp_path, 10))
    assert len(records(cache)) == 1
    assert cbuild.cache_clear() == 1
    assert records(cache) == [] and cbuild.cache_info()["entries"] == 0


def test_a_long_unit_builds_at_O2_unless_the_flags_are_the_users(monkeypatch):
    """An unrolled network's long C file builds at -O2 (gcc's -O3 takes several times as
    long on it); SYMBP_CFLAGS, when set, is used as it is."""
    short, long = toolchain.LARGE_UNIT, toolchain.LARGE_UNIT + 1  # lines
    monkeypatch.delenv("SYMBP_CFLAGS", raising=False)
    assert toolchain.kernel_flags(short) == toolchain.DEFAULT_FLAGS
    assert toolchain.kernel_flags(long) == ("-O2", *toolchain.DEFAULT_FLAGS[1:])
    monkeypatch.setenv("SYMBP_CFLAGS", "-O3 -g0")
    assert toolchain.kernel_flags(long) == ("-O3", "-g0")
