"""The rule engine and every rule of ``symbp.rules``, each on a small exact case.

Each equation and each graph rule has a case here: input -> expected output, and the rule
must be the one that fired. A coverage test fails when a rule is added without a case.
Then the property every rule must have: no pass changes a value (random graphs, evaluated
by the reference interpreter after every pass), and the shape of the optimized sigmoid MLP
gradient against the hand-derived backward pass.
"""

import numpy as np
import pytest
from conftest import away_from_zero
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from test_random_graphs import specs

import symbp
from symbp.ir import composites
from symbp.ir import expr as ex
from symbp.ir import ops as ops
from symbp.ir.expr import X
from symbp.ir.graph import index_ranges
from symbp.ir.indexing import Span
from symbp.ir.interpret import evaluate
from symbp.ir.node import Node, Op, toposort
from symbp.passes import rules as rules
from symbp.passes.pipeline import optimize
from symbp.passes.rewrite import Pass, RuleSet, equation, run_pass

x0, x1 = X[0], X[1]
f = ex.call


def run(rule_set: RuleSet, root: Node, keep=()):
    mapping, stats = run_pass(Pass(rule_set.name, [rule_set]), [root], set(keep))
    return mapping.get(root, root), stats.fired


# ------------------------------------------------------------------- equations

# equation name -> (expression in, expression out)
EQUATION_CASES = {
    "sigmoid_form": (1 / (1 + f("exp", -x0)), f("sigmoid", x0)),
    "sigmoid_form_pow": ((1 + f("exp", x0)) ** -1, f("sigmoid", -x0)),
    "sigmoid_form_exp": (f("exp", x0) / (1 + f("exp", x0)), f("sigmoid", x0)),
    "log_sigmoid": (f("log", f("sigmoid", x0)), -f("softplus", -x0)),
    "log_one_minus_sigmoid": (f("log", 1 - f("sigmoid", x0)), -f("softplus", x0)),
    "log_one_plus_exp": (f("log", f("exp", x0 * x1) + 1), f("softplus", x0 * x1)),
    "log_exp": (ex.Expr("log", (f("exp", x0),)), x0),  # built raw: the constructor folds it
    "collect": (3 * x0 + 0.5 * x0, 3.5 * x0),
    "power_times_base": (x0**3 * x0, x0**4),
    "abs_abs": (f("abs", f("abs", x0)), f("abs", x0)),
    "abs_neg": (f("abs", -x0), f("abs", x0)),
    "relu_relu": (f("relu", f("relu", x0)), f("relu", x0)),
    "tanh_odd": (f("tanh", -x0), -f("tanh", x0)),
    "sin_odd": (f("sin", -x0), -f("sin", x0)),
    "cos_even": (f("cos", -x0), f("cos", x0)),
    "exp_product": (f("exp", x0) * f("exp", x1), f("exp", x0 + x1)),
}

ALL_EQUATIONS = {eq.name: (rs, eq) for rs in rules.ALL for eq in rs.equations}


def test_every_equation_has_a_case():
    assert sorted(EQUATION_CASES) == sorted(ALL_EQUATIONS)


@pytest.mark.parametrize("name", sorted(EQUATION_CASES))
def test_equation(name):
    rs, eq = ALL_EQUATIONS[name]
    given_, want = EQUATION_CASES[name]
    out, fired = rs.normal_form(given_)
    assert out is want, f"{given_} -> {out}, wanted {want}"
    assert name in fired


@pytest.mark.parametrize("name", sorted(EQUATION_CASES))
def test_equation_keeps_the_value(name):
    """Both sides of every equation agree numerically where both are defined."""
    given_, want = EQUATION_CASES[name]
    from symbp.ir.interpret import expression

    rng = np.random.default_rng(0)
    args = [rng.uniform(-3, 3, 50), rng.uniform(-3, 3, 50)]
    assert np.allclose(expression(given_, args), expression(want, args), rtol=1e-12)


