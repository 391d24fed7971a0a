"""The benchmark proper: for each workload, build every system from the same starting point,
check its first step against a float64 reference, then time all of them interleaved."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import numpy as np

from . import first_call
from .systems import SYSTEMS, Runner, System
from .timing import floor_call, measure
from .workloads import WORKLOADS, Case, Workload, make_case, reference_step

FLOOR = "BLAS floor (numpy)"
# Largest relative error allowed in the first step's loss and in its parameter update (the
# norm of the update's error over the norm of the reference update), per dtype. float32
# updates are differences of rounded parameters, hence the looser bound.
TOLERANCE = {"float64": (1e-6, 1e-6), "float32": (1e-6, 1e-3)}


@dataclass(frozen=True)
class Settings:
    rounds: int
    sample_s: float
    warmup_s: float

    @classmethod
    def of(cls, quick: bool, rounds: int | None = None) -> Settings:
        base = cls(5, 0.005, 0.05) if quick else cls(21, 0.02, 0.3)
        return cls(rounds or base.rounds, base.sample_s, base.warmup_s)


def reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {text[:160]}"


def load_systems(names: list[str] | None) -> tuple[dict[System, object], dict[str, str]]:
    """The builders of the chosen systems that import, and why the others are skipped."""
    builders, skipped = {}, {}
    for system in SYSTEMS:
        if names is not None and system.name.lower() not in names:
            continue
        try:
            builders[system] = system.load()
        except Exception as e:  # ImportError, or a framework failing at import
            skipped[system.name] = f"not importable ({reason(e)})"
    return builders, skipped


def check(case: Case, reference, loss: float, params: dict[str, np.ndarray]):
    """(loss error, update error), relative to the float64 reference step."""
    ref_loss, ref_after = reference
    loss_err = abs(loss - ref_loss) / max(abs(ref_loss), 1e-300)
    num = den = 0.0
    for name, before in case.params.items():
        before = before.astype(np.float64)
        update = np.asarray(params[name], dtype=np.float64) - before
        ref_update = ref_after[name] - before
        num += float(np.sum((update - ref_update) ** 2))
        den += float(np.sum(ref_update**2))
    return loss_err, (num / den) ** 0.5 if den else num**0.5


def start(case: Case, build, reference) -> tuple[Runner, dict]:
    """Build a system and take its first step: (runner, facts), raising on any failure."""
    t = time.perf_counter()
    runner = build(case)
    loss = (runner.first or runner.call)()
    first_s = time.perf_counter() - t
    loss_err, update_err = check(case, reference, float(loss), runner.params())
    return runner, {
        "first_call_s": first_s,
        "loss_rel_err": loss_err,
        "update_rel_err": update_err,
        "note": runner.note,
    }


def run_workload(
    w: Workload, builders: dict[System, object], settings: Settings, log
) -> list[dict]:
    case = make_case(w)
    reference = reference_step(case)
    loss_tol, update_tol = TOLERANCE[w.dtype]
    rows, calls = [], {}
    for system, build in builders.items():
        if not system.applies(w):
            continue
        row = {
            "workload": w.name,
            "key": w.key,
            "system": system.name,
            "family": system.family,
            "status": "ok",
        }
        rows.append(row)
        try:
            runner, facts = start(case, build, reference)
        except Exception as e:
            row["status"] = f"failed: {reason(e)}"
            log(f"  {system.name}: {row['status']}")
            log("".join(traceback.format_exception(e)[-3:]).rstrip(), verbose=True)
            continue
        row.update(facts)
        if not (facts["loss_rel_err"] <= loss_tol and facts["update_rel_err"] <= update_tol):
            row["status"] = (
                f"wrong first step: loss off by {facts['loss_rel_err']:.1e}, "
                f"update by {facts['update_rel_err']:.1e} (relative)"
            )
            log(f"  {system.name}: {row['status']}")
            continue
        log(
            f"  {system.name}: built and checked in {facts['first_call_s']:.2f} s "
            f"(loss error {facts['loss_rel_err']:.1e}, update {facts['update_rel_err']:.1e})"
        )
        calls[system.name] = (runner.call, runner.steps_per_call)
        row["steps_per_call"] = runner.steps_per_call
    if w.heavy:
        calls[FLOOR] = (floor_call(w.matmul_shapes(), w.dtype), 1)
        rows.append(
            {
                "workload": w.name,
                "key": w.key,
                "system": FLOOR,
                "family": "floor",
                "status": "ok",
                "steps_per_call": 1,
                "note": f"{w.flops() / 1e6:.1f} MFLOP of matrix products per step",
            }
        )
    stats = measure(calls, settings.rounds, settings.sample_s, settings.warmup_s)
    timed = [r for r in rows if r["system"] in stats]
    for r in timed:
        s = stats[r["system"]]
        r.update(
            us=s.median * 1e6,
            min_us=s.minimum * 1e6,
            q1_us=s.q1 * 1e6,
            q3_us=s.q3 * 1e6,
            samples=s.samples,
            calls_per_sample=s.calls_per_sample,
        )
    fastest = min((r["us"] for r in timed if r["family"] != "floor"), default=None)
    floor = stats[FLOOR].median * 1e6 if FLOOR in stats else None
    for r in timed:
        r["vs_fastest"] = r["us"] / fastest if fastest and r["family"] != "floor" else None
        r["vs_floor"] = r["us"] / floor if floor else None
    return rows


def run(
    workload_keys: list[str] | None,
    system_names: list[str] | None,
    settings: Settings,
    quick: bool,
    log,
) -> dict:
    """Every chosen workload with every chosen system; first calls in child processes before
    the main run (full run: every compiling system on every workload; quick: symbp's on
    mnist-f32, the targets), so the main run then finds symbp's modules in the cache."""
    workloads = [w for w in WORKLOADS if workload_keys is None or w.key in workload_keys]
    builders, skipped = load_systems(system_names)
    for name, why in skipped.items():
        log(f"skipped {name}: {why}")
    compiles = {}
    for w in workloads:
        if quick and w.key != "mnist-f32":
            continue
        names = [
            s.name
            for s in builders
            if s.name in first_call.COMPILING
            and s.applies(w)
            and (s.family == "symbp" or not quick)
        ]
        if names:
            log(f"{w.name}: first calls of {', '.join(names)} in fresh processes")
            compiles[w.key] = first_call.measure(w.key, names)
    rows = []
    for w in workloads:
        log(f"{w.name}:")
        rows += run_workload(w, builders, settings, log)
    return {"rows": rows, "first_calls": compiles, "skipped": skipped}
