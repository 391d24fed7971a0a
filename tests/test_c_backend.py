"""The C backend's boundary and build cache (SPEC.md §3, symbp/backends/c/cache.py).

The wrapper of a C module checks every argument and raises ValueError naming it: nothing a
Python caller passes may crash the process or touch memory out of bounds. Inputs (and params
only read) of another real dtype or layout are converted; params that train_step updates in
place never are. Results agree with the NumPy backend to 1e-12 (float64).

The build cache survives concurrent builds, damaged entries, unusable cache folders and a
missing compiler, and `symbp compile --backend c` writes a package that imports without
symbp. The argument campaign runs in-process and again in a subprocess that must exit
normally: a crash there is a failure, not a lost test run.
"""

import hashlib
import json
import mmap
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from conftest import scale

import symbp
from symbp.backends.c import cache as cbuild
from symbp.backends.c import toolchain
from symbp.compiler import c_package

pytestmark = pytest.mark.skipif(
    not (shutil.which(os.environ.get("CC", "cc").split()[0]) or shutil.which("gcc")),
    reason="no C compiler",
)

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
FUNCTIONS = ("forward", "loss", "loss_and_grads", "train_step")
BATCH = 7
LR = 0.1

SPECS = {
    # scalar Inputs and Params
    "scalar": (ROOT / "examples" / "neuron.sbp").read_text(encoding="utf-8"),
    # a small perceptron with an extra Output
    "mlp": textwrap.dedent("""\
        x: Input[5]
        y: Input[3]
        W1: Param[4, 5] = glorot
        b1: Param[4] = zeros
        W2: Param[3, 4] = glorot
        b2: Param[3] = zeros
        h = tanh(W1 @ x + b1)
        p: Output = sigmoid(W2 @ h + b2)
        C: Loss = 0.5 * sum((p - y) ** 2)
        """),
    # a matrix Input: one example is a 3 x 4 matrix
    "matrix": textwrap.dedent("""\
        X: Input[3, 4]
        W: Param[4, 2] = glorot
        v: Param[3] = ones
        Z: Output = X @ W
        C: Loss = sum((v @ tanh(Z)) ** 2) + 0.1 * sum(W * W)
        """),
    # no Input, so no batch
    "noinput": textwrap.dedent("""\
        a: Param[3] = 0.5
        B: Param[2, 3] = glorot
        f: Loss = sum((B @ a) ** 2) + sum(exp(a))
        g: Output = B @ a
        """),
}


class Pair(NamedTuple):
    c: object  # the C module
    np: object  # the NumPy module of the same spec, the reference


def write_specs(folder: Path) -> dict[str, Path]:
    paths = {}
    for name, text in SPECS.items():
        paths[name] = folder / f"{name}.sbp"
        paths[name].write_text(text, encoding="utf-8")
    return paths


def compile_pairs(paths: dict[str, Path]) -> dict[str, Pair]:
    return {
        name: Pair(symbp.compile(path, backend="c"), symbp.compile(path))
        for name, path in paths.items()
    }


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """This module's own build cache (the cache tests make more of their own)."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYMBP_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def spec_paths(cache_root, tmp_path_factory):
    return write_specs(tmp_path_factory.mktemp("specs"))


@pytest.fixture(scope="module")
def pairs(spec_paths):
    return compile_pairs(spec_paths)


# ------------------------------------------------------------------------------ helpers


def make_params(mod, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-1, 1, shape) for k, shape in mod.PARAMS.items()}


def make_inputs(mod, n=BATCH, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-1, 1, (n, *shape)) for k, shape in mod.INPUTS.items()}


def copies(params: dict) -> dict:
    return {k: np.array(v, copy=True) for k, v in params.items()}


def on_fast_path(mod, params: dict) -> bool:
    """Does this thread's train_step fast path hold these very param arrays?"""
    fast = getattr(mod._LOCAL, "step", None)
    return fast is not None and all(fast[2 + k] is v for k, v in enumerate(params.values()))


def call(mod, fn, params, inputs, lr=LR):
    """``fn`` called as SPEC.md §3 spells it."""
    if fn == "train_step":
        return mod.train_step(params, lr, **inputs)
    return getattr(mod, fn)(params, **inputs)


def flat(fn, result) -> dict:
    """A result as named arrays: the loss, the gradients, or forward's outputs."""
    if fn == "forward":
        return dict(result)
    if fn == "loss_and_grads":
        return {"loss": result[0], **{f"d{k}": v for k, v in result[1].items()}}
    return {"loss": result}


def assert_close(got: dict, want: dict, rtol: float = 1e-12) -> None:
    """Same names, shapes and values to ``rtol`` of each array's scale; NaN where NaN."""
    assert set(got) == set(want)
    for name in want:
        g, w = np.asarray(got[name], dtype=np.float64), np.asarray(want[name], np.float64)
        assert g.shape == w.shape, f"{name}: shape {g.shape}, expected {w.shape}"
        finite = w[np.isfinite(w)]
        scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale, err_msg=name)


def both(pair: Pair, fn, params, inputs, lr=LR):
    """``fn`` on NumPy (on copies of the params), then on C: (C's results, NumPy's), with the
    params after the call for train_step."""
    ref_params = copies(params)
    want = flat(fn, call(pair.np, fn, ref_params, inputs, lr))
    got = flat(fn, call(pair.c, fn, params, inputs, lr))
    if fn == "train_step":
        want.update({f"after {k}": v for k, v in ref_params.items()})
        got.update({f"after {k}": v for k, v in params.items()})
    return got, want


def snapshot(params) -> dict:
    """What a failed call must leave unchanged: every array's bytes, shape and dtype."""
    return {
        k: (v.tobytes(), v.shape, v.dtype) for k, v in params.items() if isinstance(v, np.ndarray)
    }


def refused(match: str, mod, fn, params, inputs, lr=LR) -> str:
    """The call raises ValueError whose message contains ``match`` and changes nothing."""
    before = snapshot(params) if isinstance(params, dict) else None
    with pytest.raises(ValueError) as info:
        call(mod, fn, params, inputs, lr)
    message = str(info.value)
    assert match in message, message
    if before is not None:
        assert snapshot(params) == before, f"{fn} changed params before refusing: {message}"
    return message


