"""Thread settings, put in the environment before numpy or any framework is imported.

numpy's bundled OpenBLAS, the scipy-openblas32 that symbp's C modules link, scipy's own
OpenBLAS (used by numba, hence PyTensor), torch's OpenMP pool and XLA's Eigen pool would
otherwise each start a thread per core; on a 2-core machine their spinning threads fight
over the cores and the timings measure the fight. By default every pool gets one thread.
"""

from __future__ import annotations

import os

XLA_SINGLE = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def configure(threads: int) -> dict[str, str]:
    """Set every library's thread count to ``threads``; returns what was set."""
    env = {
        name: str(threads)
        for name in (
            "OPENBLAS_NUM_THREADS",  # numpy, scipy-openblas32 (symbp C), scipy (numba, PyTensor)
            "OMP_NUM_THREADS",  # torch's intra-op pool (OpenMP), any other OpenMP runtime
            "MKL_NUM_THREADS",  # an MKL, wherever one is loaded
            "NUMBA_NUM_THREADS",  # numba's parallel layer (PyTensor does not use it)
        )
    }
    env["BENCH_THREADS"] = str(threads)  # read by the torch systems: torch.set_num_threads
    env["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # no pool of compile workers left running
    if threads == 1:  # XLA's CPU client: run each op on the calling thread
        flags = os.environ.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} {XLA_SINGLE}".strip() if XLA_SINGLE not in flags else flags
    os.environ.update(env)
    return env


def count() -> int:
    return int(os.environ.get("BENCH_THREADS", "1"))


def pools() -> list[str]:
    """The thread pools loaded in this process and their sizes, as threadpoolctl sees them
    (when it is installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["(threadpoolctl not installed: pools not listed)"]
    lines = []
    for info in threadpool_info():
        lib = os.path.basename(info.get("filepath", "?"))
        arch = f" {info['architecture']}" if info.get("architecture") else ""
        version = f" {info['version']}" if info.get("version") else ""
        lines.append(
            f"{info.get('internal_api')}{version}{arch} ({lib}): "
            f"{info.get('num_threads')} thread(s)"
        )
    return lines
