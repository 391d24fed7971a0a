"""Networks nobody has shown the compiler, checked against references written by hand.

Each case is a spec and the same network written by hand for ONE example, over a small
math namespace ``m`` (NumPy here; ``test_against_torch.py`` runs the very same functions on
PyTorch tensors and differentiates them with autograd). A reference returns the example's
loss, or ``(loss, {output name: value})``. The harness loops over the examples itself and
averages, so it never shares the compiler's idea of where the batch axis is.

Here the reference gradients are central differences (five-point stencil, float64) of the
reference loss, compared at 1e-7. Values are drawn at random (never the spec's initializers:
zero biases hide bugs), away from the kinks of relu and abs, for batches of 1 and 5. Every
network runs on both backends, NumPy and C; float32 builds are compared with float64 ones.
The file ends with the smallest specs that showed each bug found this way, checked against
gradients derived by hand.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

import symbp

# ------------------------------------------------------------------- math namespace


def _np_sum(e, axis=None):
    return np.sum(e, axis=axis)


def _np_mean(e, axis=None):
    return np.mean(e, axis=axis)


def _np_logsumexp(e, axis=None):
    return np.log(np.sum(np.exp(e), axis=axis))


def _np_softmax(e, axis=-1):
    z = np.exp(e)
    return z / np.sum(z, axis=axis, keepdims=True)


def _np_log_softmax(e, axis=-1):
    return e - np.log(np.sum(np.exp(e), axis=axis, keepdims=True))


NUMPY_MATH = SimpleNamespace(
    exp=np.exp,
    log=np.log,
    sqrt=np.sqrt,
    abs=np.abs,
    tanh=np.tanh,
    sin=np.sin,
    cos=np.cos,
    sigmoid=lambda e: 1 / (1 + np.exp(-e)),
    relu=lambda e: np.maximum(e, 0.0),
    softplus=lambda e: np.log(1 + np.exp(e)),
    sum=_np_sum,
    mean=_np_mean,
    logsumexp=_np_logsumexp,
    softmax=_np_softmax,
    log_softmax=_np_log_softmax,
    cross_entropy=lambda z, t: -np.sum(t * _np_log_softmax(z)),
    T=lambda e: np.transpose(e),
    # maximum, minimum, clip, where; max and min
    maximum=np.maximum,
    minimum=np.minimum,
    clip=np.clip,
    where=lambda c, a, b: np.where(c != 0, a, b),
    max=lambda e, axis=None: np.max(e, axis=axis),
    min=lambda e, axis=None: np.min(e, axis=axis),
)


# ------------------------------------------------------------------------ the cases


@dataclass(frozen=True)
class Case:
    name: str
    spec: str
    ref: Callable  # ref(m, p, x) -> loss, or (loss, {output: value}); p, x: one example

    def __str__(self) -> str:
        return self.name


CASES: list[Case] = []


def case(name: str, spec: str):
    """Register the decorated reference under ``name`` with its spec."""

    def register(ref):
        CASES.append(Case(name, spec, ref))
        return ref

    return register


@case(
    "mlp_sigmoid_quadratic",
    """
x: Input[4]
y: Input[3]
W1: Param[5, 4] = glorot
b1: Param[5] = zeros
W2: Param[3, 5] = glorot
b2: Param[3] = zeros
a1 = sigmoid(W1 @ x + b1)
a2 = sigmoid(W2 @ a1 + b2)
C: Loss = 0.5 * sum((a2 - y) ** 2)
p: Output = a2
""",
)
def _(m, p, x):
    a1 = m.sigmoid(p["W1"] @ x["x"] + p["b1"])
    a2 = m.sigmoid(p["W2"] @ a1 + p["b2"])
    return 0.5 * m.sum((a2 - x["y"]) ** 2), {"p": a2}


@case(
    "mlp_three_layers_tanh_relu_softplus",
    """
x: Input[3]
y: Input[2]
W1: Param[4, 3] = he
b1: Param[4] = zeros
W2: Param[4, 4] = he
b2: Param[4] = zeros
W3: Param[2, 4] = glorot
b3: Param[2] = normal(0.1)
h1 = tanh(W1 @ x + b1)
h2 = relu(W2 @ h1 + b2)
out = softplus(W3 @ h2 + b3)
C: Loss = mean((out - y) ** 2)
""",
)
def _(m, p, x):
    h1 = m.tanh(p["W1"] @ x["x"] + p["b1"])
    h2 = m.relu(p["W2"] @ h1 + p["b2"])
    out = m.softplus(p["W3"] @ h2 + p["b3"])
    return m.mean((out - x["y"]) ** 2)


@case(
    "deep_swish_user_def",
    """
def swish(u):
    return u * sigmoid(u)

x: Input[3]
t: Input[3]
W1: Param[4, 3] = glorot
W2: Param[4, 4] = glorot
W3: Param[4, 4] = glorot
W4: Param[3, 4] = glorot
h = swish(W1 @ x)
h2 = swish(W2 @ h)
h3 = swish(W3 @ h2)
C: Loss = sum((W4 @ h3 - t) ** 2)
""",
)
def _(m, p, x):
    def swish(u):
        return u * m.sigmoid(u)

    h = swish(p["W1"] @ x["x"])
    h2 = swish(p["W2"] @ h)
    h3 = swish(p["W3"] @ h2)
    return m.sum((p["W4"] @ h3 - x["t"]) ** 2)


@case(
    "softmax_classifier_cross_entropy",
    """
# a softmax classifier: swish hidden layer, cross entropy, probabilities as an output
def swish(u):
    return u * sigmoid(u)

x: Input[5]
t: Input[4]
W1: Param[6, 5] = he
b1: Param[6] = zeros
W2: Param[4, 6] = glorot
b2: Param[4] = zeros
h = swish(W1 @ x + b1)
logits = W2 @ h + b2
C: Loss = cross_entropy(logits, t)
probs: Output = softmax(logits)
""",
)
def _(m, p, x):
    h = p["W1"] @ x["x"] + p["b1"]
    h = h * m.sigmoid(h)
    logits = p["W2"] @ h + p["b2"]
    return m.cross_entropy(logits, x["t"]), {"probs": m.softmax(logits)}


@case(
    "two_argument_defs_gated_unit",
    """
def gate(u, v):
    return u * sigmoid(v)

def mix(a, b):
    return a * tanh(b) + b ** 2 / (1 + a ** 2)

