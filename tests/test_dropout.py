"""dropout(h, p): the counter-based generator, the masks both backends draw, the gradients
under a fixed key, evaluation without randomness, and training runs that resume exactly.

The generator's reference is ``symbp.ir.randomness`` (Python integers and a NumPy version);
each backend's mask is read back exactly through the gradient of ``sum(dropout(w, p))``
with respect to a Param ``w``, which is the mask times 1 / (1 - p).
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_grads_match, finite_differences, random_inputs, random_params
from hypothesis import given, settings
from hypothesis import strategies as st

import symbp
from symbp.ir import interpret, randomness

BACKENDS = ("numpy", "c")
REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits"

NET = """\
x: Input[4]
y: Input[3]
W1: Param[6, 4] = glorot
b1: Param[6] = zeros
W2: Param[3, 6] = glorot
h = tanh(W1 @ x + b1)
d = dropout(h, 0.5)
z = W2 @ d
C: Loss = 0.5 * sum((z - y) ** 2)
p: Output = z
"""


def compiled(text: str, backend: str = "numpy", dtype: str = "float64"):
    return symbp.compile(symbp.parse_text(text), backend=backend, dtype=dtype)


def setup(text: str, backend: str = "numpy", dtype: str = "float64", seed: int = 0):
    module = compiled(text, backend, dtype)
    rng = np.random.default_rng(seed)
    params = {k: v.astype(dtype) for k, v in random_params(module, rng).items()}
    inputs = {k: v.astype(dtype) for k, v in random_inputs(module, rng).items()}
    return module, params, inputs


def mask_spec(size: int, p: float) -> str:
    """A network whose gradient is the mask of site 0 scaled: d/dw sum(dropout(w, p))."""
    return f"w: Param[{size}] = zeros\nC: Loss = sum(dropout(w, {p}))\n"


# ------------------------------------------------------------------------ the generator


def test_vectorized_generator_is_the_scalar_one():
    key, site, p = 2**64 - 3, 7, 0.3
    mask = randomness.keep_mask(key, site, p, (4, 25))
    s = randomness.stream(key, site)
    want = [
        randomness.mix(s + randomness.GOLDEN * (i + 1)) >> 11 >= randomness.threshold(p)
        for i in range(100)
    ]
    assert mask.ravel().tolist() == want


def test_splitmix64_reference_values():
    """The finalizer is splitmix64's: its first outputs from seed 0 (published values)."""
    outputs = [randomness.mix(randomness.GOLDEN * k) for k in (1, 2, 3)]
    assert outputs == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@pytest.mark.parametrize("p", [0.0, 2**-53, 0.5, 0.9, 1 - 2**-53])
def test_threshold_is_exact(p):
    """keep iff u >= p for u = k / 2**53: k = threshold is kept, k = threshold - 1 is not."""
    t = randomness.threshold(p)
    assert t / 2**53 >= p
    assert t == 0 or (t - 1) / 2**53 < p


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.75])
def test_each_backend_draws_the_reference_mask(backend, dtype, p):
    size = 3000
    module = compiled(mask_spec(size, p), backend, dtype)
    assert module.RANDOM is True
    w = np.zeros(size, dtype=dtype)
    for key in (0, 12345, 2**64 - 1):
        _, grads = module.loss_and_grads({"w": w}, key)
        want = randomness.keep_mask(key, 0, p, (size,))
        scale = np.dtype(dtype).type(randomness.scale(p))
        assert np.array_equal(grads["w"], np.where(want, scale, 0).astype(dtype))


ROWS = """\
x: Input[{k}]
w: Param[{k}] = ones
v: Param[{k}] = ones
u: Param[{k}] = ones
C: Loss = sum(dropout(w * x, 0.5) * v) + sum(dropout(u * x, 0.3))
"""


