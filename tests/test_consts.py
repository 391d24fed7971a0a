"""Const declarations end to end: a tensor shared by all examples, given in ``params`` like a
Param, initialized like one, never trained (SPEC.md §5).

The network pools its Input with a fixed matrix and divides by a fixed temperature; every
check runs on both backends: the forward values against the hand computation, the
gradients (for the Params only) against finite differences, the Consts untouched by every
update, the C module against the NumPy one to 1e-12, the checks of ``params``, checkpoints,
and the Consts set by the user to other values.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BATCH, assert_grads_match, finite_differences

import symbp
from symbp import cli
from symbp.check.gradients import compare_backends
from symbp.explain.equations import backward_equations
from symbp.explain.graphviz import to_dot
from symbp.passes.pipeline import optimize

SPEC = """\
x: Input[8]
y: Input[4]
N: Const[4] = normal(1.0)   # drawn from the generator, after the Params
P: Const[4, 8] = 0.125      # a fixed pooling matrix
W: Param[4, 4] = glorot
b: Param[4] = zeros
tau: Const = 2.0            # a temperature
h = P @ x
z = tanh(W @ h + b + N) / tau
C: Loss = 0.5 * sum((z - y) ** 2)
p: Output = z
"""
# the same Params without the Consts: they must draw the same initial values
WITHOUT = """\
x: Input[4]
W: Param[4, 4] = glorot
b: Param[4] = zeros
C: Loss = sum(tanh(W @ x + b))
"""
BACKENDS = ("numpy", "c")


@pytest.fixture(scope="module")
def graph():
    return symbp.parse_text(SPEC, filename="pool.sbp")


@pytest.fixture(scope="module", params=BACKENDS)
def module(request, graph):
    return symbp.compile(graph, backend=request.param)


def data(seed: int = 1, batch: int = BATCH) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(batch, 8)), "y": rng.normal(size=(batch, 4))}


def by_hand(params: dict, inputs: dict) -> tuple[np.ndarray, np.ndarray]:
    """(z, C) per example, in plain NumPy."""
    h = inputs["x"] @ params["P"].T
    z = np.tanh(h @ params["W"].T + params["b"] + params["N"]) / params["tau"]
    return z, 0.5 * np.sum((z - inputs["y"]) ** 2, axis=1)


def random_consts(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"N": rng.normal(size=4), "P": rng.normal(size=(4, 8)), "tau": np.float64(0.7)}


def test_the_module_lists_consts_apart(module):
    assert dict(module.PARAMS) == {"W": (4, 4), "b": (4,)}
    assert dict(module.CONSTS) == {"N": (4,), "P": (4, 8), "tau": ()}
    params = module.init_params(3)
    assert list(params) == ["W", "b", "N", "P", "tau"]  # the Params, then the Consts
    assert np.array_equal(params["P"], np.full((4, 8), 0.125))
    assert params["tau"].shape == () and params["tau"] == 2.0
    assert all(v.dtype == np.float64 for v in params.values())
    # the Params draw what they draw in a network without Consts; the Consts come after
    plain = symbp.compile(symbp.parse_text(WITHOUT)).init_params(3)
    assert np.array_equal(params["W"], plain["W"]) and np.array_equal(params["b"], plain["b"])
    rng = np.random.default_rng(3)
    rng.uniform(size=(4, 4))  # what glorot drew
    assert np.array_equal(params["N"], rng.normal(0.0, 1.0, 4))


def test_forward_and_loss_are_the_hand_computation(module):
    params, inputs = module.init_params(0), data()
    out = module.forward(params, **inputs)
    z, per_example = by_hand(params, inputs)
    np.testing.assert_allclose(out["p"], z, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(out["C"], per_example, rtol=1e-13)
    assert module.loss(params, **inputs) == pytest.approx(np.mean(per_example), rel=1e-13)


def test_consts_set_by_the_user_change_the_result(module):
    """A Const is read at run time, never folded into the code as its initial value."""
    inputs = data()
    params = {**module.init_params(0), **random_consts(5)}
    z, per_example = by_hand(params, inputs)
    np.testing.assert_allclose(module.forward(params, **inputs)["p"], z, rtol=1e-13)
    assert module.loss(params, **inputs) == pytest.approx(np.mean(per_example), rel=1e-13)
    before = module.loss(module.init_params(0), **inputs)
    assert abs(module.loss(params, **inputs) - before) > 1e-3


def test_gradients_only_for_params_and_equal_to_finite_differences(module):
    inputs = data()
    params = {**module.init_params(0), **random_consts(6)}
    value, grads = module.loss_and_grads(params, **inputs)
    assert list(grads) == ["W", "b"]
    expected = finite_differences(lambda p: module.loss(p, **inputs), params, wrt=module.PARAMS)
    assert_grads_match(grads, expected, value)
    # and the closed form: dz = (z - y), back through / tau and tanh
    z, _ = by_hand(params, inputs)
    delta = (z - inputs["y"]) * (1 - (z * params["tau"]) ** 2) / params["tau"]
    np.testing.assert_allclose(grads["b"], np.mean(delta, axis=0), rtol=1e-12)


def test_check_grads_passes(graph):
    for backend in BACKENDS:
        report = symbp.check_grads(graph, backend=backend)
        assert report.ok, report.table()
        assert [p.name for p in report.params] == ["W", "b"]


def test_c_agrees_with_numpy_to_1e12(graph):
    assert compare_backends(graph).ok
    numpy_module, c_module = (symbp.compile(graph, backend=b) for b in BACKENDS)
    inputs = data(2, batch=7)
    params = {**numpy_module.init_params(1), **random_consts(2)}
    for name, value in numpy_module.forward(params, **inputs).items():
        got = c_module.forward(params, **inputs)[name]
        np.testing.assert_allclose(got, value, rtol=1e-12, atol=1e-14)
    loss_n, grads_n = numpy_module.loss_and_grads(params, **inputs)
    loss_c, grads_c = c_module.loss_and_grads(params, **inputs)
    assert loss_c == pytest.approx(loss_n, rel=1e-12)
    for name, g in grads_n.items():
        np.testing.assert_allclose(grads_c[name], g, rtol=1e-12, atol=1e-14)
    stepped = [{k: v.copy() for k, v in params.items()} for _ in BACKENDS]
    for m, p in zip((numpy_module, c_module), stepped):
        for _ in range(3):
            m.train_step(p, 0.1, **inputs)
    for name in params:
        np.testing.assert_allclose(stepped[1][name], stepped[0][name], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_updates_leave_consts_unchanged(module, optimizer):
    inputs = data(batch=9)
    params = {**module.init_params(0), **random_consts(7)}
    params["P"].flags.writeable = False  # only read: a read-only array will do
    saved = {k: v.copy() for k, v in params.items()}
    consts = {k: params[k] for k in module.CONSTS}  # the very arrays
    for _ in range(3):
        module.train_step(params, 0.05, **inputs)
    state = module.init_state(optimizer)
    assert not any(name in key for key in state for name in module.CONSTS)
    total, steps = module.train_epoch(
        params, state, {"optimizer": optimizer}, np.arange(9), 2, **inputs
    )
    assert steps == 5 and np.isfinite(total)
    for name in module.CONSTS:
        assert params[name] is consts[name]
        assert params[name].tobytes() == saved[name].tobytes(), name
    assert not np.array_equal(params["W"], saved["W"])  # the Params did move


def test_train_step_reads_a_const_changed_in_place(module):
    """The C wrapper keeps the packed pointers of the last step's arrays: a Const changed in
    place is read as it is now, and a Const replaced by another array is seen too."""
    inputs = data()
    params = module.init_params(0)
    reference = symbp.compile(symbp.parse_text(SPEC, filename="pool.sbp"))
    for change in ("in place", "replaced", "float32"):
        module.train_step(params, 0.1, **inputs)  # the arrays are this thread's fast path now
        if change == "in place":
            params["P"][...] = 0.5
        elif change == "replaced":
            params["tau"] = np.array(3.0)
        else:
            params["N"] = params["N"].astype(np.float32)  # read, so converted
        want = reference.loss(params, **inputs)
        copy = {k: v.copy() for k, v in params.items()}
        assert module.train_step(params, 0.1, **inputs) == pytest.approx(want, rel=1e-13)
        grads = reference.loss_and_grads(copy, **inputs)[1]
        np.testing.assert_allclose(params["W"], copy["W"] - 0.1 * grads["W"], rtol=1e-12)


def test_float32(graph):
    for backend in BACKENDS:
        module = symbp.compile(graph, backend=backend, dtype="float32")
        params = {k: v.astype(np.float32) for k, v in module.init_params(0).items()}
        assert params["P"].dtype == np.float32
        inputs = data()
        z, per_example = by_hand({k: v.astype(np.float64) for k, v in params.items()}, inputs)
        out = module.forward(params, **inputs)
        assert out["p"].dtype == np.float32
        np.testing.assert_allclose(out["p"], z, rtol=1e-5, atol=1e-6)
        before = params["P"].copy()
        module.train_step(params, 0.1, **inputs)
        assert np.array_equal(params["P"], before)


# ---------------------------------------------------------------------- bad params


def test_a_missing_or_misshapen_const_is_a_value_error_naming_it(module):
    inputs = data()
    params = module.init_params(0)
    for call in (
        lambda p: module.forward(p, **inputs),
        lambda p: module.loss_and_grads(p, **inputs),
        lambda p: module.train_step(p, 0.1, **inputs),
    ):
        missing = {k: v for k, v in params.items() if k != "tau"}
        with pytest.raises(ValueError, match="params: missing the Const 'tau'"):
            call(missing)
        with pytest.raises(
            ValueError, match=r"params\['P'\]: expected shape \(4, 8\), got \(8, 4\)"
        ):
            call({**params, "P": params["P"].T.copy()})
        with pytest.raises(ValueError, match=r"params\['N'\]: expected real numbers"):
            call({**params, "N": np.array(["a", "b", "c", "d"])})
        with pytest.raises(
            ValueError, match=r"unexpected 'Q'; expected \['W', 'b', 'N', 'P', 'tau'\]"
        ):
            call({**params, "Q": params["P"]})


def test_a_const_sharing_memory_with_a_param_is_refused_by_updates(module):
    """train_step updates the Params in place: a Const that is a view of one would change."""
    inputs = data()
    params = module.init_params(0)
    params["N"] = params["W"][0]  # a view of W's first row
    module.forward(params, **inputs)  # reading is fine
    with pytest.raises(ValueError, match=r"params\['N'\]: shares memory with params\['W'\]"):
        module.train_step(params, 0.1, **inputs)
    with pytest.raises(ValueError, match=r"params\['N'\]: shares memory with params\['W'\]"):
        module.train_epoch(params, {}, {"optimizer": "sgd"}, np.arange(BATCH), 2, **inputs)
    # two Consts sharing memory are only read: allowed
    params = module.init_params(0)
    params["N"] = params["P"][:, 0]
    assert np.isfinite(module.train_step(params, 0.1, **inputs))


# ----------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_keeps_the_consts(module, tmp_path):
    inputs = data(batch=12)
    params = {**module.init_params(0), **random_consts(9)}
    trainer = symbp.Trainer(module, params=params, optimizer="adam", lr=0.01, batch_size=4)
    trainer.fit(inputs, epochs=1)
    path = tmp_path / "ck.npz"
    trainer.save(path)
    with np.load(path) as f:
        meta = json.loads(bytes(f["meta"]).decode())
        assert sorted(k for k in f.files if k.startswith("const/")) == [
            "const/N",
            "const/P",
            "const/tau",
        ]
    assert meta["params"] == {"W": [4, 4], "b": [4]}
    assert meta["consts"] == {"N": [4], "P": [4, 8], "tau": []}
    resumed = symbp.Trainer.load(path, module)
    for name in params:
        assert np.array_equal(resumed.params[name], trainer.params[name]), name
    for name, value in random_consts(9).items():
        assert np.array_equal(resumed.params[name], value), name
    # the resumed run is the uninterrupted one
    trainer.fit(inputs, epochs=1)
    resumed.fit(inputs, epochs=1)
    for name in params:
        assert np.array_equal(resumed.params[name], trainer.params[name]), name


def _rewrite(path, out, drop=(), replace=None, meta_consts=None):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k not in drop}
    if replace:
        arrays.update(replace)
    if meta_consts is not None:
        meta = json.loads(bytes(arrays["meta"]).decode())
        meta["consts"] = meta_consts
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(out, **arrays)
    return out


def test_a_checkpoint_with_a_bad_const_is_refused(module, tmp_path):
    trainer = symbp.Trainer(module, batch_size=4)
    path = tmp_path / "ck.npz"
    trainer.save(path)
    shapes = {"N": [4], "P": [4, 8], "tau": []}
    cases = [
        ({"drop": ["const/P"]}, "it holds no value of the Const 'P'"),
        ({"meta_consts": {"N": [4], "tau": []}, "drop": ["const/P"]}, "no value of the Const 'P'"),
        (
            {"replace": {"const/P": np.zeros((8, 4))}, "meta_consts": {**shapes, "P": [8, 4]}},
            r"its Const 'P' has shape \(8, 4\), not this network's \(4, 8\)",
        ),
        ({"replace": {"const/Q": np.zeros(2)}, "meta_consts": {**shapes, "Q": [2]}}, "'Q'"),
    ]
    for i, (change, message) in enumerate(cases):
        bad = _rewrite(path, tmp_path / f"bad{i}.npz", **change)
        with pytest.raises(ValueError, match=message):
            symbp.Trainer.load(bad, module)


# ------------------------------------------------------ the builder and the explainers


def test_the_python_builder_makes_the_same_network(graph):
    x, y = symbp.input("x", 8), symbp.input("y", 4)
    N = symbp.const("N", 4, init=("normal", 1.0))
    P = symbp.const("P", 4, 8, init=0.125)
    W = symbp.param("W", 4, 4, init="glorot")
    b = symbp.param("b", 4)
    tau = symbp.const("tau", init=2.0)
    z = symbp.tanh(W @ (P @ x) + b + N) / tau
    built = symbp.network(loss=0.5 * symbp.sum((z - y) ** 2), outputs={"p": z})
    assert list(built.consts) == ["N", "P", "tau"] and list(built.params) == ["W", "b"]
    assert [d.init for d in built.consts.values()] == [d.init for d in graph.consts.values()]
    assert built.consts["P"].node is graph.consts["P"].node
    assert built.loss is graph.loss
    with pytest.raises(ValueError, match="init"):
        symbp.const("Q", 2, init="xavier")
    with pytest.raises(ValueError, match="two different leaves are named 'W'"):
        symbp.network(loss=symbp.sum(symbp.param("W", 2) * symbp.const("W", 2, init=1.0)))


def test_symbp_grad_and_graph_show_the_consts(graph):
    program = optimize(graph)
    text = backward_equations(program)
    assert "# the Consts N, P, tau are not trained: they have no gradient" in text
    assert "dP" not in text and "dtau" not in text and "dN" not in text
    assert "dW = " in text and "/tau" in text.replace(" ", "")
    dot = to_dot(program, grad=True)
    assert "P\\nConst (4, 8)" in dot and "tau\\nConst scalar" in dot
    assert "W\\nParam (4, 4)" in dot
    assert dot.count('style="filled,dashed"') == 3  # the three Consts, drawn apart


def test_the_generated_module_reads_well(graph):
    source = symbp.generate(graph)
    assert "CONSTS = {\n    'N': (4,),\n    'P': (4, 8),\n    'tau': (),\n}" in source
    assert "    N, P, tau = _consts(params)\n" in source
    assert "    # line 8: h = P @ x\n    h = x @ P.T\n" in source
    c_source = symbp.generate(graph, backend="c")
    assert (
        "double symbp_pool_train_step(double *W, double *b, const double *N, const double *P, "
        "const double *tau, const double *x, const double *y, long _n, double _lr, double *_ws)"
    ) in c_source


def test_a_const_is_never_folded_even_at_zero():
    """x * 0 = 0 is a rewrite for the number 0, not for a Const that starts at zero."""
    text = "x: Input[3]\nw: Param[3] = ones\nc: Const = 0\nC: Loss = sum(w * x) * c\n"
    for backend in BACKENDS:
        module = symbp.compile(symbp.parse_text(text), backend=backend)
        inputs = {"x": np.ones((2, 3))}
        assert module.loss(module.init_params(0), **inputs) == 0.0
        value, grads = module.loss_and_grads({"w": np.ones(3), "c": np.array(2.0)}, **inputs)
        assert value == 6.0
        np.testing.assert_array_equal(grads["w"], [2.0, 2.0, 2.0])


def test_hessian_vector_products_with_consts():
    """hvp sees the Consts as constants: H v of sum(P @ w ** 3) is 6 P^T-weighted w v."""
    text = "P: Const[2, 3] = 0.5\nw: Param[3] = ones\nC: Loss = sum(P @ (w * w * w))\n"
    apply = symbp.hvp(symbp.parse_text(text))
    P = np.arange(6.0).reshape(2, 3)
    w, v = np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, -1.0])
    got = apply({"P": P, "w": w}, {"w": v})
    np.testing.assert_allclose(got["w"], 6 * P.sum(axis=0) * w * v, rtol=1e-12)


# ----------------------------------------------------------------- the command line


def test_the_command_line(tmp_path, capsys):
    spec = tmp_path / "pool.sbp"
    spec.write_text(SPEC)
    assert cli.main(["check", str(spec), "--backend", "all"]) == 0
    out = capsys.readouterr().out
    assert "all gradients agree" in out and "backends agree" in out
    rows = [
        line.split()[0]
        for line in out.splitlines()
        if line[:1] in "Wbt" and line.split()[1:2] and line.split()[1].startswith("(")
    ]
    assert set(rows) == {"W", "b"}  # no row for a Const
    assert cli.main(["grad", str(spec)]) == 0
    assert "the Consts N, P, tau are not trained" in capsys.readouterr().out
    inputs = data(batch=40)
    initial = symbp.compile(symbp.parse_text(SPEC)).init_params(0)
    np.savez(tmp_path / "d.npz", **inputs)
    for backend in BACKENDS:
        first, second = tmp_path / f"a_{backend}.npz", tmp_path / f"b_{backend}.npz"
        common = ["train", str(spec), "--data", str(tmp_path / "d.npz"), "--backend", backend]
        assert cli.main([*common, "--epochs", "2", "--save", str(first)]) == 0
        assert (
            cli.main([*common, "--epochs", "3", "--resume", str(first), "--save", str(second)]) == 0
        )
        with np.load(second) as f:
            assert np.array_equal(f["const/P"], np.full((4, 8), 0.125))
            assert float(f["const/tau"]) == 2.0
            assert np.array_equal(f["const/N"], initial["N"])
    capsys.readouterr()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gradient_that_is_a_const_is_a_fresh_array(backend):
    """dW of sum(W * P) is P itself: returned as a copy, and the step reads it unchanged."""
    text = "x: Input[3]\nW: Param[2, 3] = zeros\nP: Const[2, 3] = 0.5\nC: Loss = sum(W * P)\n"
    graph = symbp.parse_text(text)
    assert "dW = P" in backward_equations(optimize(graph))
    module = symbp.compile(graph, backend=backend)
    params, inputs = module.init_params(0), {"x": np.ones((2, 3))}
    params["P"] = np.arange(6.0).reshape(2, 3)
    _, grads = module.loss_and_grads(params, **inputs)
    assert not np.shares_memory(grads["W"], params["P"])
    np.testing.assert_array_equal(grads["W"], params["P"])
    module.train_step(params, 0.5, **inputs)
    np.testing.assert_array_equal(params["W"], -0.5 * np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(params["P"], np.arange(6.0).reshape(2, 3))
