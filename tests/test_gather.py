"""Gather ``E[ids]`` by an integer Input and its scatter-add adjoint (SPEC.md §5), end to end.

The gradient cases of ``E[ids]`` (finite differences on both backends, float32, the VJP
test) are rows of ``tests/test_op_grads.py``. Here: the scatter-add against its closed form
(repeated ids add up), the backends against each other to 1e-12, what the generated modules
accept and refuse as ids, the Python builder, training the bag-of-words example on data
made here (the Python API and ``symbp train``), and a property test over shapes.
"""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symbp
from symbp import cli
from symbp.check.gradients import compare_backends
from symbp.ir import ops
from symbp.ir.interpret import evaluate
from symbp.passes.pipeline import optimize

ROOT = Path(__file__).resolve().parent.parent
BAG = ROOT / "examples" / "bag_of_words.sbp"
BACKENDS = ("numpy", "c")

TWO_TABLES = """
ids: Input[2, 3]
x: Input[2, 3, 4]
E: Param[7, 4] = normal(1)
F: Param[5, 4] = normal(1)
C: Loss = sum(E[ids] * x) + sum(F[ids] ** 2)
"""


def compiled(text: str, backend: str = "numpy", dtype: str = "float64"):
    return symbp.compile(symbp.parse_text(text), backend=backend, dtype=dtype)


def bag_data(rng, rows: int):
    """Texts of 6 ids over a vocabulary of 50; the class is which of three marker words
    (ids 1, 2, 3) the text holds, the other words noise (ids 4 to 49)."""
    ids = rng.integers(4, 50, size=(rows, 6))
    label = rng.integers(0, 3, size=rows)
    ids[np.arange(rows), rng.integers(0, 6, size=rows)] = label + 1
    return {"ids": ids, "y": np.eye(3)[label]}


# ------------------------------------------------------------------ values and gradients


@pytest.mark.parametrize("backend", BACKENDS)
def test_scatter_add_is_its_closed_form_with_repeated_ids(backend):
    """dE of mean(sum(E[ids] * x)) adds x's rows at the ids, repeats included; F, indexed
    by the same ids, gets 2 F[ids] added likewise; ids beyond F's 5 rows are refused, so
    INT_INPUTS gives the smaller table's."""
    module = compiled(TWO_TABLES, backend)
    assert module.INPUTS == {"ids": (2, 3), "x": (2, 3, 4)}
    assert module.INT_INPUTS == {"ids": 5}
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 5, size=(4, 2, 3))
    ids[:, 0, :] = 2  # three times the same id in every example
    x = rng.normal(size=(4, 2, 3, 4))
    params = {"E": rng.normal(size=(7, 4)), "F": rng.normal(size=(5, 4))}
    value, grads = module.loss_and_grads(params, ids=ids, x=x)
    dE, dF = np.zeros((7, 4)), np.zeros((5, 4))
    for b in range(4):
        np.add.at(dE, ids[b], x[b])
        np.add.at(dF, ids[b], 2 * params["F"][ids[b]])
    np.testing.assert_allclose(grads["E"], dE / 4, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grads["F"], dF / 4, rtol=1e-12, atol=1e-14)
    want = np.sum(params["E"][ids] * x) + np.sum(params["F"][ids] ** 2)
    assert value == pytest.approx(want / 4, rel=1e-12)
    assert np.all(grads["E"][5:] == 0)  # rows no id names get nothing


@pytest.mark.parametrize("spec", [BAG, TWO_TABLES], ids=["bag_of_words", "two_tables"])
def test_c_agrees_with_numpy(spec):
    net = symbp.parse(spec) if isinstance(spec, Path) else symbp.parse_text(spec)
    agreement = compare_backends(net, batch=7)
    assert agreement.ok, agreement.table()


