"""JAX: jax.jit of the whole step (params in, params out), and lax.scan of that step over an
epoch of batches in one jitted call (the counterpart of symbp's train_epoch). LeNet-5's
convolutions are lax.conv_general_dilated, its pooling lax.reduce_window."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..workloads import EPOCH_STEPS, Case, Workload
from . import Runner

jax.config.update("jax_enable_x64", True)  # float64 workloads stay float64


def loss_fn(w: Workload):
    """The mean loss over the batch of params (a dict, as symbp names them) on (x, y)."""

    def neuron(p, x, y):
        a = jax.nn.sigmoid(p["w"] * x + p["b"])
        return 0.5 * jnp.sum((a - y) ** 2) / x.shape[0]

    def network(p, x, y):
        a = x
        for i in range(1, w.layers + 1):
            a = a @ p[f"W{i}"].T + p[f"b{i}"]
            if i < w.layers or w.loss == "mse":
                a = jax.nn.sigmoid(a)
        if w.loss == "ce":
            return -jnp.sum(y * jax.nn.log_softmax(a, axis=1)) / x.shape[0]
        return 0.5 * jnp.sum((a - y) ** 2) / x.shape[0]

    def rnn(p, ids, y):  # as torch_systems writes it; the loop unrolled in the trace
        n, steps = ids.shape
        inputs = p["E"][ids] @ p["Wx"].T + p["b"]
        h = jnp.zeros((n, p["Wh"].shape[0]), dtype=inputs.dtype)
        states = []
        for t in range(steps):
            h = jnp.tanh(inputs[:, t] + h @ p["Wh"].T)
            states.append(h)
        logits = jnp.stack(states, axis=1) @ p["V"].T + p["c"]
        return -jnp.sum(y * jax.nn.log_softmax(logits, axis=2)) / (n * steps)

    if w.kind == "rnn":
        return rnn
    if w.kind == "conv":
        return lenet
    return neuron if w.sizes is None else network


def _conv(a, kernel, padding: int):
    return lax.conv_general_dilated(
        a, kernel, (1, 1), [(padding, padding)] * 2, dimension_numbers=("NCHW", "OIHW", "NCHW")
    )


def _pool(a):
    """2 x 2 max-pooling, stride 2."""
    return lax.reduce_window(a, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def lenet(p, x, y):
    """LeNet-5's mean cross-entropy, as torch_systems writes it (NCHW, OIHW kernels)."""
    a = _pool(jax.nn.relu(_conv(x, p["K1"], 2) + p["c1b"]))
    a = _pool(jax.nn.relu(_conv(a, p["K2"], 0) + p["c2b"]))
    a = jax.nn.relu(a.reshape(a.shape[0], -1) @ p["W3"].T + p["b3"])
    a = jax.nn.relu(a @ p["W4"].T + p["b4"])
    logits = a @ p["W5"].T + p["b5"]
    return -jnp.sum(y * jax.nn.log_softmax(logits, axis=1)) / x.shape[0]


def step_fn(case: Case):
    loss_of, lr = loss_fn(case.workload), case.lr

    def step(p, x, y):
        loss, grads = jax.value_and_grad(loss_of)(p, x, y)
        return jax.tree.map(lambda a, g: a - lr * g, p, grads), loss

    return step


def _params(case: Case) -> dict:
    return {k: jnp.asarray(v) for k, v in case.params.items()}


def _numpy(p: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in p.items()}


def build_jit(case: Case) -> Runner:
    step = jax.jit(step_fn(case), donate_argnums=0)  # the old params' buffers are reused
    state = [_params(case)]
    x, y = jnp.asarray(case.x), jnp.asarray(case.y)

    def call() -> float:
        state[0], loss = step(state[0], x, y)
        return float(loss)

    return Runner(call, lambda: _numpy(state[0]))


def build_scan_epoch(case: Case) -> Runner:
    """EPOCH_STEPS steps in one call, each on a batch gathered inside the scan by the order,
    as train_epoch does; the first step is a scan over the case's one batch."""
    step, batch = step_fn(case), case.workload.batch

    def epoch(p, data_x, data_y, order):
        def body(p, rows):
            return step(p, data_x[rows], data_y[rows])

        p, losses = jax.lax.scan(body, p, order.reshape(-1, batch))
        return p, jnp.mean(losses)

    epoch = jax.jit(epoch, donate_argnums=0)
    state = [_params(case)]
    data_x, data_y = jnp.asarray(case.data_x), jnp.asarray(case.data_y)
    order, first_order = jnp.asarray(case.order), jnp.arange(batch)

    def run(rows) -> float:
        state[0], loss = epoch(state[0], data_x, data_y, rows)
        return float(loss)

    return Runner(
        lambda: run(order),
        lambda: _numpy(state[0]),
        first=lambda: run(first_order),
        steps_per_call=EPOCH_STEPS,
    )