def unaligned(a: np.ndarray) -> np.ndarray:
    """A writable copy of ``a`` whose data starts one byte past an aligned address."""
    buf = bytearray(a.nbytes + 1)
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def strided(a: np.ndarray) -> np.ndarray:
    """A view holding the values of ``a``, every other element of a copy: not contiguous,
    unless it has at most one element."""
    return np.repeat(np.asarray(a)[..., None], 2, axis=-1)[..., 0]


def read_only(a: np.ndarray) -> np.ndarray:
    out = np.array(a, copy=True)
    out.flags.writeable = False
    return out


# Values that may stand for a real array: each turns ``a`` into another form holding the same
# numbers (or numbers float64 rounds the same way), which the wrapper must convert.
CONVERTIBLE = {
    "float32": lambda a: np.asarray(a, dtype=np.float32),
    "int": lambda a: np.round(np.asarray(a) * 4).astype(np.int64),
    "bool": lambda a: np.asarray(a) > 0,
    "big-endian": lambda a: np.asarray(a, dtype=">f8"),
    "strided": strided,
    "fortran": lambda a: np.asfortranarray(a),
    "reversed": lambda a: np.asarray(a)[::-1].copy()[::-1] if np.ndim(a) else a,
    "unaligned": unaligned,
    "read-only": read_only,
    "list": lambda a: np.asarray(a).tolist(),
}

# Values no real array of any shape can be.
NOT_REAL = {
    "complex": lambda a: np.asarray(a) + 1j,
    "object": lambda a: np.asarray(a).astype(object),
    "strings": lambda a: np.asarray(a).astype(str),
    "bytes": lambda a: np.asarray(a).astype(bytes),
    "None": lambda a: None,
    "datetime": lambda a: np.zeros(np.shape(a), dtype="M8[s]"),
    "structured": lambda a: np.zeros(np.shape(a), dtype=[("u", "f8"), ("v", "f8")]),
    "a dict": lambda a: {"value": a},
    "ragged": lambda a: [[1.0], [1.0, 2.0]],
}


def as_float64(value) -> np.ndarray:
    """What a convertible value means: its numbers as float64."""
    return np.array(value, dtype=np.float64)


# ---------------------------------------------------------- agreement with NumPy backend


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("name", list(SPECS))
def test_results_agree_with_numpy(pairs, name, fn):
    pair = pairs[name]
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    for _ in range(3 if fn == "train_step" else 1):  # the later steps take the fast path
        got, want = both(pair, fn, params, inputs)
        assert_close(got, want)
    assert all(np.isfinite(v).all() for v in got.values())
    assert on_fast_path(pair.c, params) == (fn == "train_step")


@pytest.mark.parametrize("n", [1, 2, 100_000])
@pytest.mark.parametrize("name", ["scalar", "mlp", "matrix"])
def test_batch_sizes(pairs, name, n):
    pair = pairs[name]
    params, inputs = make_params(pair.c), make_inputs(pair.c, n)
    for fn in FUNCTIONS:
        got, want = both(pair, fn, params, inputs)
        assert_close(got, want)
        if fn == "forward":
            assert all(v.shape[0] == n for v in got.values())


def test_float32_module_converts_float64_inputs_and_refuses_float64_params(spec_paths):
    c = symbp.compile(spec_paths["mlp"], backend="c", dtype="float32")
    ref = symbp.compile(spec_paths["mlp"], dtype="float32")
    params = {k: v.astype(np.float32) for k, v in make_params(c).items()}
    inputs = make_inputs(c)  # float64: converted
    value, grads = c.loss_and_grads(params, **inputs)
    want, want_grads = ref.loss_and_grads(params, **inputs)
    assert abs(value - want) <= 1e-5 * abs(want)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert_close(grads, want_grads, rtol=1e-4)
    float64_params = make_params(c)
    message = refused("params['W1']", c, "train_step", float64_params, inputs)
    assert "float32" in message and "got float64" in message
    assert c.train_step(params, LR, **inputs) == pytest.approx(want, rel=1e-5)


# ------------------------------------------------------------ dtypes, shapes, batches


@pytest.mark.parametrize("form", list(CONVERTIBLE))
@pytest.mark.parametrize("name", ["scalar", "mlp", "matrix"])
def test_inputs_of_other_dtypes_and_layouts_are_converted(pairs, name, form):
    pair = pairs[name]
    params = make_params(pair.c)
    values = make_inputs(pair.c)
    inputs = {k: CONVERTIBLE[form](v) for k, v in values.items()}
    meant = {k: as_float64(v) for k, v in inputs.items()}
    for fn in FUNCTIONS:
        got = flat(fn, call(pair.c, fn, p := copies(params), inputs))
        want = flat(fn, call(pair.np, fn, q := copies(params), meant))
        if fn == "train_step":
            got.update(p)
            want.update(q)
        assert_close(got, want)


@pytest.mark.parametrize("form", list(CONVERTIBLE))
@pytest.mark.parametrize("name", ["mlp", "noinput"])
def test_params_only_read_are_converted(pairs, name, form):
    pair = pairs[name]
    values, inputs = make_params(pair.c), make_inputs(pair.c)
    params = {k: CONVERTIBLE[form](v) for k, v in values.items()}
    meant = {k: as_float64(v) for k, v in params.items()}
    for fn in ("forward", "loss", "loss_and_grads"):
        assert_close(
            flat(fn, call(pair.c, fn, params, inputs)), flat(fn, call(pair.np, fn, meant, inputs))
        )