@pytest.mark.parametrize("size", [1, 3, 5, 6, 7, 9, 17])
def test_c_draws_the_reference_mask_of_every_example(size):
    """Per-example masks of several row sizes and batch sizes, through adjoints that are one
    row (v) and one value (1) for the whole batch: the gradients are the masks' means."""
    module = compiled(ROWS.format(k=size), "c")
    params = module.init_params()
    for n in range(1, 10):
        _, grads = module.loss_and_grads(params, n, x=np.ones((n, size)))
        for name, site, p in (("w", 0, 0.5), ("u", 1, 0.3)):
            want = randomness.keep_mask(n, site, p, (n, size)).mean(axis=0) * randomness.scale(p)
            np.testing.assert_allclose(grads[name], want, rtol=1e-15, atol=0, err_msg=name)


@settings(max_examples=30, deadline=None)
@given(key=st.integers(0, 2**64 - 1), p=st.floats(0.01, 0.99))
def test_mask_statistics_and_expectation(key, p):
    """The kept fraction is 1 - p within 5 standard deviations, and the mean of
    dropout(ones) is 1 within the same bound: E[dropout(h)] = h."""
    n = 20000
    keep = randomness.keep_mask(key, 3, p, (n,))
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(keep.mean() - (1 - p)) < 5 * sigma
    values = np.where(keep, randomness.scale(p), 0.0)
    assert abs(values.mean() - 1) < 5 * sigma / (1 - p)
    assert set(np.unique(values)) <= {0.0, randomness.scale(p)}


def test_keys_sites_and_rows_draw_different_masks():
    masks = {
        (key, site): randomness.keep_mask(key, site, 0.5, (8, 64)).tobytes()
        for key in (0, 1, 2, 2**63)
        for site in (0, 1, 2)
    }
    assert len(set(masks.values())) == len(masks)
    rows = randomness.keep_mask(9, 0, 0.5, (8, 64))
    assert len({r.tobytes() for r in rows}) == 8  # every example its own mask


def test_step_keys_are_consecutive_and_seeded():
    assert randomness.step_key(3, 10) == (randomness.step_key(3, 0) + 10) % 2**64
    assert randomness.step_key(3, 0) != randomness.step_key(4, 0)
    assert symbp.step_key is randomness.step_key


# --------------------------------------------------------------- the network's functions


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backends_agree_with_dropout_on(dtype):
    numpy_module, params, inputs = setup(NET, "numpy", dtype)
    c_module = compiled(NET, "c", dtype)
    for key in (0, 99, 2**64 - 1):
        loss_n, grads_n = numpy_module.loss_and_grads(params, key, **inputs)
        loss_c, grads_c = c_module.loss_and_grads(params, key, **inputs)
        rtol = 1e-12 if dtype == "float64" else 1e-5
        assert loss_c == pytest.approx(loss_n, rel=rtol)
        for name, g in grads_n.items():
            np.testing.assert_allclose(grads_c[name], g, rtol=rtol, atol=rtol * np.abs(g).max())
        # the same mask: an element one backend drops, the other drops too
        dropped_n = {k: g == 0 for k, g in grads_n.items()}
        assert all(np.array_equal(grads_c[k] == 0, z) for k, z in dropped_n.items())


