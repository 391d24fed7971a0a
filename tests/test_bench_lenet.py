"""The benchmark's LeNet-5 reference step (bench/lenet.py), which every system's first step is
checked against: its update is lr times the loss's gradient, checked by central finite
differences of its own loss on a few coordinates of every parameter, and its matrix products
have the im2col shapes of the step."""

from __future__ import annotations

import numpy as np
import pytest

from bench import lenet

LR = 0.1
N = 3  # a small batch: the check evaluates the loss 40 times


@pytest.fixture(scope="module")
def start():
    params = lenet.initial_params()
    rng = np.random.default_rng(2)
    params = {k: v + 0.05 * rng.standard_normal(v.shape) for k, v in params.items()}  # biases
    x, y = lenet.batch(N, "float64")
    return params, x, y


def loss(params, x, y) -> float:
    return lenet.reference_step(params, x, y, LR)[0]


@pytest.mark.parametrize("name", list(lenet.PARAMS))
def test_update_is_the_gradient_step(start, name):
    params, x, y = start
    _, after = lenet.reference_step(params, x, y, LR)
    grad = (params[name] - after[name]) / LR
    rng = np.random.default_rng(3)
    eps = 1e-6
    for flat in rng.choice(params[name].size, 2, replace=False):
        index = np.unravel_index(flat, params[name].shape)
        moved = {k: v.copy() for k, v in params.items()}
        moved[name][index] += eps
        up = loss(moved, x, y)
        moved[name][index] -= 2 * eps
        down = loss(moved, x, y)
        assert grad[index] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)


def test_matmul_shapes_chain():
    """Every product's inner dimensions agree, and the flops are those of the step."""
    shapes = lenet.matmul_shapes(64)
    assert all(a[1] == b[0] for a, b in shapes)
    conv = 2 * 64 * (784 * 25 * 6 * 2 + 100 * 150 * 16 * 3)
    dense = 2 * 64 * 3 * (400 * 120 + 120 * 84 + 84 * 10)
    assert sum(2 * a[0] * a[1] * b[1] for a, b in shapes) == conv + dense