@pytest.mark.parametrize("form", list(NOT_REAL))
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_values_that_are_not_real_numbers_are_refused(pairs, fn, form):
    pair = pairs["mlp"]
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    bad_input = {**inputs, "y": NOT_REAL[form](inputs["y"])}
    refused("input 'y'", pair.c, fn, params, bad_input)
    bad_param = {**params, "b1": NOT_REAL[form](params["b1"])}
    refused("params['b1']", pair.c, fn, bad_param, inputs)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_wrong_shapes_and_ranks_are_refused(pairs, fn):
    mlp, matrix = pairs["mlp"].c, pairs["matrix"].c
    params, inputs = make_params(mlp), make_inputs(mlp)
    x = inputs["x"]
    cases = {
        "(batch, 5), got (5,)": x[0],  # one example without its batch axis
        "(batch, 5), got (7, 1, 5)": x[:, None, :],
        "(batch, 5), got (7, 6)": np.zeros((7, 6)),
        "(batch, 5), got (7, 5, 1)": x[..., None],
        "(batch, 5), got ()": 1.0,
    }
    for want, value in cases.items():
        assert "expected shape " + want in refused(
            "input 'x'", mlp, fn, params, {**inputs, "x": value}
        )
    for name, value in {
        "W1": params["W1"].T,
        "b1": params["b1"][:3],
        "b2": params["b2"][None],
        "W2": params["W2"].ravel(),
    }.items():
        message = refused(f"params[{name!r}]", mlp, fn, {**params, name: value.copy()}, inputs)
        assert f"expected shape {mlp.PARAMS[name]}" in message
    mparams, minputs = make_params(matrix), make_inputs(matrix)
    for value in (minputs["X"][:, :, :3], minputs["X"].transpose(0, 2, 1), minputs["X"][0]):
        refused("input 'X'", matrix, fn, mparams, {"X": value})


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_batches_must_agree_and_not_be_empty(pairs, fn):
    mlp = pairs["mlp"].c
    params, inputs = make_params(mlp), make_inputs(mlp)
    message = refused("input 'y'", mlp, fn, params, {**inputs, "y": inputs["y"][:6]})
    assert "batch of 6 examples, but 'x' has 7" in message
    empty = {k: v[:0] for k, v in inputs.items()}
    assert "the batch is empty" in refused("input 'x'", mlp, fn, params, empty)
    scalar = pairs["scalar"].c
    refused("input 'y'", scalar, fn, make_params(scalar), {"x": np.ones(3), "y": np.ones(100_000)})


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_missing_and_extra_names_are_refused(pairs, fn):
    mlp, noinput = pairs["mlp"].c, pairs["noinput"].c
    params, inputs = make_params(mlp), make_inputs(mlp)
    refused("missing 'b2'", mlp, fn, {k: v for k, v in params.items() if k != "b2"}, inputs)
    refused("unexpected 'W3'", mlp, fn, {**params, "W3": params["W2"]}, inputs)
    refused("missing input 'y'", mlp, fn, params, {"x": inputs["x"]})
    refused("unexpected input 'z'", mlp, fn, params, {**inputs, "z": inputs["y"]})
    refused("unexpected input 'x'", noinput, fn, make_params(noinput), {"x": np.ones(3)})
    for value in (
        None,
        [params[k] for k in mlp.PARAMS],
        tuple(params.values()),
        1.0,
        np.zeros(4),
        "W1",
    ):
        refused("params: expected a dict", mlp, fn, value, inputs)


# ---------------------------------------------------------------- train_step's params

# Params train_step cannot update in place, and the reason the message gives.
NOT_UPDATABLE = {
    "read-only": (read_only, "it is read-only"),
    "strided": (strided, "it is not C-contiguous"),
    "fortran": (lambda a: np.asfortranarray(a), "it is not C-contiguous"),
    "unaligned": (unaligned, "it is not aligned"),
    "float32": (lambda a: a.astype(np.float32), "got float32"),
    "int": (lambda a: a.astype(np.int64), "got int64"),
    "big-endian": (lambda a: a.astype(">f8"), "got >f8"),
    "list": (lambda a: a.tolist(), "got list"),
    "float": (lambda a: 0.5, "got float"),
}


@pytest.mark.parametrize("form", list(NOT_UPDATABLE))
@pytest.mark.parametrize("name", ["mlp", "matrix", "noinput"])
def test_train_step_refuses_params_it_cannot_update(pairs, name, form):
    pair = pairs[name]
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    change, reason = NOT_UPDATABLE[form]
    checked = 0
    for key in pair.c.PARAMS:
        bad = {**params, key: change(params[key])}
        if (
            isinstance(bad[key], np.ndarray)
            and bad[key].dtype == np.float64
            and (bad[key].flags.carray)
        ):
            continue  # a 1-D array in Fortran order is C-contiguous too
        message = refused(
            f"params[{key!r}]: train_step updates it in place", pair.c, "train_step", bad, inputs
        )
        assert f"({reason})" in message
        if isinstance(bad[key], np.ndarray):  # the other functions only read it
            got, want = both(pair, "loss_and_grads", bad, inputs)
            assert_close(got, want)
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize(
    "lr",
    [
        "0.1",
        b"0.1",
        None,
        float("nan"),
        float("inf"),
        -np.inf,
        [0.1],
        np.array([0.1]),
        1j,
        True,
        10**400,
        {"lr": 0.1},
    ],
    ids=repr,
)
def test_train_step_refuses_lr_that_is_not_a_finite_number(pairs, lr):
    for name in ("scalar", "noinput"):
        pair = pairs[name]
        params, inputs = make_params(pair.c), make_inputs(pair.c)
        pair.c.train_step(params, LR, **inputs)  # a fast path in place
        refused("lr: expected a finite number", pair.c, "train_step", params, inputs, lr)


@pytest.mark.parametrize(
    "lr", [1, np.float64(0.1), np.float32(0.25), np.array(0.1), np.int64(2), -0.5, 0.0], ids=repr
)
def test_train_step_takes_lr_as_any_real_number(pairs, lr):
    pair = pairs["mlp"]
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    ref = copies(params)
    want = pair.np.train_step(ref, float(lr), **inputs)
    assert pair.c.train_step(params, lr, **inputs) == pytest.approx(want, rel=1e-12)
    assert_close(params, ref)


# ---------------------------------------------------------------------------- aliasing


def test_one_array_as_two_params(pairs):
    pair = pairs["scalar"]
    inputs = make_inputs(pair.c)
    shared = np.array(0.3)
    params = {"w": shared, "b": shared}
    for fn in ("forward", "loss", "loss_and_grads"):  # only read: fine
        got = flat(fn, call(pair.c, fn, params, inputs))
        assert_close(
            got, flat(fn, call(pair.np, fn, {"w": np.array(0.3), "b": np.array(0.3)}, inputs))
        )
    message = refused(
        "params['b']: shares memory with params['w']", pair.c, "train_step", params, inputs
    )
    assert "cannot update both" in message
    refused(
        "params['b']: shares memory with params['w']", pair.np, "train_step", params, inputs
    )  # the NumPy backend says the same
    assert shared == 0.3


