"""The workloads: specs, shapes, data, and one reference step in float64.

Every network is trained by plain SGD on one fixed batch. The layered ones have sigmoid
hidden layers: the MLPs end in a sigmoid layer under the quadratic cost
C = 0.5 * sum((a - y)**2); the classifier ends in logits under cross_entropy (softmax). The
char-RNN (issue #13) is the shipped example examples/char_rnn/char_rnn.sbp: an embedding of 64
characters in 32 dimensions, an Elman cell of 128 tanh units unrolled over 16 characters, and
the cross-entropy of the next character averaged over the 16 steps. LeNet-5 (bench/lenet.py)
convolves 28 x 28 images and ends in cross_entropy. Every system starts from the same
parameters (Glorot-uniform weights, zero biases, normal(0.1) embeddings, as the specs declare
them) and sees the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import lenet

LR = 0.1  # the SGD learning rate of every step
EPOCH_STEPS = 1000  # steps per whole-epoch call (symbp C epoch, jax scan epoch)

# The char-RNN's spec, as the project ships it, and its sizes (which that spec declares)
CHAR_RNN_SPEC = Path(__file__).resolve().parent.parent / "examples" / "char_rnn" / "char_rnn.sbp"
STEPS, VOCAB, EMBED, HIDDEN = 16, 64, 32, 128

NEURON_SPEC = """\
x: Input
y: Input
w: Param = 0.5
b: Param = 0.0
z = w * x + b
a = sigmoid(z)
C: Loss = 0.5 * (a - y) ** 2
"""


def network_spec(sizes: list[int], loss: str) -> str:
    """A spec of sigmoid layers; ``loss`` "mse" (sigmoid output, quadratic cost) or "ce"
    (linear logits, cross_entropy against the one-hot y)."""
    lines = [f"x: Input[{sizes[0]}]", f"y: Input[{sizes[-1]}]"]
    layers = len(sizes) - 1
    for i in range(1, layers + 1):
        lines += [
            f"W{i}: Param[{sizes[i]}, {sizes[i - 1]}] = glorot",
            f"b{i}: Param[{sizes[i]}] = zeros",
        ]
    prev = "x"
    for i in range(1, layers + 1):
        lines.append(f"z{i} = W{i} @ {prev} + b{i}")
        if i < layers or loss == "mse":
            lines.append(f"a{i} = sigmoid(z{i})")
            prev = f"a{i}"
    if loss == "mse":
        lines.append(f"C: Loss = 0.5 * sum(({prev} - y) ** 2)")
    else:
        lines.append(f"C: Loss = cross_entropy(z{layers}, y)")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Workload:
    key: str  # short name for --workloads
    name: str  # as printed
    sizes: tuple[int, ...] | None  # layer widths; None for the scalar neuron
    batch: int
    dtype: str
    loss: str = "mse"  # "mse" or "ce"
    heavy: bool = False  # matrix-heavy: reported against the BLAS floor
    small: bool = False  # small enough that per-call overhead dominates: whole-epoch runs too
    kind: str = "layers"  # "layers" (the neuron, the MLPs, the classifier), "rnn" or "conv"

    @property
    def spec(self) -> str:
        if self.kind == "rnn":
            return CHAR_RNN_SPEC.read_text(encoding="utf-8")
        if self.kind == "conv":
            return lenet.SPEC
        return NEURON_SPEC if self.sizes is None else network_spec(list(self.sizes), self.loss)

    @property
    def inputs(self) -> tuple[str, str]:
        """The names of the spec's two inputs: the data, then the targets."""
        return ("ids", "y") if self.kind == "rnn" else ("x", "y")

    @property
    def layers(self) -> int:
        return 0 if self.sizes is None else len(self.sizes) - 1

    def matmul_shapes(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """The matrix products of one step, as (left shape, right shape): per layer the
        forward A W.T, the weight gradient delta.T A and, below the top layer's input, the
        back-propagated delta W. LeNet's are in bench/lenet.py."""
        if self.kind == "conv":
            return lenet.matmul_shapes(self.batch)
        shapes = []
        n, sizes = self.batch, self.sizes or ()
        for i in range(1, len(sizes)):
            n_in, n_out = sizes[i - 1], sizes[i]
            shapes.append(((n, n_in), (n_in, n_out)))
            shapes.append(((n_out, n), (n, n_in)))
            if i > 1:
                shapes.append(((n, n_out), (n_out, n_in)))
        return shapes

    def flops(self) -> int:
        return sum(2 * a[0] * a[1] * b[1] for a, b in self.matmul_shapes())


WORKLOADS = [
    Workload("neuron", "neuron (scalar, batch 1)", None, 1, "float64", small=True),
    Workload("mlp-small", "mlp 4-16-16-3 (batch 8)", (4, 16, 16, 3), 8, "float64", small=True),
    Workload(
        "classifier",
        "softmax 64-32-10 (batch 32)",
        (64, 32, 10),
        32,
        "float64",
        loss="ce",
        small=True,
    ),
    Workload(
        "mnist-f32", "mlp 784-256-128-10 f32 (b64)", (784, 256, 128, 10), 64, "float32", heavy=True
    ),
    Workload(
        "mnist-f64", "mlp 784-256-128-10 f64 (b64)", (784, 256, 128, 10), 64, "float64", heavy=True
    ),
    Workload(
        "wide-f32",
        "mlp 1024-1024-1024-10 f32 (b256)",
        (1024, 1024, 1024, 10),
        256,
        "float32",
        heavy=True,
    ),
    Workload(
        "char-rnn",
        f"char-rnn T{STEPS} E{EMBED} H{HIDDEN} f32 (b32)",
        None,
        32,
        "float32",
        loss="ce",
        kind="rnn",
    ),
    Workload(
        "lenet", "lenet-5 28x28 f32 (b64)", None, 64, "float32", loss="ce", heavy=True, kind="conv"
    ),
]


@dataclass
class Case:
    """One workload's starting point, shared by every system (each copies what it needs)."""

    workload: Workload
    params: dict[str, np.ndarray]  # the initial parameters, in spec order, in the dtype
    x: np.ndarray  # the batch, batch on axis 0 (the char-RNN's: ids, int64)
    y: np.ndarray
    data_x: np.ndarray  # EPOCH_STEPS batches of examples for whole-epoch runs; the first
    data_y: np.ndarray  # batch of them is (x, y)
    order: np.ndarray = field(repr=False)  # a fixed permutation of the data's rows

    @property
    def lr(self) -> float:
        return LR

    @property
    def inputs(self) -> dict[str, np.ndarray]:
        """The batch by the spec's input names, as symbp's modules take it."""
        data, targets = self.workload.inputs
        return {data: self.x, targets: self.y}


def initial_params(workload: Workload) -> dict[str, np.ndarray]:
    """The starting parameters, in spec order, in float64."""
    if workload.kind == "rnn":
        return rnn_params()
    if workload.kind == "conv":
        return lenet.initial_params()
    if workload.sizes is None:
        return {"w": np.array(0.5), "b": np.array(0.0)}
    rng = np.random.default_rng(0)
    params = {}
    for i in range(1, workload.layers + 1):
        fan_out, fan_in = workload.sizes[i], workload.sizes[i - 1]
        limit = np.sqrt(6 / (fan_in + fan_out))
        params[f"W{i}"] = rng.uniform(-limit, limit, (fan_out, fan_in))
        params[f"b{i}"] = np.zeros(fan_out)
    return params


def glorot(rng, fan_out: int, fan_in: int) -> np.ndarray:
    limit = np.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_out, fan_in))


