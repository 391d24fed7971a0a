"""Compiled trainers: the optimizers and train_epoch of generated modules, symbp.Trainer and its
checkpoints, and the ``symbp train`` verb (issue "Compiled trainers").

The optimizer updates are checked against a NumPy reference written here from the textbook
formulas (PyTorch-style momentum, bias-corrected Adam with eps outside the square root), fed
the module's own ``loss_and_grads``. Every case runs on both backends; the C cases skip
themselves until the C wrapper exposes ``train_epoch``. The SIGKILL and Ctrl-C runs of a real
``symbp train`` process are in test_train_kill.py.
"""

from __future__ import annotations

import functools
import io
import re
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import is_long

import symbp
from symbp import cli

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits"
LINREG = REPO / "examples" / "linreg.sbp"
BACKENDS = ["numpy", "c"]
C_PENDING = (
    "the C backend's train_epoch is not wired into its wrapper yet "
    "(templates/_c_train.py.j2 + c_module.c.j2); this case runs once it is"
)

# A hidden tanh layer, a matrix, a vector and a scalar Param, a two-valued target.
NET = """\
x: Input[3]
y: Input[2]
W: Param[4, 3] = normal(0.5)
b: Param[4] = uniform(-0.5, 0.5)
V: Param[2, 4] = glorot
s: Param = 0.7
h = tanh(W @ x + b)
out: Output = s * (V @ h)
C: Loss = 0.5 * sum((out - y) ** 2)
"""

# Softmax regression with a one-hot target: accuracy applies.
CLASSIFIER = """\
x: Input[4]
t: Input[3]
W: Param[3, 4] = normal(0.3)
b: Param[3] = zeros
logits = W @ x + b
C: Loss = cross_entropy(logits, t)
probs: Output = softmax(logits)
"""

# The same classifier with another Output, of another shape, declared before the class
# probabilities: accuracy must still compare probs (shape of t) with t.
TWO_OUTPUTS = """\
x: Input[4]
t: Input[3]
W: Param[3, 4] = normal(0.3)
b: Param[3] = zeros
V: Param[5, 4] = normal(0.3)
hidden: Output = tanh(V @ x)
logits = W @ x + b
C: Loss = cross_entropy(logits, t) + 0.0 * sum(hidden)
probs: Output = softmax(logits)
"""

NO_INPUT = """\
a: Param = 1.5
b: Param = -0.5
f: Loss = (a + b) ** 2
"""

DEFAULTS = {"momentum": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}  # PyTorch's
CUSTOM = {"momentum": 0.8, "beta1": 0.85, "beta2": 0.99, "eps": 1e-3}  # eps large enough
# that sqrt(v) + eps and sqrt(v + eps) differ in the first digits


@functools.cache
def _compiled(source: str, backend: str, dtype: str):
    return symbp.compile(symbp.parse_text(source, "net.sbp"), backend=backend, dtype=dtype)


def compiled(source: str, backend: str = "numpy", dtype: str = "float64"):
    """The module of ``source``; skips a C case until the C wrapper has train_epoch."""
    module = _compiled(source, backend, dtype)
    if not hasattr(module, "train_epoch"):
        pytest.skip(C_PENDING)
    return module


def spy(module, after=None):
    """A stand-in for ``module`` whose train_epoch records each call's order (and calls
    ``after(call number)`` once the real call has returned)."""
    calls = []

    def train_epoch(params, state, hyper, order, batch_size, /, **data):
        result = module.train_epoch(params, state, hyper, order, batch_size, **data)
        calls.append((np.array(order), batch_size, result))
        if after is not None:
            after(len(calls))
        return result

    fake = types.SimpleNamespace(
        **{k: getattr(module, k) for k in dir(module) if not k.startswith("__")}
    )
    fake.train_epoch = train_epoch
    return fake, calls


def copy(arrays: dict) -> dict:
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


def assert_same(got: dict, want: dict) -> None:
    """Bit for bit: same keys, shapes, dtypes and values."""
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        assert np.array_equal(got[k], want[k]), f"{k}: {got[k]} != {want[k]}"


def assert_close(got: dict, want: dict, rtol: float = 1e-12) -> None:
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(
            np.asarray(got[k], dtype=np.float64), want[k], rtol=rtol, atol=0, err_msg=k
        )


def net_data(rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(rows, 3)), "y": rng.normal(size=(rows, 2))}


def classes_data(rows: int, seed: int = 0) -> dict:
    """Four features, three classes decided by a fixed linear rule: learnable to ~100%."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    rule = np.array([[1.0, -2.0, 0.5, 0.0], [-1.0, 0.5, 2.0, 1.0], [0.3, 1.0, -1.0, -2.0]])
    return {"x": x, "t": np.eye(3)[np.argmax(x @ rule.T, axis=1)]}


def linreg_data(rows: int = 300, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 2.0, size=rows)
    return {"x": x, "y": 2.5 * x - 1.0 + rng.normal(0.0, 0.5, size=rows)}


# ------------------------------------------------------------------ the NumPy reference


class Reference:
    """The three optimizers from their formulas, out of place, on ``module``'s gradients."""

    def __init__(self, module, params: dict, optimizer: str, lr: float, **hyper: float):
        self.module, self.optimizer, self.lr = module, optimizer, lr
        self.h = {**DEFAULTS, **hyper}
        self.params = copy(params)
        self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.t = 0

    def step(self, batch: dict) -> float:
        loss, grads = self.module.loss_and_grads(self.params, **batch)
        if not np.isfinite(loss):
            return loss
        self.t += 1
        mu, b1, b2, eps = (self.h[k] for k in ("momentum", "beta1", "beta2", "eps"))
        for k, g in grads.items():
            if self.optimizer == "sgd":
                self.params[k] = self.params[k] - self.lr * g
            elif self.optimizer == "momentum":  # PyTorch: v = mu v + g; p -= lr v
                self.v[k] = mu * self.v[k] + g
                self.params[k] = self.params[k] - self.lr * self.v[k]
            else:  # Adam, bias-corrected, eps outside the square root
                self.m[k] = b1 * self.m[k] + (1 - b1) * g
                self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
                m_hat = self.m[k] / (1 - b1**self.t)
                v_hat = self.v[k] / (1 - b2**self.t)
                self.params[k] = self.params[k] - self.lr * m_hat / (np.sqrt(v_hat) + eps)
        return loss

    def epoch(self, data: dict, order, batch_size: int) -> tuple[float, int]:
        total, steps = 0.0, 0
        for lo in range(0, len(order), batch_size):
            rows = np.asarray(order[lo : lo + batch_size])
            loss = self.step({k: v[rows] for k, v in data.items()})
            if not np.isfinite(loss):
                break
            total += loss * len(rows)
            steps += 1
        return total, steps

    def state(self) -> dict:
        if self.optimizer == "momentum":
            return {f"v.{k}": v for k, v in self.v.items()}
        if self.optimizer == "adam":
            return {
                **{f"m.{k}": m for k, m in self.m.items()},
                **{f"v.{k}": v for k, v in self.v.items()},
                "t": np.float64(self.t),
            }
        return {}