x: Input[3]
y: Input
Wa: Param[4, 3] = glorot
Wb: Param[4, 3] = glorot
v: Param[4] = ones
h = gate(Wa @ x, Wb @ x)
k = mix(h, Wb @ x)
C: Loss = (v @ k - y) ** 2
""",
)
def _(m, p, x):
    a, b = p["Wa"] @ x["x"], p["Wb"] @ x["x"]
    h = a * m.sigmoid(b)
    k = h * m.tanh(b) + b**2 / (1 + h**2)
    return (p["v"] @ k - x["y"]) ** 2


@case(
    "nested_defs_with_param_argument",
    """
def sq(u):
    return u * u

def f(u, w):
    return sq(tanh(u)) * w + softplus(u - w)

x: Input[3]
W: Param[3, 3] = glorot
s: Param = 0.5
C: Loss = sum(f(W @ x, s))
""",
)
def _(m, p, x):
    u = p["W"] @ x["x"]
    return m.sum(m.tanh(u) ** 2 * p["s"] + m.softplus(u - p["s"]))


@case(
    "log_softmax_nll_and_logsumexp",
    """
x: Input[4]
t: Input[3]
W: Param[3, 4] = glorot
b: Param[3] = zeros
z = W @ x + b
ls = log_softmax(z)
C: Loss = -sum(t * ls) + 0.1 * logsumexp(z)
lse: Output = logsumexp(z)
""",
)
def _(m, p, x):
    z = p["W"] @ x["x"] + p["b"]
    loss = -m.sum(x["t"] * m.log_softmax(z)) + 0.1 * m.logsumexp(z)
    return loss, {"lse": m.logsumexp(z)}


@case(
    "stabilized_log_of_softmax_and_sigmoid",
    """
# log(softmax(z)) and log(sigmoid(z)) are rewritten to their stable forms
x: Input[3]
t: Input[3]
y: Input
W: Param[3, 3] = glorot
w: Param[3] = glorot
z = W @ x
q = w @ x
C: Loss = -sum(t * log(softmax(z))) - y * log(sigmoid(q)) - (1 - y) * log(1 - sigmoid(q))
""",
)
def _(m, p, x):
    z = p["W"] @ x["x"]
    q = p["w"] @ x["x"]
    s = m.sigmoid(q)
    y = x["y"]
    return -m.sum(x["t"] * m.log(m.softmax(z))) - y * m.log(s) - (1 - y) * m.log(1 - s)


@case(
    "log_sum_exp_written_out",
    """
X: Input[3, 4]
W: Param[3, 3] = glorot
Z = W @ X
rows = log(sum(exp(Z), axis=1))
cols = log(sum(exp(Z), axis=0))
C: Loss = sum(rows) - mean(cols) + log(sum(exp(Z)))
""",
)
def _(m, p, x):
    Z = p["W"] @ x["X"]
    rows = m.log(m.sum(m.exp(Z), axis=1))
    cols = m.log(m.sum(m.exp(Z), axis=0))
    return m.sum(rows) - m.mean(cols) + m.log(m.sum(m.exp(Z)))


@case(
    "matrix_input_axes_negative_and_tuple",
    """
X: Input[3, 4]
W: Param[2, 3] = glorot
v: Param[4] = ones
H = W @ X
a = mean(H ** 2, axis=1)
b = sum(tanh(H), axis=-1)
c = mean(H, axis=-2)
d = sum(H * H, axis=(0, 1))
C: Loss = sum(a) + sum(b * a) + c @ v + 0.1 * d + mean(H)
colmean: Output = mean(X, axis=0)
""",
)
def _(m, p, x):
    H = p["W"] @ x["X"]
    a = m.mean(H**2, axis=1)
    b = m.sum(m.tanh(H), axis=-1)
    c = m.mean(H, axis=-2)
    d = m.sum(H * H, axis=(0, 1))
    loss = m.sum(a) + m.sum(b * a) + c @ p["v"] + 0.1 * d + m.mean(H)
    return loss, {"colmean": m.mean(x["X"], axis=0)}


@case(
    "transposed_matrix_input",
    """
X: Input[3, 4]
v: Param[3] = ones
U: Param[4, 2] = glorot
z = X.T @ v
G = X.T @ X
C: Loss = sum(sigmoid(z) * (z - 1)) + 0.01 * sum(G * (U @ U.T))
""",
)
def _(m, p, x):
    X = x["X"]
    z = m.T(X) @ p["v"]
    G = m.T(X) @ X
    return m.sum(m.sigmoid(z) * (z - 1)) + 0.01 * m.sum(G * (p["U"] @ m.T(p["U"])))


@case(
    "vector_at_matrix_and_dot_products",
    """
x: Input[3]
W: Param[3, 4] = glorot
v: Param[4] = ones
w: Param = 2.0
z = x @ W
C: Loss = (x @ x) * w + (z @ v) ** 2 + sum(tanh(x @ W @ W.T))
""",
)
def _(m, p, x):
    xx = x["x"]
    z = xx @ p["W"]
    return (xx @ xx) * p["w"] + (z @ p["v"]) ** 2 + m.sum(m.tanh(xx @ p["W"] @ m.T(p["W"])))


@case(
    "transposed_params",
    """
x: Input[4]
W: Param[4, 3] = glorot
V: Param[3, 2] = glorot
h = sigmoid(W.T @ x)
o = V.T @ h
C: Loss = sum(o ** 2) + sum((V.T @ W.T) ** 2)
""",
)
def _(m, p, x):
    h = m.sigmoid(m.T(p["W"]) @ x["x"])
    o = m.T(p["V"]) @ h
    return m.sum(o**2) + m.sum((m.T(p["V"]) @ m.T(p["W"])) ** 2)


@case(
    "param_vector_broadcast_against_matrix_input",
    """
X: Input[3, 4]
mu: Param[4] = zeros
s: Param[4] = ones
g: Param[3, 1] = ones
Z = (X - mu) / s
C: Loss = mean(Z ** 2) + sum(g * Z) + sum(log(s ** 2))
Zo: Output = Z
""",
)
def _(m, p, x):
    Z = (x["X"] - p["mu"]) / p["s"]
    loss = m.mean(Z**2) + m.sum(p["g"] * Z) + m.sum(m.log(p["s"] ** 2))
    return loss, {"Zo": Z}


@case(
    "tied_weights_autoencoder",
    """
x: Input[5]
W: Param[3, 5] = glorot
b: Param[3] = zeros
c: Param[5] = zeros
h = tanh(W @ x + b)
r = W.T @ h + c
C: Loss = 0.5 * sum((r - x) ** 2)
code: Output = h
""",
)
def _(m, p, x):
    h = m.tanh(p["W"] @ x["x"] + p["b"])
    r = m.T(p["W"]) @ h + p["c"]
    return 0.5 * m.sum((r - x["x"]) ** 2), {"code": h}


@case(
    "residual_blocks",
    """