def rnn_params() -> dict[str, np.ndarray]:
    """The char-RNN's starting parameters, in the spec's order and by its initializers."""
    rng = np.random.default_rng(0)
    return {
        "E": 0.1 * rng.standard_normal((VOCAB, EMBED)),
        "Wx": glorot(rng, HIDDEN, EMBED),
        "Wh": glorot(rng, HIDDEN, HIDDEN),
        "b": np.zeros(HIDDEN),
        "V": glorot(rng, VOCAB, HIDDEN),
        "c": np.zeros(VOCAB),
    }


def rnn_case(workload: Workload) -> Case:
    """One batch of windows of a random text of 17 characters: ids are the first 16
    (int64), y the one-hot character after each."""
    rng = np.random.default_rng(1)
    text = rng.integers(0, VOCAB, (workload.batch, STEPS + 1))
    ids = np.ascontiguousarray(text[:, :STEPS], dtype=np.int64)
    y = np.eye(VOCAB, dtype=workload.dtype)[text[:, 1:]]
    params = {k: v.astype(workload.dtype) for k, v in rnn_params().items()}
    return Case(workload, params, ids, y, ids, y, np.arange(workload.batch))


def lenet_case(workload: Workload) -> Case:
    """LeNet's batch (bench/lenet.py); it has no epoch of data beyond it."""
    x, y = lenet.batch(workload.batch, workload.dtype)
    params = {k: v.astype(workload.dtype) for k, v in initial_params(workload).items()}
    return Case(workload, params, x, y, x, y, np.arange(workload.batch))