# ------------------------------------------------------------ optimizers in train_epoch


@pytest.mark.parametrize("backend", BACKENDS)
def test_modules_list_the_optimizers_and_their_fresh_state(backend):
    module = compiled(NET, backend)
    assert tuple(module.OPTIMIZERS) == ("sgd", "momentum", "adam")
    assert module.init_state("sgd") == {}
    momentum = module.init_state("momentum")
    assert sorted(momentum) == ["v.V", "v.W", "v.b", "v.s"]
    adam = module.init_state("adam")
    assert sorted(adam) == ["m.V", "m.W", "m.b", "m.s", "t", "v.V", "v.W", "v.b", "v.s"]
    for name, shape in module.PARAMS.items():
        for state, key in ((momentum, f"v.{name}"), (adam, f"m.{name}"), (adam, f"v.{name}")):
            assert state[key].shape == shape and state[key].dtype == np.float64
            assert not state[key].any()
    assert float(adam["t"]) == 0.0
    with pytest.raises(ValueError, match="optimizer.*rmsprop"):
        module.init_state("rmsprop")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("hyper", [DEFAULTS, CUSTOM], ids=["defaults", "custom"])
def test_one_step_matches_the_reference(backend, optimizer, hyper):
    module = compiled(NET, backend)
    data = net_data(6, seed=1)
    params = module.init_params(2)
    ref = Reference(module, params, optimizer, 0.05, **hyper)
    want_loss, _ = ref.epoch(data, np.arange(6), 6)
    state = module.init_state(optimizer)
    settings = {"optimizer": optimizer, "lr": 0.05, **({} if hyper is DEFAULTS else hyper)}
    total, steps = module.train_epoch(params, state, settings, np.arange(6), 6, **data)
    assert steps == 1
    assert total == pytest.approx(6 * module.loss(module.init_params(2), **data), rel=1e-12)
    assert total == pytest.approx(want_loss, rel=1e-12)
    assert_close(params, ref.params)
    assert_close(state, ref.state())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("hyper", [DEFAULTS, CUSTOM], ids=["defaults", "custom"])
def test_several_epochs_match_the_reference(backend, optimizer, hyper):
    """Three calls over 10 shuffled examples in batches of 4 (4, 4, then 2): nine steps, the
    state carried from call to call."""
    module = compiled(NET, backend)
    data = net_data(10, seed=3)
    params = module.init_params(4)
    ref = Reference(module, params, optimizer, 0.03, **hyper)
    state = module.init_state(optimizer)
    settings = {"optimizer": optimizer, "lr": 0.03, **hyper}
    rng = np.random.default_rng(5)
    for _ in range(3):
        order = rng.permutation(10)
        want_total, want_steps = ref.epoch(data, order, 4)
        total, steps = module.train_epoch(params, state, settings, order, 4, **data)
        assert (steps, want_steps) == (3, 3)
        assert total == pytest.approx(want_total, rel=1e-12)
        assert_close(params, ref.params)
        assert_close(state, ref.state())
    assert float(state.get("t", 9)) == 9.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_first_steps_follow_pytorch_conventions(backend):
    """Independent of the reference: momentum's first step is plain SGD (v = g, not
    (1 - mu) g), and Adam's first, bias-corrected step is lr * g / (|g| + eps)."""
    module = compiled(NET, backend)
    data = net_data(5, seed=7)
    start = module.init_params(1)
    _, g = module.loss_and_grads(start, **data)
    moved = {}
    for optimizer in ("sgd", "momentum", "adam"):
        params = copy(start)
        module.train_epoch(
            params,
            module.init_state(optimizer),
            {"optimizer": optimizer, "lr": 0.1, "eps": 1e-3},
            np.arange(5),
            5,
            **data,
        )
        moved[optimizer] = {k: start[k] - params[k] for k in start}
    assert_close(moved["momentum"], moved["sgd"], rtol=1e-12)
    assert_close(moved["sgd"], {k: 0.1 * g[k] for k in g}, rtol=1e-12)
    assert_close(moved["adam"], {k: 0.1 * g[k] / (np.abs(g[k]) + 1e-3) for k in g}, rtol=1e-12)


