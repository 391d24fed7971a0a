"""Indexing, joins and reshapes against NumPy's own, on both backends.

Hypothesis draws shapes and basic indices (``conftest.basic_index``): the forward value of
``x[index]`` must be NumPy's indexing of the same array, and its gradient the closed form
(the upstream gradient written at the index in zeros, averaged over the batch). Joins and
reshapes are checked the same way. The C backend must agree with NumPy to 1e-12, and its
loops over a slice must cost the slice's size, never a product with a one-hot matrix.
"""

import numpy as np
import pytest
from conftest import BATCH, basic_index, derivative, random_inputs, random_params, scale
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import symbp
from symbp.explain.equations import backward_equations
from symbp.ir import indexing, ops
from symbp.passes.pipeline import optimize

SHAPES = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def dims(shape) -> str:
    return ", ".join(map(str, shape))


@st.composite
def indexed(draw):
    shape = draw(SHAPES)
    text, key = basic_index(draw, shape)
    return shape, text, key


def sliced_spec(shape, text) -> str:
    """y = x[index] for an Input x; the loss weighs y by a Param w of y's shape."""
    y_shape = np.zeros(shape)[text_key(text)].shape
    w = f"w: Param[{dims(y_shape)}] = zeros\n" if y_shape else "w: Param = 0\n"
    return f"x: Input[{dims(shape)}]\nv: Param[{dims(shape)}] = zeros\n{w}" + (
        f"y: Output = x[{text}] * w\nz: Output = v[{text}]\nC: Loss = sum(y) + sum(w * z)\n"
    )


def text_key(text: str):
    """The NumPy key of an index's text (the spec's syntax is Python's)."""
    return eval(f"np.s_[{text}]")  # noqa: S307 - the test's own index text


@settings(max_examples=scale(150), **SETTINGS)
@given(case=indexed(), seed=st.integers(0, 2**32 - 1))
def test_forward_and_gradient_match_numpy_indexing(case, seed):
    shape, text, key = case
    note(text)
    module = symbp.compile(symbp.parse_text(sliced_spec(shape, text)))
    rng = np.random.default_rng(seed)
    params, inputs = random_params(module, rng), random_inputs(module, rng)
    out = module.forward(params, **inputs)
    x, w, v = inputs["x"], params["w"], params["v"]
    batch_key = (slice(None), *key)
    np.testing.assert_array_equal(out["y"], x[batch_key] * w)
    np.testing.assert_array_equal(out["z"], np.broadcast_to(v[key], out["z"].shape))
    _, grads = module.loss_and_grads(params, **inputs)
    dv = np.zeros(shape)
    dv[key] = w  # basic indexing never repeats an element: the adjoint is written, not added
    np.testing.assert_allclose(grads["v"], dv, rtol=1e-14)
    np.testing.assert_allclose(
        grads["w"], np.mean(x[batch_key], axis=0) + v[key], rtol=1e-12, atol=1e-15
    )


@settings(max_examples=scale(60), **SETTINGS)
@given(case=indexed(), seed=st.integers(0, 2**32 - 1))
def test_interpreter_and_index_text_agree_with_numpy(case, seed):
    """The canonical index (ints made non-negative, slices as Spans) reads back, through its
    printed text, as the same elements."""
    shape, text, key = case
    a = np.random.default_rng(seed).normal(size=shape)
    index = indexing.entries(key, shape)
    printed = indexing.index_text(index, shape)
    np.testing.assert_array_equal(a[text_key(printed)], a[key])
    x = symbp.input("x", *shape)
    assert x[key] is ops.slice_(x, index)


@settings(max_examples=scale(8), **SETTINGS)
@given(case=indexed(), seed=st.integers(0, 2**32 - 1))
def test_c_backend_agrees_on_random_indices(case, seed):
    shape, text, _ = case
    note(text)
    assert_backends_agree(sliced_spec(shape, text), seed)


def assert_backends_agree(text: str, seed: int = 0) -> None:
    graph = symbp.parse_text(text)
    numpy_module, c_module = symbp.compile(graph), symbp.compile(graph, backend="c")
    rng = np.random.default_rng(seed)
    params, inputs = random_params(numpy_module, rng), random_inputs(numpy_module, rng)
    loss_n, grads_n = numpy_module.loss_and_grads(params, **inputs)
    loss_c, grads_c = c_module.loss_and_grads(params, **inputs)
    assert loss_c == pytest.approx(loss_n, rel=1e-12, abs=1e-300)
    for name, g in grads_n.items():
        np.testing.assert_allclose(grads_c[name], g, rtol=1e-12, atol=1e-12)
    forward_n, forward_c = (
        numpy_module.forward(params, **inputs),
        c_module.forward(params, **inputs),
    )
    for name, value in forward_n.items():
        np.testing.assert_allclose(forward_c[name], value, rtol=1e-12, atol=1e-12)


