"""conv2d, max_pool2d and avg_pool2d (SPEC.md §5, issue #14), end to end.

The layers are compositions of two primitives, PATCHES (im2col) and FOLD (col2im, its
adjoint), with a matrix product or a max/mean reduction (``symbp.ir.convolution``). Here:
the primitives against loops written out, and fold as the adjoint of patches; every
configuration the issue names (strides 1 and 2, padding 0 to 2, kernels 1 to 5, channels 1
to 8, non-square images, dilation, groups) against finite differences on both backends and
C against NumPy to 1e-12, in specs that put several layers side by side so that one build
checks many; the gradient at pooling ties (shared evenly, SPEC.md); PyTorch as an
independent reference where it is installed; and the errors, located and quoting shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symbp
from symbp.check.gradients import compare_backends
from symbp.errors import SpecError
from symbp.ir import ops
from symbp.ir.convolution import fold, out_size, patches, window
from symbp.ir.interpret import evaluate

BACKENDS = ("numpy", "c")

# (C, H, W, O, kh, kw, stride, padding, dilation, groups): every size the issue names
CONVS = [
    (1, 5, 7, 2, 3, 3, 1, 1, 1, 1),
    (3, 6, 5, 4, 2, 3, 2, 0, 1, 1),
    (2, 7, 6, 3, 5, 4, (2, 1), 2, 1, 1),
    (8, 4, 4, 2, 1, 1, 1, 0, 1, 1),
    (4, 9, 8, 4, 3, 2, 2, (1, 2), 2, 2),
    (6, 5, 6, 3, 3, 3, 1, 2, 1, 3),
]
# (C, H, W, function, k, stride)
POOLS = [
    (2, 5, 7, "max_pool2d", 2, None),
    (3, 7, 6, "max_pool2d", 3, 2),
    (1, 4, 6, "avg_pool2d", 2, None),
    (2, 5, 5, "avg_pool2d", 3, 1),
]


def conv_spec() -> str:
    """Every conv of CONVS on its own input, the image scaled by a Param (so that the input
    gradient, a fold, is checked too), summed into one loss."""
    lines, terms = [], []
    for i, (c, h, w, o, kh, kw, s, p, d, g) in enumerate(CONVS):
        lines += [
            f"x{i}: Input[{c}, {h}, {w}]",
            f"S{i}: Param[{c}, {h}, {w}] = normal(1)",
            f"K{i}: Param[{o}, {c // g}, {kh}, {kw}] = normal(0.5)",
        ]
        terms.append(
            f"sum(tanh(conv2d(x{i} * S{i}, K{i}, stride={s}, padding={p}, dilation={d}, "
            f"groups={g})))"
        )
    return "\n".join([*lines, "C: Loss = " + " + ".join(terms)]) + "\n"


def pool_spec() -> str:
    lines, terms = [], []
    for i, (c, h, w, f, k, s) in enumerate(POOLS):
        lines += [f"x{i}: Input[{c}, {h}, {w}]", f"S{i}: Param[{c}, {h}, {w}] = normal(1)"]
        stride = "" if s is None else f", stride={s}"
        terms.append(f"sum(sin({f}(x{i} * S{i}, {k}{stride})))")
    return "\n".join([*lines, "C: Loss = " + " + ".join(terms)]) + "\n"


# ------------------------------------------------------------------- the primitives


def patches_by_loops(x: np.ndarray, kh, kw, stride, padding, dilation) -> np.ndarray:
    """The patches of images x (n, C, H, W), written out loop by loop."""
    n, c, h, w = x.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho = out_size(h, kh, sh, ph, dh)
    wo = out_size(w, kw, sw, pw, dw)
    out = np.zeros((n, ho, wo, c, kh, kw))
    for b, oh, ow, ch, i, j in np.ndindex(out.shape):
        y, z = oh * sh - ph + i * dh, ow * sw - pw + j * dw
        if 0 <= y < h and 0 <= z < w:
            out[b, oh, ow, ch, i, j] = x[b, ch, y, z]
    return out


@settings(max_examples=40, deadline=None)
@given(
    c=st.integers(1, 3),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    seed=st.integers(0, 2**32 - 1),
)
def test_patches_are_the_windows_and_fold_is_their_adjoint(
    c, h, w, kh, kw, stride, padding, dilation, seed
):
    """For any window that fits: the interpreter's and the NumPy module's patches are the
    loops', and <fold(g), x> = <g, patches(x)>."""
    win = window((kh, kw), stride, padding, dilation)
    sizes = [
        out_size(d, k, s, p, q)
        for d, k, s, p, q in zip((h, w), (kh, kw), stride, padding, dilation)
    ]
    if min(sizes) < 1:
        with pytest.raises(ops.GraphError, match="does not fit"):
            patches(ops.input_node("x", (c, h, w)), win)
        return
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, c, h, w))
    node = patches(ops.input_node("x", (c, h, w)), win)
    want = patches_by_loops(x, kh, kw, stride, padding, dilation)
    (got,) = evaluate([node], {"x": x}, 2)
    np.testing.assert_array_equal(got, want)
    g = rng.normal(size=want.shape)
    (folded,) = evaluate([fold(ops.input_node("g", node.shape), win, (c, h, w))], {"g": g}, 2)
    assert np.sum(folded * x) == pytest.approx(np.sum(g * want), rel=1e-12, abs=1e-12)


