"""Per-example matrix products as one GEMM (symbp/codegen/matmul.py ``merged``).

Axes side by side in every operand join into one: a per-example matrix times a weight,
'bpk,ok->bpo', is the matrix product 'bk,ok->bo' of (n*p x k) and (k x o), and so are its
gradients 'bpo,ok->bpk' and, summed over the batch, 'bpo,bpk->ok' (the weight's, folded into
train_step's update). The joining is checked on subscripts against np.einsum; the C modules
against the NumPy ones to 1e-12 in float64, and their text for GEMM calls where the products
join and loops where they do not.
"""

import itertools
import os
import re
import shutil
import textwrap

import numpy as np
import pytest

import symbp
from symbp.codegen.matmul import matmul_form, merged

C_COMPILER = shutil.which(os.environ.get("CC", "cc").split()[0]) or shutil.which("gcc")
needs_cc = pytest.mark.skipif(not C_COMPILER, reason="no C compiler")

# ------------------------------------------------------------------ joining subscripts


@pytest.mark.parametrize(
    "subscripts, want",
    [
        # a per-example matrix times a weight, and its two gradients
        (("bpk", "ok", "bpo"), ("bk", "ok", "bo", {"b": "bp"})),
        (("bpo", "ok", "bpk"), ("bo", "ok", "bk", {"b": "bp"})),
        (("bpo", "bpk", "ok"), ("bo", "bk", "ok", {"b": "bp"})),
        # three leading axes join in two steps
        (("bpqk", "ok", "bpqo"), ("bk", "ok", "bo", {"b": "bpq"})),
        # two runs: (a b) the rows, (c d) the contracted axis
        (("abcd", "cd", "ab"), ("ac", "c", "a", {"a": "ab", "c": "cd"})),
        # a weight's trailing axes join with each other, not with the batch
        (("bpij", "bpk", "ijk"), ("bi", "bk", "ik", {"b": "bp", "i": "ij"})),
        # nothing joins: the pair is apart, or in another order, somewhere
        (("bpi", "bpj", "bij"), ("bpi", "bpj", "bij", {})),  # batched @ batched
        (("bij", "bjk", "bik"), ("bij", "bjk", "bik", {})),
        (("ok", "bpk", "bop"), ("ok", "bpk", "bop", {})),  # W @ x.T
        (("bpk", "ok", "pbo"), ("bpk", "ok", "pbo", {})),
        (("bj", "ij", "bi"), ("bj", "ij", "bi", {})),  # a batch of vectors: already a GEMM
        (("ij", "jk", "ik"), ("ij", "jk", "ik", {})),
        # a repeated letter (a diagonal) joins nothing
        (("iij", "jk", "ik"), ("iij", "jk", "ik", {})),
    ],
)
def test_merged(subscripts, want):
    assert merged(*subscripts) == want


def test_merged_products_are_single_matrix_products():
    """The three contractions of a per-example matrix times a weight are each one GEMM:
    (swap, transpose left, transpose right) of the joined subscripts."""
    products = [("bpk", "ok", "bpo"), ("bpo", "ok", "bpk"), ("bpo", "bpk", "ok")]
    forms = {s: matmul_form(*merged(*s)[:3]) for s in products}
    assert forms == {
        ("bpk", "ok", "bpo"): (False, False, True),  # x @ W.T
        ("bpo", "ok", "bpk"): (False, False, False),  # dz @ W
        ("bpo", "bpk", "ok"): (False, True, False),  # dz.T @ x, contracted over n*p
    }


def _random_subscripts(rng: np.random.Generator) -> tuple[str, str, str]:
    def some(letters) -> str:
        letters = list(letters)
        k = int(rng.integers(0, len(letters) + 1))
        return "".join(rng.permutation(letters)[:k])

    sa, sb = some("bijkl"), some("bijkl")
    return sa, sb, some(set(sa + sb))