x: Input[4]
y: Input[4]
W1: Param[4, 4] = glorot
b1: Param[4] = zeros
W2: Param[4, 4] = glorot
h1 = x + tanh(W1 @ x + b1)
h2 = h1 + relu(W2 @ h1)
h3 = h2 + h1 * sigmoid(W1 @ h2)
C: Loss = sum((h3 - y) ** 2) / 4
out: Output = h3
""",
)
def _(m, p, x):
    h1 = x["x"] + m.tanh(p["W1"] @ x["x"] + p["b1"])
    h2 = h1 + m.relu(p["W2"] @ h1)
    h3 = h2 + h1 * m.sigmoid(p["W1"] @ h2)
    return m.sum((h3 - x["y"]) ** 2) / 4, {"out": h3}


@case(
    "scalars_everywhere_polynomial",
    """
x: Input
y: Input
a: Param = 0.5
b: Param = -0.5
c: Param = 1.0
d: Param = 0.0
yhat = a * x ** 3 + b * x ** 2 + c * sin(x) + d
e = yhat - y
J: Loss = 0.5 * e ** 2 + 0.1 * abs(e) * a
yh: Output = yhat
""",
)
def _(m, p, x):
    xx = x["x"]
    yhat = p["a"] * xx**3 + p["b"] * xx**2 + p["c"] * m.sin(xx) + p["d"]
    e = yhat - x["y"]
    return 0.5 * e**2 + 0.1 * m.abs(e) * p["a"], {"yh": yhat}


@case(
    "divisions_and_powers",
    """
x: Input[3]
w: Param[3] = ones
k: Param = 1.5
base = 1 + x ** 2
part = sum(base ** k) + sum(x ** 3 * w) + sum(base ** 0.5) + sum(2 ** (w * x))
C: Loss = part + sum(w / base) - sum(1 / (1 + w ** 2)) + sum(base ** -2) + k ** 3 / (1 + k ** 2)
""",
)
def _(m, p, x):
    xx, w, k = x["x"], p["w"], p["k"]
    base = 1 + xx**2
    return (
        m.sum(base**k)
        + m.sum(xx**3 * w)
        + m.sum(base**0.5)
        + m.sum(2 ** (w * xx))
        + m.sum(w / base)
        - m.sum(1 / (1 + w**2))
        + m.sum(base**-2)
        + k**3 / (1 + k**2)
    )


@case(
    "power_with_param_base_and_exponent",
    """
x: Input[2]
a: Param[2] = ones
q: Param = 2.0
C: Loss = sum(exp(a) ** q * x) + sum((a ** 2 + 1) ** (x * q)) + sqrt(q ** 2 + 1)
""",
)
def _(m, p, x):
    a, q, xx = p["a"], p["q"], x["x"]
    return m.sum(m.exp(a) ** q * xx) + m.sum((a**2 + 1) ** (xx * q)) + m.sqrt(q**2 + 1)


@case(
    "elementary_functions_on_safe_domains",
    """
x: Input[3]
W: Param[3, 3] = glorot
z = W @ x
C: Loss = sum(abs(z) + sin(z) * cos(2 * z) + exp(-z ** 2) + log(1 + z ** 2) + sqrt(1 + exp(z)))
""",
)
def _(m, p, x):
    z = p["W"] @ x["x"]
    return m.sum(
        m.abs(z) + m.sin(z) * m.cos(2 * z) + m.exp(-(z**2)) + m.log(1 + z**2) + m.sqrt(1 + m.exp(z))
    )


@case(
    "unbatched_outputs_and_l2_penalty",
    """
x: Input[3]
y: Input[2]
W1: Param[4, 3] = glorot
W2: Param[2, 4] = glorot
h = tanh(W1 @ x)
C: Loss = sum((W2 @ h - y) ** 2) + 0.01 * sum(W1 ** 2)
norm: Output = sum(W1 ** 2) + sum(W2 ** 2)
W2t: Output = W2.T
""",
)
def _(m, p, x):
    h = m.tanh(p["W1"] @ x["x"])
    loss = m.sum((p["W2"] @ h - x["y"]) ** 2) + 0.01 * m.sum(p["W1"] ** 2)
    return loss, {"norm": m.sum(p["W1"] ** 2) + m.sum(p["W2"] ** 2), "W2t": m.T(p["W2"])}


@case(
    "loss_independent_of_inputs",
    """
x: Input[3]
W: Param[2, 3] = glorot
b: Param[2] = zeros
pred: Output = W @ x + b
R: Loss = 0.5 * sum(W ** 2) + sum(b ** 2) * 3
""",
)
def _(m, p, x):
    return 0.5 * m.sum(p["W"] ** 2) + m.sum(p["b"] ** 2) * 3, {"pred": p["W"] @ x["x"] + p["b"]}


@case(
    "no_input_rosenbrock",
    """
# no Input: no batch, the loss is its value
a: Param = -1.0
b: Param = 1.0
v: Param[3] = ones
M: Param[2, 3] = ones
r = (1 - a) ** 2 + 100 * (b - a ** 2) ** 2
f: Loss = r + sum(v ** 2) * a + sum(tanh(M @ v))
Mv: Output = M @ v
""",
)
def _(m, p, x):
    a, b, v, M = p["a"], p["b"], p["v"], p["M"]
    r = (1 - a) ** 2 + 100 * (b - a**2) ** 2
    return r + m.sum(v**2) * a + m.sum(m.tanh(M @ v)), {"Mv": M @ v}


@case(
    "branch_gradients_add",
    """
a: Param = 1.0
b: Param = 1.0
c: Param = 6.0
x = a + b
y = b + c
f: Loss = x * y
""",
)
def _(m, p, x):
    return (p["a"] + p["b"]) * (p["b"] + p["c"])


@case(
    "unreached_params",
    """
x: Input[3]
W: Param[2, 3] = glorot
unused: Param[4] = ones
only_out: Param[2] = ones
o: Output = only_out * 2
C: Loss = sum(sigmoid(W @ x))
""",
)
def _(m, p, x):
    return m.sum(m.sigmoid(p["W"] @ x["x"])), {"o": p["only_out"] * 2}


@case(
    "names_that_shadow_builtins_and_helpers",
    """
sum: Input[3]
np: Input[3]
n: Input
params: Param[3] = ones
lr: Param[3] = zeros
_sigmoid: Param = 0.5
forward: Param[2, 3] = glorot
float: Param = 1.0
grads = forward @ (sum * params + lr)
loss = sigmoid(grads) * _sigmoid
dW = loss * n
t1 = dW - float
C: Loss = sum(t1 ** 2) + mean(np * lr)
inputs: Output = t1
""",
)
def _(m, p, x):
    g = p["forward"] @ (x["sum"] * p["params"] + p["lr"])
    loss = m.sigmoid(g) * p["_sigmoid"]
    t1 = loss * x["n"] - p["float"]
    return m.sum(t1**2) + m.mean(x["np"] * p["lr"]), {"inputs": t1}


@case(
    "names_of_module_api_and_adjoints",
    """