def test_params_in_one_buffer(pairs):
    """Disjoint views of one flat buffer are fine; overlapping ones are refused."""
    pair = pairs["mlp"]
    inputs = make_inputs(pair.c)
    sizes = [int(np.prod(s)) for s in pair.c.PARAMS.values()]
    buffer = np.random.default_rng(3).uniform(-1, 1, sum(sizes))
    offsets = np.cumsum([0, *sizes])
    params = {
        k: buffer[o : o + size].reshape(shape)
        for (k, shape), o, size in zip(pair.c.PARAMS.items(), offsets[:-1], sizes, strict=True)
    }
    for _ in range(2):
        got, want = both(pair, "train_step", params, inputs)
        assert_close(got, want)
    overlapping = {**params, "b1": buffer[16:20]}  # the last row of W1
    refused(
        "params['b1']: shares memory with params['W1']", pair.c, "train_step", overlapping, inputs
    )


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_input_that_is_a_view_of_a_param(pairs, fn):
    """C reads the input after updating the param: the wrapper must read it first, as NumPy
    does (gradients of the values before the step)."""
    pair = pairs["mlp"]
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    ref = copies(params)
    params_x = params["W1"][1:4]  # three rows of W1, shape (3, 5): a batch of 3 for x
    inputs = {"x": params_x, "y": inputs["y"][:3]}
    want = flat(fn, call(pair.np, fn, ref, {"x": ref["W1"][1:4], "y": inputs["y"]}))
    got = flat(fn, call(pair.c, fn, params, inputs))
    if fn == "train_step":
        got.update(params)
        want.update(ref)
    assert_close(got, want)


# ------------------------------------------------------------------------- NaN and Inf


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e308])
def test_nan_inf_and_huge_values_agree_with_numpy(pairs, fn, value):
    pair = pairs["mlp"]
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    inputs["x"][2, 1] = value
    got, want = both(pair, fn, params, inputs)
    assert_close(got, want)
    if np.isnan(value):
        assert np.isnan(got["loss"] if "loss" in got else got["C"]).any()
    params["W2"][0, 0] = value
    got, want = both(pair, fn, params, inputs)
    assert_close(got, want)


# --------------------------------------------------------------- train_step's fast path


def test_fast_path_sees_values_changed_in_place(pairs):
    pair = pairs["mlp"]
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    for step in range(4):
        inputs["x"][...] = np.random.default_rng(step).uniform(-1, 1, inputs["x"].shape)
        params["b2"][0] = step  # the caller edits a param between steps
        got, want = both(pair, "train_step", params, inputs)
        assert_close(got, want)
        assert on_fast_path(pair.c, params)


def test_fast_path_notices_a_param_reshaped_in_place(pairs):
    pair = pairs["mlp"]
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    pair.c.train_step(params, LR, **inputs)
    W1 = params["W1"]
    W1.shape = (5, 4)
    message = refused("params['W1']", pair.c, "train_step", params, inputs)
    assert "expected shape (4, 5), got (5, 4)" in message
    W1.shape = (20,)
    refused("params['W1']", pair.c, "train_step", params, inputs)
    W1.shape = (4, 5)
    got, want = both(pair, "train_step", params, inputs)
    assert_close(got, want)


def test_fast_path_notices_an_input_reshaped_in_place(pairs):
    pair = pairs["mlp"]
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    pair.c.train_step(params, LR, **inputs)
    x = inputs["x"]
    for shape in [(5, 7), (35,), (7, 5, 1), (1, 7, 5)]:
        x.shape = shape
        refused("input 'x'", pair.c, "train_step", params, inputs)
    x.shape = (7, 5)
    inputs["y"].shape = (21,)
    refused("input 'y'", pair.c, "train_step", params, inputs)
    inputs["y"].shape = (7, 3)
    got, want = both(pair, "train_step", params, inputs)
    assert_close(got, want)


def test_fast_path_notices_flags_and_dtype_changed_in_place(pairs):
    pair = pairs["mlp"]
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    pair.c.train_step(params, LR, **inputs)
    b1 = params["b1"]
    b1.flags.writeable = False
    assert "(it is read-only)" in refused("params['b1']", pair.c, "train_step", params, inputs)
    b1.flags.writeable = True
    pair.c.train_step(params, LR, **inputs)
    b1.dtype = np.int64  # same bytes seen as integers
    assert "(got int64)" in refused("params['b1']", pair.c, "train_step", params, inputs)
    b1.dtype = np.float64
    W2 = params["W2"]
    pair.c.train_step(params, LR, **inputs)
    with warnings.catch_warnings():  # NumPy 2.4 deprecates setting strides
        warnings.simplefilter("ignore", DeprecationWarning)
        W2.strides = (8, 24)  # the transpose's layout over the same bytes
    assert "(it is not C-contiguous)" in refused(
        "params['W2']", pair.c, "train_step", params, inputs
    )
    params["W2"] = np.ascontiguousarray(W2)
    got, want = both(pair, "train_step", params, inputs)
    assert_close(got, want)


def test_fast_path_with_other_arrays_and_batches(pairs):
    pair = pairs["mlp"]
    params = make_params(pair.c)
    for step, n in enumerate([7, 7, 3, 3, 1, 7, 7]):
        inputs = make_inputs(pair.c, n, seed=step) if step % 2 else make_inputs(pair.c, n)
        if step == 4:
            params = copies(params)  # other params of the same values
        got, want = both(pair, "train_step", params, inputs)
        assert_close(got, want)
        assert_close(
            flat("loss", pair.c.loss(params, **inputs)),  # same workspace, between
            flat("loss", pair.np.loss(params, **inputs)),
        )


def test_read_only_param_read_by_loss_is_not_written_by_train_step(pairs):
    """loss() may read a read-only param; train_step must refuse it, even right after."""
    pair = pairs["scalar"]
    inputs = make_inputs(pair.c)
    buf = np.array([0.5, -0.25]).tobytes()  # immutable bytes
    params = {
        "w": np.frombuffer(buf, count=1).reshape(()),
        "b": np.frombuffer(buf, count=1, offset=8).reshape(()),
    }
    assert pair.c.loss(params, **inputs) == pytest.approx(pair.np.loss(params, **inputs))
    refused("params['w']: train_step updates it in place", pair.c, "train_step", params, inputs)
    assert buf == np.array([0.5, -0.25]).tobytes()


