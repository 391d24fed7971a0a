"""Loops, rebinding and tensors of a literal shape (SPEC.md §5).

A loop is unrolled while the spec is read: the same network written out by hand must give
the same graph, the same loss and the same gradients on both backends. Its values keep the
user's names with the iteration appended; its size grows linearly with the steps; the fast
path of the parser leaves loops to the general reader. Errors in loops are tested with the
other errors in ``tests/test_errors.py``; gradients against finite differences with every
other op in ``tests/test_op_grads.py``.
"""

from __future__ import annotations

import ast
import copy
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import random_inputs, random_params
from hypothesis import given, note, settings
from hypothesis import strategies as st
from test_parse_shapes import check as both_readers_agree

import symbp
from symbp.frontend.parser import _Parser
from symbp.frontend.shapes import Unsupported, read_by_shapes
from symbp.ir.node import toposort

ROOT = Path(__file__).resolve().parent.parent
HEAD = """x: Input[4]
W: Param[4, 4] = glorot
U: Param[4, 4] = glorot
b: Param[4] = zeros
"""
RNN = (
    HEAD
    + """h = zeros(4)
for t in range(5):
    h = tanh(W @ h + U @ x + 0.25 * t * b)
C: Loss = sum(h ** 2)
"""
)


def by_hand(steps: int) -> str:
    """RNN, its loop written out."""
    lines = [HEAD, "h0 = zeros(4)\n"]
    for t in range(steps):
        lines.append(f"h{t + 1} = tanh(W @ h{t} + U @ x + {0.25 * t} * b)\n")
    lines.append(f"C: Loss = sum(h{steps} ** 2)\n")
    return "".join(lines)


def graph_nodes(source: str) -> int:
    graph = symbp.parse_text(source)
    return len(toposort([graph.loss]))


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_unrolled_equals_written_out(backend):
    loop, hand = symbp.parse_text(RNN), symbp.parse_text(by_hand(5))
    assert loop.loss is hand.loss  # hash-consed: the very same graph
    a = symbp.compile(loop, backend=backend)
    b = symbp.compile(hand, backend="numpy")
    rng = np.random.default_rng(3)
    params, inputs = random_params(a, rng), random_inputs(a, rng)
    loss_a, grads_a = a.loss_and_grads(params, **inputs)
    loss_b, grads_b = b.loss_and_grads(params, **inputs)
    assert loss_a == pytest.approx(loss_b, rel=1e-12)
    for name in grads_b:
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=1e-12, atol=1e-14)
    assert np.any(grads_a["b"] != 0)


def test_nested_accumulation_equals_its_sum():
    """s = s + t * w over range(3) x range(t + 1): sum over j <= i of i * w."""
    source = """w: Param[3] = ones
s = zeros(3)
for i in range(3):
    for j in range(i + 1):
        s = s + i * w - j
C: Loss = sum(s)
"""
    module = symbp.compile(symbp.parse_text(source))
    w = np.array([1.0, 2.0, -1.0])
    pairs = [(i, j) for i in range(3) for j in range(i + 1)]
    expected = sum(float(np.sum(i * w - j)) for i, j in pairs)
    loss, grads = module.loss_and_grads({"w": w})
    assert loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(grads["w"], np.full(3, sum(i for i, _ in pairs)))


def test_generated_names_carry_the_iteration():
    source = """x: Input[3]
p: Param[3] = ones
h = x
g = 2 * x
for t in range(-1, 2):
    for k in range(2):
        h = tanh(p * h + k)
    g = h * t
C: Loss = sum(g * h)
"""
    graph = symbp.parse_text(source)
    names = set(graph.names.values())
    assert {"h_tm1_k0", "h_tm1_k1", "h_t0_k1", "h_t1_k1", "g_tm1"} <= names
    code = symbp.generate(graph)
    assert code == symbp.generate(symbp.parse_text(source))  # deterministic
    assert "h_tm1_k0 = np.tanh(" in code
    assert "# line 7: h = tanh(p * h + k)" in code
    module = symbp.compile(graph)
    rng = np.random.default_rng(0)
    assert np.isfinite(module.loss(random_params(module, rng), **random_inputs(module, rng)))


def test_a_name_bound_twice_in_an_iteration():
    source = (
        HEAD
        + """h = tanh(x)
for t in range(3):
    h = tanh(W @ h + b)
    h = h * (1 - 0.125 * t)
C: Loss = sum(h)
"""
    )
    code = symbp.generate(symbp.parse_text(source))
    for line in ("h_t0 = np.tanh(", "h_t1_2 = 0.875*h_t1", "h_t2_2 = 0.75*h_t2", "sum(h_t2_2"):
        assert line in code, line


