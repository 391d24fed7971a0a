"""PyTorch: eager autograd, and torch.compile of the whole step.

Eager is the step as a performance-minded user writes it: the loss, ``torch.autograd.grad``
(no .grad buffers to zero), one fused ``_foreach_add_`` for the update. The compiled step is
functional, ``torch.func.grad_and_value`` of the same loss, updating the parameter tensors
in place inside the compiled graph, so forward, backward and update are one inductor graph.

The char-RNN is written as a performance-minded user writes it by hand (no nn.RNN, no
nn.Embedding): the gather E[ids], every step's input term in one product, the tanh loop over
the 16 characters, one product for all the steps' logits, log_softmax against the one-hot
targets, the mean over steps and batch.

LeNet-5 is written with torch.nn.functional, NCHW as the spec lays it out: conv2d (oneDNN,
the bias passed in), relu, max_pool2d, linear, log_softmax against the one-hot targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import threads
from ..workloads import Case, Workload
from . import Runner

torch.set_num_threads(threads.count())


def loss_fn(w: Workload):
    """The mean loss over the batch of params (a list, in spec order) on (x, y)."""

    def neuron(ps, x, y):
        a = torch.sigmoid(ps[0] * x + ps[1])
        return 0.5 * ((a - y) ** 2).sum() / x.shape[0]

    def network(ps, x, y):
        a = x
        for i in range(w.layers):
            a = F.linear(a, ps[2 * i], ps[2 * i + 1])
            if i < w.layers - 1 or w.loss == "mse":
                a = torch.sigmoid(a)
        if w.loss == "ce":
            return -(y * torch.log_softmax(a, dim=1)).sum() / x.shape[0]
        return 0.5 * ((a - y) ** 2).sum() / x.shape[0]

    def rnn(ps, ids, y):
        emb, wx, wh, b, v, c = ps
        n, steps = ids.shape
        inputs = F.linear(emb[ids], wx, b)  # (n, T, hidden), the bias folded in
        h = inputs.new_zeros(n, wh.shape[0])
        states = []
        for t in range(steps):
            h = torch.tanh(inputs[:, t] + F.linear(h, wh))
            states.append(h)
        logits = F.linear(torch.stack(states, dim=1), v, c)
        return -(y * torch.log_softmax(logits, dim=2)).sum() / (n * steps)

    if w.kind == "rnn":
        return rnn
    if w.kind == "conv":
        return lenet
    return neuron if w.sizes is None else network


def lenet(ps, x, y):
    """LeNet-5's mean cross-entropy; the conv biases are Param[C, 1, 1], viewed as (C,)."""
    k1, c1b, k2, c2b, w3, b3, w4, b4, w5, b5 = ps
    a = F.max_pool2d(F.relu(F.conv2d(x, k1, c1b.view(-1), padding=2)), 2)
    a = F.max_pool2d(F.relu(F.conv2d(a, k2, c2b.view(-1))), 2)
    a = F.relu(F.linear(a.flatten(1), w3, b3))
    a = F.relu(F.linear(a, w4, b4))
    logits = F.linear(a, w5, b5)
    return -(y * torch.log_softmax(logits, dim=1)).sum() / x.shape[0]


def _tensors(case: Case, min_rank: int = 0):
    """Parameter tensors sharing memory with NumPy copies (read back without a copy), of at
    least ``min_rank`` dimensions (a scalar as shape (1,) with min_rank 1)."""
    arrays = {k: v.copy() for k, v in case.params.items()}
    tensors = [
        torch.from_numpy(v.reshape((1,) * (min_rank - v.ndim) + v.shape)) for v in arrays.values()
    ]
    return arrays, tensors


def build_eager(case: Case) -> Runner:
    arrays, params = _tensors(case)
    for p in params:
        p.requires_grad_(True)
    loss_of, lr = loss_fn(case.workload), case.lr
    x, y = torch.from_numpy(case.x), torch.from_numpy(case.y)

    def call() -> float:
        loss = loss_of(params, x, y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-lr)
        return loss.item()

    return Runner(call, lambda: arrays)


def build_compiled(case: Case) -> Runner:
    # torch 2.13's compiled graph silently drops in-place updates of 0-d tensor inputs (the
    # neuron's w and b stay put), so scalars go in as shape (1,)
    arrays, params = _tensors(case, min_rank=1)
    loss_of, lr = loss_fn(case.workload), case.lr
    x, y = torch.from_numpy(case.x), torch.from_numpy(case.y)

    def step(ps, x, y):
        grads, loss = torch.func.grad_and_value(loss_of)(ps, x, y)
        with torch.no_grad():
            for p, g in zip(ps, grads, strict=True):
                p.sub_(g, alpha=lr)
        return loss

    torch._dynamo.reset()  # no graph of an earlier workload is reused (or made dynamic)
    compiled = torch.compile(step, dynamic=False)
    scalars = any(v.ndim == 0 for v in case.params.values())
    return Runner(
        lambda: compiled(params, x, y).item(),
        lambda: arrays,
        note="scalars as shape (1,)" if scalars else "",
    )