def test_merged_contractions_are_the_same_contraction():
    """einsum over the joined axes (operands reshaped to them) is einsum over the original
    ones, reshaped; what matmul_form takes already joins nothing."""
    rng = np.random.default_rng(0)
    for _ in range(400):
        sa, sb, so = _random_subscripts(rng)
        size = {ch: int(rng.integers(1, 4)) for ch in "bijkl"}
        a = rng.standard_normal([size[ch] for ch in sa])
        b = rng.standard_normal([size[ch] for ch in sb])
        want = np.einsum(f"{sa},{sb}->{so}", a, b)
        ma, mb, mo, groups = merged(sa, sb, so)
        joined = dict(size)
        joined.update({ch: int(np.prod([size[c] for c in run])) for ch, run in groups.items()})
        got = np.einsum(
            f"{ma},{mb}->{mo}",
            a.reshape([joined[ch] for ch in ma]),
            b.reshape([joined[ch] for ch in mb]),
        )
        np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-12, err_msg=(sa, sb, so))
        assert merged(ma, mb, mo)[:3] == (ma, mb, mo)  # nothing is left to join
        if matmul_form(sa, sb, so) is not None:
            assert (ma, mb, mo, groups) == (sa, sb, so, {})


# --------------------------------------------------------------------- the C modules

SPECS = {
    # the rows of a per-example matrix times a weight: every product joins
    "rows": """\
        x: Input[12, 5]
        t: Input[12, 3]
        W: Param[3, 5] = glorot
        b: Param[3] = zeros
        z = x @ W.T + b
        C: Loss = 0.5 * sum((tanh(z) - t) ** 2)
        """,
    # two layers: the hidden rows' gradient dz @ W2.T is one GEMM too
    "layers": """\
        x: Input[12, 5]
        t: Input[12, 3]
        W1: Param[4, 5] = glorot
        W2: Param[4, 3] = glorot
        h = tanh(x @ W1.T)
        z = h @ W2
        C: Loss = 0.5 * sum((z - t) ** 2)
        """,
    # three per-example axes, two of them rows
    "three_axes": """\
        x: Input[2, 6, 5]
        W: Param[3, 5] = glorot
        C: Loss = 0.5 * sum(tanh(x @ W.T) ** 2)
        """,
    # im2col patches times a reshaped kernel: the update folds through the reshape
    "patches": """\
        P: Input[16, 9]
        t: Input[16, 4]
        K: Param[4, 1, 3, 3] = glorot
        z = P @ reshape(K, (4, 9)).T
        C: Loss = 0.5 * sum((tanh(z) - t) ** 2)
        """,
    # batched @ batched per example (a Gram matrix): loops, next to a product that joins
    "gram": """\
        x: Input[4, 5]
        V: Param[5, 3] = glorot
        h = tanh(x @ V)
        G = h.T @ h
        C: Loss = 0.5 * sum(G ** 2)
        """,
    # W @ x.T: the batch and the rows are apart in the result, nothing joins: one GEMM per
    # example, as for the batched @ batched of gram
    "columns": """\
        x: Input[12, 5]
        t: Input[3, 12]
        W: Param[3, 5] = glorot
        z = W @ x.T
        C: Loss = 0.5 * sum((tanh(z) - t) ** 2)
        """,
}

# (GEMM calls, loops of a contraction) in forward_pass, loss_and_grads and train_step
EXPECTED = {
    "rows": ((1, 0), (1, 0), (1, 0)),
    "layers": ((2, 0), (3, 0), (3, 0)),
    "three_axes": ((1, 0), (1, 0), (1, 0)),
    "patches": ((1, 0), (1, 0), (1, 0)),
    "gram": ((2, 0), (3, 0), (3, 0)),
    "columns": ((1, 0), (1, 0), (1, 0)),
}
GEMM = re.compile(r"\b(gemm_|gemm_small_|scipy_cblas_[sd]gemm)\(")
LOOPS = re.compile(r"^  for \(long _l", re.M)  # the outer loop of a contraction's nest


def graph(name: str):
    return symbp.parse_text(textwrap.dedent(SPECS[name]), name=name)


def body(source: str, function: str) -> str:
    """The text of a C function's body (``forward_pass``, or the suffix of an API one)."""
    match = re.search(rf"[ _]{function}\([^)]*\) \{{\n(.*?)\n\}}\n", source, re.S)
    assert match, function
    return match.group(1)


@pytest.mark.parametrize("name", list(SPECS))
def test_products_that_join_are_gemm_calls(name):
    source = symbp.generate(graph(name), backend="c")
    functions = ("forward_pass", "loss_and_grads", "train_step")
    counts = tuple(
        (len(GEMM.findall(text)), len(LOOPS.findall(text)))
        for text in (body(source, f) for f in functions)
    )
    assert counts == EXPECTED[name]