def make_case(workload: Workload) -> Case:
    if workload.kind == "rnn":
        return rnn_case(workload)
    if workload.kind == "conv":
        return lenet_case(workload)
    rng = np.random.default_rng(1)
    dt = np.dtype(workload.dtype)
    rows = workload.batch * (EPOCH_STEPS if workload.small else 1)
    if workload.sizes is None:
        data_x = rng.standard_normal(rows)
        data_y = rng.uniform(0.0, 1.0, rows)
    else:
        data_x = rng.standard_normal((rows, workload.sizes[0]))
        if workload.loss == "ce":
            data_y = np.eye(workload.sizes[-1])[rng.integers(0, workload.sizes[-1], rows)]
        else:
            data_y = rng.uniform(0.0, 1.0, (rows, workload.sizes[-1]))
    data_x, data_y = data_x.astype(dt), data_y.astype(dt)
    b = workload.batch
    return Case(
        workload,
        {k: v.astype(dt) for k, v in initial_params(workload).items()},
        np.ascontiguousarray(data_x[:b]),
        np.ascontiguousarray(data_y[:b]),
        data_x,
        data_y,
        rng.permutation(rows),
    )


def reference_step(case: Case) -> tuple[float, dict[str, np.ndarray]]:
    """The first step in float64 from the case's parameters: (loss, parameters after)."""
    w = case.workload
    p = {k: v.astype(np.float64) for k, v in case.params.items()}
    if w.kind == "rnn":
        return rnn_reference_step(p, case.x, case.y.astype(np.float64), case.lr)
    if w.kind == "conv":
        return lenet.reference_step(
            p, case.x.astype(np.float64), case.y.astype(np.float64), case.lr
        )
    x, y = case.x.astype(np.float64), case.y.astype(np.float64)
    n = x.shape[0]
    if w.sizes is None:
        a = 1 / (1 + np.exp(-(p["w"] * x + p["b"])))
        d = (a - y) * a * (1 - a)
        loss = 0.5 * np.sum((a - y) ** 2) / n
        return float(loss), {
            "w": p["w"] - case.lr * np.sum(d * x) / n,
            "b": p["b"] - case.lr * np.sum(d) / n,
        }
    acts = [x]
    for i in range(1, w.layers + 1):
        z = acts[-1] @ p[f"W{i}"].T + p[f"b{i}"]
        acts.append(z if i == w.layers and w.loss == "ce" else 1 / (1 + np.exp(-z)))
    out = acts[-1]
    if w.loss == "ce":
        shifted = out - out.max(axis=1, keepdims=True)
        log_soft = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -np.sum(y * log_soft) / n
        delta = np.exp(log_soft) - y
    else:
        loss = 0.5 * np.sum((out - y) ** 2) / n
        delta = (out - y) * out * (1 - out)
    after = dict(p)
    for i in range(w.layers, 0, -1):
        after[f"W{i}"] = p[f"W{i}"] - case.lr * (delta.T @ acts[i - 1]) / n
        after[f"b{i}"] = p[f"b{i}"] - case.lr * delta.sum(axis=0) / n
        if i > 1:
            delta = (delta @ p[f"W{i}"]) * acts[i - 1] * (1 - acts[i - 1])
    return float(loss), after


def rnn_reference_step(p: dict, ids: np.ndarray, y: np.ndarray, lr: float):
    """The char-RNN's step by hand: forward over the 16 characters, back-propagation
    through time, and the embedding's gradient scatter-added over the ids."""
    n, steps = ids.shape
    scale = 1 / (n * steps)  # the mean over the steps (in the spec) and over the batch
    e = p["E"][ids]  # (n, T, embed)
    hs = [np.zeros((n, p["Wh"].shape[0]))]  # the state before each step, then after the last
    for t in range(steps):
        hs.append(np.tanh(e[:, t] @ p["Wx"].T + hs[-1] @ p["Wh"].T + p["b"]))
    states = np.stack(hs[1:], axis=1)  # (n, T, hidden)
    z = states @ p["V"].T + p["c"]
    shifted = z - z.max(axis=2, keepdims=True)
    log_soft = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    loss = -np.sum(y * log_soft) * scale
    dz = (np.exp(log_soft) * y.sum(axis=2, keepdims=True) - y) * scale
    grads = {
        "V": np.einsum("ntk,nth->kh", dz, states),
        "c": dz.sum(axis=(0, 1)),
        "Wx": np.zeros_like(p["Wx"]),
        "Wh": np.zeros_like(p["Wh"]),
        "b": np.zeros_like(p["b"]),
    }
    d_states = dz @ p["V"]
    d_e = np.zeros_like(e)
    dh = np.zeros_like(hs[0])
    for t in range(steps - 1, -1, -1):
        da = (dh + d_states[:, t]) * (1 - hs[t + 1] ** 2)  # through the tanh
        grads["Wx"] += da.T @ e[:, t]
        grads["Wh"] += da.T @ hs[t]
        grads["b"] += da.sum(axis=0)
        d_e[:, t] = da @ p["Wx"]
        dh = da @ p["Wh"]
    grads["E"] = np.zeros_like(p["E"])
    np.add.at(grads["E"], ids.reshape(-1), d_e.reshape(-1, d_e.shape[2]))
    return float(loss), {k: v - lr * grads[k] for k, v in p.items()}