def test_the_shorthand():
    eq = equation("exp(x) / exp(x) ** 2 = exp(-x)")
    assert eq.apply(f("exp", x0) / f("exp", x0) ** 2) is f("exp", -x0)
    assert eq.apply(f("exp", x0) / f("exp", x1) ** 2) is None  # one variable, two subtrees
    commutes = equation("log(1 + exp(x)) = softplus(x)")
    assert commutes.apply(f("log", f("exp", x0) + 1)) is f("softplus", x0)
    numbers = equation("c * x + k * x = (c + k) * x")
    assert numbers.apply(x1 * x0 + x1 * x0) is None  # c and k match numbers only
    guarded = equation("x ** c * x = x ** (c + 1)", guard=lambda env: env["c"].value > 0)
    assert guarded.apply(x0**-3 * x0) is None and guarded.apply(x0**2 * x0) is x0**3
    for bad in ("x + x", "x = y", "foo(x) = x", "q * x = x"):
        with pytest.raises(ValueError):
            equation(bad)


# ----------------------------------------------------------------- graph rules


def _z(shape=(3,)):
    return ops.input_node("z", shape)


def case_log_sum_exp():
    z = _z((4,))
    return rules.STABILIZE, ops.apply("log", ops.reduce_sum(ops.apply("exp", z))), ops.logsumexp(z)


def case_stabilize_log():
    z = _z()  # the sigmoid in a node of its own: the rule writes it into the log
    return (
        rules.STABILIZE,
        ops.apply("log", ops.apply("sigmoid", z)),
        ops.elementwise(-f("softplus", -x0), [z]),
    )


def case_sum_of_sum():
    z = _z((2, 3, 4))
    return rules.CANONICALIZE, ops.reduce_sum(ops.reduce_sum(z, 1), 1), ops.reduce_sum(z, (1, 2))


def case_fold_uniform():
    c = ops.broadcast(ops.const(2), (3, 4))
    return rules.CONSTANT_FOLD, ops.reduce_sum(c, 1), ops.broadcast(ops.const(8), (3,))


def case_sum_of_broadcast():
    w = ops.param_node("w")
    return rules.SIMPLIFY, ops.reduce_sum(ops.broadcast(w, (5,))), ops.mul(ops.const(5), w)


def case_batch_sum_scale():
    d, w = _z(), ops.param_node("w", (3,))
    node = Node(Op.BATCH_SUM, (ops.mul(w, d),), None, (3,), False)
    return rules.SIMPLIFY, node, ops.mul(w, ops.batch_sum(d))


def case_shared_subexpression():
    z = _z()
    node = ops.elementwise(f("sigmoid", x0) * (1 - f("sigmoid", x0)), [z])
    s = ops.apply("sigmoid", z)
    return rules.CSE, node, ops.elementwise(x0 * (1 - x0), [s])


def case_reuse_value():
    z = _z()
    s = ops.apply("sigmoid", z)  # the graph computes sigmoid(z) ...
    again = ops.elementwise(3 * f("sigmoid", x0), [z])  # ... and this computes it again
    root = ops.add(s, again)
    return rules.SPECIALIZE, root, ops.add(s, ops.mul(ops.const(3), s))


def case_fuse_elementwise():
    z = _z()
    once = ops.mul(ops.apply("sigmoid", z), ops.const(2))
    return rules.FUSE, once, ops.elementwise(2 * f("sigmoid", x0), [z])


# indexing


def case_sum_of_unslices():
    g, h, k = _z((4,)), ops.input_node("h", (2, 4)), ops.input_node("k", (4,))
    at = [(1, Span(0, 4, 1)), (Span(2, 2, 1), Span(0, 4, 1)), (0, Span(0, 4, 1))]
    parts = [ops.unslice(v, index, (5, 4)) for v, index in zip((g, h, k), at)]
    joined = ops.concat([ops.reshape(k, (1, 4)), ops.reshape(g, (1, 4)), h], 0)
    want = ops.unslice(joined, (Span(0, 4, 1), Span(0, 4, 1)), (5, 4))
    return rules.SIMPLIFY, ops.elementwise(X[0] + X[1] + X[2], parts), want


RULE_CASES = {
    "log_sum_exp": case_log_sum_exp,
    "stabilize_log": case_stabilize_log,
    "sum_of_sum": case_sum_of_sum,
    "fold_uniform": case_fold_uniform,
    "sum_of_broadcast": case_sum_of_broadcast,
    "batch_sum_scale": case_batch_sum_scale,
    "shared_subexpression": case_shared_subexpression,
    "reuse_value": case_reuse_value,
    "fuse_elementwise": case_fuse_elementwise,
    # indexing
    "sum_of_unslices": case_sum_of_unslices,
}