def test_user_names_cannot_hijack_the_wrapper(cache_root, tmp_path):
    """A spec may name its params and inputs after the wrapper's own helpers."""
    spec = tmp_path / "names.sbp"
    spec.write_text(
        textwrap.dedent("""\
        x0: Input
        _LOCAL: Input
        n: Input
        p0: Param = 0.5
        _train_step: Param = -0.25
        _DT: Param = 1.5
        fast: Param = 0.1
        _c: Param = 2.0
        lib: Param = 0.3
        _call: Param = 0.7
        _ARRAYS: Param = -0.4
        x1: Param = 0.2
        u = p0 * x0 + _train_step * _LOCAL + _DT * fast * _c * n - lib
        C: Loss = (u + _call * _ARRAYS * x1) ** 2
        """),
        encoding="utf-8",
    )
    pair = Pair(symbp.compile(spec, backend="c"), symbp.compile(spec))
    params, inputs = make_params(pair.c), make_inputs(pair.c)
    for fn in FUNCTIONS:
        for _ in range(2):
            got, want = both(pair, fn, params, inputs)
            assert_close(got, want)


# ----------------------------------------------------------------------------- threads


def test_threads_training_different_params_at_once(pairs):
    """Each thread has its own workspace and fast path: concurrent steps with other batch
    sizes neither crash nor mix up their arrays."""
    pair = pairs["mlp"]
    results = {}

    def train(seed, n):
        params, inputs = make_params(pair.c, seed), make_inputs(pair.c, n, seed)
        losses = [pair.c.train_step(params, LR, **inputs) for _ in range(300)]
        results[seed] = (losses, params)

    threads = [
        threading.Thread(target=train, args=(seed, n))
        for seed, n in [(0, 1), (1, 7), (2, 64), (3, 7)]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed, n in [(0, 1), (1, 7), (2, 64), (3, 7)]:
        params, inputs = make_params(pair.c, seed), make_inputs(pair.c, n, seed)
        want = [pair.np.train_step(params, LR, **inputs) for _ in range(300)]
        losses, got = results[seed]
        assert_close({"losses": losses, **got}, {"losses": want, **params}, rtol=1e-10)


def test_threads_calling_forward_at_once(pairs):
    pair = pairs["mlp"]
    params = make_params(pair.c)
    batches = [make_inputs(pair.c, 50, seed) for seed in range(4)]
    want = [pair.np.forward(params, **b) for b in batches]
    calls, failures = [], []

    def run(k):
        try:
            for _ in range(200):
                got = pair.c.forward(params, **batches[k])
                calls.append(k)
                if not all(np.allclose(got[o], want[k][o], rtol=1e-12) for o in got):
                    failures.append(k)
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(repr(e))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(calls) == 800


# ------------------------------------------------------------------ argument campaign

LRS = [LR, LR, LR, 1, np.float64(0.5), "0.1", None, float("nan"), float("inf"), [LR], 1j]


def pick(rng: np.random.Generator, value: np.ndarray, batched: bool):
    """``value``, or (about half the time) some other form of it, good or bad."""
    roll = rng.random()
    if roll < 0.5:
        return value
    forms = [
        *CONVERTIBLE.values(),
        *NOT_REAL.values(),
        *(change for change, _ in NOT_UPDATABLE.values()),
    ]
    if roll < 0.85:
        return forms[rng.integers(len(forms))](value)
    shape = np.shape(value)
    odd = [
        lambda: np.asarray(value)[None],  # one more axis
        lambda: np.zeros(tuple(d + 1 for d in shape)),  # every dimension one more
        lambda: np.full(shape, np.nan),
        lambda: np.full(shape, -np.inf),
        lambda: np.broadcast_to(np.float64(0.5), shape),  # stride 0, read-only
    ]
    if batched:
        odd += [
            lambda: np.asarray(value)[:0],
            lambda: np.asarray(value)[:1],
            lambda: np.concatenate([value, value]),
        ]
    elif shape:
        odd += [lambda: np.asarray(value)[..., :-1] if shape[-1] > 1 else value[..., None]]
    return odd[rng.integers(len(odd))]()


class Campaign:
    """Random calls of every function of every spec with arguments of every kind.

    Each call must return or raise ValueError. A refused call must leave the params as they
    were; a returned result must agree with the NumPy backend's, which must not refuse what C
    accepts. Some calls repeat the last arguments, mutated or not, to reach train_step's
    fast path.
    """

    def __init__(self, pairs: dict[str, Pair], seed: int) -> None:
        self.pairs, self.rng = pairs, np.random.default_rng(seed)
        self.calls = self.returned = self.refused = 0
        self.problems: list[str] = []
        self.last: dict[str, tuple] = {}

    def arguments(self, name: str, step: int):
        pair, rng = self.pairs[name], self.rng
        if name in self.last and rng.random() < 0.3:
            params, inputs = self.last[name]
            mutate = rng.integers(4)
            if mutate == 1 and isinstance(params, dict) and params:  # one param changed
                key = list(params)[rng.integers(len(params))]
                params = {**params, key: pick(rng, make_params(pair.c, step)[key], False)}
            elif mutate == 2:
                inputs = {
                    k: v.copy() if isinstance(v, np.ndarray) else v for k, v in inputs.items()
                }
            return params, inputs
        n = int(rng.choice([1, 2, 7, 300]))
        params = {k: pick(rng, v, False) for k, v in make_params(pair.c, step).items()}
        inputs = {k: pick(rng, v, True) for k, v in make_inputs(pair.c, n, step).items()}
        roll = rng.random()
        if roll < 0.03:
            params = list(params.values())
        elif roll < 0.06 and params:
            params.pop(list(params)[rng.integers(len(params))])
        elif roll < 0.09:
            inputs["extra"] = np.ones(n)
        elif roll < 0.12 and inputs:
            inputs.pop(list(inputs)[rng.integers(len(inputs))])
        self.last[name] = (params, inputs)
        return params, inputs

    def run(self, count: int) -> "Campaign":
        names = list(self.pairs)
        for step in range(count):
            name = names[self.rng.integers(len(names))]
            fn = FUNCTIONS[self.rng.integers(len(FUNCTIONS))]
            lr = LRS[self.rng.integers(len(LRS))]
            params, inputs = self.arguments(name, step)
            self.one(self.pairs[name], fn, params, inputs, lr, f"#{step} {name}.{fn}")
        return self

    def one(self, pair: Pair, fn, params, inputs, lr, label) -> None:
        self.calls += 1
        is_dict = isinstance(params, dict)
        before = snapshot(params) if is_dict else None
        ref_params = (
            {
                k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                for k, v in params.items()
            }
            if is_dict
            else params
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                want = flat(fn, call(pair.np, fn, ref_params, inputs, lr))
            except Exception as e:  # noqa: BLE001 - compared below
                want = e
            try:
                got = flat(fn, call(pair.c, fn, params, inputs, lr))
            except ValueError:
                self.refused += 1
                if is_dict and snapshot(params) != before:
                    self.problems.append(f"{label}: refused, but changed the params")
                return
            except Exception as e:  # noqa: BLE001 - the finding
                self.problems.append(f"{label}: {type(e).__name__}: {e}")
                return
        self.returned += 1
        if isinstance(want, Exception):
            self.problems.append(f"{label}: C returned, NumPy raised {want!r}")
            return
        if fn == "train_step":
            got.update({f"after {k}": v for k, v in params.items()})
            want.update({f"after {k}": v for k, v in ref_params.items()})
        try:
            assert_close(got, want)
        except AssertionError as e:
            self.problems.append(f"{label}: differs from NumPy: {e}")

    def summary(self) -> dict:
        return {
            "calls": self.calls,
            "returned": self.returned,
            "refused": self.refused,
            "problems": self.problems[:20],
        }


def hostile_calls(pairs: dict[str, Pair], folder: Path) -> list[str]:
    """Arguments that crashed or corrupted memory before the wrapper was fixed; what each
    did instead (it must not crash)."""
    seen = []
    scalar, mlp = pairs["scalar"].c, pairs["mlp"].c
    inputs = make_inputs(scalar)
    # a read-only memory map read by loss, then passed to train_step: a write would SIGSEGV
    path = folder / "params.bin"
    np.array([0.5, -0.25]).tofile(path)
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        view = np.frombuffer(mapped, dtype=np.float64)
        params = {"w": view[0:1].reshape(()), "b": view[1:2].reshape(())}
        seen.append(f"loss {scalar.loss(params, **inputs):.6f}")
        try:
            scalar.train_step(params, LR, **inputs)
        except ValueError as e:
            seen.append(f"train_step: {e}")
        del view, params
        mapped.close()
    assert path.read_bytes() == np.array([0.5, -0.25]).tobytes()

    class Shifty:  # a different size each time NumPy asks for its values
        def __init__(self, sizes):
            self.sizes = iter(sizes)

        def __array__(self, dtype=None, copy=None):
            return np.zeros(next(self.sizes, 100_000))

    for fn in FUNCTIONS:
        try:
            result = call(
                scalar,
                fn,
                scalar.init_params(),
                {"x": Shifty([1, 100_000]), "y": Shifty([1, 100_000])},
            )
            seen.append(f"{fn}: returned {type(result).__name__}")
        except ValueError as e:
            seen.append(f"{fn}: {e}")
        params = make_params(mlp)
        params["W1"] = Shifty([20, 1])
        try:
            call(mlp, fn, params, make_inputs(mlp))
            seen.append(f"{fn}: returned")
        except ValueError as e:
            seen.append(f"{fn}: {e}")
    return seen


CAMPAIGN = """\
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import test_c_backend as t
paths = {k: Path(v) for k, v in json.loads(sys.argv[2]).items()}
pairs = t.compile_pairs(paths)
hostile = t.hostile_calls(pairs, Path(sys.argv[3]))
summary = t.Campaign(pairs, seed=int(sys.argv[4])).run(int(sys.argv[5])).summary()
print(json.dumps({**summary, "hostile": hostile}))
"""


def test_campaign_in_process(pairs, tmp_path):
    hostile = hostile_calls(pairs, tmp_path)
    assert "(it is read-only)" in hostile[1]
    assert len(hostile) == 2 + 2 * len(FUNCTIONS)
    summary = Campaign(pairs, seed=1).run(scale(1500)).summary()
    print(f"RELIABILITY campaign in-process: {summary}")
    assert summary["problems"] == []
    assert summary["returned"] > 300 and summary["refused"] > 300


def test_campaign_in_a_subprocess(spec_paths, pairs, tmp_path):
    """The same in a child process, longer: a crash there is a failure of this test."""
    paths = json.dumps({k: str(v) for k, v in spec_paths.items()})
    calls = scale(4000)
    child = subprocess.run(
        [sys.executable, "-c", CAMPAIGN, str(HERE), paths, str(tmp_path), "2", str(calls)],
        capture_output=True,
        text=True,
        timeout=600 * scale(1),
    )
    assert child.returncode == 0, f"the campaign died ({child.returncode}): {child.stderr}"
    summary = json.loads(child.stdout)
    counts = {k: v for k, v in summary.items() if k != "hostile"}
    print(f"RELIABILITY campaign in a subprocess: {counts}")
    assert summary["problems"] == []
    assert summary["calls"] == calls
    assert summary["returned"] > 800 and summary["refused"] > 800
    assert len(summary["hostile"]) == 2 + 2 * len(FUNCTIONS)
    assert "(it is read-only)" in summary["hostile"][1]


# ------------------------------------------------------------------------ build cache


def tiny_spec(folder: Path, k: int) -> Path:
    """A small network of its own (``k`` is in its constants), new to every cache."""
    path = folder / f"tiny{k}.sbp"
    path.write_text(
        f"x: Input[2]\nw: Param[2] = {k}.5\nC: Loss = (sum(w * x) - {k}) ** 2\n", encoding="utf-8"
    )
    return path


def entries(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def leftovers(root: Path) -> list[str]:
    """Temporary build folders and trash left behind (lock files, one per network, the
    spec index stay)."""
    return sorted(
        p.name
        for p in root.iterdir()
        if p.name.startswith(".") and not p.name.endswith(".lock") and p.name != cbuild.INDEX
    )


def check_works(mod, spec: Path) -> None:
    ref = symbp.compile(spec)
    params, inputs = make_params(ref, 5), make_inputs(ref, 3, 5)
    assert_close(
        flat("loss_and_grads", mod.loss_and_grads(params, **inputs)),
        flat("loss_and_grads", ref.loss_and_grads(params, **inputs)),
    )


def extension(entry: Path) -> Path:
    [so] = [p for p in entry.iterdir() if p.name.endswith((".so", ".pyd"))]
    return so


def test_cache_dir_is_honoured_and_reused(tmp_path, monkeypatch):
    root = tmp_path / "not" / "yet" / "there"
    monkeypatch.setenv("SYMBP_CACHE_DIR", str(root))
    spec = tiny_spec(tmp_path, 1)
    mod = symbp.compile(spec, backend="c")
    [entry] = entries(root)
    assert Path(mod.__file__) == entry / "__init__.py"
    so = extension(entry)
    names = sorted(p.name for p in entry.iterdir() if p.is_file())
    assert names == sorted(["__init__.py", "manifest.json", "tiny1.c", so.name])
    manifest = json.loads((entry / "manifest.json").read_text())
    assert sorted(manifest) == sorted(["__init__.py", "tiny1.c", so.name])
    before = so.stat()
    check_works(mod, spec)
    again = symbp.compile(spec, backend="c")  # a hit: nothing built, nothing written
    assert Path(again.__file__) == entry / "__init__.py" and entries(root) == [entry]
    after = so.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert leftovers(root) == []
    check_works(again, spec)


def test_cache_dir_defaults_to_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("SYMBP_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cbuild.cache_dir() == tmp_path / "symbp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cbuild.cache_dir() == Path.home() / ".cache" / "symbp"


def test_cache_key_depends_on_the_cpu(monkeypatch):
    """-march=native binaries must not move between machines sharing a cache folder."""
    files = {"__init__.py": "", "tiny.c": "int f(void) { return 0; }"}
    key = cbuild.cache_key(files, "int f(void);", "_tiny")
    assert key == cbuild.cache_key(dict(files), "int f(void);", "_tiny")
    monkeypatch.setattr(toolchain, "_cpu_identity", lambda: "another cpu")
    assert cbuild.cache_key(files, "int f(void);", "_tiny") != key


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A built entry never loaded by this process (damaging a loaded .so in place could
    crash it): (spec, entry)."""
    folder = tmp_path_factory.mktemp("pristine")
    spec = tiny_spec(folder, 2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYMBP_CACHE_DIR", str(folder / "cache"))
        entry = c_package(spec)
    return spec, entry


def _truncate(entry):
    so = extension(entry)
    so.write_bytes(so.read_bytes()[: so.stat().st_size // 2])


DAMAGE = {
    "truncated .so": _truncate,
    "garbage .so": lambda e: extension(e).write_bytes(os.urandom(extension(e).stat().st_size)),
    "deleted .so": lambda e: extension(e).unlink(),
    "garbage wrapper": lambda e: (e / "__init__.py").write_text("raise SystemExit(3)\n"),
    "deleted wrapper": lambda e: (e / "__init__.py").unlink(),
    "garbage manifest": lambda e: (e / "manifest.json").write_bytes(b"\x00{garbage"),
    "empty manifest": lambda e: (e / "manifest.json").write_text("{}"),
    "entry is a file": lambda e: (shutil.rmtree(e), e.write_text("not a folder")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_entry_is_rebuilt(pristine, tmp_path, monkeypatch, damage):
    spec, built = pristine
    root = tmp_path / "cache"
    entry = root / built.name
    shutil.copytree(built, entry)
    DAMAGE[damage](entry)
    monkeypatch.setenv("SYMBP_CACHE_DIR", str(root))
    assert c_package(spec) == entry
    assert entries(root) == [entry] and leftovers(root) == []
    manifest = json.loads((entry / "manifest.json").read_text())
    assert {n: hashlib.sha256((entry / n).read_bytes()).hexdigest() for n in manifest} == manifest
    assert sorted(manifest) == sorted(p.name for p in built.iterdir() if p.name != "manifest.json")
    mod = cbuild.load_package(entry, "symbp_damaged_" + damage.replace(" ", "_").replace(".", ""))
    assert Path(mod.__file__).parent == entry
    check_works(mod, spec)


def test_cache_path_that_is_a_file(tmp_path, monkeypatch):
    spec = tiny_spec(tmp_path, 3)
    taken = tmp_path / "taken"
    taken.write_text("")
    for root, why in [(taken, "exists and is not a folder"), (taken / "below", "Not a directory")]:
        monkeypatch.setenv("SYMBP_CACHE_DIR", str(root))
        with pytest.raises(toolchain.BuildError) as info:
            symbp.compile(spec, backend="c")
        assert str(info.value) == (
            f"cannot write the build cache {root}: {why}; set SYMBP_CACHE_DIR to a writable folder"
        )
    assert taken.read_text() == ""


def test_read_only_cache_dir(tmp_path, monkeypatch):
    """Without write permission: a clear error. Root writes anyway (the permission bits do
    not bind it), and then the build must simply work."""
    root = tmp_path / "read-only"
    root.mkdir()
    root.chmod(0o555)
    monkeypatch.setenv("SYMBP_CACHE_DIR", str(root))
    spec = tiny_spec(tmp_path, 4)
    try:
        if os.access(root, os.W_OK):  # running as root
            check_works(symbp.compile(spec, backend="c"), spec)
            assert len(entries(root)) == 1
        else:
            with pytest.raises(toolchain.BuildError) as info:
                symbp.compile(spec, backend="c")
            assert str(info.value) == (
                f"cannot write the build cache {root}: Permission "
                "denied; set SYMBP_CACHE_DIR to a writable folder"
            )
            assert entries(root) == [] and leftovers(root) == []
    finally:
        root.chmod(0o755)


def test_read_only_cache_with_the_entry_built_still_loads(pristine, tmp_path, monkeypatch):
    """A shared, read-only cache holding the build: found and loaded, nothing written."""
    spec, built = pristine
    root = tmp_path / "shared"
    entry = root / built.name
    shutil.copytree(built, entry)
    for path in [entry, *entry.iterdir()]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    root.chmod(0o555)
    monkeypatch.setenv("SYMBP_CACHE_DIR", str(root))
    try:
        before = extension(entry).stat()
        mod = cbuild.load_package(c_package(spec), "symbp_read_only_entry")
        check_works(mod, spec)
        assert extension(entry).stat().st_mtime_ns == before.st_mtime_ns
        assert entries(root) == [entry] and leftovers(root) == []
    finally:
        root.chmod(0o755)
        entry.chmod(0o755)


# Children of the concurrency tests: each compiles, when told to go, and reports.
CHILD = """\
import json, sys, time
from pathlib import Path
import numpy as np
import symbp
spec, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.002)
m = symbp.compile(spec, backend="c")
rng = np.random.default_rng(5)
params = {k: rng.uniform(-1, 1, s) for k, s in m.PARAMS.items()}
inputs = {k: rng.uniform(-1, 1, (3, *s)) for k, s in m.INPUTS.items()}
print(json.dumps({"file": m.__file__, "loss": m.loss(params, **inputs).hex()}))
"""


def race(specs: list[Path], root: Path, folder: Path) -> list[dict]:
    """Start one child per spec, all compiling at the same moment; their reports."""
    env = {**os.environ, "SYMBP_CACHE_DIR": str(root)}
    go = folder / "go"
    children = []
    for k, spec in enumerate(specs):
        ready = folder / f"ready{k}"
        children.append(
            (
                ready,
                subprocess.Popen(
                    [sys.executable, "-c", CHILD, str(spec), str(ready), str(go)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    try:
        for ready, child in children:
            while not ready.exists():
                assert child.poll() is None, child.communicate()[1]
                time.sleep(0.01)
        go.touch()
        outs = [child.communicate(timeout=300) for _, child in children]
    finally:
        for _, child in children:
            child.kill() if child.poll() is None else None
    for (_, child), (_, err) in zip(children, outs, strict=True):
        assert child.returncode == 0, err
    return [json.loads(out) for out, _ in outs]


def reference_loss(spec: Path) -> str:
    m = symbp.compile(spec)
    rng = np.random.default_rng(5)
    params = {k: rng.uniform(-1, 1, s) for k, s in m.PARAMS.items()}
    inputs = {k: rng.uniform(-1, 1, (3, *s)) for k, s in m.INPUTS.items()}
    return m.loss(params, **inputs)


def test_eight_processes_build_one_new_network(tmp_path):
    spec = tiny_spec(tmp_path, 6)
    root = tmp_path / "cache"
    reports = race([spec] * scale(8, 2), root, tmp_path)  # 16 under --long
    [entry] = entries(root)
    assert {r["file"] for r in reports} == {str(entry / "__init__.py")}
    assert len({r["loss"] for r in reports}) == 1
    assert float.fromhex(reports[0]["loss"]) == pytest.approx(reference_loss(spec), rel=1e-12)
    assert leftovers(root) == []


def test_processes_build_different_networks_and_repair_one(pristine, tmp_path):
    """Two new networks, and a damaged entry two processes repair at once."""
    damaged_spec, built = pristine
    root = tmp_path / "cache"
    shutil.copytree(built, root / built.name)
    _truncate(root / built.name)
    specs = [tiny_spec(tmp_path, k) for k in (7, 8)] + [damaged_spec] * 2
    reports = race(specs, root, tmp_path)
    assert len(entries(root)) == 3 and leftovers(root) == []
    for spec, report in zip(specs, reports, strict=True):
        assert Path(report["file"]).parent.parent == root
        assert float.fromhex(report["loss"]) == pytest.approx(reference_loss(spec), rel=1e-12)
    assert reports[2]["file"] == reports[3]["file"] == str(root / built.name / "__init__.py")


# --------------------------------------------------------------------------- compilers


def test_missing_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setenv("SYMBP_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(toolchain.BuildError) as info:
        symbp.compile(tiny_spec(tmp_path, 10), backend="c")
    message = str(info.value)
    assert "'/nonexistent/cc'" in message and "--backend numpy" in message


def test_compiler_that_fails(tmp_path, monkeypatch):
    fake = tmp_path / "fake-cc"
    fake.write_text("#!/bin/sh\necho 'fake-cc: cannot compile' >&2\nexit 1\n")
    fake.chmod(0o755)
    root = tmp_path / "cache"
    monkeypatch.setenv("CC", str(fake))
    monkeypatch.setenv("SYMBP_CACHE_DIR", str(root))
    with pytest.raises(toolchain.BuildError) as info:
        symbp.compile(tiny_spec(tmp_path, 11), backend="c")
    message = str(info.value)
    assert message.startswith(f"compiling tiny11.c with the C compiler '{fake}' failed: ")
    assert message.endswith("set CC to a working C compiler or use --backend numpy")
    assert entries(root) == [] and leftovers(root) == []


def test_cli_without_compiler(tmp_path):
    out = tmp_path / "out"
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "symbp",
            "compile",
            str(tiny_spec(tmp_path, 12)),
            "--backend",
            "c",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CC": "/nonexistent/cc", "SYMBP_CACHE_DIR": str(tmp_path / "c")},
    )
    assert (child.returncode, child.stdout) == (2, "")
    assert child.stderr == (
        "symbp: error: no C compiler found (looked for '/nonexistent/cc'); install one "
        "(e.g. gcc) or use --backend numpy\n"
    )
    assert not out.exists()


# ------------------------------------------------------------------------ package output

STANDALONE = """\
import importlib.abc, json, sys
import numpy as np

class NoSymbp(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "symbp":
            raise ImportError("the package must not import symbp")

sys.meta_path.insert(0, NoSymbp())
sys.path.insert(0, sys.argv[1])
import mlp_c
data = np.load(sys.argv[2])
params = {k[2:]: data[k] for k in data.files if k.startswith("p.")}
inputs = {k[2:]: data[k] for k in data.files if k.startswith("x.")}
loss, grads = mlp_c.loss_and_grads(params, **inputs)
step = mlp_c.train_step(params, 0.1, **inputs)
try:
    import symbp
    blocked = False
except ImportError:
    blocked = True
print(json.dumps({
    "loss": loss.hex(), "step": step.hex(), "W1": params["W1"].tolist(),
    "file": mlp_c.__file__, "blocked": blocked,
    "symbp_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "symbp"),
}))
"""


def test_cli_package_imports_elsewhere_without_symbp(spec_paths, pairs, tmp_path):
    packages = tmp_path / "packages"
    out = packages / "mlp_c"
    packages.mkdir()
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "symbp",
            "compile",
            str(spec_paths["mlp"]),
            "--backend",
            "c",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (child.returncode, child.stderr) == (0, ""), child.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names[0] == "__init__.py" and "mlp.c" in names and "manifest.json" not in names
    mod = pairs["mlp"].c
    params, inputs = make_params(mod), make_inputs(mod)
    data = tmp_path / "data.npz"
    np.savez(
        data, **{f"p.{k}": v for k, v in params.items()}, **{f"x.{k}": v for k, v in inputs.items()}
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    child = subprocess.run(
        [sys.executable, "-I", "-c", STANDALONE, str(packages), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=elsewhere,
    )
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout)
    assert seen["blocked"] and seen["symbp_loaded"] == []
    assert seen["file"] == str(out / "__init__.py")
    loss, _ = mod.loss_and_grads(params, **inputs)
    assert seen["loss"] == loss.hex()
    assert seen["step"] == mod.train_step(params, 0.1, **inputs).hex()
    assert_close({"W1": seen["W1"]}, {"W1": params["W1"]})
