"""Gradients of every op of the spec language, one table of cases checked several ways.

Each case is a tiny spec whose value of interest is ``y``; the harness adds the Loss
``sum(y * y + sin(y))`` (nonlinear, so a gradient with the wrong layout cannot hide behind a
constant adjoint). Every case is checked

- against central finite differences of the generated ``loss`` (float64, our own stencil),
  for the NumPy and the C backend,
- by a VJP inner-product test: with a random cotangent ``cot`` on ``y`` and a random
  direction v on the Params, <grad of mean(<cot, y>), v> = mean(<cot, dy/dv>),
- by ``symbp.check_grads``, for both backends,
- in float32 against float64, and for the batch axis of ``forward``.

Then closed forms from ``sympy.diff`` for the lecture's scalar examples, and numerical
stability of the saturating functions at logits of magnitude 1000.
"""

import zlib
from dataclasses import dataclass

import numpy as np
import pytest
import sympy
from conftest import (
    BATCH,
    assert_grads_match,
    derivative,
    finite_differences,
    random_inputs,
    random_params,
)

import symbp
from symbp.check.gradients import check_module
from symbp.ir.functions import FUNCTIONS, SPEC_FUNCTIONS

LOSS = "C: Loss = sum(y * y + sin(y))"
BACKENDS = ("numpy", "c")


@dataclass(frozen=True)
class Case:
    name: str
    expr: str  # the value y under test
    decls: tuple[tuple[str, str], ...]  # (name, "Param[3, 4]" | "Input[4]" | "Param" ...)
    lines: tuple[str, ...] = ()  # defs and equations before y

    def body(self) -> str:
        out = [line for line in self.lines if line.startswith("def ")]
        for name, kind in self.decls:
            init = {"P": " = zeros", "C": " = uniform(0.5, 1.5)"}.get(kind[0], "")
            out.append(f"{name}: {kind}{init}")
        out += [line for line in self.lines if not line.startswith("def ")]
        out.append(f"y: Output = {self.expr}")
        return "\n".join(out) + "\n"

    def spec(self) -> str:
        return self.body() + LOSS + "\n"

    def vjp_spec(self, shape: tuple[int, ...]) -> str:
        """The same y with the Loss <cot, y> for a random cotangent Input ``cot``."""
        dims = f"[{', '.join(map(str, shape))}]" if shape else ""
        return self.body() + f"cot: Input{dims}\nC: Loss = sum(cot * y)\n"

    def seed(self) -> int:
        return zlib.crc32(self.name.encode())


def op(name: str, expr: str, *lines: str, **decls: str) -> Case:
    return Case(name, expr, tuple(decls.items()), lines)


SWISH = "def swish(u):\n    return u * sigmoid(u)"
BLEND = "def blend(u, v):\n    return u * tanh(v) + v ** 2 / (1 + u * u)"
QUICK_GELU = "def quick_gelu(u):\n    return u * sigmoid(1.702 * u)"
TWICE = "def twice(u):\n    return quick_gelu(quick_gelu(u))"
LEAKY = "def leaky(u):\n    return where(u > 0, u, 0.1 * u)"
KINKED = ("maximum", "minimum", "clip", "where")  # their cases are written out below

PX = {"p": "Param[3]", "x": "Input[3]"}
V3 = {**PX, "q": "Param[3]"}
M34 = {"W": "Param[3, 4]", "X": "Input[3, 4]"}
WX = {"W": "Param[3, 4]", "x": "Input[4]"}
VX = {"v": "Param[4]", "x": "Input[4]"}

GATHER2 = {"E": "Param[4, 3]", "F": "Param[5, 3]", "ids": "Input[6]", "x": "Input[3]"}
GATHER_BATCHED = {"W": "Param[4, 3]", "X": "Input[4, 3]", "ids": "Input[5]"}
GATHER_EXPR = {"E": "Param[4, 3]", "A": "Param[3, 2]", "ids": "Input[6]", "x": "Input[2]"}
BAG = {"E": "Param[4, 3]", "W": "Param[2, 3]", "ids": "Input[6]", "x": "Input[2]"}

