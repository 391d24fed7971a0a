"""The C train_epoch one example at a time (templates/c_module.c.j2).

For a small network, plain SGD at batch 1 runs the step inlined into train_epoch with the
params and the workspace in local arrays; larger networks take the general loop. Either way
every step must be the one the NumPy module takes (to 1e-12), the C train_step's too, and a
step whose loss is not finite must stop the call with the params as they were before it.
"""

import os
import shutil

import numpy as np
import pytest
from test_train import NET

import symbp

pytestmark = pytest.mark.skipif(
    not (shutil.which(os.environ.get("CC", "cc").split()[0]) or shutil.which("gcc")),
    reason="no C compiler",
)

NEURON = """\
x: Input
y: Input
w: Param = 0.5
b: Param = 0.0
a = sigmoid(w * x + b)
C: Loss = 0.5 * (a - y) ** 2
"""

MLP = NET  # test_train's: a tanh layer, a matrix, a vector and a scalar Param

WIDE = """\
x: Input[30]
y: Input[20]
W: Param[20, 30] = glorot
b: Param[20] = zeros
C: Loss = 0.5 * sum((sigmoid(W @ x + b) - y) ** 2)
"""  # 620 params: too many for the locals, the general loop

NO_INPUT = """\
a: Param = 1.5
b: Param = -0.5
f: Loss = (a + b) ** 2
"""

SPECS = {"neuron": NEURON, "mlp": MLP, "wide": WIDE, "no input": NO_INPUT}


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYMBP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def modules(name: str, dtype: str = "float64"):
    graph = symbp.parse_text(SPECS[name], f"{name.replace(' ', '_')}.sbp")
    return (
        symbp.compile(graph, backend="c", dtype=dtype),
        symbp.compile(graph, backend="numpy", dtype=dtype),
    )


def data(module, rows: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        k: rng.uniform(-1, 1, (rows, *s)).astype(module.DTYPE) for k, s in module.INPUTS.items()
    }


def assert_close(a: dict, b: dict, rtol: float) -> None:
    """To ``rtol``, and to 0.1 ``rtol`` absolute for elements near zero (params are O(1))."""
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=rtol / 10, err_msg=k)


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batch_one_matches_numpy_and_train_step(name, dtype):
    c, ref = modules(name, dtype)
    rows = 1 if not c.INPUTS else 40
    xs = data(c, rows, seed=3)
    order = np.random.default_rng(4).integers(0, rows, 75)  # repeats, and not every row
    rtol = 1e-12 if dtype == "float64" else 1e-5
    params, want = c.init_params(1), ref.init_params(1)
    stepped = c.init_params(1)
    hyper = {"optimizer": "sgd", "lr": 0.05}
    for _ in range(2):  # the params carried from call to call
        total, steps = c.train_epoch(params, {}, hyper, order, 1, **xs)
        want_total, want_steps = ref.train_epoch(want, {}, hyper, order, 1, **xs)
        assert steps == want_steps == len(order)
        assert total == pytest.approx(want_total, rel=rtol, abs=rtol * 1e-3)
        assert_close(params, want, rtol)
        losses = [c.train_step(stepped, 0.05, **{k: v[[r]] for k, v in xs.items()}) for r in order]
        assert sum(losses) == pytest.approx(total, rel=rtol, abs=rtol * 1e-3)
        assert_close(params, stepped, rtol)


@pytest.mark.parametrize("name", ["neuron", "mlp", "wide"])
def test_a_step_that_is_not_finite_ends_the_call(name):
    c, ref = modules(name)
    xs = data(c, 10, seed=5)
    first = next(iter(xs))
    xs[first][6] = np.nan
    order = np.array([0, 1, 2, 6, 3, 4])
    params, want = c.init_params(2), ref.init_params(2)
    total, steps = c.train_epoch(params, {}, {"optimizer": "sgd", "lr": 0.1}, order, 1, **xs)
    want_total, want_steps = ref.train_epoch(
        want, {}, {"optimizer": "sgd", "lr": 0.1}, order, 1, **xs
    )
    assert steps == want_steps == 3
    assert total == pytest.approx(want_total, rel=1e-12)
    assert_close(params, want, 1e-12)
    assert all(np.isfinite(v).all() for v in params.values())


def test_momentum_and_adam_at_batch_one_take_the_general_loop():
    c, ref = modules("mlp")
    xs = data(c, 12, seed=6)
    order = np.random.default_rng(7).permutation(12)
    for optimizer in ("momentum", "adam"):
        params, want = c.init_params(3), ref.init_params(3)
        state, want_state = c.init_state(optimizer), ref.init_state(optimizer)
        hyper = {"optimizer": optimizer, "lr": 0.02}
        total, steps = c.train_epoch(params, state, hyper, order, 1, **xs)
        want_total, _ = ref.train_epoch(want, want_state, hyper, order, 1, **xs)
        assert steps == 12 and total == pytest.approx(want_total, rel=1e-12)
        assert_close(params, want, 1e-12)
