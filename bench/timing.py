"""Interleaved timing: every system of a workload takes its turn in each round, so a slow
patch of the machine (another process, a frequency change) lands on all of them."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Stats:
    median: float  # seconds per step
    minimum: float
    q1: float
    q3: float
    samples: int
    calls_per_sample: int


def measure(
    calls: dict[str, tuple[Callable[[], object], int]],
    rounds: int,
    sample_s: float,
    warmup_s: float,
) -> dict[str, Stats]:
    """Seconds per step of each call, given as (function, steps it does per call).

    Each function first runs for ``warmup_s``, which also sets how many calls make one sample
    (about ``sample_s``). Then ``rounds`` rounds take one sample of every function, starting
    with a different one each round; the garbage collector is off while samples are taken.
    """
    inner = {}
    for key, (fn, _) in calls.items():
        start, n = time.perf_counter(), 0
        while n < 2 or time.perf_counter() - start < warmup_s:
            fn()
            n += 1
        once = (time.perf_counter() - start) / n
        inner[key] = max(1, round(sample_s / once))
    samples: dict[str, list[float]] = {key: [] for key in calls}
    keys = list(calls)
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                fn, steps = calls[key]
                count = inner[key]
                start = time.perf_counter()
                for _ in range(count):
                    fn()
                samples[key].append((time.perf_counter() - start) / (count * steps))
    finally:
        gc.enable()
    out = {}
    for key, values in samples.items():
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        out[key] = Stats(statistics.median(values), min(values), q1, q3, len(values), inner[key])
    return out


def floor_call(shapes, dtype: str) -> Callable[[], None]:
    """The BLAS floor: the step's matrix products, each on contiguous operands into a
    preallocated output, done back to back with numpy's BLAS."""
    rng = np.random.default_rng(0)
    products = []
    for sa, sb in shapes:
        a = rng.standard_normal(sa).astype(dtype)
        b = rng.standard_normal(sb).astype(dtype)
        products.append((a, b, np.empty((sa[0], sb[1]), dtype=dtype)))

    def call() -> None:
        for a, b, out in products:
            np.matmul(a, b, out=out)

    return call