CASES = [
    # arithmetic, with Params on both sides of every operator
    op("add", "p + q + x", **V3),
    op("sub", "x - p - q", **V3),
    op("mul", "p * q * x", **V3),
    op("div", "p / q + x / p", **V3),
    op("neg", "-(p * x) + -q", **V3),
    op("constants", "2 * p + 1 - p / 4 - 3 * q * x", **V3),
    op("pow_int", "p ** 3 + q ** 2 * x", **V3),
    op("pow_negative", "(1 + p * p) ** -1.5 * x", **PX),
    op("pow_fraction", "(1 + p * p) ** 2.5 + x", **PX),
    op("pow_param_exponent", "(1 + p * p) ** q * x", **V3),
    op("pow_input_exponent", "(1 + p * p) ** x", **PX),
    op("pow_input_base", "(1 + x * x) ** p", **PX),
    op("pow_number_base", "2 ** (p * x)", **PX),
    # @ in every rank combination, Inputs and Params on either side
    op("matvec_param_input", "W @ x", **WX),
    op("matvec_input_param", "X @ v", X="Input[3, 4]", v="Param[4]"),
    op("matvec_param_param", "W @ v * x", W="Param[3, 4]", v="Param[4]", x="Input[3]"),
    op("vecmat_input_param", "x @ W", x="Input[3]", W="Param[3, 4]"),
    op("vecmat_param_input", "v @ X", v="Param[3]", X="Input[3, 4]"),
    op("vecmat_param_param", "v @ W + x", v="Param[3]", W="Param[3, 4]", x="Input[4]"),
    op("matmat_param_input", "A @ X", A="Param[2, 3]", X="Input[3, 4]"),
    op("matmat_input_param", "X @ B", X="Input[2, 3]", B="Param[3, 4]"),
    op("matmat_param_param", "A @ B + X", A="Param[2, 3]", B="Param[3, 4]", X="Input[2, 4]"),
    op("matmat_input_input", "(X @ Z) * P", X="Input[2, 3]", Z="Input[3, 4]", P="Param[2, 4]"),
    op("vecvec_param_input", "v @ x", v="Param[4]", x="Input[4]"),
    op("vecvec_input_param", "x @ v", v="Param[4]", x="Input[4]"),
    op("vecvec_param_param", "(u @ v) * x", u="Param[4]", v="Param[4]", x="Input[2]"),
    op("vecvec_same_param", "v @ v + x", v="Param[4]", x="Input[2]"),
    op("matmul_chain", "A @ (B @ x)", A="Param[2, 3]", B="Param[3, 4]", x="Input[4]"),
    op("stack_param_input", "A @ x", A="Param[2, 3, 4]", x="Input[4]"),
    op("stack_input_param", "X @ B", X="Input[2, 3, 4]", B="Param[4, 2]"),
    op("stack_param_stack", "A @ X", A="Param[2, 3, 4]", X="Input[2, 4, 3]"),
    # .T
    op("transpose_param", "W.T + X", W="Param[3, 4]", X="Input[4, 3]"),
    op("transpose_matvec", "W.T @ x", W="Param[3, 4]", x="Input[3]"),
    op("transpose_input", "X.T @ v", X="Input[3, 4]", v="Param[3]"),
    op("transpose_product", "(A @ X).T * P", A="Param[2, 3]", X="Input[3, 4]", P="Param[4, 2]"),
    op("transpose_vector", "v.T * x", v="Param[3]", x="Input[3]"),
    op("transpose_twice", "W.T.T * X", **M34),
    # elementwise built-ins; arguments stay inside the domain and away from kinks (every
    # function of symbp.ir.functions not named here is smooth on the whole real line)
    *(op(f, f"{f}(W @ x)", **WX) for f in ("sin", "cos")),
    op("relu", "relu(p * x)", **PX),
    op("abs", "abs(p * x) * q", **V3),
    op("log", "log(p * p + x * x)", **PX),
    op("log_matvec", "log(1 + (W @ x) ** 2)", **WX),
    op("sqrt", "sqrt(p * p + x * x)", **PX),
    *(
        op(f, f"{f}(p * x + q)", **V3)
        for f in SPEC_FUNCTIONS
        if f not in ("sin", "cos", "relu", "abs", "log", "sqrt", *KINKED)
    ),
    # reductions
    op("sum_all", "sum(W * X)", **M34),
    op("sum_axis0", "sum(W * X, axis=0)", **M34),
    op("sum_axis1", "sum(W * X, axis=1)", **M34),
    op("sum_axis_minus1", "sum(W * X, axis=-1)", **M34),
    op("sum_axis_minus2", "sum(W * X, axis=-2)", **M34),
    op("sum_axes_tuple", "sum(A * X, axis=(0, 2))", A="Param[2, 3, 4]", X="Input[2, 3, 4]"),
    op("sum_param_only", "sum(v) * x", v="Param[4]", x="Input[2]"),
    op("mean_all", "mean(W * X)", **M34),
    op("mean_axis0", "mean(W * X, axis=0)", **M34),
    op("mean_axis_minus1", "mean(W * X, axis=-1)", **M34),
    op("mean_rank3", "mean(A * X, axis=-2)", A="Param[2, 3, 4]", X="Input[2, 3, 4]"),
    op("logsumexp_vector", "logsumexp(W @ x)", **WX),
    op("logsumexp_all", "logsumexp(W * X)", **M34),
    op("logsumexp_axis0", "logsumexp(W * X, axis=0)", **M34),
    op("logsumexp_axis_minus1", "logsumexp(W * X, axis=-1)", **M34),
    op("softmax_vector", "softmax(W @ x)", **WX),
    op("softmax_matrix", "softmax(W * X)", **M34),
    op("softmax_axis0", "softmax(W * X, axis=0)", **M34),
    op("log_softmax_vector", "log_softmax(W @ x)", **WX),
    op("log_softmax_matrix", "log_softmax(W * X)", **M34),
    op("log_softmax_axis0", "log_softmax(W * X, axis=0)", **M34),
    op("cross_entropy", "cross_entropy(W @ x, t)", **WX, t="Input[3]"),
    op("cross_entropy_param_target", "cross_entropy(W @ x, softmax(s))", **WX, s="Param[3]"),
    op("cross_entropy_matrix", "cross_entropy(W * X, T)", **M34, T="Input[3, 4]"),
    # user functions, their derivatives from sympy
    op("def_swish", "swish(W @ x)", SWISH, **WX),
    op("def_two_args", "blend(p * x, q)", BLEND, **V3),
    op("def_two_args_broadcast", "blend(W @ x, s)", BLEND, **WX, s="Param"),
    op("def_nested", "twice(p * x + q)", QUICK_GELU, TWICE, **V3),
    # broadcasting between Params and batched Inputs of different ranks
    op("bcast_matrix_param_vector_input", "W * x", **WX),
    op("bcast_vector_param_matrix_input", "v + X * v", v="Param[4]", X="Input[3, 4]"),
    op("bcast_column_param", "c * x", c="Param[3, 1]", x="Input[4]"),
    op("bcast_scalar_param", "s * x + s", s="Param", x="Input[3]"),
    op("bcast_scalar_input", "W * t", W="Param[2, 3]", t="Input"),
    op("bcast_row_and_column", "r + c * x", r="Param[1, 4]", c="Param[3, 1]", x="Input[4]"),
    op("bcast_rank3", "A * x + v", A="Param[2, 3, 4]", x="Input[3, 1]", v="Param[4]"),
    # sharing: gradients add at branches
    op("param_reused", "W.T @ tanh(W @ x) + sum(W) * v", **WX, v="Param[4]"),
    op("intermediate_reused", "h * h + h / (1 + p * p)", "h = sigmoid(p * x)", **PX),
    op("input_reused", "p * x + q * x * x", **V3),
    # a Param the loss does not reach (it feeds an Output only): its gradient is zero
    op("unreached_param", "p * x", "o: Output = tanh(z)", **PX, z="Param[2, 2]"),
    # gather E[ids] by an integer Input: a table of fewer rows than ids, so ids repeat in
    # every example and their rows' gradients must add up
    op("gather_ids_vector", "E[ids] * x", E="Param[4, 3]", ids="Input[6]", x="Input[6, 3]"),
    op("gather_ids_scalar", "E[i] + x", E="Param[4, 3]", i="Input", x="Input[3]"),
    op("gather_ids_matrix", "E[ids] * x", E="Param[3, 2]", ids="Input[2, 3]", x="Input[2]"),
    op("gather_rows_of_one", "v[ids] * x", v="Param[4]", ids="Input[6]", x="Input[6]"),
    op("gather_rank3_table", "K[ids] * x", K="Param[3, 2, 2]", ids="Input[4]", x="Input[2]"),
    op("gather_two_tables", "E[ids] * F[ids] + x", **GATHER2),
    op("gather_batched_table", "T[ids]", "T = W * X", **GATHER_BATCHED),
    op("gather_expression", "tanh(E @ A)[ids] * x", **GATHER_EXPR),
    op("embedding_bag", "W @ mean(E[ids], axis=0) + x", **BAG),
    # no Input: no batch, the loss is its value
    op("no_input", "(a + b) * (b + c)", a="Param", b="Param", c="Param"),
    op("no_input_tensors", "sum(W @ v) * s", W="Param[3, 4]", v="Param[4]", s="Param"),
    # consts: used like Params, given with them, never differentiated
    op("const_matvec", "P @ (p * x)", P="Const[3, 4]", p="Param[4]", x="Input[4]"),
    op("const_temperature", "tanh(W @ x / t)", **WX, t="Const"),
    op("const_scales_param", "(A * P) @ x + P @ v", A="Param[3, 4]", P="Const[3, 4]", **VX),
    op("const_no_input", "sum(P @ v) * s", P="Const[3, 4]", v="Param[4]", s="Param"),
    # indexing: slices (their adjoints add up where they meet), joins, reshapes
    op("index_int", "X[1] * p", X="Input[3, 4]", p="Param[4]"),
    op("index_negative_and_slice", "W[-1, 1:3] * X[0, ::2]", W="Param[3, 4]", X="Input[2, 4]"),
    op("slice_steps_reversed", "W[::-2, 3:0:-1] * X[1:, :3]", **M34),
    op("slice_columns_add", "W[:, 2] + W[:, 0] * x", W="Param[3, 4]", x="Input[3]"),
    op("slices_overlap", "p[1:] * p[:-1] + x", p="Param[4]", x="Input[3]"),
    op("slice_of_input_matmul", "W @ X[1]", W="Param[2, 4]", X="Input[3, 4]"),
    op("slice_of_product", "(A @ X)[:, 1:3]", A="Param[2, 3]", X="Input[3, 4]"),
    op("slice_of_slice", "W[1:][:, ::-1][0] * x", W="Param[3, 4]", x="Input[4]"),
    op("concatenate_mixed", "concatenate([W @ x, p, x[:2]], axis=0)", **WX, p="Param[2]"),
    op("concatenate_last_axis", "concatenate([A, X], axis=-1)", A="Param[2, 3]", X="Input[2, 4]"),
    op(
        "concatenate_params",
        "concatenate([p, q], axis=0) * x",
        p="Param[2]",
        q="Param[3]",
        x="Input[5]",
    ),
    op("stack_axis0", "stack([p, x, p * x], axis=0)", p="Param[3]", x="Input[3]"),
    op("stack_last_axis", "stack([A, A * X], axis=-1)", A="Param[2, 3]", X="Input[2, 3]"),
    op("stack_scalars", "stack([s, s * t, 1], axis=0)", s="Param", t="Input"),
    op("reshape", "reshape(W * X, (2, 6))", **M34),
    op("reshape_method_minus_one", "(W * X).reshape(-1, 2)", **M34),
    op("flatten", "flatten(A * X)[::5]", A="Param[2, 3, 4]", X="Input[2, 3, 4]"),
    # loops, unrolled: carried state, nested bounds of the outer variable, tensors of a
    # literal shape
    op("loop_carried", "h", "h = p * x", "for t in range(3):\n    h = tanh(q * h + 0.5 * t)", **V3),
    op(
        "loop_rnn_zeros_state",
        "h",
        "h = zeros(3)",
        "for t in range(4):\n    h = tanh(W @ x + V @ h + b * t)",
        **WX,
        V="Param[3, 3]",
        b="Param[3]",
    ),
    op(
        "loop_nested_accumulate",
        "s",
        "s = ones(3)",
        "for i in range(-1, 3):\n    for j in range(i + 2):",
        "        s = s + (i - j) * p * x + j * q",
        **V3,
    ),
    op(
        "loop_user_function_augmented",
        "h",
        SWISH,
        "h = x",
        "for t in range(3):\n    u = swish(h * p)\n    h += u * q",
        **V3,
    ),
    op(
        "literal_shapes",
        "full((2, 3), 0.5) * W + ones(3) * x - zeros((1, 3))",
        W="Param[2, 3]",
        x="Input[3]",
    ),
    # maximum, minimum, clip, where, comparisons; max and min (the values of these cases
    # are away from ties: tests/test_ties.py checks the rules there exactly)
    op("maximum", "maximum(p * x, 0.5 * q)", **V3),
    op("maximum_broadcast", "maximum(W @ x, s) + maximum(0, W @ x)", **WX, s="Param"),
    op("minimum", "minimum(p, q * x) + minimum(q, 0.5)", **V3),
    op("clip", "clip(p * x, -0.5, 0.5) * q", **V3),
    op("clip_bounds", "clip(x, p, q)", **V3),
    op("where", "where(x > 0, p * x, q)", **V3),
    op("where_params", "where(p * x > q, p, q * x)", **V3),
    op("comparisons", "(p * x >= q) * p + (x < 0) * q + (p <= x) * (q > 0) + (x != p) * q", **V3),
    op("comparison_equal", "(x == q) * p + (p == p) * q + (x != q) * p", **V3),
    op("def_leaky", "leaky(p * x + q)", LEAKY, **V3),
    op("max_all", "max(W * X)", **M34),
    op("max_axis0", "max(W * X, axis=0)", **M34),
    op("min_axis_minus1", "min(W * X, axis=-1)", **M34),
    op("max_axes_tuple", "max(A * X, axis=(0, 2))", A="Param[2, 3, 4]", X="Input[2, 3, 4]"),
    op("min_param_only", "min(v) * x + max(v, axis=0)", v="Param[4]", x="Input[2]"),
    op("max_of_broadcast", "max(W + x, axis=1) - min(x * v)", **WX, v="Param[4]"),
]
IDS = [c.name for c in CASES]
UNREACHED = {"z"}  # the Param of case unreached_param