def test_the_interpreter_agrees_with_the_module():
    """The reference meaning of GATHER and SCATTER_ADD (ir.interpret) gives the module's
    loss and gradients."""
    net = symbp.parse(BAG)
    program = optimize(net)
    module = symbp.compile(net)
    rng = np.random.default_rng(4)
    data = bag_data(rng, 9)
    params = {k: rng.normal(size=s) for k, s in module.PARAMS.items()}
    value, grads = module.loss_and_grads(params, **data)
    names = list(program.grads)
    got = evaluate([program.loss, *program.grads.values()], {**params, **data}, 9)
    assert float(np.mean(got[0])) == pytest.approx(value, rel=1e-12)
    for name, g in zip(names, got[1:]):
        np.testing.assert_allclose(g, grads[name], rtol=1e-12, atol=1e-15)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 5),
    row=st.lists(st.integers(1, 3), max_size=2).map(tuple),
    ids_shape=st.lists(st.integers(1, 3), max_size=2).map(tuple),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_shapes_gather_and_scatter_as_numpy_does(rows, row, ids_shape, seed):
    """For any table and ids shapes: forward is NumPy's E[ids] per example, the gradient
    of sum(E[ids] * x) the scatter of x by np.add.at."""
    dims = lambda s: f"[{', '.join(map(str, s))}]" if s else ""  # noqa: E731
    text = (
        f"ids: Input{dims(ids_shape)}\nx: Input{dims(ids_shape + row)}\n"
        f"E: Param{dims((rows, *row))} = normal(1)\n"
        "v: Output = E[ids]\nC: Loss = sum(v * x)\n"
    )
    module = compiled(text)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, rows, size=(3, *ids_shape))
    x = rng.normal(size=(3, *ids_shape, *row))
    params = {"E": rng.normal(size=(rows, *row))}
    np.testing.assert_array_equal(module.forward(params, ids=ids, x=x)["v"], params["E"][ids])
    want = np.zeros((rows, *row))
    for b in range(3):
        np.add.at(want, ids[b], x[b])
    np.testing.assert_allclose(module.loss_and_grads(params, ids=ids, x=x)[1]["E"], want / 3)


# ---------------------------------------------------------------- what modules accept


@pytest.fixture(scope="module", params=BACKENDS)
def bag(request):
    module = symbp.compile(symbp.parse(BAG), backend=request.param)
    data = bag_data(np.random.default_rng(0), 4)
    return module, module.init_params(0), data


def put(ids, where, value):
    ids = np.array(ids, dtype=np.int64)
    ids[where] = value
    return ids


BAD_IDS = {
    "float": (lambda ids: ids.astype(np.float64), r"integer ids .* float64"),
    "integral float32": (lambda ids: ids.astype(np.float32), r"integer ids .* float32"),
    "bool": (lambda ids: ids > 3, r"integer ids .* bool"),
    "too large": (lambda ids: put(ids, (2, 4), 50), r"id 50 at position \(2, 4\)"),
    "negative": (lambda ids: put(ids, (1, 0), -1), r"id -1 at position \(1, 0\)"),
    "huge unsigned": (lambda ids: ids.astype(np.uint64) + np.uint64(2**63), r"out of range"),
    "wrong shape": (lambda ids: ids[:, :5], r"expected shape \(batch, 6\), got \(4, 5\)"),
    "a list of floats": (lambda ids: [[0.0] * 6] * 4, r"integer ids \(it indexes\), got \[\[0.0"),
    "other batch": (lambda ids: ids[:3], r"'y': batch of 4 examples, but 'ids' has 3"),
}


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_refused_naming_the_input(bag, bad):
    module, params, data = bag
    spoil, message = BAD_IDS[bad]
    before = {k: v.copy() for k, v in params.items()}
    for call in (module.loss, module.forward, module.loss_and_grads):
        with pytest.raises(ValueError, match=message):
            call(params, ids=spoil(data["ids"]), y=data["y"])
    with pytest.raises(ValueError, match="'ids'"):
        module.train_step(params, 0.1, ids=spoil(data["ids"]), y=data["y"])
    for k in params:
        assert np.array_equal(params[k], before[k])


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint16, np.int64])
def test_any_integer_dtype_and_layout_is_taken(bag, dtype):
    module, params, data = bag
    want = module.loss(params, **data)
    wide = np.asfortranarray(np.repeat(data["ids"], 2, axis=1)[:, ::2].astype(dtype))
    assert module.loss(params, ids=wide, y=data["y"]) == want
    assert module.loss(params, ids=data["ids"].tolist(), y=data["y"]) == want


