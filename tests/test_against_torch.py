"""The unseen networks again, with PyTorch's autograd as the independent reference.

Every case of ``test_unseen_networks.py`` is evaluated on float64 tensors, one example at a
time, through a PyTorch math namespace; the batch-mean loss is differentiated by autograd and
compared with the compiled module at 1e-9 relative. Skipped where torch is not installed (it
is not a dependency of symbp; a CPU build is enough).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_unseen_networks import (  # noqa: E402 - after the skip
    BACKENDS,
    CASES,
    FLOAT32_RUNS,
    Case,
    _c_builds_in_parallel,  # noqa: F401 - the autouse fixture that builds the C modules
    assert_close,
    compiled,
    draw_inputs,
    draw_params,
    reference,
)

RTOL = 1e-9
FLOOR = 1e-12  # absolute, times the largest magnitude of the array (for exact zeros)


def _sum(e, axis=None):
    return torch.sum(e) if axis is None else torch.sum(e, dim=axis)


def _mean(e, axis=None):
    return torch.mean(e) if axis is None else torch.mean(e, dim=axis)


def _logsumexp(e, axis=None):
    if axis is None:
        return torch.logsumexp(e.reshape(-1), dim=0)
    return torch.logsumexp(e, dim=axis)


def _log_softmax(e, axis=-1):
    return torch.log_softmax(e, dim=axis)


TORCH_MATH = SimpleNamespace(
    exp=torch.exp,
    log=torch.log,
    sqrt=torch.sqrt,
    abs=torch.abs,
    tanh=torch.tanh,
    sin=torch.sin,
    cos=torch.cos,
    sigmoid=torch.sigmoid,
    relu=torch.relu,
    softplus=torch.nn.functional.softplus,
    sum=_sum,
    mean=_mean,
    logsumexp=_logsumexp,
    softmax=lambda e, axis=-1: torch.softmax(e, dim=axis),
    log_softmax=_log_softmax,
    cross_entropy=lambda z, t: -torch.sum(t * _log_softmax(z)),
    T=lambda e: e.permute(*reversed(range(e.dim()))),
    # maximum, minimum, clip, where; max and min (amax and amin split ties evenly)
    maximum=torch.maximum,
    minimum=torch.minimum,
    clip=lambda e, low, high: torch.clamp(e, low, high),
    where=lambda c, a, b: torch.where(c != 0, a, b),
    max=lambda e, axis=None: torch.amax(e) if axis is None else torch.amax(e, dim=axis),
    min=lambda e, axis=None: torch.amin(e) if axis is None else torch.amin(e, dim=axis),
)


def torch_reference(case: Case, params: dict, inputs: dict):
    """(mean loss, per-example losses, outputs, gradients) by autograd, all float64 NumPy."""
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    ti = {k: torch.tensor(v, dtype=torch.float64) for k, v in inputs.items()}
    if ti:
        losses, outputs = reference(case, TORCH_MATH, tp, ti)
        per = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in losses])
        outs = {k: torch.stack([torch.as_tensor(o[k]) for o in outputs]) for k in outputs[0]}
        total = per.mean()
    else:
        total, outs = reference(case, TORCH_MATH, tp, ti)
        total = torch.as_tensor(total, dtype=torch.float64)
        per = total
    leaves = [tp[k] for k in params]
    grads = (
        torch.autograd.grad(total, leaves, allow_unused=True)
        if total.requires_grad
        else ([None] * len(leaves))
    )
    grads = {
        k: np.zeros(params[k].shape) if g is None else g.detach().numpy()
        for k, g in zip(params, grads, strict=True)
    }
    outs = {k: torch.as_tensor(v).detach().numpy() for k, v in outs.items()}
    return float(total.detach()), per.detach().numpy(), outs, grads


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", (1, 5))
@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_torch_autograd(case, batch, backend):
    module = compiled(case, backend=backend)
    rng = np.random.default_rng([batch, 2 * len(case.name)])
    params = draw_params(module, rng)
    inputs = draw_inputs(module, rng, batch)
    want_loss, want_per, want_out, want_grads = torch_reference(case, params, inputs)

    assert_close("loss", module.loss(params, **inputs), want_loss, RTOL, FLOOR)
    out = module.forward(params, **inputs)
    assert_close(f"forward {module.OUTPUTS[-1]}", out[module.OUTPUTS[-1]], want_per, RTOL, FLOOR)
    for name, want in want_out.items():
        assert_close(f"forward {name}", out[name], want, RTOL, FLOOR)
    value, grads = module.loss_and_grads(params, **inputs)
    assert_close("loss_and_grads loss", value, want_loss, RTOL, FLOOR)
    assert list(grads) == list(want_grads)
    for name, want in want_grads.items():
        assert_close(f"d{name}", grads[name], want, RTOL, FLOOR)


@pytest.mark.parametrize(("case", "backend"), FLOAT32_RUNS)
def test_float32_module_is_close_to_torch_float64(case, backend):
    module = compiled(case, "float32", backend)
    rng = np.random.default_rng(5)
    params = draw_params(module, rng)
    inputs = draw_inputs(module, rng, 5)
    want_loss, _, _, want_grads = torch_reference(case, params, inputs)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    i32 = {k: v.astype(np.float32) for k, v in inputs.items()}
    value, grads = module.loss_and_grads(p32, **i32)
    assert_close("float32 loss", value, want_loss, 1e-4, 1e-5)
    for name, want in want_grads.items():
        assert_close(f"float32 d{name}", grads[name], want, 1e-4, 1e-5)
