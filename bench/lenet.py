"""LeNet-5 on 28 x 28 inputs: its spec, starting point, the matrix products of its step, and
its reference step in float64.

conv 1->6 5x5 (padding 2), relu, max-pool 2, conv 6->16 5x5, relu, max-pool 2, flatten to
400, dense 400-120 relu, 120-84 relu, 84-10, cross-entropy against one-hot targets; a bias on
every layer (a convolution's is one number per channel). Kernels are Param[O, C, kh, kw], as
PyTorch lays them out. The reference convolves by im2col: each output position's input patch
is one row of a matrix, so a convolution is a matrix product, and its gradients are two more.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SPEC = """\
x: Input[1, 28, 28]
y: Input[10]
K1: Param[6, 1, 5, 5] = glorot
c1b: Param[6, 1, 1] = zeros
K2: Param[16, 6, 5, 5] = glorot
c2b: Param[16, 1, 1] = zeros
W3: Param[120, 400] = glorot
b3: Param[120] = zeros
W4: Param[84, 120] = glorot
b4: Param[84] = zeros
W5: Param[10, 84] = glorot
b5: Param[10] = zeros

c1 = relu(conv2d(x, K1, padding=2) + c1b)
p1 = max_pool2d(c1, 2)
c2 = relu(conv2d(p1, K2) + c2b)
p2 = max_pool2d(c2, 2)
f = flatten(p2)
h3 = relu(W3 @ f + b3)
h4 = relu(W4 @ h3 + b4)
logits = W5 @ h4 + b5
C: Loss = cross_entropy(logits, y)
"""

IMAGE = (1, 28, 28)  # one example's input
CLASSES = 10
PARAMS = {  # in spec order
    "K1": (6, 1, 5, 5),
    "c1b": (6, 1, 1),
    "K2": (16, 6, 5, 5),
    "c2b": (16, 1, 1),
    "W3": (120, 400),
    "b3": (120,),
    "W4": (84, 120),
    "b4": (84,),
    "W5": (10, 84),
    "b5": (10,),
}
DENSE = (400, 120, 84, 10)  # the widths of the dense layers


def initial_params() -> dict[str, np.ndarray]:
    """The starting parameters in float64: Glorot-uniform kernels and weights with the fans
    symbp's glorot takes (a kernel's fans count its receptive field), zero biases."""
    rng = np.random.default_rng(0)
    params = {}
    for name, shape in PARAMS.items():
        if name[0] in "KW":
            receptive = int(np.prod(shape[2:]))
            limit = np.sqrt(6 / ((shape[0] + shape[1]) * receptive))
            params[name] = rng.uniform(-limit, limit, shape)
        else:
            params[name] = np.zeros(shape)
    return params


def batch(n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """A fixed batch: standard-normal images (n, 1, 28, 28) and one-hot labels (n, 10)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, *IMAGE)).astype(dtype)
    y = np.eye(CLASSES, dtype=dtype)[rng.integers(0, CLASSES, n)]
    return x, y