x: Input[2]
DTYPE: Param[2] = ones
init_params: Param[2] = ones
loss_and_grads: Param = 1.0
h = tanh(DTYPE * x)
dh = h * init_params
ddh = dh * loss_and_grads
_params: Output = dh
C: Loss = sum(ddh ** 2) + sum(h)
""",
)
def _(m, p, x):
    h = m.tanh(p["DTYPE"] * x["x"])
    dh = h * p["init_params"]
    ddh = dh * p["loss_and_grads"]
    return m.sum(ddh**2) + m.sum(h), {"_params": dh}


@case(
    "softmax_regression_with_mse",
    """
x: Input[3]
y: Input[3]
W: Param[3, 3] = glorot
s = softmax(W @ x)
C: Loss = sum((s - y) ** 2)
s_out: Output = s
""",
)
def _(m, p, x):
    s = m.softmax(p["W"] @ x["x"])
    return m.sum((s - x["y"]) ** 2), {"s_out": s}


@case(
    "matrix_softmax_axes",
    """
X: Input[3, 4]
T: Input[3, 4]
W: Param[3, 3] = glorot
Z = W @ X
P0 = softmax(Z, axis=0)
L1 = log_softmax(Z, axis=1)
C: Loss = sum(P0 * T) - sum(T * L1) + sum(logsumexp(Z, axis=0)) + mean(log_softmax(Z, axis=-2))
P0o: Output = P0
""",
)
def _(m, p, x):
    Z = p["W"] @ x["X"]
    P0 = m.softmax(Z, axis=0)
    L1 = m.log_softmax(Z, axis=1)
    loss = (
        m.sum(P0 * x["T"])
        - m.sum(x["T"] * L1)
        + m.sum(m.logsumexp(Z, axis=0))
        + m.mean(m.log_softmax(Z, axis=-2))
    )
    return loss, {"P0o": P0}


@case(
    "three_axis_input_stacked_matmul",
    """
X: Input[2, 3, 4]
W: Param[4, 2] = glorot
A: Param[3, 3] = glorot
H = tanh(X @ W)
G = A @ H
C: Loss = sum(G ** 2) + sum(mean(H, axis=0))
""",
)
def _(m, p, x):
    H = m.tanh(x["X"] @ p["W"])
    G = p["A"] @ H
    return m.sum(G**2) + m.sum(m.mean(H, axis=0))


@case(
    "scalar_input_times_vector_params",
    """
x: Input
y: Input[3]
w: Param[3] = ones
b: Param[3] = zeros
z = w * x + b
C: Loss = sum((sigmoid(z) - y) ** 2) + x * sum(w)
""",
)
def _(m, p, x):
    z = p["w"] * x["x"] + p["b"]
    return m.sum((m.sigmoid(z) - x["y"]) ** 2) + x["x"] * m.sum(p["w"])


@case(
    "same_expression_bound_twice",
    """
x: Input[3]
W: Param[2, 3] = glorot
u = W @ x
v = W @ x
u_out: Output = u
v_out: Output = v
C: Loss = sum(u * v) + sum(exp(u) / (1 + exp(v)))
""",
)
def _(m, p, x):
    u = p["W"] @ x["x"]
    return m.sum(u * u) + m.sum(m.exp(u) / (1 + m.exp(u))), {"u_out": u, "v_out": u}


@case(
    "outputs_that_are_leaves",
    """
x: Input[3]
W: Param[2, 3] = glorot
s: Param = 1.0
W_out: Output = W
x_out: Output = x
s_out: Output = s
C: Loss = sum(W @ x) * s
""",
)
def _(m, p, x):
    return m.sum(p["W"] @ x["x"]) * p["s"], {"W_out": p["W"], "x_out": x["x"], "s_out": p["s"]}


@case(
    "negations_and_reciprocals",
    """
x: Input[3]
w: Param[3] = ones
z = -(-w * x)
C: Loss = sum(1 / (1 + z ** 2)) - sum(-z) / 3 + sum(w ** -2) - -sum(x / w)
""",
)
def _(m, p, x):
    z = p["w"] * x["x"]
    return m.sum(1 / (1 + z**2)) + m.sum(z) / 3 + m.sum(p["w"] ** -2) + m.sum(x["x"] / p["w"])


@case(
    "long_elementwise_chain",
    """
x: Input[3]
w: Param[3] = ones
a = w * x
b = sin(a) + a
c = b * b - a
d = tanh(c) + exp(-b ** 2)
e = d / (1 + a ** 2)
f = sigmoid(e) * c + softplus(d)
C: Loss = sum(f * e - b)
""",
)
def _(m, p, x):
    a = p["w"] * x["x"]
    b = m.sin(a) + a
    c = b * b - a
    d = m.tanh(c) + m.exp(-(b**2))
    e = d / (1 + a**2)
    f = m.sigmoid(e) * c + m.softplus(d)
    return m.sum(f * e - b)


@case(
    "input_matrix_products",
    """
X: Input[3, 4]
Y: Input[4, 2]
W: Param[3, 2] = glorot
A: Param[2, 3] = glorot
B: Param[3, 4] = glorot
P = X @ Y
C: Loss = sum(P * W) + sum((A @ B) * (A @ X)) + sum(X * B) * sum(W)
""",
)
def _(m, p, x):
    P = x["X"] @ x["Y"]
    return (
        m.sum(P * p["W"])
        + m.sum((p["A"] @ p["B"]) * (p["A"] @ x["X"]))
        + m.sum(x["X"] * p["B"]) * m.sum(p["W"])
    )


@case(
    "matrix_param_elementwise_with_matrix_input",
    """
X: Input[3, 4]
W: Param[3, 4] = glorot
u: Param[3] = ones
r = sum(X * W, axis=0)
q = sum(sigmoid(X * W), axis=1)
C: Loss = sum(r ** 2) + q @ u + sum(W.T * X.T)
""",
)
def _(m, p, x):
    XW = x["X"] * p["W"]
    r = m.sum(XW, axis=0)
    q = m.sum(m.sigmoid(XW), axis=1)
    return m.sum(r**2) + q @ p["u"] + m.sum(m.T(p["W"]) * m.T(x["X"]))


@case(
    "column_and_row_broadcasts",
    """