def compile_text(text: str, dtype: str = "float64", backend: str = "numpy"):
    return symbp.compile(symbp.parse_text(text), backend=backend, dtype=dtype)


def y_shape(case: Case) -> tuple[int, ...]:
    return symbp.parse_text(case.spec()).outputs["y"].shape


def setup(case: Case, text: str, dtype: str = "float64", backend: str = "numpy"):
    module = compile_text(text, dtype, backend)
    rng = np.random.default_rng(case.seed())
    return module, random_params(module, rng), random_inputs(module, rng), rng


def test_table_covers_every_op():
    text = "\n".join(c.spec() for c in CASES)
    words = "sum mean logsumexp softmax log_softmax cross_entropy .T ** @ / def max( min("
    words += " < <= > >= == !="
    for word in [*words.split(), *SPEC_FUNCTIONS]:
        assert word in text, word
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_finite_differences(case, backend):
    module, params, inputs, _ = setup(case, case.spec(), backend=backend)
    value, grads = module.loss_and_grads(params, **inputs)
    assert value == pytest.approx(module.loss(params, **inputs), rel=1e-12)
    assert list(grads) == list(module.PARAMS)
    expected = finite_differences(lambda p: module.loss(p, **inputs), params, wrt=module.PARAMS)
    for name, g in expected.items():  # every Param matters, except the one meant not to
        assert np.any(g != 0) != (name in UNREACHED), f"{case.name}: d{name} = {g}"
    assert_grads_match(grads, expected, value)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vjp_inner_product(case):
    module, params, inputs, rng = setup(case, case.vjp_spec(y_shape(case)))
    _, grads = module.loss_and_grads(params, **inputs)
    v = {name: rng.normal(size=shape) for name, shape in module.PARAMS.items()}

    def y_along(t):
        moved = {name: params[name] + t * v.get(name, 0.0) for name in params}
        return module.forward(moved, **inputs)["y"]

    jvp = derivative(y_along, 1e-3)  # dy/dv per example, batch on axis 0
    expected = np.sum(inputs["cot"] * jvp) / BATCH
    got = sum(float(np.sum(grads[name] * v[name])) for name in v)
    assert abs(expected) > 1e-6, "vacuous case: y does not depend on the Params"
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_check_grads(case, backend):
    report = symbp.check_grads(symbp.parse_text(case.spec()), backend=backend)
    assert [p.name for p in report.params] == [name for name, k in case.decls if k[0] == "P"]
    assert report.ok, report.table()