JOINS = [
    "y: Output = concatenate([W @ x, b, x[1:3]], axis=0)",
    "y: Output = concatenate([X, A * X, A], axis=-2)",
    "y: Output = concatenate([X.T, A.T], axis=1)",
    "y: Output = stack([W @ x, b, b * x[:3]], axis=-1)",
    "y: Output = stack([X, A], axis=1)[::-1, 1]",
    "y: Output = stack([s, s * x[0], 2], axis=0)",
    "y: Output = reshape(X * A, (3, 2))[1:] + flatten(A)[:2]",
    "y: Output = X.reshape(-1)[::2] * x[-1] + concatenate([b, b])[2:5]",
]
HEAD = (
    "x: Input[4]\nX: Input[2, 3]\nW: Param[3, 4] = glorot\nb: Param[3] = normal(1)\n"
    "A: Param[2, 3] = normal(1)\ns: Param = 0.5\n"
)


@pytest.mark.parametrize("line", JOINS)
def test_joins_and_reshapes_on_both_backends(line):
    text = HEAD + line + "\nC: Loss = sum(y * y + sin(y))\n"
    for backend in ("numpy", "c"):
        report = symbp.check_grads(symbp.parse_text(text), backend=backend)
        assert report.ok, report.table()
    assert_backends_agree(text, seed=3)


def test_forward_of_joins_is_numpys():
    module = symbp.compile(symbp.parse_text(HEAD + JOINS[0] + "\nC: Loss = sum(y)\n"))
    rng = np.random.default_rng(5)
    params, inputs = random_params(module, rng), random_inputs(module, rng)
    y = module.forward(params, **inputs)["y"]
    x, W, b = inputs["x"], params["W"], params["b"]
    want = np.concatenate([x @ W.T, np.broadcast_to(b, (BATCH, 3)), x[:, 1:3]], axis=1)
    np.testing.assert_allclose(y, want, rtol=1e-15)


def test_adjoints_of_slices_add_where_they_meet():
    """d/dp of sum(p[1:] * p[:-1]) = p[:-1] shifted right + p[1:] shifted left."""
    module = symbp.compile(symbp.parse_text("p: Param[6] = zeros\nC: Loss = sum(p[1:] * p[:-1])\n"))
    p = np.arange(1.0, 7.0)
    _, grads = module.loss_and_grads({"p": p})
    want = np.zeros(6)
    want[1:] += p[:-1]
    want[:-1] += p[1:]
    np.testing.assert_array_equal(grads["p"], want)


def test_generated_code_reads_as_numpy_indexing():
    text = "x: Input[5, 16]\nW: Param[3, 8] = glorot\nlast = x[-1, 2:10]\nC: Loss = sum(W @ last)\n"
    source = symbp.generate(symbp.parse_text(text))
    assert "last = x[:, 4, 2:10]" in source
    program = optimize(symbp.parse_text("p: Param[5] = zeros\nC: Loss = sum(p[::2] ** 2)\n"))
    equations = backward_equations(program)
    assert "dp = zeros(5).at[::2].set(2*t1)" in equations, equations
    source = symbp.generate(symbp.parse_text("p: Param[5] = zeros\nC: Loss = sum(p[::2] ** 2)\n"))
    assert "_unslice(" in source and "np.s_[::2]" in source


def test_c_slices_are_loops_of_their_size():
    """A slice of 8 elements of a 5 x 16 input: one loop over the batch and the 8 elements,
    no GEMM and no buffer of the input's size for it."""
    text = "x: Input[5, 16]\nw: Param[8] = ones\nC: Loss = sum(w * x[-1, 2:10])\n"
    source = symbp.generate(symbp.parse_text(text), backend="c")
    assert "gemm" not in source.split("static void forward_pass")[1].split("\n}\n")[0]
    assert "_i1 + 66]" in source  # x[b, 4, 2 + i]: 4 * 16 + 2 = 66


def test_gradient_views_of_params_are_copies():
    """train_step updates the Params in place: a gradient that reads a view of another Param
    (dA = B[0], dA = B.T) must be taken before either changes."""
    for loss in ("sum(A * B[0])", "sum(A * B.T[:, 1])"):
        text = f"B: Param[2, 3] = glorot\nA: Param[3] = ones\nC: Loss = {loss}\n"
        for backend in ("numpy", "c"):
            m = symbp.compile(symbp.parse_text(text), backend=backend)
            p = m.init_params(0)
            before = {k: v.copy() for k, v in p.items()}
            _, g = m.loss_and_grads(before)
            g = {k: np.array(v) for k, v in g.items()}
            m.train_step(p, 0.5)
            for k in p:
                np.testing.assert_allclose(p[k], before[k] - 0.5 * g[k], rtol=1e-15)


