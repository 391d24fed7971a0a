"""Gradient verification: reverse mode against central finite differences, in float64.

Small Params are checked element by element; large ones along random unit directions,
comparing the directional derivative of the loss with <grad, direction>. The error is
|fd - ad| / max(|fd|, |ad|, floor), with a floor scaled to the loss so that round-off in the
differences of a large loss is not mistaken for a wrong gradient.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..codegen.runtime import fans
from ..ir.graph import Graph

ELEMENTWISE_LIMIT = 64  # Params with at most this many elements are checked elementwise
DIRECTIONS = 8  # random directions for larger ones
CHECK_KEY = 2026  # the dropout key of a check: with the masks fixed, the loss is smooth


@dataclass
class ParamCheck:
    name: str
    shape: tuple[int, ...]
    checked: str  # "every element" or "N random directions"
    max_error: float
    worst_fd: float
    worst_ad: float


@dataclass
class Report:
    backend: str
    tolerance: float
    loss: float
    params: list[ParamCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return math.isfinite(self.loss) and all(p.max_error <= self.tolerance for p in self.params)

    def table(self) -> str:
        head = f"{'param':<16} {'shape':<14} {'checked':<22} {'max rel error':>13}  "
        lines = [
            f"backend {self.backend}: loss {self.loss:.6g} at the check point (random"
            " parameters and inputs, not the spec's initializers)",
            head + "status",
        ]
        for p in self.params:
            status = (
                "ok"
                if p.max_error <= self.tolerance
                else (f"OFF (fd {p.worst_fd:.6g} vs reverse mode {p.worst_ad:.6g})")
            )
            lines.append(
                f"{p.name:<16} {str(p.shape):<14} {p.checked:<22} {p.max_error:>13.2e}  {status}"
            )
        if not math.isfinite(self.loss):
            lines.append(f"the loss is {self.loss} at the check point: nothing can be checked")
        lines.append(
            f"tolerance {self.tolerance:.0e}: "
            + ("all gradients agree" if self.ok else "GRADIENTS ARE OFF")
        )
        return "\n".join(lines)


def random_inputs(module: types.ModuleType, batch: int, rng: np.random.Generator) -> dict:
    """Normal values, and valid ids for the Inputs of integer ids (``INT_INPUTS``)."""
    ids = getattr(module, "INT_INPUTS", {})
    return {
        name: rng.integers(0, ids[name], size=(batch, *shape))
        if name in ids
        else rng.normal(size=(batch, *shape))
        for name, shape in module.INPUTS.items()
    }


def random_params(module: types.ModuleType, rng: np.random.Generator) -> dict:
    """Params away from the special points of zero initializers (all-zero biases hide bugs),
    a matrix scaled by 1 / sqrt(its fan-in) as an initializer would (a recurrence of
    normal(0.5) weights over many steps is chaotic: finite differences then measure noise);
    Consts as the spec initializes them (they are not checked, only used)."""
    params = {
        name: rng.normal(scale=0.5 if len(shape) < 2 else fans(shape)[0] ** -0.5, size=shape)
        for name, shape in module.PARAMS.items()
    }
    consts = getattr(module, "CONSTS", {})
    if consts:
        initial = module.init_params(0)
        params.update({name: initial[name] for name in consts})
    return params


def check_module(
    module: types.ModuleType,
    params: dict | None = None,
    inputs: dict | None = None,
    seed: int = 0,
    batch: int = 3,
    tolerance: float = 1e-6,
    backend: str = "numpy",
) -> Report:
    """Check a generated float64 module's loss_and_grads against central differences."""
    rng = np.random.default_rng(seed)
    params = random_params(module, rng) if params is None else params
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    inputs = random_inputs(module, batch, rng) if inputs is None else inputs
    key = (CHECK_KEY,) if getattr(module, "RANDOM", False) else ()
    loss, grads = module.loss_and_grads(params, *key, **inputs)
    floor = noise_floor(loss)
    report = Report(backend, tolerance, loss)

    def f(name, value):
        saved = params[name]
        params[name] = value
        try:
            if key:  # the training loss under the same masks
                return module.loss_and_grads(params, *key, **inputs)[0]
            return module.loss(params, **inputs)
        finally:
            params[name] = saved

    for name, shape in module.PARAMS.items():
        p = params[name]
        g = np.asarray(grads[name], dtype=np.float64)
        if p.size <= ELEMENTWISE_LIMIT:
            directions = [np.eye(p.size)[i].reshape(shape) for i in range(p.size)]
            checked = "every element"
        else:
            directions = [
                d / np.linalg.norm(d) for d in (rng.normal(size=shape) for _ in range(DIRECTIONS))
            ]
            checked = f"{DIRECTIONS} random directions"
        worst = (0.0, 0.0, 0.0)
        for d in directions:
            h = 1e-5 * max(1.0, float(np.max(np.abs(p))))
            fd = (f(name, p + h * d) - f(name, p - h * d)) / (2 * h)
            ad = float(np.sum(g * d))
            err = abs(fd - ad) / max(abs(fd), abs(ad), floor)
            if not err < worst[0]:  # a NaN is the worst of all
                worst = (err, fd, ad)
        report.params.append(ParamCheck(name, tuple(shape), checked, *worst))
    return report