def test_the_numpy_module_takes_the_same_patches():
    """The generated module's strided-view patches and fold agree with the loops."""
    spec = "x: Input[2, 6, 5]\nK: Param[3, 2, 3, 2] = normal(1)\n"
    spec += "C: Loss = sum(conv2d(x, K, stride=(2, 1), padding=(1, 2), dilation=(2, 1)) ** 2)\n"
    module = symbp.compile(symbp.parse_text(spec))
    rng = np.random.default_rng(3)
    x, k = rng.normal(size=(4, 2, 6, 5)), rng.normal(size=(3, 2, 3, 2))
    cols = patches_by_loops(x, 3, 2, (2, 1), (1, 2), (2, 1))
    conv = np.einsum("bhwcij,ocij->bohw", cols, k)
    value, grads = module.loss_and_grads({"K": k}, x=x)
    assert value == pytest.approx(np.mean(np.sum(conv**2, axis=(1, 2, 3))), rel=1e-12)
    dk = np.einsum("bohw,bhwcij->ocij", 2 * conv, cols) / 4
    np.testing.assert_allclose(grads["K"], dk, rtol=1e-12, atol=1e-13)


# -------------------------------------------------------------- the layers' gradients


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["conv", "pool"])
def test_finite_differences(backend, which):
    """Every configuration of CONVS and POOLS: kernel and input gradients by finite
    differences, float64."""
    net = symbp.parse_text(conv_spec() if which == "conv" else pool_spec())
    report = symbp.check_grads(net, backend=backend, batch=2)
    assert report.ok, report.table()


@pytest.mark.parametrize("which", ["conv", "pool"])
def test_c_agrees_with_numpy(which):
    net = symbp.parse_text(conv_spec() if which == "conv" else pool_spec())
    agreement = compare_backends(net, batch=3)
    assert agreement.ok, agreement.table()


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_follows_float64(backend):
    net = symbp.parse_text(conv_spec())
    m64 = symbp.compile(net, backend=backend)
    m32 = symbp.compile(net, backend=backend, dtype="float32")
    rng = np.random.default_rng(5)
    params = {k: rng.normal(size=s) for k, s in m64.PARAMS.items()}
    inputs = {k: rng.normal(size=(3, *s)) for k, s in m64.INPUTS.items()}
    v64, g64 = m64.loss_and_grads(params, **inputs)
    v32, g32 = m32.loss_and_grads(params, **inputs)
    assert v32 == pytest.approx(v64, rel=1e-4)
    for name, g in g64.items():
        np.testing.assert_allclose(g32[name], g, rtol=2e-3, atol=2e-4 * np.abs(g).max())


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_shares_the_gradient_at_ties(backend):
    """A window of equal values shares its adjoint evenly (SPEC.md: as the max reduction,
    torch's amax and JAX's reduce_max do), and an overlapping window counts each time."""
    spec = "x: Input[1, 4, 4]\nS: Param[1, 4, 4] = ones\n"
    spec += "C: Loss = sum(max_pool2d(x * S, 2)) + sum(max_pool2d(x * S, 3, stride=1))\n"
    module = symbp.compile(symbp.parse_text(spec), backend=backend)
    _, grads = module.loss_and_grads({"S": np.ones((1, 4, 4))}, x=np.ones((1, 1, 4, 4)))
    # 2x2 windows: 1/4 each; 3x3 windows, stride 1: 1/9 per window covering the pixel
    cover = np.array([1, 2, 2, 1])
    want = 0.25 + np.outer(cover, cover) / 9
    np.testing.assert_allclose(grads["S"][0], want, rtol=1e-12)


# ------------------------------------------------------------ PyTorch as a reference