def test_symbp_grad_reads_per_iteration(tmp_path, capsys):
    from symbp.cli import main

    spec = tmp_path / "rnn.sbp"
    spec.write_text(RNN)
    assert main(["grad", str(spec)]) == 0
    out = capsys.readouterr().out
    for t in range(5):
        assert f"h_t{t}" in out
    assert "dh_t3 = " in out


def test_loop_variable_is_a_number_and_scoping():
    source = """a: Param = 2
s = a
for t in range(4):
    u = 0.5 * t
    s = s + u * a
for t in range(2):
    u = a
    s = s * u
C: Loss = s
"""
    module = symbp.compile(symbp.parse_text(source))
    a = 2.0
    s = a + sum(0.5 * t * a for t in range(4))
    s = s * a * a
    assert module.loss({"a": np.array(a)}) == pytest.approx(s, rel=1e-12)


def test_the_same_loop_variable_in_two_loops_and_a_name_after():
    source = """a: Param = 1
for t in range(2):
    z = a * t
t = a + 1
z = t * 3
C: Loss = z
"""
    assert symbp.compile(symbp.parse_text(source)).loss({"a": np.array(1.0)}) == 6.0


def test_literal_shape_tensors_are_constants_not_inputs():
    source = "a: Param[2, 3] = ones\nC: Loss = sum(a * full((2, 3), 1.5) + ones(3) - zeros(1))\n"
    graph = symbp.parse_text(source)
    assert not graph.inputs and list(graph.params) == ["a"]
    module = symbp.compile(graph)
    assert module.loss({"a": np.ones((2, 3))}) == pytest.approx(6 * 2.5)
    # the initializers of the same names still work
    assert symbp.parse_text("b: Param[3] = zeros\nc: Param = ones\nC: Loss = sum(b) * c\n")


DEEP = (
    HEAD
    + """h = tanh(x)
for t in range(STEPS):
    h = tanh(W @ h + U @ x + b)
C: Loss = sum(h ** 2)
"""
)


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=3, max_value=60))
def test_unrolling_costs_linear_nodes(steps):
    """A deep tied network: every step adds the same number of nodes."""
    sizes = [graph_nodes(DEEP.replace("STEPS", str(n))) for n in (1, 2, steps)]
    per_step = sizes[1] - sizes[0]
    assert 0 < per_step <= 6
    assert sizes[2] == sizes[0] + (steps - 1) * per_step


def test_a_loop_of_200_steps_compiles_fast():
    source = RNN.replace("range(5)", "range(200)")
    start = time.perf_counter()
    module = symbp.compile(symbp.parse_text(source))
    elapsed = time.perf_counter() - start
    rng = np.random.default_rng(1)
    assert np.isfinite(module.loss(random_params(module, rng), **random_inputs(module, rng)))
    assert elapsed < 5.0, f"{elapsed:.2f} s"  # about 0.3 s here; generous for loaded machines


def test_the_fast_path_declines_loops():
    with pytest.raises(Unsupported):
        read_by_shapes(_Parser(RNN, "t.sbp", "t"))
    # a loop after many lines of planned shapes, and one inside the head the general
    # reader reads: both specs are read by the general reader, to the same graph
    lines = "".join(f"z{i} = tanh(W @ x) * {i + 1}\n" for i in range(5))
    both_readers_agree(RNN.replace("h = zeros(4)\n", lines + "h = zeros(4)\n"))
    both_readers_agree('"""doc"""\n' + RNN)


@pytest.mark.parametrize(
    "expr",
    ["zeros(3) + a", "ones((2, 3)) * a", "full(3, 2.5) * a", "a * full((1, 3), -1)"],
)
def test_literal_shapes_read_alike_by_both_readers(expr):
    head = "a: Param[3] = ones\n"
    both_readers_agree(
        head + "".join(f"y{i} = {expr} * {i + 1}\n" for i in range(4)) + "C: Loss = sum(y3)\n"
    )


def test_the_python_builder_unrolls_alike():
    """A Python loop over the builder's operations, from symbp.zeros: the spec's graph."""
    x = symbp.input("x", 4)
    W, U = symbp.param("W", 4, 4, init="glorot"), symbp.param("U", 4, 4, init="glorot")
    b = symbp.param("b", 4)
    h = symbp.zeros(4)
    for t in range(5):
        h = symbp.tanh(W @ h + U @ x + 0.25 * t * b)
    net = symbp.network(loss=symbp.sum(h**2))
    assert net.loss is symbp.parse_text(RNN).loss
    assert symbp.full((2, 3), 1.5).shape == (2, 3) and symbp.ones(3).shape == (3,)
    with pytest.raises(ValueError, match="shape"):
        symbp.zeros((3, 0))
    with pytest.raises(ValueError, match="number"):
        symbp.full(3, x)