X: Input[3, 4]
c: Input[3, 1]
r: Param[1, 4] = ones
k: Param[3, 1] = ones
Z = X * r + c * k - r * k
C: Loss = sum(Z ** 2) / 2 + sum(c)
""",
)
def _(m, p, x):
    Z = x["X"] * p["r"] + x["c"] * p["k"] - p["r"] * p["k"]
    return m.sum(Z**2) / 2 + m.sum(x["c"])


@case(
    "mean_over_vector_to_scalar",
    """
x: Input[4]
W: Param[4, 4] = glorot
h = sigmoid(W @ x)
C: Loss = mean(h, axis=-1) + mean(h, axis=0) * mean(h) + sum(h, axis=0)
""",
)
def _(m, p, x):
    h = m.sigmoid(p["W"] @ x["x"])
    return m.mean(h, axis=-1) + m.mean(h, axis=0) * m.mean(h) + m.sum(h, axis=0)


@case(
    "binary_logistic_regression_logsumexp_of_scalar",
    """
x: Input[3]
y: Input
w: Param[3] = zeros
b: Param = 0.0
z = w @ x + b
C: Loss = softplus(z) - y * z + 0.5 * logsumexp(z) * 0 + 0.001 * (w @ w)
prob: Output = sigmoid(z)
""",
)
def _(m, p, x):
    z = p["w"] @ x["x"] + p["b"]
    return m.softplus(z) - x["y"] * z + 0.001 * (p["w"] @ p["w"]), {"prob": m.sigmoid(z)}


@case(
    "stacked_matmuls_with_vectors",
    """
x: Input[4]
y: Input[3]
X: Input[2, 3, 4]
A: Param[2, 3, 4] = glorot
B: Param[2, 4, 5] = glorot
C: Loss = sum(tanh(A @ x)) + sum(y @ A) + sum((X @ B) ** 2) / 10 + sum(A @ B)
""",
)
def _(m, p, x):
    A, B = p["A"], p["B"]
    return (
        m.sum(m.tanh(A @ x["x"])) + m.sum(x["y"] @ A) + m.sum((x["X"] @ B) ** 2) / 10 + m.sum(A @ B)
    )


@case(
    "size_one_axes",
    """
x: Input[3]
X: Input[1, 3]
a: Param[1] = ones
B: Param[1, 1] = ones
c: Param[3, 1] = ones
C: Loss = sum((x + a) ** 2) + sum(X * B) + sum(c * X) + sum(c @ X) + sum(B @ X)
""",
)
def _(m, p, x):
    X, c = x["X"], p["c"]
    return (
        m.sum((x["x"] + p["a"]) ** 2)
        + m.sum(X * p["B"])
        + m.sum(c * X)
        + m.sum(c @ X)
        + m.sum(p["B"] @ X)
    )


@case(
    "three_axis_softmax_and_tuple_axes",
    """
X: Input[2, 3, 4]
W: Param[3, 4] = ones
S = softmax(X * W, axis=1)
C: Loss = sum(S * X) + sum(logsumexp(X * W, axis=(0, 2))) + sum(mean(X * W, axis=(-1, 0)) ** 2)
""",
)
def _(m, p, x):
    XW = x["X"] * p["W"]
    return (
        m.sum(m.softmax(XW, axis=1) * x["X"])
        + m.sum(m.logsumexp(XW, axis=(0, 2)))
        + m.sum(m.mean(XW, axis=(-1, 0)) ** 2)
    )


@case(
    "reductions_of_params_inside_batched_terms",
    """
x: Input[3]
W: Param[2, 3] = glorot
v: Param[3] = zeros
h = W @ x
part = sum(W, axis=0) @ x + mean(W, axis=-1) @ h + logsumexp(W, axis=1) @ h
C: Loss = part + sum(softmax(W, axis=0) * W) * sum(x) + softmax(v) @ x + logsumexp(v) * sum(x)
""",
)
def _(m, p, x):
    W, v, xx = p["W"], p["v"], x["x"]
    return (
        m.sum(W, axis=0) @ xx
        + m.mean(W, axis=-1) @ (W @ xx)
        + m.logsumexp(W, axis=1) @ (W @ xx)
        + m.sum(m.softmax(W, axis=0) * W) * m.sum(xx)
        + m.softmax(v) @ xx
        + m.logsumexp(v) * m.sum(xx)
    )


@case(
    "loss_is_a_bare_param",
    """
x: Input[2]
s: Param = 1.0
W: Param[2] = ones
o: Output = W * x
two: Output = 2.0
C: Loss = s
""",
)
def _(m, p, x):
    return p["s"] + 0.0, {"o": p["W"] * x["x"], "two": 2.0 + 0 * p["s"]}


@case(
    "soft_keyword_and_unicode_names",
    """
match: Input[2]
case: Param[2] = ones
type: Param = 1.0
_: Param = 1.0
α: Param[2] = ones
print = match * case + α
C: Loss = sum(print ** 2) * type + _
""",
)
def _(m, p, x):
    return m.sum((x["match"] * p["case"] + p["α"]) ** 2) * p["type"] + p["_"]


@case(
    "rational_and_negative_powers",
    """
x: Input[3]
w: Param[3] = ones
b = 1 + x ** 2 + w ** 2
C: Loss = sum(b ** (1/3)) + sum(b ** 1.5) + sum(2 ** (b ** -0.5)) + sum(b ** (-1/3) * w)
""",
)
def _(m, p, x):
    b = 1 + x["x"] ** 2 + p["w"] ** 2
    return (
        m.sum(b ** (1 / 3)) + m.sum(b**1.5) + m.sum(2 ** (b**-0.5)) + m.sum(b ** (-1 / 3) * p["w"])
    )


@case(
    "gram_matrices_of_params",
    """
x: Input[3]
W: Param[2, 3] = glorot
C: Loss = sum((W.T @ W) @ x) + x @ (W.T @ W) @ x + sum((W @ W.T) ** 2)
""",
)
def _(m, p, x):
    W, xx = p["W"], x["x"]
    G = m.T(W) @ W
    return m.sum(G @ xx) + xx @ G @ xx + m.sum((W @ m.T(W)) ** 2)


@case(
    "hinge_svm_with_l2",
    """
x: Input[3]
y: Input
w: Param[3] = zeros
b: Param = 0
s = w @ x + b
C: Loss = maximum(0, 1 - y * s) + 0.01 * sum(w * w)
label: Output = where(s >= 0, 1, -1)
""",
)
def _(m, p, x):
    s = p["w"] @ x["x"] + p["b"]
    label = m.where((s >= 0) * 1.0, 1.0 + 0 * s, -1.0 + 0 * s)
    return m.maximum(0 * s, 1 - x["y"] * s) + 0.01 * m.sum(p["w"] * p["w"]), {"label": label}


@case(
    "leaky_relu_mlp_by_where",
    """
