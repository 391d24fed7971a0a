"""The systems under test, each optional: a system whose module does not import is skipped.

A system builds, for a workload's Case, a Runner: ``call()`` does the timed unit of work (one
train step, or one whole epoch for the epoch systems) and returns a loss; ``first()`` is the
first step from the case's parameters, whose loss and updated parameters are checked against
a float64 reference before anything is timed; ``params()`` reads the parameters back as NumPy
arrays. The modules holding the systems import their framework at the top, so they are
imported only once the thread settings are in the environment.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..workloads import Workload


@dataclass
class Runner:
    call: Callable[[], float]
    params: Callable[[], dict[str, np.ndarray]]
    first: Callable[[], float] | None = None  # defaults to call
    steps_per_call: int = 1
    note: str = ""  # how the system was set up, when it matters


@dataclass(frozen=True)
class System:
    name: str
    module: str  # the bench.systems module defining it
    builder: str  # the function there: Case -> Runner
    family: str  # "symbp" or "competitor"
    when: str = "all"  # "all", or "small": only the workloads where overhead dominates
    kinds: tuple[str, ...] = ("layers", "rnn", "conv")  # the kinds of workload it is written for

    def applies(self, workload: Workload) -> bool:
        return workload.kind in self.kinds and (self.when == "all" or workload.small)

    def load(self) -> Callable:
        """The builder; raises ImportError (or whatever the framework raises) if missing."""
        return getattr(importlib.import_module(f"{__name__}.{self.module}"), self.builder)


SYSTEMS = [
    System("symbp C", "symbp_systems", "build_c", "symbp"),
    System("symbp C epoch", "symbp_systems", "build_c_epoch", "symbp", when="small"),
    System("symbp NumPy", "symbp_systems", "build_numpy", "symbp"),
    System("hand NumPy", "hand_numpy", "build", "competitor", kinds=("layers",)),
    System("torch eager", "torch_systems", "build_eager", "competitor"),
    System("torch.compile", "torch_systems", "build_compiled", "competitor"),
    System("jax.jit", "jax_systems", "build_jit", "competitor"),
    System("jax scan epoch", "jax_systems", "build_scan_epoch", "competitor", when="small"),
    System("PyTensor", "pytensor_system", "build", "competitor", kinds=("layers",)),
]
