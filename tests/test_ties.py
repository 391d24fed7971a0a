"""maximum, minimum, clip, where, the comparisons and the max and min reductions at their
kinks, on both backends: the tie rules of SPEC.md section 5, exactly.

Finite differences check these functions away from their kinks (``test_op_grads.py``);
here the gradients at a tie are compared with the rule's own numbers: maximum(a, b) at
a == b sends half to each, max and min split evenly among tied entries, clip at a bound
gives x all of it (torch's clamp; jnp.clip would halve it, see ``symbp.ir.functions``),
where gives the chosen branch all of it, relu'(0) = abs'(0) = 0, and comparisons have no
gradient. Then the C backend against NumPy to 1e-12 with infinities and NaN in every
argument, and the expression-level rules (folds, printing, reading formulas).
"""

import functools
import itertools
from pathlib import Path

import numpy as np
import pytest
from conftest import BATCH, random_inputs, random_params, scale
from hypothesis import given, settings
from hypothesis import strategies as st

import symbp
from symbp.explain.equations import backward_equations
from symbp.ir import expr as ex
from symbp.ir.expr import X, formula
from symbp.ir.node import Op, toposort
from symbp.passes.pipeline import optimize

BACKENDS = ("numpy", "c")
INF, NAN = np.inf, np.nan


def grads_at(text: str, backend: str, dtype: str = "float64", **values):
    """The loss and gradients of a spec of Params only, at ``values``."""
    module = symbp.compile(symbp.parse_text(text), backend=backend, dtype=dtype)
    params = {k: np.asarray(v, dtype=dtype) for k, v in values.items()}
    with np.errstate(all="ignore"):  # infinite ties: a loss of inf - inf
        loss, grads = module.loss_and_grads(params)
    return loss, {k: np.asarray(g, dtype=np.float64) for k, g in grads.items()}


def vectors(*names: str, n: int = 3) -> str:
    return "".join(f"{name}: Param[{n}] = zeros\n" for name in names)