x: Input[4]
t: Input[2]
W1: Param[3, 4] = he
W2: Param[2, 3] = glorot
def leaky(u):
    return where(u > 0, u, 0.05 * u)
h = leaky(W1 @ x)
z = W2 @ h
C: Loss = sum(minimum(z, 0.8) * t) + sum(clip(h, -0.5, 0.6) ** 2)
""",
)
def _(m, p, x):
    u = p["W1"] @ x["x"]
    h = m.where((u > 0) * 1.0, u, 0.05 * u)
    z = p["W2"] @ h
    return m.sum(m.minimum(z, 0 * z + 0.8) * x["t"]) + m.sum(m.clip(h, -0.5, 0.6) ** 2)


@case(
    "max_pooling_rows_and_min_columns",
    """
X: Input[3, 4]
W: Param[3, 4] = normal(0.5)
v: Param[3] = ones
P = tanh(W * X)
C: Loss = v @ max(P, axis=1) + sum(min(P, axis=0) ** 2) - max(P) * min(v)
""",
)
def _(m, p, x):
    P = m.tanh(p["W"] * x["X"])
    pooled = p["v"] @ m.max(P, axis=1) + m.sum(m.min(P, axis=0) ** 2)
    return pooled - m.max(P) * m.min(p["v"])


@case(
    "masked_softmax_scores",
    """
x: Input[4]
q: Param[4] = normal(0.5)
k: Param[4, 4] = normal(0.5)
s = k @ (q * x)
masked = where(x > 0, s, -30)
C: Loss = -log_softmax(masked, axis=0) @ (x != 0) + sum((s > 0.2) * s)
""",
)
def _(m, p, x):
    s = p["k"] @ (p["q"] * x["x"])
    xs = x["x"]  # masks as bool + 0 * values: the values' dtype in NumPy and torch alike
    masked = m.where((xs > 0) + 0 * xs, s, -30 + 0 * s)
    return -m.log_softmax(masked, axis=0) @ ((xs != 0) + 0 * xs) + m.sum(((s > 0.2) + 0 * s) * s)


# ---------------------------------------------------------------------- the harness

BATCHES = (1, 5)
BACKENDS = ("numpy", "c")
C_FLOAT32 = CASES[::8]  # each float32 C build is one more C compile: a sample of the table


def draw(rng: np.random.Generator, shape) -> np.ndarray:
    """Values in ±[0.3, 1.1]: no kink of relu or abs in reach, no saturated sigmoid."""
    return np.array(rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.3, 1.1, size=shape))


def draw_params(module, rng) -> dict[str, np.ndarray]:
    return {name: draw(rng, shape) for name, shape in module.PARAMS.items()}


def draw_inputs(module, rng, batch: int) -> dict[str, np.ndarray]:
    return {name: draw(rng, (batch, *shape)) for name, shape in module.INPUTS.items()}


def split(result) -> tuple:
    return result if isinstance(result, tuple) else (result, {})


def reference(case: Case, m, params: dict, inputs: dict):
    """Per-example losses and outputs (lists over the examples), or the unbatched ones."""
    if not inputs:
        return split(case.ref(m, params, {}))
    n = len(next(iter(inputs.values())))
    results = [split(case.ref(m, params, {k: v[i] for k, v in inputs.items()})) for i in range(n)]
    return [r[0] for r in results], [r[1] for r in results]


def numpy_reference(case: Case, params: dict, inputs: dict):
    """(mean loss, per-example loss array, outputs with the batch axis) in NumPy."""
    got = reference(case, NUMPY_MATH, params, inputs)
    if not inputs:
        loss, outputs = got
        return float(loss), np.asarray(loss), {k: np.asarray(v) for k, v in outputs.items()}
    losses, outputs = got
    per = np.array([float(v) for v in losses])
    stacked = {k: np.stack([np.asarray(o[k]) for o in outputs]) for k in outputs[0]}
    return float(per.mean()), per, stacked


def central_differences(f, params: dict, step: float = 1e-3) -> dict[str, np.ndarray]:
    """d f / d params, element by element, by the five-point stencil (error O(h**4))."""
    grads = {}
    for name, value in params.items():
        g = np.zeros(value.shape)
        for index in np.ndindex(value.shape):
            h = step * max(1.0, abs(float(value[index])))

            def at(t, name=name, value=value, index=index):
                moved = value.copy()
                moved[index] += t
                return f({**params, name: moved})

            g[index] = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)
        grads[name] = g
    return grads


def assert_close(what: str, got, want, rtol: float, floor: float) -> None:
    """Elementwise |got - want| <= rtol |want| + floor * max(1, max |want|)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert np.all(np.isfinite(got)), f"{what} is not finite: {got}"
    atol = floor * max(1.0, float(np.max(np.abs(want), initial=0.0)))
    bad = np.abs(got - want) > rtol * np.abs(want) + atol
    assert not bad.any(), (
        f"{what} is off at {np.argwhere(bad).tolist()[:6]}:\n"
        f"compiled  {got[bad][:6]}\nreference {want[bad][:6]}"
    )


_COMPILED: dict[tuple[str, str, str], object] = {}


def compiled(case: Case, dtype: str = "float64", backend: str = "numpy"):
    key = (case.name, dtype, backend)
    if key not in _COMPILED:
        net = symbp.parse_text(case.spec, f"{case.name}.sbp")
        _COMPILED[key] = symbp.compile(net, backend=backend, dtype=dtype)
    return _COMPILED[key]


def _build(spec: str, name: str, dtype: str) -> None:
    """Compile one C module into symbp's build cache (in a worker process)."""
    try:
        symbp.compile(symbp.parse_text(spec, f"{name}.sbp"), backend="c", dtype=dtype)
    except Exception:  # noqa: BLE001 - the test that uses it reports the error
        pass


