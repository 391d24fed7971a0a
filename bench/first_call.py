"""First calls as a user meets them: a fresh process, imports done, then the clock runs over
building the step (symbp.compile, torch.compile, jax.jit, pytensor.function) and its first
call, which is where the tracing frameworks compile.

    python -m bench.first_call WORKLOAD SYSTEM    # prints {"first_s": ..}

``measure`` runs it twice per system in child processes sharing a fresh folder of caches for
the workload (SYMBP_CACHE_DIR, TORCHINDUCTOR_CACHE_DIR, PyTensor's compiledir, JAX's
persistent cache): the first run is cold, the second one finds the caches filled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import caches

# The systems whose first call compiles something, and so is worth a cold and a cached run.
COMPILING = ("symbp C", "symbp NumPy", "torch.compile", "jax.jit", "PyTensor")


def main(argv: list[str]) -> None:
    key, name = argv
    from .systems import SYSTEMS
    from .workloads import WORKLOADS, make_case

    workload = next(w for w in WORKLOADS if w.key == key)
    system = next(s for s in SYSTEMS if s.name == name)
    build = system.load()  # the framework's import, outside the clock
    case = make_case(workload)  # data, outside the clock
    start = time.perf_counter()
    runner = build(case)
    (runner.first or runner.call)()
    print(json.dumps({"first_s": time.perf_counter() - start}))


def run_child(key: str, system: str, env: dict[str, str]) -> dict:
    """One child process's measurement; {"error": ...} if it failed."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.first_call", key, system],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {last[:200]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(key: str, systems: list[str]) -> dict[str, dict]:
    """{system: {"cold": .., "cached": ..}} for the given systems on one workload."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="symbp-bench-first-") as root:
        env = {**os.environ, **caches.env(root)}
        for name in systems:
            out[name] = {"cold": run_child(key, name, env), "cached": run_child(key, name, env)}
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