@pytest.mark.parametrize("backend", BACKENDS)
def test_against_torch(backend):
    """The conv layers of CONVS and the pools of POOLS, forward and backward, against
    torch.nn.functional in float64 (skipped where torch is not installed)."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(7)
    for spec, layers in ((conv_spec(), CONVS), (pool_spec(), POOLS)):
        module = symbp.compile(symbp.parse_text(spec), backend=backend)
        params = {k: rng.normal(size=s) for k, s in module.PARAMS.items()}
        inputs = {k: rng.normal(size=(3, *s)) for k, s in module.INPUTS.items()}
        value, grads = module.loss_and_grads(params, **inputs)
        tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        total = 0
        for i, layer in enumerate(layers):
            img = torch.tensor(inputs[f"x{i}"]) * tp[f"S{i}"]
            if layers is CONVS:
                *_, s, p, d, g = layer
                out = torch.tanh(functional.conv2d(img, tp[f"K{i}"], None, s, p, d, g))
            else:
                *_, f, k, s = layer
                out = torch.sin(getattr(functional, f)(img, k, s))
            total = total + out.sum()
        (total / 3).backward()
        assert value == pytest.approx(float(total.detach()) / 3, rel=1e-12)
        for name, t in tp.items():
            np.testing.assert_allclose(grads[name], t.grad.numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "body, message",
    [
        ("c = conv2d(x, K3)", "takes 3 input channels"),
        ("c = conv2d(x, K, padding='same')", "padding=k // 2"),
        ("c = conv2d(x, K, bias=b)", "unknown keyword 'bias'"),
        ("c = conv2d(x, K, 1)", "by keyword"),
        ("c = conv2d(v, K)", "needs an image (C, H, W)"),
        ("c = conv2d(x, Kbig)", "does not fit the image (2, 5, 6)"),
        ("c = conv2d(x, K, stride=0)", "stride must be at least 1"),
        ("c = conv2d(x, K, groups=3)", "groups=3 must divide"),
        ("c = max_pool2d(x)", "needs k"),
        ("c = max_pool2d(x, 7)", "H out = (5 + 2*0 - 1*(7-1) - 1) // 7 + 1 = 0"),
        ("c = avg_pool2d(v, 2)", "needs an image of shape (C, H, W)"),
    ],
)
def test_errors_are_located_and_quote_the_shapes(body, message):
    spec = (
        "x: Input[2, 5, 6]\nv: Input[30]\nK: Param[4, 2, 3, 3] = glorot\n"
        "K3: Param[4, 3, 3, 3] = glorot\nKbig: Param[4, 2, 6, 3] = glorot\n"
        f"{body}\nC: Loss = sum(c)\n"
    )
    with pytest.raises(SpecError) as info:
        symbp.parse_text(spec)
    text = str(info.value)
    assert message in text, text
    assert ":6:" in text, text  # the line of the call


def test_symbp_grad_shows_the_layers():
    """The backward equations read as layers: the input gradient of a conv is the
    transposed convolution of its adjoint with the kernel, its kernel gradient conv2d_weight,
    averaged over the batch."""
    from symbp.explain.equations import backward_equations
    from symbp.passes.pipeline import optimize

    spec = (
        "x: Input[1, 8, 8]\nK1: Param[4, 1, 3, 3] = he\nK2: Param[8, 4, 3, 3] = he\n"
        "c1 = relu(conv2d(x, K1, padding=1))\np1 = max_pool2d(c1, 2)\n"
        "c2 = conv2d(p1, K2, stride=2, padding=1)\nC: Loss = sum(c2 ** 2)\n"
    )
    text = backward_equations(optimize(symbp.parse_text(spec)))
    assert "dp1 = conv_transpose2d(" in text and ", K2, stride=2, padding=1)" in text, text
    assert "dK1 = batch_mean(conv2d_weight(x, " in text, text
    assert "dK2 = batch_mean(conv2d_weight(p1, " in text, text


SMALL_CNN = """
x: Input[64]
t: Input[10]
K1: Param[4, 1, 3, 3] = he
b1: Param[4, 1, 1] = zeros
K2: Param[6, 4, 3, 3] = he
b2: Param[6, 1, 1] = zeros
W: Param[10, 24] = glorot
b: Param[10] = zeros

img = reshape(x, (1, 8, 8))
c1 = relu(conv2d(img, K1, padding=1) + b1)
p1 = max_pool2d(c1, 3, stride=2)
c2 = tanh(conv2d(p1, K2, padding=1) + b2)
p2 = avg_pool2d(c2, 2, stride=1)
logits = W @ flatten(p2) + b
C: Loss = cross_entropy(logits, t)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_whole_cnn_against_torch_autograd(backend):
    """A CNN of both pools, overlapping windows and paddings: loss and every gradient
    against PyTorch's autograd on the same float64 values (skipped without torch)."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    module = symbp.compile(symbp.parse_text(SMALL_CNN), backend=backend)
    rng = np.random.default_rng(11)
    params = {k: rng.normal(size=s) * 0.7 for k, s in module.PARAMS.items()}
    x, t = rng.random((5, 64)), np.eye(10)[rng.integers(0, 10, 5)]
    value, grads = module.loss_and_grads(params, x=x, t=t)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    img = torch.tensor(x).reshape(5, 1, 8, 8)
    c1 = torch.relu(functional.conv2d(img, p["K1"], padding=1) + p["b1"])
    c2 = torch.tanh(
        functional.conv2d(functional.max_pool2d(c1, 3, 2), p["K2"], None, 1, 1) + p["b2"]
    )
    logits = functional.avg_pool2d(c2, 2, 1).reshape(5, -1) @ p["W"].T + p["b"]
    loss = -(torch.tensor(t) * torch.log_softmax(logits, 1)).sum(1).mean()
    loss.backward()
    assert value == pytest.approx(float(loss.detach()), rel=1e-12)
    for name, v in p.items():
        np.testing.assert_allclose(grads[name], v.grad.numpy(), rtol=1e-10, atol=1e-13)