@pytest.fixture(scope="session", autouse=True)
def _c_builds_in_parallel(request):
    """A cold C build costs a second: run the selected ones on every core first, so that the
    tests find them in the (content-addressed) build cache. Not under pytest-xdist, whose
    workers share the cores already."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    builds = set()
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("backend") == "c" and isinstance(params.get("case"), Case):
            builds.add((params["case"], "float64"))
            if "float32" in item.name:
                builds.add((params["case"], "float32"))
    if len(builds) > 4 and (os.cpu_count() or 1) > 1:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(os.cpu_count(), mp_context=spawn) as pool:
            list(pool.map(_build, *zip(*[(c.spec, c.name, d) for c, d in builds], strict=True)))


_EXPECTED: dict[tuple[str, int], tuple] = {}


def expected(case: Case, batch: int) -> tuple:
    """(params, inputs, mean loss, per-example loss, outputs, gradients by differences)."""
    key = (case.name, batch)
    if key not in _EXPECTED:
        module = compiled(case)
        rng = np.random.default_rng([batch, len(case.name)])
        params = draw_params(module, rng)
        inputs = draw_inputs(module, rng, batch)
        loss, per, outputs = numpy_reference(case, params, inputs)
        fd = central_differences(lambda p: numpy_reference(case, p, inputs)[0], params)
        _EXPECTED[key] = params, inputs, loss, per, outputs, fd
    return _EXPECTED[key]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_loss_forward_and_gradients_match_the_reference(case, batch, backend):
    module = compiled(case, backend=backend)
    params, inputs, want_loss, want_per, want_out, want_grads = expected(case, batch)

    assert_close("loss", module.loss(params, **inputs), want_loss, 1e-12, 1e-14)
    out = module.forward(params, **inputs)
    assert list(out) == [*module.OUTPUTS]
    loss_name = module.OUTPUTS[-1]
    assert_close(f"forward {loss_name}", out[loss_name], want_per, 1e-12, 1e-14)
    for name, want in want_out.items():  # batch on axis 0, even where an Output is the same
        assert_close(f"forward {name}", out[name], want, 1e-12, 1e-14)  # for every example

    value, grads = module.loss_and_grads(params, **inputs)
    assert_close("loss_and_grads loss", value, want_loss, 1e-12, 1e-14)
    assert list(grads) == list(module.PARAMS)
    for name, want in want_grads.items():
        assert_close(f"d{name}", grads[name], want, 1e-7, 1e-9)


FLOAT32_RUNS = [pytest.param(case, "numpy", id=f"{case}-numpy") for case in CASES] + [
    pytest.param(case, "c", id=f"{case}-c") for case in C_FLOAT32
]


def float32_run(case: Case, backend: str, batch: int = 5):
    """(float64 result, float32 result, float32 forward) of loss_and_grads, same values."""
    wide, narrow = compiled(case, backend=backend), compiled(case, "float32", backend)
    assert narrow.DTYPE == "float32"
    rng = np.random.default_rng(7)
    params = draw_params(wide, rng)
    inputs = draw_inputs(wide, rng, batch)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    i32 = {k: v.astype(np.float32) for k, v in inputs.items()}
    return (
        wide.loss_and_grads(params, **inputs),
        narrow.loss_and_grads(p32, **i32),
        narrow.forward(p32, **i32),
    )


@pytest.mark.parametrize(("case", "backend"), FLOAT32_RUNS)
def test_float32_module_agrees_with_float64(case, backend):
    (loss64, grads64), (loss32, grads32), _ = float32_run(case, backend)
    assert_close("float32 loss", loss32, loss64, 1e-4, 1e-5)
    for name in grads64:
        assert_close(f"float32 d{name}", grads32[name], grads64[name], 1e-4, 1e-5)


@pytest.mark.parametrize(("case", "backend"), FLOAT32_RUNS)
def test_float32_module_returns_float32_arrays(case, backend):
    _, (_, grads32), forward32 = float32_run(case, backend)
    wrong = {f"d{k}": str(v.dtype) for k, v in grads32.items() if v.dtype != np.float32}
    wrong |= {k: str(v.dtype) for k, v in forward32.items() if v.dtype != np.float32}
    assert not wrong, f"a float32 module returned {wrong}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_init_params(case, backend):
    module = compiled(case, backend=backend)
    params = module.init_params(3)
    assert list(params) == list(module.PARAMS)
    for name, shape in module.PARAMS.items():
        assert params[name].shape == shape and params[name].dtype == np.float64
    again = module.init_params(3)
    assert all(np.array_equal(params[k], again[k]) for k in params)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_train_step_is_one_sgd_step(case, backend):
    module = compiled(case, backend=backend)
    rng = np.random.default_rng(11)
    params = draw_params(module, rng)
    inputs = draw_inputs(module, rng, 5)
    before = {k: v.copy() for k, v in params.items()}
    value, grads = module.loss_and_grads(params, **inputs)
    assert module.train_step(params, 0.1, **inputs) == pytest.approx(value, rel=1e-14)
    for name in params:
        assert_close(f"step {name}", params[name], before[name] - 0.1 * grads[name], 1e-14, 1e-15)


# ------------------------------------------- minimal reproductions of the bugs found
#
# Each is the smallest spec that showed a bug, checked against values derived by hand.

X2 = np.array([[0.7, -0.4], [-1.1, 0.9], [0.3, 0.5]])  # three examples of an Input[2]
W2 = np.array([0.8, -1.2])


def module_for(spec: str, backend: str, dtype: str = "float64"):
    return symbp.compile(symbp.parse_text(spec, "repro.sbp"), backend=backend, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("init", ["glorot", "he"])
def test_an_initializer_used_only_by_the_first_param_is_defined(init, backend):
    """The helper (_glorot, _he) of the first Param's initializer was left out of the module:
    init_params raised NameError unless a later Param used the same initializer."""
    module = module_for(f"W: Param[2, 2] = {init}\nC: Loss = sum(W ** 2)\n", backend)
    W = module.init_params(0)["W"]
    assert W.shape == (2, 2) and np.all(np.isfinite(W)) and np.any(W != 0)
    if init == "glorot":
        assert np.all(np.abs(W) <= np.sqrt(6 / 4))


FLOAT32_LEAKS = {
    # d/du of a Param the loss never reaches: zeros built from an int, divided by n
    "unreached_param": "x: Input[2]\nw: Param[2] = ones\nu: Param[2] = ones\nC: Loss = x @ w\n",
    # a term without Inputs: n * 2w / n, with n reshaped into an int64 array
    "input_free_term": "x: Input[2]\nw: Param[2] = ones\nC: Loss = x @ w + sum(w ** 2)\n",
    # d(2 ** u) = 2 ** u * np.log(2), a float64 scalar
    "power_of_two": "x: Input[2]\nw: Param[2] = ones\nC: Loss = sum(2 ** (w * x))\n",
    # d/dw of sum(w) + x: np.broadcast_to(n, (2,)) / n, an int64 array over an int
    "param_sum_plus_input": "x: Input\nw: Param[2] = ones\nC: Loss = sum(w) + x\n",
    # a contraction with the integer constant 1 (np.einsum(",bi->i", 1, ...))
    "mean_then_dot": "X: Input[3, 2]\nv: Param[2] = ones\nC: Loss = mean(X, axis=0) @ v\n",
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", FLOAT32_LEAKS.values(), ids=FLOAT32_LEAKS)
def test_float32_gradients_are_float32(spec, backend):
    module = module_for(spec, backend, "float32")
    params = {k: np.full(s, 0.5, np.float32) for k, s in module.PARAMS.items()}
    inputs = {k: np.full((3, *s), 0.5, np.float32) for k, s in module.INPUTS.items()}
    _, grads = module.loss_and_grads(params, **inputs)
    assert {k: str(g.dtype) for k, g in grads.items()} == {k: "float32" for k in grads}


@pytest.mark.parametrize("backend", BACKENDS)
def test_abs_gradient_reads_its_argument_after_the_loss_overwrote_it(backend):
    """C: the workspace planner gave C the buffer of w * x while the backward pass still
    read it (through an inlined expression), so dw came out wrong."""
    module = module_for("x: Input[2]\nw: Param[2] = ones\nC: Loss = sum(abs(w * x))\n", backend)
    value, grads = module.loss_and_grads({"w": W2}, x=X2)
    assert_close("loss", value, np.mean(np.sum(np.abs(W2 * X2), axis=1)), 1e-12, 1e-14)
    assert_close("dw", grads["w"], np.mean(X2 * np.sign(W2 * X2), axis=0), 1e-12, 1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_value_read_twice_by_one_expression_is_not_overwritten(backend):
    """C: e + 1 was computed in place over e, so e / (1 + e) was 1 and the loss was 2."""
    spec = "x: Input[2]\nw: Param[2] = ones\ne = exp(w * x)\nC: Loss = sum(e / (1 + e))\n"
    module = module_for(spec, backend)
    e = np.exp(W2 * X2)
    value, grads = module.loss_and_grads({"w": W2}, x=X2)
    assert_close("loss", module.loss({"w": W2}, x=X2), np.mean(np.sum(e / (1 + e), 1)), 1e-12, 0)
    assert_close("dw", grads["w"], np.mean(X2 * e / (1 + e) ** 2, axis=0), 1e-12, 1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_size_one_param_broadcast_against_a_vector(backend):
    """C: the gradient of a Param[1] added to an Input[2] was wrong."""
    module = module_for("x: Input[2]\na: Param[1] = ones\nC: Loss = sum((x + a) ** 2)\n", backend)
    a = np.array([0.3])
    _, grads = module.loss_and_grads({"a": a}, x=X2)
    assert_close("da", grads["a"], [np.mean(np.sum(2 * (X2 + a), axis=1))], 1e-12, 1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_step_returns_the_loss_before_the_step_when_the_loss_is_a_param(backend):
    """C: with `C: Loss = s` the loss was read from s after s had been updated in place."""
    module = module_for("x: Input[2]\ns: Param = 1.0\nC: Loss = s\n", backend)
    params = {"s": np.array(0.5)}
    assert module.train_step(params, 0.1, x=X2) == 0.5
    assert params["s"] == pytest.approx(0.4, rel=1e-15)


COMPILE_CRASHES = {
    # KeyError: <RESHAPE (1,) (1,)>: the batch size n reshaped for an input-free term
    "input_free_term": (
        "x: Input[2]\nw: Param[2] = ones\nC: Loss = x @ w + sum(w ** 2)\n",
        lambda w, x: x + 2 * w,
    ),
    # KeyError: const(1): a contraction with a constant operand
    "mean_then_dot": (
        "X: Input[3, 2]\nw: Param[2] = ones\nC: Loss = mean(X, axis=0) @ w\n",
        lambda w, x: np.mean(x, axis=0),
    ),
    # KeyError: <BROADCAST (3,) (3,)>: the adjoint of sum(...) as an operand of a product
    "sum_of_matrix_vector_product": (
        "x: Input[2]\nW: Param[3, 2] = ones\nC: Loss = sum(W @ x)\n",
        lambda w, x: np.outer(np.ones(3), x),
    ),
    # KeyError: <BROADCAST (1, 2) (1, 2)>: a (1, 1) @ (1, 2) product
    "one_by_one_matmul": (
        "X: Input[1, 2]\nw: Param[1, 1] = ones\nC: Loss = sum(w @ X)\n",
        lambda w, x: np.sum(x, axis=1),
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec, grad", COMPILE_CRASHES.values(), ids=COMPILE_CRASHES)
def test_small_specs_that_crashed_the_compiler(spec, grad, backend):
    module = module_for(spec, backend)
    (name, shape), (xname, xshape) = *module.PARAMS.items(), *module.INPUTS.items()
    w = np.full(shape, 0.5)
    x = np.arange(3 * np.prod(xshape)).reshape(3, *xshape) / 10
    _, grads = module.loss_and_grads({name: w}, **{xname: x})
    want = np.mean([grad(w, example) for example in x], axis=0).reshape(shape)
    assert_close(f"d{name}", grads[name], want, 1e-12, 1e-14)


STABILITY_SPEC = """
z: Input[3]
t: Input[3]
s: Param = 1.0
def logsig(u):
    return log(sigmoid(u))