def matmul_shapes(n: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The matrix products of one step at batch n with im2col convolutions, as (left shape,
    right shape): each convolution's forward (patches @ kernel) and kernel gradient, the
    second one's patch gradient (the first one's input is data), and per dense layer the
    forward, the weight gradient and the input gradient (every dense layer's input is
    computed, so every one has one)."""
    shapes = [
        ((n * 784, 25), (25, 6)),  # conv1: 28 x 28 positions, 1 x 5 x 5 patches
        ((6, n * 784), (n * 784, 25)),
        ((n * 100, 150), (150, 16)),  # conv2: 10 x 10 positions, 6 x 5 x 5 patches
        ((16, n * 100), (n * 100, 150)),
        ((n * 100, 16), (16, 150)),
    ]
    for n_in, n_out in zip(DENSE, DENSE[1:]):
        shapes += [((n, n_in), (n_in, n_out)), ((n_out, n), (n, n_in)), ((n, n_out), (n_out, n_in))]
    return shapes


def _patches(a: np.ndarray, k: int, pad: int) -> np.ndarray:
    """(n, C, H, W) -> the k x k windows of the padded input, (n, C, Ho, Wo, k, k)."""
    padded = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    return sliding_window_view(padded, (k, k), axis=(2, 3))


def _conv_input_grad(dz: np.ndarray, kernel: np.ndarray, shape: tuple, pad: int) -> np.ndarray:
    """The gradient of a convolution's input from its output's: each kernel tap adds its
    share of dz to the input positions it read."""
    k = kernel.shape[2]
    n, c, h, w = shape
    out = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    ho, wo = dz.shape[2:]
    for i in range(k):
        for j in range(k):
            out[:, :, i : i + ho, j : j + wo] += np.einsum("nohw,oc->nchw", dz, kernel[:, :, i, j])
    return out[:, :, pad : pad + h, pad : pad + w]


def _pool(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2 x 2 max-pooling: (pooled, which of each window's four holds its first maximum)."""
    n, c, h, w = a.shape
    windows = a.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(n, c, h // 2, w // 2, 4)
    return windows.max(axis=4), windows.argmax(axis=4)


def _unpool(d: np.ndarray, which: np.ndarray) -> np.ndarray:
    """The gradient of 2 x 2 max-pooling: each window's gradient to its first maximum."""
    n, c, h, w = d.shape
    spread = (np.arange(4) == which[..., None]) * d[..., None]  # (n, c, h, w, 4)
    spread = spread.reshape(n, c, h, w, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return spread.reshape(n, c, 2 * h, 2 * w)


def _forward(p: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every value the backward pass reads, by the spec's names (z: before a relu)."""
    v = {"x": x, "x_patches": _patches(x, 5, 2)}
    v["z1"] = np.einsum("nchwij,ocij->nohw", v["x_patches"], p["K1"]) + p["c1b"]
    v["p1"], v["which1"] = _pool(np.maximum(v["z1"], 0))
    v["p1_patches"] = _patches(v["p1"], 5, 0)
    v["z2"] = np.einsum("nchwij,ocij->nohw", v["p1_patches"], p["K2"]) + p["c2b"]
    v["p2"], v["which2"] = _pool(np.maximum(v["z2"], 0))
    v["f"] = v["p2"].reshape(x.shape[0], -1)
    v["z3"] = v["f"] @ p["W3"].T + p["b3"]
    v["h3"] = np.maximum(v["z3"], 0)
    v["z4"] = v["h3"] @ p["W4"].T + p["b4"]
    v["h4"] = np.maximum(v["z4"], 0)
    v["logits"] = v["h4"] @ p["W5"].T + p["b5"]
    return v


def _conv_grads(p: dict, v: dict, d_p2: np.ndarray) -> dict[str, np.ndarray]:
    """The convolutions' kernel and bias gradients, from the gradient of p2."""
    g = {}
    dz2 = _unpool(d_p2, v["which2"]) * (v["z2"] > 0)
    g["K2"] = np.einsum("nohw,nchwij->ocij", dz2, v["p1_patches"])
    g["c2b"] = dz2.sum(axis=(0, 2, 3)).reshape(p["c2b"].shape)
    d_p1 = _conv_input_grad(dz2, p["K2"], v["p1"].shape, 0)
    dz1 = _unpool(d_p1, v["which1"]) * (v["z1"] > 0)
    g["K1"] = np.einsum("nohw,nchwij->ocij", dz1, v["x_patches"])
    g["c1b"] = dz1.sum(axis=(0, 2, 3)).reshape(p["c1b"].shape)
    return g


def reference_step(p: dict, x: np.ndarray, y: np.ndarray, lr: float):
    """One SGD step on the mean cross-entropy over the batch, everything in float64:
    (loss, parameters after)."""
    n = x.shape[0]
    v = _forward(p, x)
    shifted = v["logits"] - v["logits"].max(axis=1, keepdims=True)
    log_soft = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.sum(y * log_soft) / n
    dz = (np.exp(log_soft) * y.sum(axis=1, keepdims=True) - y) / n
    g = {}
    for i, below in ((5, "h4"), (4, "h3"), (3, "f")):
        g[f"W{i}"] = dz.T @ v[below]
        g[f"b{i}"] = dz.sum(axis=0)
        d_below = dz @ p[f"W{i}"]
        dz = d_below * (v[f"z{i - 1}"] > 0) if i > 3 else d_below
    g.update(_conv_grads(p, v, dz.reshape(v["p2"].shape)))
    return float(loss), {k: p[k] - lr * g[k] for k in p}