# ------------------------------------------- random loops against a textual unrolling

LOOP_HEAD = "x: Input[3]\np: Param[3] = ones\nq: Param[3] = ones\nh = tanh(x)\ns = p * x\n"
STEPS = ["h = tanh(p * h + {t} * q)", "s = s + {t} * h", "h = h * x - 0.5 * {t}"]
RANGES = ["range({t}, {t} + 2)", "range(-1, 2)", "range({t} + 1, {t} - 2, -2)", "range(2)"]


@st.composite
def loop_specs(draw, depth: int = 0, variables: tuple[str, ...] = ()) -> list[str]:
    """The lines of a random loop: steps over h and s (the names carried), a local u,
    and nested loops whose bounds use the enclosing variables."""
    var = f"i{depth}"
    outer = variables[-1] if variables else "1"
    header = f"for {var} in {draw(st.sampled_from(RANGES)).format(t=outer)}:"
    body = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["step", "local", "loop"] if depth < 2 else ["step"]))
        t = draw(st.sampled_from([*variables, var]))
        if kind == "step":
            body.append(draw(st.sampled_from(STEPS)).format(t=t))
        elif kind == "local":
            body += [f"u = sigmoid(h + {t})", "s = s + u * q"]
        else:
            body += draw(loop_specs(depth + 1, (*variables, var)))
    return [header] + ["    " + line for line in body]


def unrolled(source: str) -> str:
    """``source`` with its loops written out by hand: each binding a new name, each loop
    variable its number (as a parenthesized literal)."""
    current: dict[str, str] = {}
    numbers: dict[str, int] = {}
    out: list[str] = []

    def renamed(e: ast.expr) -> str:
        class Rename(ast.NodeTransformer):
            def visit_Name(self, n: ast.Name) -> ast.AST:
                if n.id in numbers:
                    return ast.Constant(numbers[n.id])
                return ast.Name(current.get(n.id, n.id), ast.Load())

        return ast.unparse(Rename().visit(copy.deepcopy(e)))

    def run(statements: list[ast.stmt]) -> None:
        for stmt in statements:
            if isinstance(stmt, ast.For):
                args = [eval(renamed(a)) for a in stmt.iter.args]  # integers only
                for value in range(*args):
                    numbers[stmt.target.id] = value
                    run(stmt.body)
                del numbers[stmt.target.id]
            elif isinstance(stmt, ast.Assign):
                name, value = stmt.targets[0].id, renamed(stmt.value)
                current[name] = f"{name}_{len(out)}"
                out.append(f"{current[name]} = {value}")
            else:  # the Loss
                out.append(f"{ast.unparse(stmt.target)}: Loss = {renamed(stmt.value)}")

    run(ast.parse(source).body[5:])
    return LOOP_HEAD + "\n".join(out) + "\n"


@settings(max_examples=60, deadline=None)
@given(loop_specs())
def test_random_loops_are_their_unrolling(lines):
    source = LOOP_HEAD + "\n".join(lines) + "\nC: Loss = sum(s * h)\n"
    by_hand = unrolled(source)
    note(source)
    note(by_hand)
    assert symbp.parse_text(source).loss is symbp.parse_text(by_hand).loss


def test_the_neural_ode_example_learns_the_digits(tmp_path):
    """examples/digits/ode.sbp: eight Euler steps of a tied residual field, unrolled."""
    pytest.importorskip("sklearn")
    digits = ROOT / "examples" / "digits"
    made = subprocess.run(
        [sys.executable, digits / "make_data.py", tmp_path / "digits.npz"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    graph = symbp.parse(digits / "ode.sbp")
    assert sum(name.startswith("h_k") for name in graph.names.values()) == 8
    module = symbp.compile(graph)
    with np.load(tmp_path / "digits.npz") as f:
        train = {"x": f["x"], "t": f["t"]}
        val = {"x": f["x_val"], "t": f["t_val"]}
    trainer = symbp.Trainer(module, optimizer="adam", lr=0.003, batch_size=32, seed=0)
    trainer.fit(train, epochs=20)
    assert trainer.evaluate(val)["accuracy"] >= 0.95