def test_gemm_calls_of_a_per_example_matrix():
    """x @ W.T over n*12 rows; the weight's gradient contracted over them, folded into the
    update with alpha = -lr/n and beta = 1."""
    source = symbp.generate(graph("rows"), backend="c")
    assert "gemm_(0, 1, _n*12, 3, 5, 1, x, 5, W, 5, 0, " in body(source, "forward_pass")
    grads = body(source, "loss_and_grads")
    assert re.search(r"gemm_\(1, 0, 3, 5, _n\*12, 1, \w+, 3, x, 5, 0, ", grads)
    step = body(source, "train_step")
    assert re.search(r"gemm_\(1, 0, 3, 5, _n\*12, -_lr / _n, \w+, 3, x, 5, 1, W, 5\);", step)


def test_large_products_call_blas_directly():
    """784 rows of 25 times 6 kernels: large for any batch, so BLAS without the run-time
    choice; the sizes' integer factors multiplied out."""
    text = "x: Input[784, 25]\nt: Input[784, 6]\nK: Param[6, 25] = glorot\n"
    text += "C: Loss = 0.5 * sum((tanh(x @ K.T) - t) ** 2)\n"
    source = symbp.generate(symbp.parse_text(text), backend="c", dtype="float32")
    call = "scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, _n*784, 6, 25, 1, x, 25, K"
    assert call in body(source, "forward_pass")
    update = "scipy_cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 6, 25, _n*784, -_lr / _n"
    assert update in body(source, "train_step")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """(C module, NumPy module) of every spec, built in a cache of this module's own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYMBP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield {
            name: (symbp.compile(graph(name), backend="c"), symbp.compile(graph(name)))
            for name in SPECS
        }


def assert_close(got, want, what: str) -> None:
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * scale, err_msg=what)


@needs_cc
@pytest.mark.parametrize("n", [1, 7, 200])
@pytest.mark.parametrize("name", list(SPECS))
def test_c_agrees_with_numpy(pairs, name, n):
    """forward, loss_and_grads and two train_steps, float64, on random values; at n = 200
    the products are large enough for BLAS."""
    c, ref = pairs[name]
    rng = np.random.default_rng(n)
    params = {k: rng.uniform(-1, 1, shape) for k, shape in c.PARAMS.items()}
    inputs = {k: rng.uniform(-1, 1, (n, *shape)) for k, shape in c.INPUTS.items()}
    for key, value in ref.forward(params, **inputs).items():
        assert_close(c.forward(params, **inputs)[key], value, key)
    loss, grads = c.loss_and_grads(params, **inputs)
    want_loss, want_grads = ref.loss_and_grads(params, **inputs)
    assert_close(loss, want_loss, "loss")
    for key, value in want_grads.items():
        assert_close(grads[key], value, f"d{key}")
    mine = {k: v.copy() for k, v in params.items()}
    for step in range(2):
        assert_close(c.train_step(mine, 0.1, **inputs), ref.train_step(params, 0.1, **inputs), "")
        for key, value in params.items():
            assert_close(mine[key], value, f"{key} after step {step + 1}")


def test_every_weight_product_joins_to_a_matrix_product():
    """Every way a per-example matrix (p rows) meets a weight on either side, with either
    transposed: the contraction joins to one matrix product when the batch and p are side
    by side in both the matrix and the result."""
    for sa, sb in itertools.product(["bpk", "bkp"], ["ok", "ko"]):
        for so in ("bpo", "bop"):
            form = matmul_form(*merged(sa, sb, so)[:3])
            assert (form is not None) == (sa == "bpk" and so == "bpo"), (sa, sb, so)


def test_a_reshaped_kernel_folds_into_its_update():
    """The gradient of K: Param[4, 1, 3, 3] used as reshape(K, (4, 9)) is the reshape of a
    weight gradient: train_step writes it into K with the update GEMM, no buffer for it."""
    step = body(symbp.generate(graph("patches"), backend="c"), "train_step")
    assert re.search(r"gemm_\(1, 0, 4, 9, _n\*16, -_lr / _n, \w+, 4, P, 9, 1, K, 9\);", step)
    assert "dK" not in step