def test_train_step_checks_ids_changed_in_place(bag):
    """train_step's fast path reuses the arrays of the last step: an id written into that
    very array since must still be refused, before any memory is read."""
    module, params, data = bag
    params = {k: v.copy() for k, v in params.items()}
    ids = np.ascontiguousarray(data["ids"], dtype=np.int64)
    module.train_step(params, 0.1, ids=ids, y=data["y"])
    module.train_step(params, 0.1, ids=ids, y=data["y"])
    kept = {k: v.copy() for k, v in params.items()}
    for bad in (10**9, -(10**9)):
        ids[3, 5] = bad
        with pytest.raises(ValueError, match=rf"input 'ids': id {bad} at position \(3, 5\)"):
            module.train_step(params, 0.1, ids=ids, y=data["y"])
        for k in params:
            assert np.array_equal(params[k], kept[k])


# ------------------------------------------------------------------------- the builder


def test_the_builder_gathers_with_an_integer_input():
    ids = symbp.input("ids", 6, integer=True)
    y = symbp.input("y", 3)
    E = symbp.param("E", 50, 8, init=("normal", 0.1))
    W = symbp.param("W", 3, 8, init="glorot")
    b = symbp.param("b", 3)
    z = W @ symbp.mean(E[ids], axis=0) + b
    net = symbp.network(loss=symbp.cross_entropy(z, y), outputs={"p": symbp.softmax(z)})
    built = symbp.compile(net)
    parsed = symbp.compile(symbp.parse(BAG))
    assert built.INT_INPUTS == parsed.INT_INPUTS == {"ids": 50}
    params, data = parsed.init_params(3), bag_data(np.random.default_rng(5), 8)
    assert built.loss_and_grads(params, **data)[0] == parsed.loss_and_grads(params, **data)[0]
    for backend in BACKENDS:
        assert symbp.check_grads(net, backend=backend).ok


def test_the_builder_refuses_integer_misuse():
    ids = symbp.input("ids", 4, integer=True)
    x = symbp.input("x", 4)
    E = symbp.param("E", 9, 2)
    with pytest.raises(ValueError, match="integer Input 'ids' can only be used as an index"):
        symbp.network(loss=symbp.sum(E[ids]) + symbp.sum(ids * x))
    with pytest.raises(ValueError, match="integer Input 'ids' can only be used as an index"):
        symbp.network(loss=symbp.sum(E[ids]), outputs={"ids": ids})
    with pytest.raises(ops.GraphError, match=r"indexing \(9, 2\) by \(4,\)"):
        E[x]
    with pytest.raises(ops.GraphError, match=r"indexing \(4,\) by \(4,\)"):
        ids[ids]
    assert E[3].shape == (2,)  # an integer constant is basic indexing, not a gather


# ---------------------------------------------------------------------------- training


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_bag_of_words_learns_its_marker_words(backend, dtype):
    module = symbp.compile(symbp.parse(BAG), backend=backend, dtype=dtype)
    rng = np.random.default_rng(2)
    data, val = bag_data(rng, 600), bag_data(rng, 200)
    trainer = symbp.Trainer(module, optimizer="adam", lr=0.05, batch_size=16, seed=1)
    first = trainer.evaluate(val)["loss"]
    trainer.fit(data, epochs=6)
    last = trainer.evaluate(val)
    assert last["loss"] < 0.2 * first, (first, last)
    assert last["accuracy"] > 0.95
    guess = trainer.predict(ids=val["ids"][:5])["p"].argmax(axis=1)
    assert np.array_equal(guess, val["y"][:5].argmax(axis=1))


def test_c_and_numpy_train_the_same_run():
    """train_epoch in C gathers integer ids from the data itself: the same steps as NumPy."""
    rng = np.random.default_rng(6)
    data = bag_data(rng, 100)
    runs = []
    for backend in BACKENDS:
        module = symbp.compile(symbp.parse(BAG), backend=backend)
        trainer = symbp.Trainer(module, optimizer="momentum", lr=0.1, batch_size=7, seed=2)
        trainer.fit(data, epochs=2)
        runs.append(trainer.params)
    for name in runs[0]:
        np.testing.assert_allclose(runs[1][name], runs[0][name], rtol=1e-11, atol=1e-13)