def test_python_builder_indexing():
    x = symbp.input("x", 5, 4)
    W = symbp.param("W", 3, 8, init="glorot")
    h = symbp.tanh(W @ symbp.flatten(x[1:3]))
    y = symbp.stack(
        [symbp.concatenate([h, x[0, :3]]), symbp.concatenate([h * 2, x[1, 1:]], axis=-1)], -1
    )
    assert y.shape == (6, 2)
    net = symbp.network(symbp.sum(symbp.reshape(y, -1, 3) ** 2), outputs={"y": y})
    assert net.outputs["y"].shape == (6, 2)
    for backend in ("numpy", "c"):
        report = symbp.check_grads(net, backend=backend)
        assert report.ok, report.table()


def test_indices_fold_from_named_numbers():
    """Any expression that folds to an integer indexes: names bound to numbers, -T, 2 ** 1."""
    text = (
        "x: Input[5, 16]\nT = 5\nk = T - 1\nb = x[k, T - 3:2 * T:2 ** 1] + x[-T, :4]\n"
        "C: Loss = sum(b)\n"
    )
    source = symbp.generate(symbp.parse_text(text))
    assert "b = x[:, 4, 2:10:2] + x[:, 0, :4]" in source


def test_hessian_vector_products_through_slices_and_joins():
    """Second order: the gradient graph (unslices, slices of adjoints) differentiates again."""
    net = symbp.parse_text(
        "x: Input[5, 4]\nW: Param[3, 8] = glorot\nb: Param[6] = normal(1)\n"
        "h = tanh(W @ flatten(x[1:3]))\n"
        "C: Loss = sum(concatenate([h, x[0, :3]]) * b[::-1] ** 2) + sum(stack([h, h * h])[1])\n"
    )
    hvp, module = symbp.hvp(net), symbp.compile(net)
    rng = np.random.default_rng(0)
    params, x = module.init_params(0), rng.normal(size=(4, 5, 4))
    v = {k: rng.normal(size=a.shape) for k, a in params.items()}
    hv = hvp(params, v, x=x)
    for k in params:
        along = lambda t, k=k: module.loss_and_grads(  # noqa: E731
            {n: params[n] + t * v[n] for n in params}, x=x
        )[1][k]
        np.testing.assert_allclose(hv[k], derivative(along, 1e-3), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "terms, unslices",
    [
        (" + ".join(f"sum(xs[{t}] ** 2)" for t in range(12)), 0),  # rows 0..11: one stack
        ("sum(xs[:2] ** 2) + sum(xs[2] ** 3) + sum(xs[3:5] * xs[0, 0])", 2),  # + xs[0, 0]
        ("sum(xs[:, 1] ** 2) + sum(xs[:, 0] ** 3) + sum(xs[:, 3:] ** 2)", 2),  # a gap at 2
        ("sum(xs[0] ** 2) + sum(xs[0:2] ** 3) + sum(xs[::2] ** 2)", 3),  # overlaps, a step
    ],
    ids=["rows", "mixed", "gap", "overlaps"],
)
def test_adjoints_of_adjacent_slices_are_one_join(terms, unslices):
    """sum_of_unslices: the adjoints of x[0], x[1], ... (or of x[:2], x[2], x[3:5]) are one
    join, not one zeroed array each; what is not adjacent stays an unslice. Gradients
    checked on both backends."""
    text = f"x: Input[12, 4]\nW: Param[12, 4] = normal(1)\nxs = tanh(x * W)\nC: Loss = {terms}\n"
    source = symbp.generate(symbp.parse_text(text))
    assert source.count("_unslice(") - ("def _unslice" in source) == unslices, source
    for backend in ("numpy", "c"):
        report = symbp.check_grads(symbp.parse_text(text), backend=backend)
        assert report.ok, report.table()
    assert_backends_agree(text)


def test_outputs_that_view_an_input_are_copies():
    module = symbp.compile(
        symbp.parse_text("x: Input[3, 4]\ny: Output = x[1]\nC: Loss = x[0, 0]\n")
    )
    x = np.arange(24.0).reshape(2, 3, 4)
    y = module.forward({}, x=x)["y"]
    np.testing.assert_array_equal(y, x[:, 1])
    assert not np.shares_memory(y, x)
