"""Where each system keeps its compile cache: all under one root, so that a run (or a child
process measuring a cold first call) can start with every cache empty."""

from __future__ import annotations

import os


def env(root: str) -> dict[str, str]:
    """The environment variables pointing every cache under ``root``."""
    flags = [
        f
        for f in os.environ.get("PYTENSOR_FLAGS", "").split(",")
        if f and not f.startswith("base_compiledir=")
    ]
    return {
        "SYMBP_CACHE_DIR": os.path.join(root, "symbp"),
        "SYMBP_BENCH_SPECS": os.path.join(root, "specs"),  # the spec files symbp compiles
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(root, "inductor"),
        "NUMBA_CACHE_DIR": os.path.join(root, "numba"),
        "PYTENSOR_FLAGS": ",".join([*flags, f"base_compiledir={os.path.join(root, 'pytensor')}"]),
        # JAX's persistent cache is opt-in; turned on, for every compiled step, so that its
        # first call from the cache can be measured like the others'
        "JAX_COMPILATION_CACHE_DIR": os.path.join(root, "jax"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