def check_grads(
    net: Graph | str | Path,
    backend: str = "numpy",
    seed: int = 0,
    batch: int = 3,
    tolerance: float = 1e-6,
) -> Report:
    """Compile ``net`` in float64 and check its gradients by finite differences."""
    from ..compiler import compile

    module = compile(net, backend=backend, dtype="float64")
    return check_module(module, seed=seed, batch=batch, tolerance=tolerance, backend=backend)


@dataclass
class Agreement:
    """How closely two backends agree on the loss and every gradient, in float64."""

    backends: tuple[str, ...]
    tolerance: float
    errors: dict[str, float] = field(default_factory=dict)  # "loss" or param -> rel. error

    @property
    def ok(self) -> bool:
        return all(e <= self.tolerance for e in self.errors.values())

    def table(self) -> str:
        a, b = self.backends[:2]
        lines = [f"{a} against {b}: max relative difference (tolerance {self.tolerance:.0e})"]
        for name, err in self.errors.items():
            lines.append(f"  {name:<16} {err:.2e}  {'ok' if err <= self.tolerance else 'OFF'}")
        lines.append("backends agree" if self.ok else "BACKENDS DISAGREE")
        return "\n".join(lines)


def compare_backends(
    net: Graph | str | Path,
    backends: tuple[str, ...] = ("numpy", "c"),
    seed: int = 0,
    batch: int = 3,
    tolerance: float = 1e-12,
) -> Agreement:
    """Loss and gradients of ``backends`` on the same random data, relative to the largest
    magnitude of each array (elements near zero would otherwise dominate)."""
    from ..compiler import compile

    modules = [compile(net, backend=b, dtype="float64") for b in backends]
    rng = np.random.default_rng(seed)
    params = random_params(modules[0], rng)
    inputs = random_inputs(modules[0], batch, rng)
    key = (CHECK_KEY,) if getattr(modules[0], "RANDOM", False) else ()
    results = [
        m.loss_and_grads({k: v.copy() for k, v in params.items()}, *key, **inputs) for m in modules
    ]
    (loss0, grads0), rest = results[0], results[1:]
    agreement = Agreement(tuple(backends), tolerance)
    floor = noise_floor(loss0)

    def record(name: str, err: float) -> None:
        previous = agreement.errors.get(name, 0.0)
        agreement.errors[name] = err if not err <= previous else previous  # NaN wins

    for loss, grads in rest:
        record("loss", abs(loss - loss0) / max(abs(loss0), 1e-300) if loss != loss0 else 0.0)
        for name, g0 in grads0.items():
            g = np.asarray(grads[name], dtype=float)
            g0 = np.asarray(g0, dtype=float)
            # equal values agree, the same infinity and NaN where both have one included
            same = (g == g0) | (np.isnan(g) & np.isnan(g0))
            with np.errstate(invalid="ignore"):
                diff = np.where(same, 0.0, np.abs(g - g0))
            finite = np.abs(g0[np.isfinite(g0)])
            scale = max(float(np.max(finite, initial=0.0)), floor)
            record(name, float(np.max(diff, initial=0.0)) / scale)
    return agreement


def noise_floor(loss: float) -> float:
    """The gradient size below which differences are round-off, not error: central
    differences of a loss L with step 1e-5 carry noise of about 1e-11 |L|, and a gradient that
    cancels to zero (a softmax shifted by a constant) keeps rounding of that order."""
    return 1e-4 * max(1.0, abs(loss)) if math.isfinite(loss) else 1.0