def sp(u):
    return log(1 + exp(u))
bce = -sum(t * logsig(s * z) + (1 - t) * log(1 - sigmoid(s * z)))
C: Loss = cross_entropy(s * z, t) + bce + sum(sp(s * z)) + logsumexp(s * z)
p: Output = softmax(s * z)
"""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("s", [1.0, 1000.0])
def test_naive_log_forms_are_stable_at_large_logits(s, backend):
    """log(sigmoid(u)) inside a def was not rewritten to -softplus(-u): inf at u = -1000."""
    module = module_for(STABILITY_SPEC, backend)
    z = np.array([[1.0, -1.0, 0.5], [-0.7, 0.2, 1.0]])
    t = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    u = s * z
    softplus, sigmoid = np.logaddexp(0, u), np.exp(-np.logaddexp(0, -u))
    lse = np.max(u, 1) + np.log(np.sum(np.exp(u - np.max(u, 1, keepdims=True)), 1))
    log_softmax = u - lse[:, None]
    per = -np.sum(t * log_softmax, 1) + np.sum(t * np.logaddexp(0, -u) + (1 - t) * softplus, 1)
    per += np.sum(softplus, 1) + lse
    # d/ds: each term is a function of u = s z, so d/ds = sum(z * d/du)
    du = -t + t.sum(1, keepdims=True) * np.exp(log_softmax)  # cross entropy
    du += -t * (1 - sigmoid) + (1 - t) * sigmoid + sigmoid + np.exp(log_softmax)
    value, grads = module.loss_and_grads({"s": np.array(s)}, z=z, t=t)
    assert_close("loss", value, per.mean(), 1e-12, 1e-14)
    assert_close("ds", grads["s"], np.mean(np.sum(z * du, 1)), 1e-12, 1e-14)
    assert_close(
        "p", module.forward({"s": np.array(s)}, z=z, t=t)["p"], np.exp(log_softmax), 1e-12, 1e-14
    )
