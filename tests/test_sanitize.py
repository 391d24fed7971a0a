"""The C tests once more under AddressSanitizer (issue #7), in a child process.

The child builds every C module with ``SYMBP_SANITIZE=address`` (instrumented code, in a build
cache of its own) and runs the C boundary campaign and argument checks of test_c_backend.py;
under --long also the random-graph differential test on C (test_random_graphs.py) and the C
trainer tests (train_epoch, optimizers, checkpoints; test_train.py). Python itself is not
instrumented, so
the child preloads the compiler's ASan runtime; ``PYTHONMALLOC=malloc`` puts Python's own
buffers (cffi's argument arrays among them) on ASan's heap too, and numpy's always are. Any
report of ASan (an out-of-bounds read or write, a use after free) ends the child with status
86 and fails this test with the report.

Left out: the build cache's concurrency and damage tests (many processes and builds; they
test files, not memory) and the 97%-digits training run (long; train_epoch is covered).

A control first proves the setup catches a one-element overflow of a numpy buffer. Skipped,
with the reason, where the C compiler has no ASan runtime.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from conftest import is_long

ROOT = Path(__file__).resolve().parent.parent
ASAN_EXIT = 86
# by default the C boundary campaign and argument checks; under --long also the random-graph
# differential test on C and the C trainer tests (each of their networks is another build)
SELECTION = [
    "tests/test_c_backend.py",
    "-k",
    "not cache and not damaged and not processes and not compiler and not cli_",
]
LONG_SELECTION = [
    "tests/test_c_backend.py",
    "tests/test_random_graphs.py",
    "tests/test_train.py",
    "-k",
    "(test_c_backend and not cache and not damaged and not processes and not compiler "
    "and not cli_) "
    "or c_backend_agrees or (test_train and c] and not digits)",
]


def compiler() -> str | None:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(cc.split()[0])


def asan_runtime(cc: str) -> str | None:
    """The shared ASan runtime of ``cc`` (gcc's libasan.so, clang's libclang_rt.asan)."""
    for name in ("libasan.so", "libclang_rt.asan-x86_64.so", "libclang_rt.asan.so"):
        try:
            found = subprocess.run(
                [cc, f"-print-file-name={name}"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
        if os.path.isabs(found) and os.path.exists(found):
            return os.path.realpath(found)
    return None


CC = compiler()
RUNTIME = asan_runtime(CC) if CC and sys.platform.startswith("linux") else None
pytestmark = pytest.mark.skipif(
    RUNTIME is None,
    reason="no ASan runtime: the C compiler has no libasan (or not Linux, or no compiler)",
)


def asan_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LD_PRELOAD": RUNTIME,
            "ASAN_OPTIONS": f"detect_leaks=0:exitcode={ASAN_EXIT}:allocator_may_return_null=1:"
            "halt_on_error=1",
            "PYTHONMALLOC": "malloc",
            "SYMBP_SANITIZE": "address",
            "SYMBP_CACHE_DIR": str(cache),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def test_the_setup_catches_an_overflow(tmp_path):
    """A one-element write past a numpy array, in a library built with -fsanitize=address and
    called as the suite calls C: ASan must stop the child and say what happened."""
    source = tmp_path / "oob.c"
    source.write_text("void oob(double *a, long n) { a[n] = 1.0; }\n", encoding="utf-8")
    lib = tmp_path / "liboob.so"
    subprocess.run(
        [CC, "-shared", "-fPIC", "-g", "-fsanitize=address", str(source), "-o", str(lib)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    code = textwrap.dedent(f"""\
        import ctypes
        import numpy as np
        a = np.zeros(4)
        ctypes.CDLL({str(lib)!r}).oob(ctypes.c_void_p(a.ctypes.data), ctypes.c_long(4))
        print("not caught")
        """)
    child = subprocess.run(
        [sys.executable, "-c", code],
        env=asan_env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == ASAN_EXIT, child.stdout + child.stderr
    assert "heap-buffer-overflow" in child.stderr and "not caught" not in child.stdout


def test_c_tests_under_address_sanitizer(tmp_path):
    cache = tmp_path / "cache"
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:warnings", "-x"]
    args += ["--basetemp", str(tmp_path / "child")]  # where test_c_backend keeps its builds
    args += [*LONG_SELECTION, "--long"] if is_long() else SELECTION
    child = subprocess.run(
        args, cwd=ROOT, env=asan_env(cache), capture_output=True, text=True, timeout=3600
    )
    report = child.stdout[-4000:] + child.stderr[-8000:]
    assert "AddressSanitizer" not in child.stderr, report
    assert child.returncode == 0, f"exit {child.returncode}:\n{report}"
    summary = re.findall(r"^=*\s*(\d+ passed.*?)\s*=*$", child.stdout, re.M)
    assert summary and "failed" not in summary[-1], report
    assert int(summary[-1].split()[0]) > (200 if is_long() else 150), report
    print(f"under ASan: {summary[-1]}")
    # and what ran was instrumented: every extension built calls ASan's checks
    extensions = [*cache.rglob("*.so"), *(tmp_path / "child").rglob("*.so")]
    assert len(extensions) >= 5
    for so in extensions:
        assert b"__asan_report" in so.read_bytes(), f"{so.name} is not instrumented"