def test_every_graph_rule_has_a_case():
    assert sorted(RULE_CASES) == sorted({r.name for rs in rules.ALL for r in rs.rules})


@pytest.mark.parametrize("name", sorted(RULE_CASES))
def test_graph_rule(name):
    rule_set, given_, want = RULE_CASES[name]()
    out, fired = run(rule_set, given_)
    assert out is want, f"{name}: got {toposort([out])}, wanted {toposort([want])}"
    assert fired[name] >= 1


def test_fusion_leaves_shared_and_named_values():
    z = _z()
    inner = ops.apply("sigmoid", z)
    twice = ops.add(ops.mul(inner, inner), inner)  # inner has two consumers
    out, _ = run(rules.FUSE, twice)
    assert inner in toposort([out])
    once = ops.mul(inner, ops.const(2))
    kept, _ = run(rules.FUSE, once, keep=[inner])  # named nodes stay variables
    assert kept is once


def test_rules_decline_what_they_must_not_touch():
    z, w = _z(), ops.param_node("w", (3,))
    # log of a sigmoid that stays unstable (a sum in between) is left alone
    mixed = ops.apply("log", ops.reduce_sum(ops.apply("sigmoid", z)))
    assert run(rules.STABILIZE, mixed)[0] is mixed
    # the batch sum of a nonlinear function of the batched value keeps its place
    node = Node(Op.BATCH_SUM, (ops.elementwise(x0 * x1 * x1, [w, z]),), None, (3,), False)
    assert run(rules.SIMPLIFY, node)[0] is node
    # a cheap subexpression computed twice is not worth a buffer
    cheap = ops.elementwise((x0 + 1) * (x0 + 1) * x1, [z, w])
    assert run(rules.CSE, cheap)[0] is cheap


def test_constructors_apply_the_build_identities():
    x = _z()
    assert ops.mul(x, ops.const(1)) is x and ops.add(x, ops.const(0)) is x
    assert ex.neg(ex.neg(x0)) is x0 and ops.elementwise(ex.neg(-x0), [x]) is x
    w = ops.param_node("W", (3, 4))
    assert ops.transpose(ops.transpose(w)) is w
    assert ops.elementwise(2 * (3 * x0), [x]).attr is 6 * x0
    assert f("log", f("exp", x0)) is x0 and x0 - x0 is ex.num(0) and x0 / x0 is ex.num(1)
    assert ops.matmul(ops.transpose(w), _z((3,))).args[0] is w  # Wᵀ x reads W


# ------------------------------------------------------------------ properties


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=specs(), seed=st.integers(0, 2**32 - 1), batch=st.sampled_from((1, 3)))
def test_no_pass_changes_a_value(text, seed, batch):
    note(text)
    graph = symbp.parse_text(text)
    rng = np.random.default_rng(seed)
    leaves = {name: away_from_zero(rng, d.node.shape) for name, d in graph.params.items()}
    ids = index_ranges([node for _, node, _ in graph.equations])  # valid ids, for E[ids]
    leaves |= {
        name: rng.integers(0, ids[name], (batch, *d.node.shape))
        if name in ids
        else away_from_zero(rng, (batch, *d.node.shape))
        for name, d in graph.inputs.items()
    }
    leaves |= {name: away_from_zero(rng, d.node.shape) for name, d in graph.consts.items()}
    seen: dict[str, list[np.ndarray]] = {}

    def trace(where, outputs, grads):
        seen[where] = evaluate(list(outputs.values()) + list(grads.values()), leaves, batch)

    optimize(graph, trace=trace)
    for got, want in zip(seen["stabilize"], seen["parse"]):  # the forward pass's values
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg="stabilize")
    for where, values in seen.items():  # then the gradients' too, after each later pass
        if where not in ("parse", "stabilize", "grad"):
            for got, want in zip(values, seen["grad"]):
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=where)


