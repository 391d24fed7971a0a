"""The textbook δ recursion, written once by hand in NumPy: the baseline every course starts
from. Forward keeps each layer's activation; backward carries δ = ∂C/∂z down the layers."""

from __future__ import annotations

import numpy as np

from ..workloads import Case
from . import Runner


def neuron_step(p, lr, x, y) -> float:
    n = x.shape[0]
    a = 1 / (1 + np.exp(-(p["w"] * x + p["b"])))
    delta = (a - y) * a * (1 - a)
    loss = 0.5 * np.sum((a - y) ** 2) / n
    p["w"] -= lr * np.sum(delta * x) / n
    p["b"] -= lr * np.sum(delta) / n
    return float(loss)


def network_step(layers: int, softmax: bool):
    """One SGD step of sigmoid layers; the top layer's δ is that of the quadratic cost on a
    sigmoid output, or of cross-entropy on softmax logits."""

    def step(p, lr, x, y) -> float:
        n = x.shape[0]
        acts = [x]
        for i in range(1, layers + 1):
            z = acts[-1] @ p[f"W{i}"].T + p[f"b{i}"]
            acts.append(z if softmax and i == layers else 1 / (1 + np.exp(-z)))
        out = acts[-1]
        if softmax:
            shifted = out - out.max(axis=1, keepdims=True)
            log_soft = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            loss = -np.sum(y * log_soft) / n
            delta = np.exp(log_soft) - y
        else:
            loss = 0.5 * np.sum((out - y) ** 2) / n
            delta = (out - y) * out * (1 - out)
        for i in range(layers, 0, -1):
            grad_w = delta.T @ acts[i - 1]
            grad_b = delta.sum(axis=0)
            if i > 1:
                delta = (delta @ p[f"W{i}"]) * acts[i - 1] * (1 - acts[i - 1])
            p[f"W{i}"] -= (lr / n) * grad_w
            p[f"b{i}"] -= (lr / n) * grad_b
        return float(loss)

    return step


def build(case: Case) -> Runner:
    w = case.workload
    step = neuron_step if w.sizes is None else network_step(w.layers, w.loss == "ce")
    params = {k: v.copy() for k, v in case.params.items()}
    lr = np.dtype(w.dtype).type(case.lr)  # a NumPy scalar: float32 stays float32
    x, y = case.x, case.y
    return Runner(lambda: step(params, lr, x, y), lambda: params)
