"""symbp graph (DOT pictures of the forward and backward graphs) and Hessian-vector products."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import symbp
from symbp import cli
from symbp.explain.graphviz import to_dot
from symbp.passes.pipeline import optimize

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").rglob("*.sbp"))


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Nodes (id -> label) and edges of the DOT symbp writes, checking its structure."""
    lines = text.strip().splitlines()
    assert lines[0].startswith("digraph ") and lines[0].endswith("{") and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if m := re.fullmatch(r'  (n\d+) \[label="((?:[^"\\]|\\.)*)", (.*)\];', line):
            nodes[m[1]] = m[2]
        elif m := re.fullmatch(r"  (n\d+) -> (n\d+);", line):
            edges.append((m[1], m[2]))
        else:
            assert re.fullmatch(r"  (rankdir|node|edge).*;", line), line
    assert all(a in nodes and b in nodes for a, b in edges)
    return nodes, edges


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("grad", [False, True])
def test_every_example_gives_valid_dot(spec, grad, tmp_path, capsys):
    out = tmp_path / "g.dot"
    args = ["graph", str(spec), "-o", str(out)] + (["--grad"] if grad else [])
    assert cli.main(args) == 0
    nodes, edges = parse_dot(out.read_text())
    graph = symbp.parse(spec)
    labels = "\n".join(nodes.values())
    for name in [*graph.inputs, *graph.params, graph.loss_name]:
        assert re.search(rf"(^|\\n){re.escape(name)}(\\n| = )", labels, re.M), name
    if grad:
        for name in graph.params:
            assert f"d{name}" in labels


def test_the_lecture_branch_picture():
    """f = (a + b)(b + c): b has two children, and its adjoint is their sum."""
    nodes, edges = parse_dot(to_dot(optimize(symbp.parse(ROOT / "examples/branch.sbp")), grad=True))
    by_label = {label.split("\\n")[0]: node for node, label in nodes.items()}
    b, x, y = by_label["b"], by_label["x = a + b  (= dc)"], by_label["y = b + c  (= da)"]
    assert {child for parent, child in edges if parent == b} == {x, y}
    db = by_label["db = x + y"]
    assert {parent for parent, child in edges if child == db} == {x, y}
    assert "f6c28b" in next(
        line
        for line in to_dot(
            optimize(symbp.parse(ROOT / "examples/branch.sbp")), grad=True
        ).splitlines()
        if line.startswith(f"  {db} [")
    )  # adjoints are drawn apart


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_svg_through_graphviz(tmp_path, capsys):
    out = tmp_path / "mlp.svg"
    assert cli.main(["graph", str(ROOT / "examples/mlp.sbp"), "--grad", "-o", str(out)]) == 0
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "dW1" in svg


def test_svg_without_graphviz_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    code = cli.main(["graph", str(ROOT / "examples/mlp.sbp"), "-o", str(tmp_path / "g.svg")])
    out, err = capsys.readouterr()
    assert code == 2 and "Graphviz's `dot`" in err and "Traceback" not in err
    assert not (tmp_path / "g.svg").exists()
    assert cli.main(["graph", str(ROOT / "examples/mlp.sbp"), "-o", str(tmp_path / "g.txt")]) == 2


# ------------------------------------------------------------------ Hessian-vector products


def _fd_hvp(module, params, vectors, inputs, h=1e-5):
    """(grad(θ + h v) - grad(θ - h v)) / 2h, from the compiled gradient."""
    plus = module.loss_and_grads({k: params[k] + h * vectors[k] for k in params}, **inputs)[1]
    minus = module.loss_and_grads({k: params[k] - h * vectors[k] for k in params}, **inputs)[1]
    return {k: (plus[k] - minus[k]) / (2 * h) for k in params}


@pytest.mark.parametrize("spec", ["neuron", "branch", "linreg", "classifier", "mlp"])
def test_hvp_matches_finite_differences_of_the_gradient(spec):
    graph = symbp.parse(ROOT / f"examples/{spec}.sbp")
    module = symbp.compile(graph)
    hvp = symbp.hvp(graph)
    rng = np.random.default_rng(1)
    params = {k: rng.normal(scale=0.3, size=s) for k, s in module.PARAMS.items()}
    vectors = {k: rng.normal(size=s) for k, s in module.PARAMS.items()}
    inputs = {k: rng.normal(size=(4, *s)) for k, s in module.INPUTS.items()}
    got = hvp(params, vectors, **inputs)
    want = _fd_hvp(module, params, vectors, inputs)
    for name in params:
        scale = max(float(np.max(np.abs(want[name]))), 1e-8)
        assert np.max(np.abs(got[name] - want[name])) <= 1e-6 * scale, name


def test_hvp_of_the_branch_is_the_exact_hessian():
    """f = (a + b)(b + c): H = [[0, 1, 1], [1, 2, 1], [1, 1, 0]] in (a, b, c)."""
    hvp = symbp.hvp(symbp.parse(ROOT / "examples/branch.sbp"))
    params = {"a": np.array(1.0), "b": np.array(1.0), "c": np.array(6.0)}
    hessian = np.array([[0, 1, 1], [1, 2, 1], [1, 1, 0]])
    for i, v in enumerate(np.eye(3)):
        out = hvp(params, dict(zip("abc", map(np.array, v))))
        assert [float(out[k]) for k in "abc"] == hessian[i].tolist()


def test_hvp_on_the_c_backend_agrees():
    graph = symbp.parse(ROOT / "examples/classifier.sbp")
    module = symbp.compile(graph)
    rng = np.random.default_rng(2)
    params = {k: rng.normal(scale=0.3, size=s) for k, s in module.PARAMS.items()}
    vectors = {k: rng.normal(size=s) for k, s in module.PARAMS.items()}
    inputs = {k: rng.normal(size=(3, *s)) for k, s in module.INPUTS.items()}
    a = symbp.hvp(graph)(params, vectors, **inputs)
    b = symbp.hvp(graph, backend="c")(params, vectors, **inputs)
    for name in a:
        np.testing.assert_allclose(
            b[name], a[name], rtol=1e-12, atol=1e-12 * np.max(np.abs(a[name]))
        )


def test_hvp_needs_one_vector_per_param():
    hvp = symbp.hvp(symbp.parse(ROOT / "examples/branch.sbp"))
    with pytest.raises(ValueError, match="vectors"):
        hvp({"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 1.0})
