"""Bugs found in review, each pinned by the smallest case that showed it."""

import math

import numpy as np
import pytest

import symbp
from symbp import cli


def test_size_one_argument_of_a_flat_loop_is_not_read_along_it():
    """p0: Param[1] broadcast against p1: Param[2] in one elementwise loop."""
    text = (
        "def blend(u, v):\n    return u * tanh(v) + v / (1 + u * u)\n"
        "x0: Input\np0: Param[1] = zeros\np1: Param[2] = zeros\n"
        "C: Loss = sum(blend(p0, p1) ** 2) + x0\n"
    )
    graph = symbp.parse_text(text)
    params = {"p0": np.array([0.7]), "p1": np.array([0.3, -1.2])}
    x = {"x0": np.array([0.5, 1.5])}
    want = symbp.compile(graph).loss_and_grads(params, **x)
    got = symbp.compile(graph, backend="c").loss_and_grads(params, **x)
    assert got[0] == pytest.approx(want[0], rel=1e-14)
    for name in params:
        np.testing.assert_allclose(got[1][name], want[1][name], rtol=1e-13)


def test_names_that_c_headers_define_as_macros(tmp_path, capsys):
    spec = tmp_path / "macros.sbp"
    spec.write_text(
        "x: Input[4]\nI: Param[3, 4] = glorot\nNAN: Param[3] = zeros\n"
        "complex: Param = 1.0\nM_PI: Param = 1.0\nCblasNoTrans: Param = 0.5\n"
        "C: Loss = sum(sigmoid(I @ x + NAN) ** 2) * complex + M_PI * CblasNoTrans\n"
    )
    assert cli.main(["check", str(spec), "--backend", "all"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("backends agree")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_check_reports_nan_gradients_as_off():
    """d sqrt(relu(w)) at w < 0 comes out 0/0: NaN must never pass as agreement."""
    from symbp.check.gradients import check_module

    module = symbp.compile(symbp.parse_text("w: Param[2] = 1.0\nC: Loss = sum(sqrt(relu(w)))\n"))
    report = check_module(module, params={"w": np.array([-1.0, 1.0])})
    assert np.isnan(report.params[0].max_error)
    assert not report.ok and "GRADIENTS ARE OFF" in report.table()


def test_check_accepts_a_gradient_that_cancels_to_zero(tmp_path):
    """A shift of softmax logits changes nothing: dc is 0 up to round-off."""
    spec = tmp_path / "shift.sbp"
    spec.write_text(
        "x: Input[4]\ny: Input[3]\nW: Param[3, 4] = glorot\nc: Param = 0.0\n"
        "C: Loss = cross_entropy(W @ x + c, y)\n"
    )
    graph = symbp.parse(spec)
    assert symbp.check_grads(graph).ok
    from symbp.check.gradients import compare_backends

    assert compare_backends(graph).ok


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_check_fails_on_a_non_finite_loss():
    from symbp.check.gradients import check_module

    module = symbp.compile(symbp.parse_text("w: Param = -1.0\nC: Loss = log(w)\n"))
    report = check_module(module, params={"w": np.array(-1.0)})
    assert not report.ok and "nothing can be checked" in report.table()


@pytest.mark.parametrize("bad", ["__import__('os').system('true')", "x y", "for", ""])
def test_builder_names_must_be_identifiers(bad):
    with pytest.raises(ValueError, match="not a valid name"):
        symbp.param(bad, 2)
    with pytest.raises(ValueError, match="not a valid name"):
        symbp.input(bad, 2)
    w = symbp.param("w", 2)
    with pytest.raises(ValueError, match="not a valid name"):
        symbp.network(loss=symbp.sum(w), outputs={bad: w})


def test_trainer_refuses_a_single_value_as_data():
    module = symbp.compile(symbp.parse_text("x: Input\nw: Param = 1.0\nC: Loss = (w * x) ** 2\n"))
    with pytest.raises(ValueError, match=r"data\['x'\]"):
        symbp.Trainer(module).fit({"x": 1.0})


# ---------------------------------------------------- found by the review of the rule engine


def test_a_rewrite_that_folds_log_of_zero_keeps_the_node():
    """sum(0 * x) folds to 0 in the simplify pass; log of it used to raise GraphError from
    inside the pass. Now the node stays, and both backends compute -inf alike."""
    spec = "x: Input[3]\nw: Param = 1.0\ns = sum(0 * x)\nC: Loss = w * log(s)\n"
    graph = symbp.parse_text(spec)
    params, inputs = {"w": np.array(1.0)}, {"x": np.ones((2, 3))}
    for backend in ("numpy", "c"):
        assert symbp.compile(graph, backend=backend).loss(params, **inputs) == -np.inf


def test_tiny_and_near_one_constants():
    """0.1 ** 400 made the C printer overflow; log(1.0000000001) lost five digits."""
    spec = (
        "x: Input\nw: Param = 1.0\nC: Loss = 0.1 ** 400 * w * x + w ** 2 + w * log(1.0000000001)\n"
    )
    graph = symbp.parse_text(spec)
    params, inputs = {"w": np.array(1.0)}, {"x": np.ones(2)}
    want = 1.0 + math.log1p(1e-10)
    for backend in ("numpy", "c"):
        got = symbp.compile(graph, backend=backend).loss(params, **inputs)
        assert got == pytest.approx(want, rel=1e-15)


def test_a_forward_value_a_rewrite_reached_from_the_backward_pass_stays_forward():
    """The backward u + u became the output's 2 u; forward() then called it 'grad of'."""
    spec = "w: Param = 0.5\nx: Param = 2.0\nu = w * x\nf: Output = 2 * u\nC: Loss = u * u\n"
    source = symbp.generate(symbp.parse_text(spec))
    forward = source[source.index("def forward") : source.index("def loss")]
    assert "grad of" not in forward and "f = 2*u" in forward


def test_an_integral_float_constant_is_the_integer():
    """cos(0) is 1.0; log(cos(0) + exp(v)) was left unstable where log(1 + exp(v)) was not."""
    from symbp.ir import expr as ex

    assert ex.call("cos", ex.num(0)) is ex.num(1)
    spec = "z: Input\nw: Param = 1.0\nC: Loss = log(cos(0) + exp(w * z))\n"
    m = symbp.compile(symbp.parse_text(spec))
    loss, grads = m.loss_and_grads({"w": np.array(1.0)}, z=np.array([1000.0]))
    assert loss == pytest.approx(1000.0) and grads["w"] == pytest.approx(1000.0)


def test_dividing_by_a_number_whose_reciprocal_is_no_float():
    """Found by the parser fuzzer: w / 2.2e-313 parsed, then differentiation's 1/c failed
    with an internal GraphError. It is a located SpecError."""
    from symbp.errors import SpecError

    with pytest.raises(SpecError) as info:
        symbp.parse_text(
            "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(w / 2.2250738585e-313 * x)\n"
        )
    assert info.value.line == 3 and "reciprocal is too large" in info.value.message