def test_cli_trains_on_integer_arrays(tmp_path, capsys):
    rng = np.random.default_rng(7)
    data, val = bag_data(rng, 300), bag_data(rng, 100)
    path = tmp_path / "bag.npz"
    ids = data["ids"].astype(np.int32)
    np.savez(path, ids=ids, y=data["y"], ids_val=val["ids"], y_val=val["y"])
    save = tmp_path / "bag.ckpt.npz"
    args = ["train", str(BAG), "--data", str(path), "--epochs", "5", "--lr", "0.05"]
    assert cli.main([*args, "--backend", "c", "--save", str(save)]) == 0
    out = capsys.readouterr()
    assert "val" in out.out + out.err
    bad = tmp_path / "floats.npz"
    np.savez(bad, ids=data["ids"] + 0.5, y=data["y"])
    assert cli.main(["train", str(BAG), "--data", str(bad), "--save", str(save)]) != 0
    assert "'ids'" in capsys.readouterr().err


def test_cli_check_draws_valid_ids(capsys):
    assert cli.main(["check", str(BAG), "--backend", "all"]) == 0
    assert "backends agree" in capsys.readouterr().out


def test_names_of_the_generated_code_are_names_like_any_other():
    """Spec names that are the generated code's own words (the C type of ids, the modules'
    INT_INPUTS and _ids, the C loops' _r) are mangled where they would clash."""
    text = (
        "int64_t: Input[3]\n_r: Input[2]\nINT_INPUTS: Param[4, 2] = normal(1)\n"
        "_ids: Param[2] = ones\nv = INT_INPUTS[int64_t]\nC: Loss = sum(v @ _ids) + sum(_r)\n"
    )
    net = symbp.parse_text(text)
    for backend in BACKENDS:
        module = symbp.compile(net, backend=backend)
        assert module.INT_INPUTS == {"int64_t": 4}
        assert symbp.check_grads(net, backend=backend).ok
    assert compare_backends(net).ok


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer, batch", [("sgd", 1), ("sgd", 3), ("adam", 4)])
def test_c_epochs_of_a_small_network_gather_ids_as_numpy_does(optimizer, batch, dtype):
    """A network this small has C's train_epoch run SGD at batch 1 in a loop of its own: it
    and the batched loop read the ids from the data arrays as int64, in float32 as well."""
    text = "ids: Input[2]\nt: Input\nE: Param[3] = normal(1)\nC: Loss = (sum(E[ids]) - t) ** 2\n"
    rng = np.random.default_rng(8)
    data = {"ids": rng.integers(0, 3, size=(20, 2)), "t": rng.normal(size=20)}
    runs = []
    for backend in BACKENDS:
        module = compiled(text, backend, dtype)
        trainer = symbp.Trainer(module, optimizer=optimizer, lr=0.05, batch_size=batch, seed=3)
        trainer.fit(data, epochs=2)
        runs.append(trainer.params["E"])
    rtol = 1e-11 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(runs[1], runs[0], rtol=rtol)


def test_hessian_vector_products_differentiate_the_scatter():
    """The scatter-add has a derivative rule too (a gather of the adjoint): hvp of the bag of
    words against central differences of its gradients."""
    net = symbp.parse(BAG)
    module, hvp = symbp.compile(net), symbp.hvp(net)
    rng = np.random.default_rng(9)
    params = {k: rng.normal(size=s) for k, s in module.PARAMS.items()}
    vectors = {k: rng.normal(size=s) for k, s in module.PARAMS.items()}
    data = bag_data(rng, 4)
    data["ids"][:, :2] = 3  # repeated ids
    got = hvp(params, vectors, **data)
    h = 1e-5
    up, down = (
        module.loss_and_grads({k: params[k] + s * h * vectors[k] for k in params}, **data)[1]
        for s in (1, -1)
    )
    for name in params:
        want = (up[name] - down[name]) / (2 * h)
        np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-8 * np.max(np.abs(want)))
