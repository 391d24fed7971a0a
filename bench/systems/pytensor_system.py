"""PyTensor: the parameters are shared variables, one compiled function returns the loss and
applies the SGD updates (``updates=``), called with trust_input (no input checks)."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt

from ..workloads import Case
from . import Runner


def build(case: Case) -> Runner:
    w, dt = case.workload, case.workload.dtype
    shared = {k: pytensor.shared(v.copy(), name=k) for k, v in case.params.items()}

    def const(value):  # a constant of the workload's dtype: float32 stays float32
        return pt.constant(np.asarray(value, dtype=dt))

    x = pt.tensor("x", dtype=dt, shape=(None,) * case.x.ndim)
    y = pt.tensor("y", dtype=dt, shape=(None,) * case.y.ndim)
    n = pt.cast(x.shape[0], dt)
    if w.sizes is None:
        a = pt.sigmoid(shared["w"] * x + shared["b"])
        loss = const(0.5) * pt.sum((a - y) ** 2) / n
    else:
        a = x
        for i in range(1, w.layers + 1):
            a = a @ shared[f"W{i}"].T + shared[f"b{i}"]
            if i < w.layers or w.loss == "mse":
                a = pt.sigmoid(a)
        if w.loss == "ce":
            loss = -pt.sum(y * pt.special.log_softmax(a, axis=1)) / n
        else:
            loss = const(0.5) * pt.sum((a - y) ** 2) / n
    params = list(shared.values())
    grads = pytensor.grad(loss, params)
    lr = const(case.lr)
    fn = pytensor.function(
        [x, y], loss, updates=[(p, p - lr * g) for p, g in zip(params, grads, strict=True)]
    )
    fn.trust_input = True
    xs, ys = case.x, case.y
    linker = type(fn.maker.linker).__name__.removesuffix("Linker").lower()
    return Runner(
        lambda: float(fn(xs, ys)),
        lambda: {k: s.get_value(borrow=True) for k, s in shared.items()},
        note=f"{linker} linker",
    )
