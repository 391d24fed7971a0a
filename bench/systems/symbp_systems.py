"""symbp's generated modules: the C backend (train_step per call, and train_epoch over a whole
epoch of batches in one call) and the NumPy backend."""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

import symbp

from ..workloads import EPOCH_STEPS, Case, Workload
from . import Runner

_TEMPORARY: list[tempfile.TemporaryDirectory] = []  # removed when the process exits


@cache
def _spec_folder() -> Path:
    """SYMBP_BENCH_SPECS (first_call.py points the cold and the cached child process to one
    folder), else a temporary folder of this process."""
    folder = os.environ.get("SYMBP_BENCH_SPECS")
    if folder:
        return Path(folder)
    _TEMPORARY.append(tempfile.TemporaryDirectory(prefix="symbp-bench-specs-"))
    return Path(_TEMPORARY[0].name)


def spec_file(workload: Workload) -> Path:
    """The workload's spec as a file, as users compile them: symbp finds a spec file it built
    before in its cache without parsing it."""
    path = _spec_folder() / f"{workload.key}.sbp"
    if not path.exists() or path.read_text(encoding="utf-8") != workload.spec:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(workload.spec, encoding="utf-8")
    return path


@cache
def module(workload: Workload, backend: str):
    """The workload's generated module (C builds come from symbp's cache when it has them)."""
    return symbp.compile(spec_file(workload), backend=backend, dtype=workload.dtype)


def _step_runner(case: Case, backend: str) -> Runner:
    mod = module(case.workload, backend)
    params = {k: v.copy() for k, v in case.params.items()}
    step, lr, inputs = mod.train_step, case.lr, case.inputs
    return Runner(lambda: step(params, lr, **inputs), lambda: params)


def build_c(case: Case) -> Runner:
    return _step_runner(case, "c")


def build_numpy(case: Case) -> Runner:
    return _step_runner(case, "numpy")


def build_c_epoch(case: Case) -> Runner:
    """train_epoch over EPOCH_STEPS batches in a fixed random order, one C call, which
    gathers each batch itself; the first step is an epoch of the case's one batch."""
    mod = module(case.workload, "c")
    if not hasattr(mod, "train_epoch"):
        raise NotImplementedError("this symbp's C modules have no train_epoch")
    params = {k: v.copy() for k, v in case.params.items()}
    state, hyper = mod.init_state("sgd"), {"optimizer": "sgd", "lr": case.lr}
    batch, order = case.workload.batch, case.order
    first_order = np.arange(batch)
    epoch = mod.train_epoch

    def first() -> float:
        total, steps = epoch(params, state, hyper, first_order, batch, x=case.data_x, y=case.data_y)
        return total / batch

    def call() -> float:
        total, steps = epoch(params, state, hyper, order, batch, x=case.data_x, y=case.data_y)
        if steps != EPOCH_STEPS:
            raise RuntimeError(f"train_epoch stopped after {steps} of {EPOCH_STEPS} steps")
        return total / (steps * batch)

    return Runner(call, lambda: params, first=first, steps_per_call=EPOCH_STEPS)