def test_sigmoid_mlp_gradient_is_the_hand_derived_backward_pass():
    """δ per layer, one outer product per weight, no activation computed twice."""
    program = optimize(symbp.parse(_example("mlp.sbp")))
    nodes = toposort(list(program.grads.values()))
    dots = [n for n in nodes if n.op is Op.DOT]
    summed = [n for n in dots if n.attr.sum_batch]
    assert len(summed) == 2  # dW1 = batch_sum(δ1 xᵀ), dW2 = batch_sum(δ2 a1ᵀ)
    assert len(dots) == 2 + 2 + 1  # plus W1 x, W2 a1 and the back-propagated W2ᵀ δ2
    sigmoids = [n for n in nodes if n.op is Op.EW and ex.has(n.attr, "sigmoid", "exp")]
    assert len(sigmoids) == 2  # a1 and a2, once each: σ' reuses them
    ew = [n for n in nodes if n.op is Op.EW]
    # per layer: z, a = σ(z) forward; δ = (adjoint) σ' backward; the output error a2 - y;
    # and the batch means of the two weight and two bias gradients
    assert len(ew) <= 2 * 2 + 2 + 1 + 4


def _example(name):
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "examples" / name


def test_log_of_softmax_in_another_node_becomes_log_softmax():
    z = _z((4,))
    out, fired = run(rules.STABILIZE, ops.apply("log", composites.softmax(z)))
    assert out is composites.log_softmax(z) and fired["stabilize_log"] == 1


def test_fusion_is_the_same_however_memory_is_reused():
    """Regression: named nodes were kept by id(), and a freed node's id given to a new one
    made it look named: a 200-layer MLP fused 69 of its 200 affine maps into their sigmoid."""
    layers, lines, prev = 200, ["x: Input[8]", "y: Input[8]"], "x"
    for k in range(layers):
        lines += [
            f"W{k}: Param[8, 8] = glorot",
            f"b{k}: Param[8] = zeros",
            f"a{k} = sigmoid(W{k} @ {prev} + b{k})",
        ]
        prev = f"a{k}"
    lines.append(f"C: Loss = 0.5 * sum(({prev} - y) ** 2)")
    program = optimize(symbp.parse_text("\n".join(lines) + "\n"))
    fuse = next(st for st in program.stats if st.name == "fuse")
    assert fuse.fired["fuse_elementwise"] == layers


def test_equations_that_undo_each_other_terminate():
    loop = RuleSet("loop", equations=[equation("exp(x) * y = y * exp(x)", "swap")])
    e = f("exp", x0) * x1
    out, fired = loop.normal_form(e)
    assert out in (e, x1 * f("exp", x0)) and "swap" in fired


def test_passes_after_grad_rebuild_only_what_they_change(monkeypatch):
    """Nodes are immutable: a rewrite deep in the backward graph rebuilds every node above
    it. grad builds its adjoints in the rules' form (constants folded, the repeated costly
    part split out, forward values reused), so on a deep MLP the simplify pass after it
    changes no node, and its cost is one look at each (it was a rebuild of all of them)."""
    from symbp.passes import rewrite as rewrite

    lines, prev = ["x: Input[8]", "y: Input[8]"], "x"
    for k in range(30):
        lines += [
            f"W{k}: Param[8, 8] = glorot",
            f"b{k}: Param[8] = zeros",
            f"a{k} = sigmoid(W{k} @ {prev} + b{k})",
        ]
        prev = f"a{k}"
    lines.append(f"C: Loss = 0.5 * sum(({prev} - y) ** 2)")
    changed = {}
    real = rewrite.run_pass

    def spy(p, roots, keep):
        mapping, stats = real(p, roots, keep)
        changed[p.name] = len(mapping)
        return mapping, stats

    monkeypatch.setattr(rewrite, "run_pass", spy)
    optimize(symbp.parse_text("\n".join(lines) + "\n"))
    assert changed["stabilize"] == 0 and changed["simplify"] == 0
    assert changed["fuse"] > 0  # fusion does change the graph: z into σ(z), layer by layer


@pytest.mark.parametrize("name", ["mlp", "classifier", "branch", "neuron", "linreg"])
def test_numpy_modules_are_the_same_without_the_fuse_pass(name):
    """The NumPy backend skips the fuse pass (its printer writes a value used once into
    its user's expression): for every example the module is the one fusion would give."""
    from symbp.backends.numpy import module as numpy_backend

    graph = symbp.parse(_example(f"{name}.sbp"))
    assert numpy_backend.generate(optimize(graph, fuse=False)) == numpy_backend.generate(
        optimize(graph)
    )