# ------------------------------------------------------------------- tie rules


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_maximum_and_minimum_split_a_tie_in_half(backend, dtype):
    text = vectors("p", "q") + "C: Loss = sum(maximum(p, q) + 3 * minimum(p, q))\n"
    p, q = [1.0, 2.0, 3.0], [1.0, 1.0, 5.0]
    loss, g = grads_at(text, backend, dtype, p=p, q=q)
    assert loss == 1 + 2 + 5 + 3 * (1 + 1 + 3)
    np.testing.assert_array_equal(g["p"], [0.5 + 1.5, 1, 3])
    np.testing.assert_array_equal(g["q"], [0.5 + 1.5, 3, 1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_maximum_of_a_value_with_itself_passes_the_whole_gradient(backend):
    text = vectors("p") + "C: Loss = sum(maximum(p, p) * minimum(p, p))\n"
    _, g = grads_at(text, backend, p=[-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(g["p"], [-4.0, 0.0, 6.0])  # d p**2 = 2 p


@pytest.mark.parametrize("backend", BACKENDS)
def test_maximum_at_infinite_ties(backend):
    text = vectors("p", "q", n=2) + "C: Loss = sum(maximum(p, q))\n"
    _, g = grads_at(text, backend, p=[INF, -INF], q=[INF, -INF])
    np.testing.assert_array_equal(g["p"], [0.5, 0.5])
    np.testing.assert_array_equal(g["q"], [0.5, 0.5])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "reduction, values, expected",
    [
        ("max(v)", [1.0, 3.0, 3.0], [0, 0.5, 0.5]),
        ("min(v)", [2.0, 2.0, 2.0], [1 / 3, 1 / 3, 1 / 3]),
        ("max(v)", [-INF, -INF, -INF], [1 / 3, 1 / 3, 1 / 3]),
        ("min(v)", [INF, 0.0, INF], [0, 1, 0]),
        ("max(v, axis=0)", [7.0, -1.0, 7.0], [0.5, 0, 0.5]),
        ("min(v, axis=-1)", [0.0, -0.0, 1.0], [0.5, 0.5, 0]),
    ],
)
def test_max_and_min_split_the_gradient_among_ties(backend, reduction, values, expected):
    _, g = grads_at(vectors("v") + f"C: Loss = {reduction}\n", backend, v=values)
    np.testing.assert_allclose(g["v"], expected, rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_along_an_axis_of_a_matrix(backend):
    text = "W: Param[2, 3] = zeros\nC: Loss = sum(max(W, axis=1)) + 2 * sum(min(W, axis=0))\n"
    w = [[1.0, 3.0, 3.0], [5.0, 5.0, 0.0]]
    loss, g = grads_at(text, backend, W=w)
    assert loss == 3 + 5 + 2 * (1 + 3 + 0)
    np.testing.assert_array_equal(g["W"], [[2, 0.5 + 2, 0.5], [0.5, 0.5, 2]])


# (x, lo, hi) -> (dx, dlo, dhi), torch's clamp rule (jnp.clip halves x's share at a bound)
CLIP = {
    (0.0, 0.0, 1.0): (1, 0, 0),  # at the lower bound: x's
    (1.0, 0.0, 1.0): (1, 0, 0),  # at the upper bound: x's
    (-1.0, 0.0, 1.0): (0, 1, 0),
    (2.0, 0.0, 1.0): (0, 0, 1),
    (0.5, 0.0, 1.0): (1, 0, 0),
    (0.5, 1.0, 0.0): (0, 0, 1),  # lo > hi: the value is hi, as np.clip has it
    (0.0, 0.0, 0.0): (1, 0, 0),
    (2.0, 0.0, 0.0): (0, 0, 1),
    (-1.0, 0.0, 0.0): (0, 0, 0),  # lo == hi, x below: torch gives none of it
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_clip_follows_torch_at_its_bounds(backend):
    n = len(CLIP)
    text = vectors("x", "lo", "hi", n=n) + "C: Loss = sum(clip(x, lo, hi))\n"
    x, lo, hi = (list(column) for column in zip(*CLIP))
    loss, g = grads_at(text, backend, x=x, lo=lo, hi=hi)
    assert loss == sum(np.clip(x_, lo_, hi_) for x_, lo_, hi_ in CLIP)
    dx, dlo, dhi = (list(column) for column in zip(*CLIP.values()))
    np.testing.assert_array_equal(g["x"], dx)
    np.testing.assert_array_equal(g["lo"], dlo)
    np.testing.assert_array_equal(g["hi"], dhi)


@pytest.mark.parametrize("backend", BACKENDS)
def test_clip_with_constant_bounds(backend):
    text = vectors("x", n=5) + "C: Loss = sum(clip(x, -1, 1))\n"
    _, g = grads_at(text, backend, x=[-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_array_equal(g["x"], [0, 1, 1, 1, 0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_where_gives_the_chosen_branch_all_of_it(backend):
    text = vectors("c", "a", "b", n=4) + "C: Loss = sum(where(c, a, b))\n"
    _, g = grads_at(
        text, backend, c=[1.0, 0.0, NAN, -0.0], a=[2.0, 2.0, 2.0, 2.0], b=[2.0, 2.0, 2.0, 2.0]
    )
    np.testing.assert_array_equal(g["a"], [1, 0, 1, 0])  # NaN is not 0: np.where takes a
    np.testing.assert_array_equal(g["b"], [0, 1, 0, 1])
    np.testing.assert_array_equal(g["c"], [0, 0, 0, 0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_leaky_relu_by_where_and_kinks_at_zero(backend):
    text = vectors("p", n=3) + (
        "C: Loss = sum(where(p > 0, p, 0.01 * p) + relu(p) + abs(p) + 3 * (p >= 0))\n"
    )
    loss, g = grads_at(text, backend, p=[-1.0, 0.0, 2.0])
    assert loss == pytest.approx(-0.01 + 1 + 0 + 3 + 2 + 2 + 2 + 3)
    np.testing.assert_allclose(g["p"], [0.01 - 1, 0.01, 3], rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_comparisons_are_masks_without_gradient(backend):
    ops = ["<", "<=", ">", ">=", "==", "!="]
    terms = " + ".join(f"{2**k} * (p {op} q)" for k, op in enumerate(ops))
    text = vectors("p", "q") + f"C: Loss = sum({terms} + p * q)\n"
    p, q = [1.0, 2.0, 3.0], [2.0, 2.0, 2.0]
    loss, g = grads_at(text, backend, p=p, q=q)
    masks = [np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal]
    want = sum(2**k * np.sum(f(p, q)) for k, f in enumerate(masks)) + np.dot(p, q)
    assert loss == want
    np.testing.assert_array_equal(g["p"], q)
    np.testing.assert_array_equal(g["q"], p)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_mask_output_is_a_float_array_of_the_dtype(backend, dtype):
    text = "x: Input[3]\nw: Param[3] = ones\nm: Output = x > 0\nC: Loss = sum(w * (x <= 0))\n"
    module = symbp.compile(symbp.parse_text(text), backend=backend, dtype=dtype)
    x = np.array([[-1.0, 0.0, 2.0], [3.0, -0.5, 0.0]])
    out = module.forward(module.init_params(), x=x)
    assert out["m"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out["m"], [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(out["C"], [2, 2])


# ------------------------------------------------------- C against NumPy, at the extremes

SPECIAL = [INF, -INF, NAN, 0.0, -0.0, 1.0, -2.5]
PAIRS = np.array(list(itertools.product(SPECIAL, repeat=2)))  # every pair, and ties
EXPRESSIONS = [
    "maximum(w * a, b)",
    "minimum(a, w * b)",
    "clip(w * a, b, 1)",
    "clip(1.5, w * a, b)",
    "clip(a, -1, w * b)",
    "where(a, w * b, w)",
    "where(a < b, w * a, w * b)",
    "(w * a < b) + (w * a <= b) + (w * a > b) + (w * a >= b) + (w * a == b) + (w * a != b)",
    "max(w * a + b, axis=0) + 0 * w",
    "min(w * a * b) + 0 * w",
    "max(w * a) - min(w * b)",
    "maximum(a, w * b) + max(w * a)",
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_c_agrees_with_numpy_at_infinities_and_nan(expression, dtype):
    n = len(PAIRS)
    text = f"a: Input[{n}]\nb: Input[{n}]\nw: Param[{n}] = ones\ny: Output = {expression}\n"
    text += "C: Loss = sum(y * y)\n"
    graph = symbp.parse_text(text)
    numpy_module = symbp.compile(graph, dtype=dtype)
    c_module = symbp.compile(graph, backend="c", dtype=dtype)
    params = {"w": np.linspace(0.5, 1.5, n).astype(dtype)}
    params["w"][::3] = 1.0  # keep the ties of the pairs in w * a
    rows = [PAIRS.T, PAIRS[::-1].T, np.ones((2, n))]  # examples: the pairs, reversed, ones
    a, b = (np.array([r[k] for r in rows]) for k in (0, 1))
    with np.errstate(all="ignore"):
        want_out = numpy_module.forward(params, a=a, b=b)
        want_loss, want_grads = numpy_module.loss_and_grads(params, a=a, b=b)
    got_out = c_module.forward(params, a=a, b=b)
    got_loss, got_grads = c_module.loss_and_grads(params, a=a, b=b)
    rtol = 1e-12 if dtype == "float64" else 1e-6  # float32: sums in another order
    for name, value in want_out.items():
        assert got_out[name].dtype == np.dtype(dtype)
        np.testing.assert_allclose(got_out[name], value, rtol=rtol, err_msg=name)
    np.testing.assert_allclose(got_loss, want_loss, rtol=rtol)
    np.testing.assert_allclose(got_grads["w"], want_grads["w"], rtol=rtol)
    assert np.isnan(want_out["y"]).any() or expression.startswith(("(", "where(a <"))


def test_nan_propagates_through_maximum_and_max_as_in_numpy():
    text = "a: Input[3]\nb: Input[3]\ny: Output = maximum(a, b) + minimum(b, a)\n"
    text += "m: Output = max(a) + min(b)\nw: Param = 1\nC: Loss = w\n"
    a = np.array([[NAN, 1.0, 2.0]])
    b = np.array([[0.0, NAN, 2.0]])
    for backend in BACKENDS:
        out = symbp.compile(symbp.parse_text(text), backend=backend).forward(
            {"w": np.float64(1)}, a=a, b=b
        )
        np.testing.assert_array_equal(out["y"], [[NAN, NAN, 4.0]])
        np.testing.assert_array_equal(out["m"], [NAN])


# --------------------------------------------------------------- expressions and Python


def test_folds_of_the_new_functions():
    u, v, m = X[0], X[1], ex.call("gt", X[0], X[1])
    assert ex.call("maximum", u, u) is u and ex.call("minimum", v, v) is v
    assert ex.call("lt", u, u) == 0 and ex.call("ge", u, u) == 1 and ex.call("eq", u, u) == 1
    assert ex.call("where", ex.num(0), u, v) is v and ex.call("where", ex.num(2), u, v) is u
    assert ex.call("where", X[2], u, u) is u
    assert ex.call("where", m, ex.num(1), ex.num(0)) is m
    assert ex.call("ne", m, ex.num(0)) is m
    assert ex.call("eq", ex.num(0), m) is ex.sub(ex.num(1), m)
    assert ex.call("ne", u, ex.num(0)).op == "ne"  # u is no mask
    assert ex.call("clip", ex.decimal(3), ex.num(-1), ex.num(1)) == 1
    assert ex.call("maximum", ex.decimal(0.5), ex.num(2)) == 2


def test_comparisons_print_and_read_as_the_spec_writes_them():
    e = ex.call("eq", ex.call("lt", X[0], X[1] + 1), X[2]) * 2 + ex.call("ge", -X[0], X[1])
    assert repr(e) == "2*((x0 < x1 + 1) == x2) + (-x0 >= x1)"
    assert formula(repr(e), ("x0", "x1", "x2")) is e
    assert repr(ex.call("where", ex.call("gt", X[0], ex.num(0)), X[0], X[1])) == (
        "where(x0 > 0, x0, x1)"
    )


def test_grad_prints_the_tie_rules_readably():
    text = "x: Input[3]\nw: Param[3] = zeros\nC: Loss = sum(maximum(0, 1 - w * x))\n"
    equations = backward_equations(optimize(symbp.parse_text(text)))
    assert "dw = batch_mean(-((t1 > 0) + 0.5*(t1 == 0))*x)" in equations, equations


def test_python_builder_has_the_new_functions_and_no_comparison_operators():
    x = symbp.input("x", 3)
    w = symbp.param("w", 3, init="ones")
    h = symbp.where(symbp.greater(w * x, 0), w * x, 0.1 * w * x)
    loss = symbp.sum(symbp.clip(h, -1, 1)) + symbp.max(symbp.maximum(x, w)) - symbp.min(x)
    net = symbp.network(loss=loss + symbp.sum(symbp.less_equal(x, 0)))
    module = symbp.compile(net)
    xs = np.array([[1.0, -2.0, 0.5]])
    value = module.loss({"w": np.ones(3)}, x=xs)
    assert value == pytest.approx((1 - 0.2 + 0.5) + 1 - (-2) + 1)
    for compare in (lambda: x < w, lambda: x >= 0, lambda: sorted([x, w])):
        with pytest.raises(TypeError, match="symbp.less"):
            compare()
    assert (x == w) is False and symbp.equal(x, w).shape == (3,)
    assert {"less", "less_equal", "greater", "greater_equal", "equal", "not_equal"} <= set(
        dir(symbp)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_hinge_loss_trains_on_both_backends(backend):
    """A few SGD steps on a separable problem lower the mean hinge loss."""
    text = "x: Input[2]\ny: Input\nw: Param[2] = zeros\nb: Param = 0\n"
    text += "C: Loss = maximum(0, 1 - y * (w @ x + b))\n"
    module = symbp.compile(symbp.parse_text(text), backend=backend)
    rng = np.random.default_rng(1)
    params = {k: np.array(v) for k, v in random_params(module, rng).items()}
    inputs = random_inputs(module, rng, BATCH)
    inputs["y"] = np.sign(inputs["x"][:, 0])
    first = module.train_step(params, 0.5, **inputs)
    for _ in range(20):
        last = module.train_step(params, 0.5, **inputs)
    assert last < first


@pytest.mark.parametrize("backend", BACKENDS)
def test_hinge_example_separates_two_clusters(backend):
    """examples/hinge.sbp, a linear SVM, trained by SGD on two Gaussian clusters the test
    draws: its predicted labels (the Output ``label``) end up right on held-out points, and
    both backends take the same steps."""
    spec = Path(__file__).resolve().parent.parent / "examples" / "hinge.sbp"
    module = symbp.compile(symbp.parse(spec), backend=backend)
    rng = np.random.default_rng(13)

    def draw(n):
        y = rng.choice([-1.0, 1.0], size=n)
        x = rng.normal(size=(n, 2)) * 0.8 + np.outer(y, [1.5, -1.0])
        return x, y

    (x, y), (x_test, y_test) = draw(400), draw(200)
    params = module.init_params()
    losses = []
    for _ in range(20):
        order = rng.permutation(len(y))
        for start in range(0, len(y), 20):
            batch = order[start : start + 20]
            losses.append(module.train_step(params, 0.05, x=x[batch], y=y[batch]))
    accuracy = np.mean(module.forward(params, x=x_test, y=y_test)["label"] == y_test)
    assert accuracy > 0.95, accuracy
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:20])
    other = symbp.compile(symbp.parse(spec), backend="c" if backend == "numpy" else "numpy")
    np.testing.assert_allclose(
        other.loss(params, x=x, y=y), module.loss(params, x=x, y=y), rtol=1e-12
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_stays_float32_when_numbers_are_arguments(backend):
    """Found by the random graphs: clip(2, -1, p) made NumPy compute maximum(2, -1) as an
    int64 and the gradient in float64; the module's dtype holds whatever the arguments."""
    text = vectors("p") + "h = clip((p <= p) + (p == p), -1, p) + maximum(2, -1 * p)\n"
    text += "C: Loss = sum(h * h + where(1 - (p == p), 1, p))\n"
    module = symbp.compile(symbp.parse_text(text), backend=backend, dtype="float32")
    loss, grads = module.loss_and_grads({"p": np.array([0.5, 3.0, -3.0], dtype=np.float32)})
    assert grads["p"].dtype == np.float32
    # h = 0.5 + 2, 2 + 2, -3 + 3; dh/dp = 1 + 0, 0 + 0, 1 - 1; where(0, 1, p) adds 1
    np.testing.assert_array_equal(grads["p"], [2 * 2.5 * 1 + 1, 1, 1])


def test_max_and_min_of_one_value_everywhere_fold():
    text = "x: Input[3]\nw: Param[3] = ones\nc = 0 * x + 2\n"
    text += "C: Loss = sum(w * x) * max(c) + min(c * 0 - 1, axis=0)\n"
    program = optimize(symbp.parse_text(text))
    ops = {node.op for node in toposort(program.roots)}
    assert Op.MAX not in ops and Op.MIN not in ops
    module = symbp.compile(symbp.parse_text(text))
    assert module.loss({"w": np.ones(3)}, x=np.ones((2, 3))) == 3 * 2 - 1


# -------------------------------------------------- the rules at random ties (Hypothesis)

RULES_SPEC = """
v: Param[6] = zeros
q: Param[6] = zeros
W: Param[2, 3] = zeros
C: Loss = max(v) + 2 * min(v) + sum(maximum(v, q) + 3 * minimum(v, q)) + sum(max(W, axis=0))
"""


@functools.cache
def rules_module(backend: str):
    return symbp.compile(symbp.parse_text(RULES_SPEC), backend=backend)


def _split(x: np.ndarray, best: float) -> np.ndarray:
    hit = (x == best).astype(float)
    return hit / hit.sum()


SMALL = st.integers(-2, 2).map(float)  # a few values: ties are the rule, not the exception


@settings(max_examples=scale(100), deadline=None)
@given(
    v=st.lists(SMALL, min_size=6, max_size=6),
    q=st.lists(SMALL, min_size=6, max_size=6),
    w=st.lists(SMALL, min_size=6, max_size=6),
)
def test_tie_rules_at_random_ties(v, q, w):
    v, q, W = np.array(v), np.array(q), np.array(w).reshape(2, 3)
    want_v = _split(v, v.max()) + 2 * _split(v, v.min())
    want_v += (v > q) + 0.5 * (v == q) + 3 * ((v < q) + 0.5 * (v == q))
    want_q = (q > v) + 0.5 * (v == q) + 3 * ((q < v) + 0.5 * (v == q))
    want_w = np.stack([_split(W[:, j], W[:, j].max()) for j in range(3)], axis=1)
    for backend in BACKENDS:
        _, g = rules_module(backend).loss_and_grads({"v": v, "q": q, "W": W})
        np.testing.assert_allclose(g["v"], want_v, rtol=1e-15, atol=0, err_msg=backend)
        np.testing.assert_allclose(g["q"], want_q, rtol=1e-15, atol=0, err_msg=backend)
        np.testing.assert_allclose(g["W"], want_w, rtol=1e-15, atol=0, err_msg=backend)