# ------------------------------------------------------------------ train_epoch itself


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_epoch_follows_the_order_exactly(backend):
    module = compiled(NET, backend)
    data = net_data(12, seed=2)
    order = np.array([11, 3, 3, 0, 7, 5, 2])  # a subset, one example twice
    runs = []
    for _ in range(2):
        params, state = module.init_params(0), module.init_state("adam")
        result = module.train_epoch(
            params, state, {"optimizer": "adam", "lr": 0.01}, order, 3, **data
        )
        runs.append((params, state, result))
    assert runs[0][2] == runs[1][2]
    assert_same(runs[0][0], runs[1][0])
    assert_same(runs[0][1], runs[1][1])
    # the same steps by hand, one batch at a time, in that order
    params, state = module.init_params(0), module.init_state("adam")
    for rows in ([11, 3, 3], [0, 7, 5], [2]):
        module.train_epoch(
            params,
            state,
            {"optimizer": "adam", "lr": 0.01},
            np.arange(len(rows)),
            len(rows),
            **{k: v[rows] for k, v in data.items()},
        )
    assert_same(params, runs[0][0])
    # and another order is another run
    params = module.init_params(0)
    module.train_epoch(
        params,
        module.init_state("adam"),
        {"optimizer": "adam", "lr": 0.01},
        order[::-1].copy(),
        3,
        **data,
    )
    assert not np.array_equal(params["W"], runs[0][0]["W"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_last_partial_batch_is_a_step_weighted_by_its_size(backend):
    """10 examples in batches of 4: steps of 4, 4 and 2; loss_sum = 4 L1 + 4 L2 + 2 L3 with
    each L the batch's mean loss before its step."""
    module = compiled(NET, backend)
    data = net_data(10, seed=4)
    params = module.init_params(3)
    expected, probe = 0.0, copy(params)
    for rows in (range(0, 4), range(4, 8), range(8, 10)):
        batch = {k: v[list(rows)] for k, v in data.items()}
        expected += len(rows) * module.loss(probe, **batch)
        module.train_epoch(
            probe, {}, {"optimizer": "sgd", "lr": 0.1}, np.arange(len(rows)), len(rows), **batch
        )
    total, steps = module.train_epoch(
        params, {}, {"optimizer": "sgd", "lr": 0.1}, np.arange(10), 4, **data
    )
    assert steps == 3
    assert isinstance(total, float)
    assert total == pytest.approx(expected, rel=1e-12)
    assert_same(params, probe)
    assert module.train_epoch(
        params, {}, {"optimizer": "sgd", "lr": 0.1}, np.arange(0), 4, **data
    ) == (0.0, 0)
    assert_same(params, probe)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e200], ids=["nan", "inf", "overflow"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_non_finite_loss_stops_before_its_step(backend, optimizer, bad):
    """Example 5 sits in the second batch of 4: one step is taken, the second is not."""
    module = compiled(NET, backend)
    data = net_data(10, seed=6)
    data["y"][5, 1] = bad
    hyper = {"optimizer": optimizer, "lr": 0.05}
    params, state = module.init_params(0), module.init_state(optimizer)
    total, steps = module.train_epoch(params, state, hyper, np.arange(10), 4, **data)
    assert steps == 1
    # the same as a call that only had the first batch
    want, want_state = module.init_params(0), module.init_state(optimizer)
    want_total, _ = module.train_epoch(want, want_state, hyper, np.arange(4), 4, **data)
    assert total == want_total and np.isfinite(total)
    assert_same(params, want)
    assert_same(state, want_state)
    # a bad first batch: nothing at all changes
    total, steps = module.train_epoch(params, state, hyper, np.array([5, 0]), 2, **data)
    assert (total, steps) == (0.0, 0)
    assert_same(params, want)
    assert_same(state, want_state)


def _bad_arguments():
    """(id, how to spoil (params, state, hyper, order, batch_size, data), message words)."""

    def hyper(**kw):
        return lambda a: a[2].update(kw)

    def order(value):
        return lambda a: a.__setitem__(3, value)

    def batch(value):
        return lambda a: a.__setitem__(4, value)

    def readonly(a):
        a[0]["W"].flags.writeable = False

    def state_key(a):
        del a[1]["t"]

    def momentum_state(a):
        a[1].clear()
        a[1].update(
            {
                f"v.{k}": np.zeros(s)
                for k, s in (("W", (4, 3)), ("b", (4,)), ("V", (2, 4)), ("s", ()))
            }
        )

    def state_shape(a):
        a[1]["m.W"] = np.zeros((3, 4))

    def missing(a):
        del a[5]["y"]

    def extra(a):
        a[5]["z"] = a[5]["x"]

    def short(a):
        a[5]["y"] = a[5]["y"][:8]

    def narrow(a):
        a[5]["x"] = a[5]["x"][:, :2]

    return [
        ("optimizer", hyper(optimizer="rmsprop"), r"optimizer.*rmsprop"),
        ("hyper-key", hyper(learning_rate=0.1), r"hyper.*learning_rate"),
        ("lr-text", hyper(lr="fast"), r"lr.*fast"),
        ("order-negative", order(np.array([0, -1, 2])), r"order"),
        ("order-too-big", order(np.array([0, 10])), r"order.*10"),
        ("order-float", order(np.array([0.0, 1.0])), r"order"),
        ("order-2d", order(np.zeros((2, 2), dtype=int)), r"order"),
        ("batch-0", batch(0), r"batch_size.*0"),
        ("batch-negative", batch(-4), r"batch_size"),
        ("batch-float", batch(2.0), r"batch_size"),
        ("batch-bool", batch(True), r"batch_size"),
        ("state-missing-t", state_key, r"state.*'t'"),
        ("state-of-momentum", momentum_state, r"state"),
        ("state-shape", state_shape, r"state\['m.W'\]"),
        ("params-read-only", readonly, r"params\['W'\].*read-only"),
        ("input-missing", missing, r"'y'"),
        ("input-extra", extra, r"'z'"),
        ("input-lengths", short, r"'y'"),
        ("input-shape", narrow, r"'x'.*, 2\)"),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "spoil,words", [c[1:] for c in _bad_arguments()], ids=[c[0] for c in _bad_arguments()]
)
def test_train_epoch_names_a_bad_argument_and_changes_nothing(backend, spoil, words):
    module = compiled(NET, backend)
    params, state = module.init_params(0), module.init_state("adam")
    args = [params, state, {"optimizer": "adam", "lr": 0.01}, np.arange(10), 4, net_data(10)]
    spoil(args)
    before, before_state = copy(params), copy(args[1])
    with pytest.raises(ValueError, match=words):
        module.train_epoch(*args[:5], **args[5])
    assert_same(params, before)
    assert_same(args[1], before_state)


@pytest.mark.parametrize("backend", ["c"])
def test_train_epoch_in_two_threads_at_once(backend):
    """The C wrapper lets threads call it at once (each has its own workspace): two threads
    training their own params on their own data get what they get one after the other."""
    module = compiled(NET, backend)
    datasets = [net_data(40_000, seed=seed) for seed in (1, 2)]

    def run(data, out):
        params, state = module.init_params(0), module.init_state("adam")
        for _ in range(4):
            module.train_epoch(
                params, state, {"optimizer": "adam", "lr": 0.01}, np.arange(40_000), 16, **data
            )
        out.append(params)

    alone = []
    for data in datasets:
        run(data, alone)
    together = [[], []]
    threads = [
        threading.Thread(target=run, args=(data, out))
        for data, out in zip(datasets, together, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (got,), want in zip(together, alone, strict=True):
        assert_same(got, want)


# ---------------------------------------------------------------------------- Trainer


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_lowers_the_loss_and_learns(backend):
    module = compiled(CLASSIFIER, backend)
    data, val = classes_data(400, seed=0), classes_data(200, seed=1)
    trainer = symbp.Trainer(module, optimizer="adam", lr=0.05, batch_size=16, seed=0)
    before = trainer.evaluate(val)
    history = trainer.fit(data, epochs=8, val=val)
    assert [h.epoch for h in history] == list(range(1, 9))
    assert history[-1].loss < 0.5 * history[0].loss
    assert history[-1].val_loss < 0.3 * before["loss"]
    assert history[-1].val_accuracy >= 0.95 > before["accuracy"]
    assert all(h.examples == 400 and h.seconds > 0 for h in history)
    assert trainer.epoch == 8 and trainer.history == history


@pytest.mark.parametrize("backend", BACKENDS)
def test_epochs_are_reshuffled_and_cover_every_example_once(backend):
    module = compiled(NET, backend)
    fake, calls = spy(module)
    trainer = symbp.Trainer(fake, optimizer="sgd", lr=0.01, batch_size=4, seed=11)
    trainer.fit(net_data(10), epochs=3, chunks=2)
    epochs, seen = [], []
    for order, batch_size, (_, steps) in calls:
        assert batch_size == 4
        seen.extend(order.tolist())
        assert steps == -(-len(order) // 4)
        if len(seen) == 10:
            epochs.append(seen)
            seen = []
    assert seen == [] and len(epochs) == 3
    for order in epochs:
        assert sorted(order) == list(range(10))  # every example once, the last batch of 2
    assert len({tuple(e) for e in epochs}) == 3  # a new shuffle every epoch
    assert [h.examples for h in trainer.history] == [10, 10, 10]


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_seeds_the_shuffle(backend):
    module = compiled(NET, backend)
    results = []
    for seed in (0, 0, 1):
        trainer = symbp.Trainer(
            module, params=module.init_params(0), optimizer="sgd", lr=0.05, batch_size=3, seed=seed
        )
        trainer.fit(net_data(20), epochs=2)
        results.append(trainer.params)
    assert_same(results[0], results[1])
    assert not np.array_equal(results[0]["W"], results[2]["W"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer,lr", [("adam", 0.05), ("momentum", 0.05)])
def test_linear_regression_reaches_least_squares(backend, optimizer, lr):
    """examples/linreg.sbp, full-batch steps on 300 noisy points: the fitted w and b are the
    closed-form least-squares solution."""
    module = compiled(LINREG.read_text(), backend)
    data = linreg_data()
    design = np.stack([data["x"], np.ones_like(data["x"])], axis=1)
    (w, b), *_ = np.linalg.lstsq(design, data["y"], rcond=None)
    trainer = symbp.Trainer(module, optimizer=optimizer, lr=lr, batch_size=300, seed=0)
    trainer.fit(data, epochs=1500)
    assert abs(float(trainer.params["w"]) - w) < 1e-6
    assert abs(float(trainer.params["b"]) - b) < 1e-6
    residual = data["y"] - (w * data["x"] + b)
    assert trainer.evaluate(data)["loss"] == pytest.approx(0.5 * np.mean(residual**2), rel=1e-9)
    assert "accuracy" not in trainer.evaluate(data)  # y is no one-hot target


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_reports_loss_and_accuracy(backend):
    module = compiled(CLASSIFIER, backend)
    data = classes_data(103, seed=4)
    trainer = symbp.Trainer(module, seed=5)
    logits = data["x"] @ trainer.params["W"].T + trainer.params["b"]
    log_p = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    want_loss = float(np.mean(-np.sum(data["t"] * log_p, axis=1)))
    want_accuracy = float(np.mean(np.argmax(logits, 1) == np.argmax(data["t"], 1)))
    assert 0.05 < want_accuracy < 0.95  # an untrained net: neither all right nor all wrong
    for batch_size in (4096, 10, 1):
        metrics = trainer.evaluate(data, batch_size=batch_size)
        assert set(metrics) == {"loss", "accuracy"}
        assert metrics["loss"] == pytest.approx(want_loss, rel=1e-12)
        assert metrics["accuracy"] == want_accuracy


@pytest.mark.parametrize("backend", BACKENDS)
def test_accuracy_compares_the_output_shaped_like_the_target(backend):
    """An Output of another shape declared first must not be taken for the prediction."""
    module = compiled(TWO_OUTPUTS, backend)
    data = classes_data(97, seed=8)
    trainer = symbp.Trainer(module, seed=2)
    logits = data["x"] @ trainer.params["W"].T + trainer.params["b"]
    want = float(np.mean(np.argmax(logits, 1) == np.argmax(data["t"], 1)))
    assert trainer.evaluate(data)["accuracy"] == want


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_needs_no_targets(backend):
    module = compiled(CLASSIFIER, backend)
    data = classes_data(9, seed=3)
    trainer = symbp.Trainer(module, seed=1)
    out = trainer.predict(x=data["x"])
    assert set(out) == {"probs"}
    logits = data["x"] @ trainer.params["W"].T + trainer.params["b"]
    want = np.exp(logits) / np.sum(np.exp(logits), axis=1, keepdims=True)
    np.testing.assert_allclose(out["probs"], want, rtol=1e-12)
    with pytest.raises(ValueError, match="'z'"):
        trainer.predict(x=data["x"], z=data["x"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_save_and_load_round_trip(backend, optimizer, tmp_path):
    module = compiled(NET, backend)
    trainer = symbp.Trainer(
        module, optimizer=optimizer, lr=0.02, batch_size=3, seed=4, momentum=0.7, beta2=0.95
    )
    trainer.fit(net_data(10), epochs=2, val=net_data(5, seed=9))
    trainer.save(tmp_path / "run.npz")
    loaded = symbp.Trainer.load(tmp_path / "run.npz", module)
    assert_same(loaded.params, trainer.params)
    assert_same(loaded.state, trainer.state)
    assert loaded.hyper == trainer.hyper
    assert loaded.hyper["momentum"] == 0.7 and loaded.hyper["beta2"] == 0.95
    assert (loaded.batch_size, loaded.seed, loaded.epoch) == (3, 4, 2)
    assert loaded.history == trainer.history
    assert loaded.rng.bit_generator.state == trainer.rng.bit_generator.state
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # no temporary file left
    with pytest.raises(ValueError, match="not this network"):
        symbp.Trainer.load(tmp_path / "run.npz", compiled(CLASSIFIER, backend))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a symbp checkpoint"):
        symbp.Trainer.load(tmp_path / "junk.npz", module)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scalar_params_and_adams_step_count_survive_a_checkpoint(backend, tmp_path):
    """examples/linreg.sbp has only scalar Params, and Adam's step count t is a scalar: all
    come back from a checkpoint with shape (), and training goes on from there."""
    module = compiled(LINREG.read_text(), backend)
    data = linreg_data(20)
    trainer = symbp.Trainer(module, optimizer="adam", lr=0.01, batch_size=8)
    trainer.fit(data, epochs=1)
    trainer.save(tmp_path / "ck.npz")
    loaded = symbp.Trainer.load(tmp_path / "ck.npz", module)
    assert {k: v.shape for k, v in loaded.params.items()} == {"w": (), "b": ()}
    assert loaded.state["t"].shape == () and float(loaded.state["t"]) == 3.0
    loaded.fit(data, epochs=1)
    trainer.fit(data, epochs=1)
    assert_same(loaded.params, trainer.params)
    assert_same(loaded.state, trainer.state)


def test_float32_checkpoints_stay_float32(tmp_path):
    module = compiled(NET, "numpy", "float32")
    data = {k: v.astype(np.float32) for k, v in net_data(10).items()}
    trainer = symbp.Trainer(module, optimizer="adam", lr=0.01, batch_size=4)
    trainer.fit(data, epochs=1)
    trainer.save(tmp_path / "f32.npz")
    loaded = symbp.Trainer.load(tmp_path / "f32.npz", module)
    assert all(p.dtype == np.float32 for p in loaded.params.values())
    assert_same(loaded.params, trainer.params)
    assert_same(loaded.state, trainer.state)
    loaded.fit(data, epochs=2)
    trainer.fit(data, epochs=2)
    assert_same(loaded.params, trainer.params)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_fit_in_two_runs_is_the_same_run(backend, optimizer, tmp_path):
    """fit(2) + save + load + fit(3) == fit(5), bit for bit."""
    module = compiled(NET, backend)
    data, val = net_data(23, seed=1), net_data(7, seed=2)

    def fresh():
        return symbp.Trainer(module, optimizer=optimizer, lr=0.02, batch_size=5, seed=3)

    straight = fresh()
    straight.fit(data, epochs=5, val=val)
    first = fresh()
    first.fit(data, epochs=2, val=val)
    first.save(tmp_path / "ckpt.npz")
    second = symbp.Trainer.load(tmp_path / "ckpt.npz", module)
    second.fit(data, epochs=3, val=val)
    assert second.epoch == 5
    assert_same(second.params, straight.params)
    assert_same(second.state, straight.state)
    assert [(h.loss, h.val_loss) for h in second.history] == [
        (h.loss, h.val_loss) for h in straight.history
    ]


class Stop(Exception):
    pass


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_interrupted_mid_epoch_resumes_as_if_never_stopped(backend, optimizer, tmp_path):
    """Ctrl-C between two chunks of epoch 3 (KeyboardInterrupt from the progress callback),
    save, load, and the remaining epochs: the run that never stopped, bit for bit."""
    module = compiled(NET, backend)
    data = net_data(50, seed=5)
    settings = {"optimizer": optimizer, "lr": 0.02, "batch_size": 4, "seed": 8}
    straight = symbp.Trainer(module, **settings)
    straight.fit(data, epochs=5)

    trainer = symbp.Trainer(module, **settings)
    calls = []

    def progress(step, steps, loss):
        calls.append((trainer.epoch, step, steps))
        if trainer.epoch == 2 and step >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.fit(data, epochs=5, progress=progress, chunks=13)
    assert calls[-1] == (2, 6, 13)  # stopped after step 6 of 13 in epoch 3
    trainer.save(tmp_path / "ckpt.npz")
    resumed = symbp.Trainer.load(tmp_path / "ckpt.npz", module)
    assert resumed.epoch == 2
    resumed.fit(data, epochs=5 - resumed.epoch)
    assert resumed.epoch == 5
    assert_same(resumed.params, straight.params)
    assert_same(resumed.state, straight.state)
    assert [h.loss for h in resumed.history] == [h.loss for h in straight.history]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_during_a_compiled_call_resumes_as_if_never_stopped(backend, tmp_path):
    """Ctrl-C that lands while train_epoch runs: Python raises KeyboardInterrupt as soon as the
    call returns, with its steps already applied to the params. Saving then and resuming must
    still be the run that never stopped (that is what `symbp train` does on Ctrl-C)."""
    module = compiled(NET, backend)
    data = net_data(50, seed=5)
    settings = {"optimizer": "adam", "lr": 0.02, "batch_size": 4, "seed": 8}
    straight = symbp.Trainer(module, **settings)
    straight.fit(data, epochs=3)

    def interrupt(call):
        if call == 4:  # epoch 1 has 13 steps in 5 chunks of 3, 3, 3, 3 and 1
            raise KeyboardInterrupt

    fake, _ = spy(module, after=interrupt)
    trainer = symbp.Trainer(fake, **settings)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(data, epochs=3, chunks=5)
    trainer.save(tmp_path / "ckpt.npz")
    resumed = symbp.Trainer.load(tmp_path / "ckpt.npz", module)
    resumed.fit(data, epochs=3 - resumed.epoch)
    assert_same(resumed.params, straight.params)
    assert_same(resumed.state, straight.state)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fit_stops_on_a_non_finite_loss_naming_the_step(backend):
    module = compiled(NET, backend)
    data = net_data(12, seed=2)
    data["y"][7, 0] = np.nan
    trainer = symbp.Trainer(module, optimizer="adam", lr=0.01, batch_size=1, seed=0)
    snapshots = []

    def progress(step, steps, loss):
        snapshots.append((step, copy(trainer.params), copy(trainer.state)))

    with pytest.raises(symbp.TrainingError, match=r"step (\d+)") as caught:
        trainer.fit(data, epochs=2, progress=progress, chunks=12)
    step = int(re.search(r"step (\d+)", str(caught.value)).group(1))
    done = snapshots[-1][0] if snapshots else 0
    assert step == done + 1
    assert re.search(rf"epoch 1, batch {step}\b", str(caught.value))
    want_params, want_state = (
        (snapshots[-1][1], snapshots[-1][2])
        if snapshots
        else (module.init_params(0), module.init_state("adam"))
    )
    assert_same(trainer.params, want_params)  # the bad step changed nothing
    assert_same(trainer.state, want_state)
    assert all(np.isfinite(p).all() for p in trainer.params.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_trainer_checks_its_arguments(backend):
    module = compiled(NET, backend)
    with pytest.raises(ValueError, match="batch_size"):
        symbp.Trainer(module, batch_size=0)
    with pytest.raises(ValueError, match="optimizer.*rmsprop"):
        symbp.Trainer(module, optimizer="rmsprop")
    trainer = symbp.Trainer(module)
    with pytest.raises(ValueError, match="same number of examples"):
        trainer.fit({"x": np.zeros((4, 3)), "y": np.zeros((5, 2))})


# ------------------------------------------------------------------------ symbp train


def run_main(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


EPOCH_LINE = re.compile(
    r"^epoch (\d+)/(\d+)  loss (\S+)  ([\d,]+) ex/s  \S+ s"
    r"(?:  val loss (\S+))?(?:  val accuracy ([\d.]+)%)?$",
    re.M,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_with_val_arrays_prints_epochs_val_accuracy_and_summary(backend, tmp_path, capsys):
    compiled(CLASSIFIER, backend)  # skips the C case until it has train_epoch
    spec = write(tmp_path, "cls.sbp", CLASSIFIER)
    data, val = classes_data(300, seed=0), classes_data(100, seed=1)
    np.savez(tmp_path / "d.npz", x=data["x"], t=data["t"], x_val=val["x"], t_val=val["t"])
    code, out, err = run_main(
        capsys,
        "train",
        spec,
        "--data",
        tmp_path / "d.npz",
        "--epochs",
        3,
        "--batch-size",
        16,
        "--lr",
        0.05,
        "--backend",
        backend,
        "--save",
        tmp_path / "ck.npz",
    )
    assert code == 0, err
    lines = EPOCH_LINE.findall(out)
    assert [(e, n) for e, n, *_ in lines] == [("1", "3"), ("2", "3"), ("3", "3")]
    assert all(int(line[3].replace(",", "")) > 0 for line in lines)  # examples per second
    trainer = symbp.Trainer.load(tmp_path / "ck.npz", compiled(CLASSIFIER, backend))
    metrics = trainer.evaluate(val)
    assert float(lines[-1][4]) == pytest.approx(metrics["loss"], rel=1e-3)
    assert float(lines[-1][5]) == pytest.approx(100 * metrics["accuracy"], abs=0.006)
    assert metrics["accuracy"] > 0.9
    assert float(lines[-1][2]) == pytest.approx(trainer.history[-1].loss, rel=1e-3)
    assert re.search(
        r"^trained 3 epochs in .*: loss \S+, val loss \S+, val accuracy "
        r"[\d.]+%$",
        out,
        re.M,
    )
    assert f"checkpoint: {tmp_path / 'ck.npz'}" in out
    assert [h.examples for h in trainer.history] == [300] * 3


def test_cli_val_split_holds_out_a_fraction(tmp_path, capsys):
    spec = write(tmp_path, "cls.sbp", CLASSIFIER)
    data = classes_data(200, seed=0)
    np.savez(tmp_path / "d.npz", **data)
    code, out, err = run_main(
        capsys,
        "train",
        spec,
        "--data",
        tmp_path / "d.npz",
        "--val-split",
        0.25,
        "--epochs",
        2,
        "--save",
        tmp_path / "ck.npz",
    )
    assert code == 0, err
    lines = EPOCH_LINE.findall(out)
    assert len(lines) == 2 and all(line[4] and line[5] for line in lines)
    history = symbp.Trainer.load(tmp_path / "ck.npz", compiled(CLASSIFIER)).history
    assert [h.examples for h in history] == [150, 150]
    # without held-out data: no val columns
    code, out, err = run_main(
        capsys,
        "train",
        spec,
        "--data",
        tmp_path / "d.npz",
        "--epochs",
        1,
        "--save",
        tmp_path / "ck2.npz",
    )
    assert code == 0, err
    assert "val loss" not in out and "val accuracy" not in out
    assert EPOCH_LINE.findall(out)[0][4:] == ("", "")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_cli_trains_what_the_python_api_trains(optimizer, tmp_path, capsys):
    spec = write(tmp_path, "net.sbp", NET)
    data = net_data(37, seed=4)
    np.savez(tmp_path / "d.npz", **data)
    code, _, err = run_main(
        capsys,
        "train",
        spec,
        "--data",
        tmp_path / "d.npz",
        "--epochs",
        3,
        "--batch-size",
        8,
        "--optimizer",
        optimizer,
        "--lr",
        0.05,
        "--seed",
        6,
        "--save",
        tmp_path / "ck.npz",
    )
    assert code == 0, err
    module = compiled(NET)
    saved = symbp.Trainer.load(tmp_path / "ck.npz", module)
    trainer = symbp.Trainer(module, optimizer=optimizer, lr=0.05, batch_size=8, seed=6)
    trainer.fit(data, epochs=3)
    assert saved.hyper["optimizer"] == optimizer and saved.hyper["lr"] == 0.05
    assert_same(saved.params, trainer.params)
    assert_same(saved.state, trainer.state)


def test_cli_default_checkpoint_name_and_float32(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "net.sbp", NET)
    np.savez("d.npz", **net_data(20))
    code, out, err = run_main(
        capsys,
        "train",
        "net.sbp",
        "--data",
        "d.npz",
        "--epochs",
        1,
        "--dtype",
        "float32",
        "--batch-size",
        4,
    )
    assert code == 0, err
    assert "checkpoint: net.ckpt.npz" in out
    with np.load("net.ckpt.npz") as f:
        assert f["param/W"].dtype == np.float32
    saved = symbp.Trainer.load("net.ckpt.npz", compiled(NET, "numpy", "float32"))
    assert saved.hyper["lr"] == 1e-3 and saved.hyper["optimizer"] == "adam"  # the defaults


def test_cli_resume_continues_the_same_run(tmp_path, capsys):
    spec = write(tmp_path, "net.sbp", NET)
    np.savez(tmp_path / "d.npz", **net_data(30, seed=2))
    common = [
        "train",
        spec,
        "--data",
        tmp_path / "d.npz",
        "--batch-size",
        7,
        "--optimizer",
        "momentum",
        "--lr",
        0.03,
        "--seed",
        5,
    ]
    assert run_main(capsys, *common, "--epochs", 5, "--save", tmp_path / "a.npz")[0] == 0
    assert run_main(capsys, *common, "--epochs", 2, "--save", tmp_path / "b.npz")[0] == 0
    # without --save, the resumed run goes on in the file it resumed (SPEC.ckpt.npz untouched)
    code, out, err = run_main(capsys, *common, "--epochs", 5, "--resume", tmp_path / "b.npz")
    assert code == 0, err
    assert [line[0] for line in EPOCH_LINE.findall(out)] == ["3", "4", "5"]
    assert f"checkpoint: {tmp_path / 'b.npz'}" in out
    assert not Path("net.ckpt.npz").exists() and not (tmp_path / "net.ckpt.npz").exists()
    module = compiled(NET)
    a = symbp.Trainer.load(tmp_path / "a.npz", module)
    b = symbp.Trainer.load(tmp_path / "b.npz", module)
    assert_same(b.params, a.params)
    assert_same(b.state, a.state)


def test_cli_resume_keeps_the_runs_validation_split(tmp_path, capsys):
    """`--resume CKPT` (as the Ctrl-C message suggests) after a run with --seed 7 and
    --val-split: the checkpoint knows the seed, so the held-out examples and the training
    set stay those of the run being resumed."""
    spec = write(tmp_path, "cls.sbp", CLASSIFIER)
    np.savez(tmp_path / "d.npz", **classes_data(60, seed=3))

    def train(*extra):
        code, _, err = run_main(
            capsys,
            "train",
            spec,
            "--data",
            tmp_path / "d.npz",
            "--val-split",
            0.3,
            "--batch-size",
            8,
            *extra,
        )
        assert code == 0, err

    train("--epochs", 3, "--seed", 7, "--save", tmp_path / "a.npz")
    train("--epochs", 1, "--seed", 7, "--save", tmp_path / "b.npz")
    train("--epochs", 3, "--resume", tmp_path / "b.npz", "--save", tmp_path / "b.npz")
    module = compiled(CLASSIFIER)
    a = symbp.Trainer.load(tmp_path / "a.npz", module)
    b = symbp.Trainer.load(tmp_path / "b.npz", module)
    assert [h.val_loss for h in b.history] == [h.val_loss for h in a.history]
    assert_same(b.params, a.params)


def test_cli_resume_of_a_finished_run_has_nothing_to_do(tmp_path, capsys):
    spec = write(tmp_path, "lin.sbp", LINREG.read_text())
    np.savez(tmp_path / "d.npz", **linreg_data(20))
    common = ["train", spec, "--data", tmp_path / "d.npz", "--optimizer", "sgd", "--epochs", 2]
    assert run_main(capsys, *common, "--save", tmp_path / "a.npz")[0] == 0
    before = (tmp_path / "a.npz").read_bytes()
    code, out, err = run_main(
        capsys, *common, "--resume", tmp_path / "a.npz", "--save", tmp_path / "a.npz"
    )
    assert code == 0, err
    assert "nothing to do" in out and "trained" not in out
    assert (tmp_path / "a.npz").read_bytes() == before


def _bad_data_cases():
    cls_data = classes_data(10)

    def npz(**arrays):
        return lambda path: np.savez(path, **arrays)

    return [
        ("missing-array", CLASSIFIER, npz(x=cls_data["x"]), r"no array 't'"),
        (
            "wrong-shape",
            CLASSIFIER,
            npz(x=cls_data["x"][:, :3], t=cls_data["t"]),
            r"'x' has shape \(10, 3\).*\(examples, 4\)",
        ),
        ("no-batch-axis", CLASSIFIER, npz(x=cls_data["x"][0], t=cls_data["t"]), r"'x'"),
        (
            "lengths",
            CLASSIFIER,
            npz(x=cls_data["x"], t=cls_data["t"][:7]),
            r"different numbers of examples.*x 10.*t 7",
        ),
        (
            "val-lengths",
            CLASSIFIER,
            npz(**cls_data, x_val=cls_data["x"][:3], t_val=cls_data["t"][:4]),
            r"different numbers of examples",
        ),
        ("val-incomplete", CLASSIFIER, npz(**cls_data, x_val=cls_data["x"]), r"no t_val"),
        (
            "text",
            CLASSIFIER,
            npz(x=np.array([["a"] * 4] * 10), t=cls_data["t"]),
            r"'x' holds .*not numbers",
        ),
        (
            "no-examples",
            CLASSIFIER,
            npz(x=np.zeros((0, 4)), t=np.zeros((0, 3))),
            r"no training examples",
        ),
        (
            "not-npz",
            CLASSIFIER,
            lambda path: Path(path).write_text("x,t\n1,2\n"),
            r"not a readable \.npz",
        ),
        ("missing-file", CLASSIFIER, lambda path: None, r"d\.npz"),
        ("no-input", NO_INPUT, npz(**cls_data), r"no Input"),
    ]


@pytest.mark.parametrize(
    "source,make,words", [c[1:] for c in _bad_data_cases()], ids=[c[0] for c in _bad_data_cases()]
)
def test_cli_bad_data_exits_2_with_a_clear_message(source, make, words, tmp_path, capsys):
    spec = write(tmp_path, "net.sbp", source)
    make(tmp_path / "d.npz")
    code, out, err = run_main(
        capsys, "train", spec, "--data", tmp_path / "d.npz", "--save", tmp_path / "ck.npz"
    )
    assert code == 2
    assert err.startswith("symbp: error: ") and re.search(words, err), err
    assert not (tmp_path / "ck.npz").exists()


def test_cli_diverging_run_exits_1_naming_the_step_and_checkpoint(tmp_path, capsys):
    """SGD at lr 1e10 on linear regression: the loss grows ~1e20 times a step and overflows
    after a few epochs of two steps each, past the first checkpoints."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    np.savez(tmp_path / "d.npz", x=x, y=3 * x + 1)
    with np.errstate(all="ignore"):
        code, out, err = run_main(
            capsys,
            "train",
            LINREG,
            "--data",
            tmp_path / "d.npz",
            "--optimizer",
            "sgd",
            "--lr",
            1e10,
            "--batch-size",
            10,
            "--epochs",
            100,
            "--save",
            tmp_path / "ck.npz",
        )
    assert code == 1
    found = re.search(r"not finite at step (\d+) \(epoch (\d+), batch (\d+)\)", err)
    assert found, err
    step, epoch, batch = map(int, found.groups())
    assert step == 2 * (epoch - 1) + batch and epoch > 2
    assert f"last good checkpoint is {tmp_path / 'ck.npz'}" in err
    saved = symbp.Trainer.load(tmp_path / "ck.npz", compiled(LINREG.read_text()))
    assert saved.epoch == epoch - 1
    assert all(np.isfinite(p).all() for p in saved.params.values())
    assert "trained" not in out
    # diverging in the very first step: no checkpoint yet, and it says so
    with np.errstate(all="ignore"):
        code, _, err = run_main(
            capsys,
            "train",
            LINREG,
            "--data",
            tmp_path / "d.npz",
            "--optimizer",
            "sgd",
            "--lr",
            1e300,
            "--batch-size",
            10,
            "--epochs",
            3,
            "--save",
            tmp_path / "new.npz",
        )
    assert code == 1 and "step" in err and "no checkpoint was written yet" in err


def test_cli_plot_without_matplotlib_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    spec = write(tmp_path, "net.sbp", NET)
    np.savez(tmp_path / "d.npz", **net_data(10))
    code, out, err = run_main(
        capsys,
        "train",
        spec,
        "--data",
        tmp_path / "d.npz",
        "--plot",
        tmp_path / "curves.png",
        "--save",
        tmp_path / "ck.npz",
    )
    assert code == 2
    assert "--plot needs matplotlib" in err and "pip install" in err
    assert not (tmp_path / "curves.png").exists()


def test_cli_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    spec = write(tmp_path, "cls.sbp", CLASSIFIER)
    np.savez(tmp_path / "d.npz", **classes_data(40))
    code, out, err = run_main(
        capsys,
        "train",
        spec,
        "--data",
        tmp_path / "d.npz",
        "--val-split",
        0.25,
        "--epochs",
        2,
        "--plot",
        tmp_path / "curves.png",
        "--save",
        tmp_path / "ck.npz",
    )
    assert code == 0, err
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_resume_of_another_network_exits_2(tmp_path, capsys):
    net = write(tmp_path, "net.sbp", NET)
    cls = write(tmp_path, "cls.sbp", CLASSIFIER)
    np.savez(tmp_path / "n.npz", **net_data(10))
    np.savez(tmp_path / "c.npz", **classes_data(10))
    assert (
        run_main(
            capsys,
            "train",
            net,
            "--data",
            tmp_path / "n.npz",
            "--epochs",
            1,
            "--save",
            tmp_path / "net.ckpt",
        )[0]
        == 0
    )
    code, out, err = run_main(
        capsys,
        "train",
        cls,
        "--data",
        tmp_path / "c.npz",
        "--resume",
        tmp_path / "net.ckpt",
        "--save",
        tmp_path / "cls.ckpt",
    )
    assert code == 2
    assert err.startswith("symbp: error: ") and "not this network's" in err
    assert not (tmp_path / "cls.ckpt").exists()
    (tmp_path / "junk").write_bytes(b"\x00" * 100)
    code, _, err = run_main(
        capsys, "train", cls, "--data", tmp_path / "c.npz", "--resume", tmp_path / "junk"
    )
    assert code == 2 and "not a symbp checkpoint" in err


# ------------------------------------------------------------------------- the digits


@pytest.mark.parametrize("backend", BACKENDS)
def test_digits_reach_97_percent(backend, tmp_path, capsys):
    """The Quickstart's training run, with C; with NumPy (twice as slow) under --long."""
    pytest.importorskip("sklearn")
    if backend == "numpy" and not is_long():
        pytest.skip("the NumPy run of the digits is part of --long")
    module = compiled((DIGITS / "digits.sbp").read_text(), backend)
    made = subprocess.run(
        [sys.executable, DIGITS / "make_data.py", tmp_path / "digits.npz"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert "1437 training and 360 test images" in made.stdout
    code, out, err = run_main(
        capsys,
        "train",
        DIGITS / "digits.sbp",
        "--data",
        tmp_path / "digits.npz",
        "--backend",
        backend,
        "--epochs",
        40,
        "--lr",
        0.003,
        "--save",
        tmp_path / "ck.npz",
    )
    assert code == 0, err
    accuracy = float(re.search(r"val accuracy ([\d.]+)%\ncheckpoint", out).group(1))
    assert accuracy >= 97.0, out
    with np.load(tmp_path / "digits.npz") as f:
        val = {"x": f["x_val"], "t": f["t_val"]}
    metrics = symbp.Trainer.load(tmp_path / "ck.npz", module).evaluate(val)
    assert metrics["accuracy"] >= 0.97
    assert 100 * metrics["accuracy"] == pytest.approx(accuracy, abs=0.006)


def test_progress_bar_redraws_on_a_terminal_and_logs_each_epoch():
    from symbp.train.progress import ProgressBar
    from symbp.train.trainer import EpochStats

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    live, log = Terminal(), io.StringIO()
    bar = ProgressBar(3, 32, 1000, out=live, log=log)
    bar.begin(2)
    bar.update(16, 32, 0.25)
    assert re.search(
        r"\repoch 2/3 \[#{12}\.{12}\]  50% loss 0\.25  [\d,]+ ex/s  eta \d+:\d\d", live.getvalue()
    )
    bar.end(EpochStats(2, 0.125, val_loss=0.5, val_accuracy=0.875, seconds=0.5, examples=1000))
    assert log.getvalue() == (
        "epoch 2/3  loss 0.125  2,000 ex/s  0.50 s  val loss 0.5  val accuracy 87.50%\n"
    )
    quiet = io.StringIO()  # not a terminal: no bar, only the epoch lines
    bar = ProgressBar(3, 32, 1000, out=quiet, log=io.StringIO())
    bar.update(16, 32, 0.25)
    assert quiet.getvalue() == ""