def test_check_grads_sees_a_wrong_gradient():
    """check_grads is one of the three checks above: it must fail on a 1% error."""
    module = compile_text(CASES[0].spec())

    class Off:
        PARAMS, INPUTS, loss = module.PARAMS, module.INPUTS, module.loss

        @staticmethod
        def loss_and_grads(params, /, **inputs):
            value, grads = module.loss_and_grads(params, **inputs)
            return value, {**grads, "q": grads["q"] * 1.01}

    report = check_module(Off)
    assert not report.ok
    assert [p.name for p in report.params if p.max_error > report.tolerance] == ["q"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_agrees_with_float64(case):
    module64, params, inputs, _ = setup(case, case.spec())
    module32 = compile_text(case.spec(), "float32")
    assert module32.DTYPE == "float32"
    loss64, grads64 = module64.loss_and_grads(params, **inputs)
    loss32, grads32 = module32.loss_and_grads(params, **inputs)
    assert loss32 == pytest.approx(loss64, rel=1e-4, abs=1e-6)
    for name, value in module32.forward(params, **inputs).items():
        assert np.asarray(value).dtype == np.float32, name
    for name, g64 in grads64.items():
        g32 = np.asarray(grads32[name])
        assert g32.dtype == np.float32, name
        scale = max(1.0, float(np.max(np.abs(g64))))
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4 * scale, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_has_batch_on_axis_0(case):
    module, params, inputs, _ = setup(case, case.spec())
    out = module.forward(params, **inputs)
    assert tuple(out) == module.OUTPUTS
    assert module.OUTPUTS[-1] == "C"
    batch = (BATCH,) if module.INPUTS else ()
    y, per_example = np.asarray(out["y"]), np.asarray(out["C"])
    assert y.shape == batch + y_shape(case)
    assert per_example.shape == batch
    axes = tuple(range(len(batch), y.ndim))
    np.testing.assert_allclose(per_example, np.sum(y * y + np.sin(y), axis=axes), rtol=1e-12)
    assert np.mean(per_example) == pytest.approx(module.loss(params, **inputs), rel=1e-12)


def test_unreached_param_gets_exact_zeros():
    case = next(c for c in CASES if c.name == "unreached_param")
    module, params, inputs, _ = setup(case, case.spec())
    _, grads = module.loss_and_grads(params, **inputs)
    dz = np.asarray(grads["z"])
    assert dz.shape == (2, 2)
    assert np.array_equal(dz, np.zeros((2, 2)))
    assert np.all(np.asarray(grads["p"]) != 0)


def test_gradients_add_at_branches():
    """d/dp of p*x + sin(p) is the sum of the two branches' gradients, computed apart."""
    decls = "p: Param[3] = zeros\nx: Input[3]\n"
    both, left, right = (
        compile_text(decls + f"C: Loss = sum({e})\n") for e in ("p * x + sin(p)", "p * x", "sin(p)")
    )
    rng = np.random.default_rng(7)
    params, inputs = random_params(both, rng), random_inputs(both, rng)
    grads = [m.loss_and_grads(params, **inputs)[1]["p"] for m in (both, left, right)]
    np.testing.assert_allclose(grads[0], grads[1] + grads[2], rtol=1e-14)
    np.testing.assert_allclose(grads[0], np.mean(inputs["x"], axis=0) + np.cos(params["p"]))


WEIGHT_DECAY = """
x: Input[4]
t: Input[3]
W: Param[3, 4] = glorot
C: Loss = 0.5 * sum((W @ x - t) ** 2) + 0.01 * sum(W * W)
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_term_without_inputs_in_a_batched_loss(dtype):
    """A weight-decay term reaches W once, not per example: dW = mean(e x^T) + 0.02 W."""
    module = compile_text(WEIGHT_DECAY, dtype)
    rng = np.random.default_rng(11)
    params, inputs = random_params(module, rng), random_inputs(module, rng)
    _, grads = module.loss_and_grads(params, **inputs)
    w, x, t = params["W"], inputs["x"], inputs["t"]
    e = x @ w.T - t
    want = np.einsum("bi,bj->ij", e, x) / BATCH + 0.02 * w
    assert np.asarray(grads["W"]).dtype == np.dtype(dtype)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(grads["W"], want, rtol=rtol, atol=rtol)


# ----------------------------------------------------------------- closed forms, by sympy


def batch_mean(expr: sympy.Expr, params: dict, inputs: dict) -> float:
    """The batch mean of ``expr`` over Param and Input symbols, by sympy at 30 digits."""
    total = 0.0
    batch = len(next(iter(inputs.values())))
    for i in range(batch):
        point = {sympy.Symbol(k, real=True): v for k, v in params.items()}
        point |= {sympy.Symbol(k, real=True): v[i] for k, v in inputs.items()}
        total += float(expr.evalf(30, subs=point))
    return total / batch


NEURON = """
x: Input
y: Input
w: Param = 0.5
b: Param = 0
C: Loss = 0.5 * (sigmoid(w * x + b) - y) ** 2
"""

REGRESSION = """
x: Input
y: Input
w: Param = 0.5
b: Param = 0
u = w * x
yhat = u + b
e = yhat - y
J: Loss = 0.5 * e ** 2
"""


@pytest.mark.parametrize(
    "text, closed_form",
    [
        (NEURON, "(1 / (1 + exp(-(w * x + b))) - y) ** 2 / 2"),
        (REGRESSION, "(w * x + b - y) ** 2 / 2"),
    ],
    ids=["single_neuron", "linear_regression"],
)
def test_batched_closed_form(text, closed_form):
    module = compile_text(text)
    rng = np.random.default_rng(3)
    params = {"w": np.float64(rng.normal()), "b": np.float64(rng.normal())}
    inputs = {"x": rng.normal(size=BATCH), "y": rng.uniform(size=BATCH)}
    w, b, x, y = sympy.symbols("w b x y", real=True)
    expr = sympy.sympify(closed_form, locals={"w": w, "b": b, "x": x, "y": y})
    value, grads = module.loss_and_grads(params, **inputs)
    assert value == pytest.approx(batch_mean(expr, params, inputs), rel=1e-12)
    for symbol in (w, b):
        want = batch_mean(sympy.diff(expr, symbol), params, inputs)
        assert float(grads[symbol.name]) == pytest.approx(want, rel=1e-12, abs=1e-15)


# each spec function as its textbook formula in plain sympy
TEXTBOOK = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "abs": sympy.Abs,
    "tanh": sympy.tanh,
    "sigmoid": lambda u: 1 / (1 + sympy.exp(-u)),
    "relu": lambda u: sympy.Max(u, 0),
    "softplus": lambda u: sympy.log(1 + sympy.exp(u)),
    "sin": sympy.sin,
    "cos": sympy.cos,
    "gelu": lambda u: u / 2 * (1 + sympy.tanh(sympy.sqrt(2 / sympy.pi) * (u + 0.044715 * u**3))),
    "maximum": sympy.Max,
    "minimum": sympy.Min,
    "clip": lambda u, low, high: sympy.Min(sympy.Max(u, low), high),
    "where": lambda c, a, b: sympy.Piecewise((a, sympy.Ne(c, 0)), (b, True)),
}
# a function's arguments in the closed-form test: the first ones of these, by its arity
TEXTBOOK_ARGS = ("w * x", "w - 1.5", "w + 0.5")


def test_every_function_has_its_textbook_formula():
    assert set(TEXTBOOK) == set(SPEC_FUNCTIONS)


@pytest.mark.parametrize("name", TEXTBOOK)
def test_elementwise_closed_form(name):
    """C = f(w * x) + w ** 3 / x: dC/dw = mean(f'(w x) x + 3 w^2 / x) by sympy.diff (a function
    of more arguments gets w - 1.5 and w + 0.5 too: clip(w * x, w - 1.5, w + 0.5))."""
    args = TEXTBOOK_ARGS[: FUNCTIONS[name].arity]
    call = f"{name}({', '.join(args)})"
    module = compile_text(f"x: Input\nw: Param = 1\nC: Loss = {call} + w ** 3 / x\n")
    rng = np.random.default_rng(5)
    params = {"w": np.float64(0.8)}
    x = rng.uniform(0.5, 2.0, size=BATCH)
    if name not in ("log", "sqrt"):
        x *= np.array([1, -1, 1, -1, -1])  # both sides of relu's and abs's kink
    w, xs = sympy.symbols("w x", real=True)
    symbols = {"w": w, "x": xs}
    expr = TEXTBOOK[name](*(sympy.sympify(a, locals=symbols) for a in args)) + w**3 / xs
    value, grads = module.loss_and_grads(params, x=x)
    assert value == pytest.approx(batch_mean(expr, params, {"x": x}), rel=1e-12)
    want = batch_mean(sympy.diff(expr, w), params, {"x": x})
    assert float(grads["w"]) == pytest.approx(want, rel=1e-12)


def test_scalar_network_closed_form():
    module = compile_text("a: Param = 1\nb: Param = 1\nc: Param = 6\nf: Loss = (a + b) * (b + c)\n")
    value, grads = module.loss_and_grads(module.init_params())
    assert value == 14.0
    assert {k: float(v) for k, v in grads.items()} == {"a": 7.0, "b": 9.0, "c": 2.0}
    a, b, c = sympy.symbols("a b c")
    f = (a + b) * (b + c)
    point = {"a": 0.3, "b": -1.7, "c": 2.9}
    _, grads = module.loss_and_grads({k: np.float64(v) for k, v in point.items()})
    for w in (a, b, c):
        want = float(sympy.diff(f, w).subs({sympy.Symbol(k): v for k, v in point.items()}))
        assert float(grads[w.name]) == pytest.approx(want, rel=1e-12), w.name


# ----------------------------------------------------------------- numerical stability


def logsumexp(z):
    m = np.max(z, axis=-1, keepdims=True)
    return np.squeeze(m, -1) + np.log(np.sum(np.exp(z - m), axis=-1))


def softplus(z):
    return np.logaddexp(0.0, z)


def sigmoid(z):
    return np.exp(-softplus(-z))


LOGITS = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 3.0], [0.0, -1000.0, -999.0]])
TARGET = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.5, 0.3]])
SHIFT = np.array([0.1, -0.2, 0.3])
SCALE = 0.9


def softmax_family(z, t, b):
    """Loss -sum(t * log_softmax(z + b)) and its gradient in b, batch-averaged."""
    s = z + b
    log_p = s - logsumexp(s)[:, None]
    loss = -np.sum(t * log_p, axis=1)
    grad = np.exp(log_p) * np.sum(t, axis=1, keepdims=True) - t
    return loss.mean(), grad.mean(axis=0)


def lse_reference(z, t, b):
    s = z + b
    return logsumexp(s).mean(), np.exp(s - logsumexp(s)[:, None]).mean(axis=0)


def bce_reference(z, t, s):
    """-sum(t log sigmoid(s z) + (1 - t) log(1 - sigmoid(s z))), gradient in s."""
    u = s * z
    loss = np.sum(t * softplus(-u) + (1 - t) * softplus(u), axis=1)
    return loss.mean(), np.sum((sigmoid(u) - t) * z, axis=1).mean()


def softplus_reference(z, t, s):
    u = s * z
    return np.sum(softplus(u), axis=1).mean(), np.sum(sigmoid(u) * z, axis=1).mean()


def log_sigmoid_reference(z, t, s):
    u = s * z
    return -np.sum(softplus(-u), axis=1).mean(), np.sum(sigmoid(-u) * z, axis=1).mean()


def sigmoid_reference(z, t, s):
    u = s * z
    return np.sum(t * sigmoid(u), axis=1).mean(), np.sum(t * sigmoid(u) * sigmoid(-u) * z, 1).mean()


STABLE_B = "z: Input[3]\nt: Input[3]\nb: Param[3] = zeros\n"
STABLE_S = "z: Input[3]\nt: Input[3]\ns: Param = 1\n"
BCE_NAIVE = "-sum(t * log(sigmoid(s * z)) + (1 - t) * log(1 - sigmoid(s * z)))"
WRITTEN_OUT = "C: Loss = sum(log(1 / (1 + exp(-(s * z)))))"
LOGSIG = "def logsig(u):\n    return log(sigmoid(u))\n"
SP = "def sp(u):\n    return log(1 + exp(u))\n"
STABILITY = [
    ("log_softmax", STABLE_B + "C: Loss = -sum(t * log_softmax(z + b))", softmax_family),
    ("naive_log_softmax", STABLE_B + "C: Loss = -sum(t * log(softmax(z + b)))", softmax_family),
    ("cross_entropy", STABLE_B + "C: Loss = cross_entropy(z + b, t)", softmax_family),
    ("logsumexp", STABLE_B + "C: Loss = logsumexp(z + b)", lse_reference),
    ("softplus", STABLE_S + "C: Loss = sum(softplus(s * z))", softplus_reference),
    ("naive_softplus", STABLE_S + "C: Loss = sum(log(1 + exp(s * z)))", softplus_reference),
    ("sigmoid", STABLE_S + "C: Loss = sum(t * sigmoid(s * z))", sigmoid_reference),
    ("naive_log_sigmoid", STABLE_S + "C: Loss = sum(log(sigmoid(s * z)))", log_sigmoid_reference),
    (
        "naive_log_one_minus_sigmoid",
        STABLE_S + "C: Loss = -sum(log(1 - sigmoid(s * z)))",
        softplus_reference,
    ),
    ("naive_binary_cross_entropy", STABLE_S + f"C: Loss = {BCE_NAIVE}", bce_reference),
    ("written_out_sigmoid", STABLE_S + WRITTEN_OUT, log_sigmoid_reference),
    # the same naive forms inside a user function
    ("def_log_sigmoid", LOGSIG + STABLE_S + "C: Loss = sum(logsig(s * z))", log_sigmoid_reference),
    ("def_naive_softplus", SP + STABLE_S + "C: Loss = sum(sp(s * z))", softplus_reference),
]


@pytest.mark.parametrize(
    "text, reference", [s[1:] for s in STABILITY], ids=[s[0] for s in STABILITY]
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_stable_at_large_logits(text, reference, dtype):
    module = compile_text(text + "\n", dtype)
    (pname,) = module.PARAMS
    pvalue = SHIFT if pname == "b" else np.float64(SCALE)
    value, grads = module.loss_and_grads({pname: pvalue}, z=LOGITS, t=TARGET)
    grad = np.asarray(grads[pname], dtype=np.float64)
    assert np.isfinite(value) and np.all(np.isfinite(grad)), (value, grad)
    want_value, want_grad = reference(LOGITS, TARGET, pvalue)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    assert value == pytest.approx(want_value, rel=rtol, abs=rtol)
    np.testing.assert_allclose(grad, want_grad, rtol=rtol, atol=rtol * np.max(np.abs(LOGITS)))