def test_interpreter_agrees_with_the_generated_module():
    module, params, inputs = setup(NET)
    graph = symbp.parse_text(NET)
    n = len(inputs["x"])
    for key in (5, 6):
        (loss,) = interpret.evaluate([graph.loss], {**params, **inputs}, n, key=key)
        assert module.loss_and_grads(params, key, **inputs)[0] == pytest.approx(
            float(np.mean(loss)), rel=1e-14
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences_under_a_fixed_key(backend):
    module, params, inputs = setup(NET, backend)
    key = 2024
    value, grads = module.loss_and_grads(params, key, **inputs)
    expected = finite_differences(lambda p: module.loss_and_grads(p, key, **inputs)[0], params)
    assert_grads_match(grads, expected, value)
    assert value != module.loss(params, **inputs)  # the masks matter
    assert symbp.check_grads(symbp.parse_text(NET), backend=backend).ok


SHARED = """\
x: Input[3]
w: Param[3] = zeros
v: Param[3] = zeros
C: Loss = sum(dropout(w, 0.4) * x) + sum(dropout(v * x, 0.3) * dropout(v * x, 0.6))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_value_shared_by_the_batch_and_two_sites_of_one_value(backend):
    """dropout of a Param draws one mask for the whole batch; two dropouts of one value
    draw two masks (they are never merged into one)."""
    module, params, inputs = setup(SHARED, backend)
    value, grads = module.loss_and_grads(params, 7, **inputs)
    expected = finite_differences(lambda p: module.loss_and_grads(p, 7, **inputs)[0], params)
    assert_grads_match(grads, expected, value)
    keep = randomness.keep_mask(7, 0, 0.4, (3,))
    want = np.where(keep, randomness.scale(0.4), 0) * inputs["x"].mean(axis=0)
    np.testing.assert_allclose(grads["w"], want, rtol=1e-14)
    other = compiled(SHARED, "numpy" if backend == "c" else "c")
    assert other.loss_and_grads(params, 7, **inputs)[0] == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_and_loss_evaluate_without_randomness(backend):
    """forward and loss are the network with every dropout the identity, bit for bit."""
    module, params, inputs = setup(NET, backend)
    plain = compiled(NET.replace("dropout(h, 0.5)", "h"), backend)
    assert not getattr(plain, "RANDOM", False)
    out, want = module.forward(params, **inputs), plain.forward(params, **inputs)
    assert all(np.array_equal(out[k], want[k]) for k in want)
    assert module.loss(params, **inputs) == plain.loss(params, **inputs)
    assert module.loss(params, **inputs) == module.loss(params, **inputs)
    a = module.loss_and_grads(params, 1, **inputs)[0]
    b = module.loss_and_grads(params, 2, **inputs)[0]
    assert a != b and a == module.loss_and_grads(params, 1, **inputs)[0]


def test_generated_evaluation_has_no_dropout():
    source = symbp.generate(symbp.parse_text(NET))
    forward = source[source.index("def forward(") : source.index("def loss_and_grads(")]
    assert "_dropout" not in forward
    assert "def loss_and_grads(params, key, /, **inputs)" in source
    assert "def train_step(params, lr, key, /, **inputs)" in source
    assert "d = _dropout(h, key, 0, 0.5, (n, 6))" in source
    assert "dh = _dropout(dd, key, 0, 0.5, (n, 6))" in source
    c = symbp.generate(symbp.parse_text(NET), backend="c")
    forward_pass = c[c.index("static void forward_pass(") :]
    forward_pass = forward_pass[: forward_pass.index("\n}\n")]
    assert "symbp_keep_" not in forward_pass and "_key" not in forward_pass
    assert "uint64_t _key" in c


def test_p_zero_is_the_identity_and_no_key_is_taken():
    zero = NET.replace("dropout(h, 0.5)", "dropout(h, 0)")
    module, params, inputs = setup(zero)
    assert not hasattr(module, "RANDOM")
    assert "_key(" not in symbp.generate(symbp.parse_text(zero))
    plain = compiled(NET.replace("dropout(h, 0.5)", "h"))
    value, grads = module.loss_and_grads(params, **inputs)
    want, want_grads = plain.loss_and_grads(params, **inputs)
    assert value == want
    assert all(np.array_equal(grads[k], want_grads[k]) for k in grads)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", [-1, 2**64, 1.0, True, "1", None, np.array([1])])
def test_a_bad_key_is_refused_by_name(backend, key):
    module, params, inputs = setup(NET, backend)
    with pytest.raises(ValueError, match="key"):
        module.loss_and_grads(params, key, **inputs)
    with pytest.raises(ValueError, match="key"):
        module.train_step(params, 0.1, key, **inputs)
    state = module.init_state("sgd")
    with pytest.raises(ValueError, match="key"):
        module.train_epoch(params, state, {}, np.arange(5), 2, key, **inputs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_integer_keys_are_keys(backend):
    module, params, inputs = setup(NET, backend)
    want = module.loss_and_grads(params, 17, **inputs)[0]
    assert module.loss_and_grads(params, np.uint64(17), **inputs)[0] == want
    assert module.loss_and_grads(params, np.int32(17), **inputs)[0] == want


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_train_epoch_is_train_steps_with_consecutive_keys(backend, optimizer):
    """Step j of train_epoch(..., key) draws with key + j: the epoch is a loop of steps."""
    module, params, inputs = setup(NET, backend)
    order = np.array([3, 1, 4, 0, 2], dtype=np.int64)
    key = 2**64 - 2  # wraps around within the epoch
    epoch = {k: v.copy() for k, v in params.items()}
    state = module.init_state(optimizer)
    total, steps = module.train_epoch(
        epoch, state, {"optimizer": optimizer, "lr": 0.05}, order, 2, key, **inputs
    )
    assert steps == 3
    stepped = {k: v.copy() for k, v in params.items()}
    state2 = module.init_state(optimizer)
    want = 0.0
    for j, start in enumerate(range(0, 5, 2)):
        batch = {k: v[order[start : start + 2]] for k, v in inputs.items()}
        step_key = (key + j) % 2**64
        if optimizer == "sgd":
            want += module.train_step(stepped, 0.05, step_key, **batch) * len(batch["x"])
        else:
            part, _ = module.train_epoch(
                stepped,
                state2,
                {"optimizer": optimizer, "lr": 0.05},
                order[start : start + 2],
                2,
                step_key,
                **inputs,
            )
            want += part
    assert total == pytest.approx(want, rel=1e-12)
    for k in params:
        np.testing.assert_allclose(epoch[k], stepped[k], rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- training


def net_data(rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(rows, 4)), "y": rng.normal(size=(rows, 3))}


@pytest.mark.parametrize("backend", BACKENDS)
def test_resumed_training_draws_what_the_uninterrupted_run_draws(backend, tmp_path):
    """Stopped in the middle of epoch 2, saved, loaded and finished: the run that never
    stopped, bit for bit; another seed draws other masks."""
    module = compiled(NET, backend)
    data = net_data(30, seed=5)
    settings = {"optimizer": "adam", "lr": 0.02, "batch_size": 4, "seed": 8}
    straight = symbp.Trainer(module, **settings)
    straight.fit(data, epochs=3)
    assert straight.steps == 3 * 8

    trainer = symbp.Trainer(module, **settings)

    def progress(step, steps, loss):
        if trainer.epoch == 1 and step >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.fit(data, epochs=3, progress=progress, chunks=8)
    trainer.save(tmp_path / "ckpt.npz")
    resumed = symbp.Trainer.load(tmp_path / "ckpt.npz", module)
    assert resumed.steps == trainer.steps == 8 + 3
    resumed.fit(data, epochs=3 - resumed.epoch)
    for k, v in straight.params.items():
        assert np.array_equal(resumed.params[k], v), k
    assert [h.loss for h in resumed.history] == [h.loss for h in straight.history]

    other = symbp.Trainer(module, **{**settings, "seed": 9})
    other.params = module.init_params(8)  # the same start, other masks and order
    other.fit(data, epochs=1)
    assert not np.array_equal(other.params["W1"], straight.params["W1"])


def test_both_backends_train_the_same_run():
    data = net_data(30, seed=2)
    runs = []
    for backend in BACKENDS:
        trainer = symbp.Trainer(compiled(NET, backend), optimizer="sgd", lr=0.1, batch_size=5)
        trainer.fit(data, epochs=2)
        runs.append(trainer.params)
    for k, v in runs[0].items():
        np.testing.assert_allclose(runs[1][k], v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_digits_with_dropout_learn(backend, tmp_path, capsys):
    """The digits example with a dropped-out hidden layer trains from the command line."""
    pytest.importorskip("sklearn")
    from symbp.cli import main

    made = subprocess.run(
        [sys.executable, DIGITS / "make_data.py", tmp_path / "digits.npz"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    spec = DIGITS / "digits_dropout.sbp"
    args = ["train", str(spec), "--data", str(tmp_path / "digits.npz"), "--backend", backend]
    args += ["--epochs", "15", "--lr", "0.003", "--save", str(tmp_path / "ck.npz")]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    accuracy = float(re.search(r"val accuracy ([\d.]+)%\ncheckpoint", out).group(1))
    assert accuracy >= 95.0, out


# ---------------------------------------------------------------------- the language


def test_symbp_grad_shows_the_mask_shared_with_the_forward_value():
    from symbp.explain.equations import backward_equations
    from symbp.passes.pipeline import optimize

    text = backward_equations(optimize(symbp.parse_text(NET)))
    assert re.search(r"dh = dropout\(dd, 0\.5, site=0\) +# line 7: d = dropout\(h, 0\.5\)", text)


def test_sites_number_the_calls_in_spec_order():
    graph = symbp.parse_text(
        "x: Input[2]\nw: Param[2] = ones\na = dropout(w * x, 0.1)\n"
        "b = dropout(w * x, 0.1)\nC: Loss = sum(a * b) + sum(dropout(a, 0.2))\n"
    )
    from symbp.ir.node import Op, toposort

    sites = sorted(n.attr.site for n in toposort([graph.loss]) if n.op is Op.DROPOUT)
    assert sites == [0, 1, 2]


def test_builder_dropout():
    x = symbp.input("x", 3)
    w = symbp.param("w", 3, init="ones")
    net = symbp.network(symbp.sum(symbp.dropout(w * x, 0.5, site=0)), name="built")
    module = symbp.compile(net)
    assert module.RANDOM
    inputs = {"x": np.ones((4, 3))}
    _, grads = module.loss_and_grads(module.init_params(), 11, **inputs)
    mask = randomness.keep_mask(11, 0, 0.5, (4, 3))
    np.testing.assert_allclose(grads["w"], 2.0 * mask.mean(axis=0), rtol=1e-14)
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\)"):
        symbp.dropout(x, 1.0)


def test_hvp_under_the_masks_of_a_key():
    """The Hessian-vector product of the training loss with its masks fixed by a key."""
    module, params, inputs = setup(NET)
    hvp = symbp.hvp(symbp.parse_text(NET))
    rng = np.random.default_rng(4)
    vectors = {k: rng.normal(size=s) for k, s in module.PARAMS.items()}
    got = hvp(params, vectors, 31, **inputs)
    h = 1e-5

    def grads(t):
        moved = {k: params[k] + t * vectors[k] for k in params}
        return module.loss_and_grads(moved, 31, **inputs)[1]

    plus, minus = grads(h), grads(-h)
    for name in params:
        want = (plus[name] - minus[name]) / (2 * h)
        np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-7 * np.abs(want).max())


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_trainer_keys_step_s_by_step_key(backend):
    """An epoch of the Trainer is train_epoch over its permutation from step_key(seed, 0)."""
    module = compiled(NET, backend)
    data = net_data(12, seed=3)
    trainer = symbp.Trainer(module, optimizer="momentum", lr=0.05, batch_size=5, seed=21)
    start = {k: v.copy() for k, v in trainer.params.items()}
    trainer.fit(data, epochs=1, chunks=2)
    order = np.random.default_rng(21).permutation(12).astype(np.int64)
    state = module.init_state("momentum")
    hyper = {"optimizer": "momentum", "lr": 0.05}
    module.train_epoch(start, state, hyper, order, 5, symbp.step_key(21, 0), **data)
    assert all(np.array_equal(start[k], trainer.params[k]) for k in start)


def test_cli_check_holds_the_key_fixed(capsys):
    from symbp.cli import main

    assert main(["check", str(DIGITS / "digits_dropout.sbp"), "--backend", "all"]) == 0
    out = capsys.readouterr().out
    assert "all gradients agree" in out and "backends agree" in out
