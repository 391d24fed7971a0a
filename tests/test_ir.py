"""The IR, its verifier, the Python builder and the rewrite rules, each on small exact cases."""

import numpy as np
import pytest

import symbp
from symbp.ir import ops as ops
from symbp.ir.expr import Expr, X
from symbp.ir.node import Contraction, Node, Op
from symbp.ir.verify import IRError, verify
from symbp.passes import rewrite as rewrite
from symbp.passes import rules as rules
from symbp.passes.pipeline import optimize


def test_equal_subexpressions_are_one_node():
    x = ops.input_node("x", (3,))
    w = ops.param_node("w", (3,))
    assert ops.mul(w, x) is ops.mul(w, x)
    assert ops.add(ops.mul(w, x), x) is ops.add(ops.mul(w, x), x)
    assert ops.mul(w, x).args == (w, x) and ops.mul(x, w).args == (x, w)
    assert ops.input_node("x", (3,)) is x and ops.input_node("x", (4,)) is not x


def test_nodes_are_immutable():
    x = ops.input_node("x", (3,))
    with pytest.raises(AttributeError):
        x.shape = (4,)


def test_constants_fold_into_expressions():
    x = ops.input_node("x", (2,))
    half = ops.mul(x, ops.const(0.5))
    assert half.op is Op.EW and half.args == (x,) and half.attr is 0.5 * X[0]
    assert ops.mul(ops.const(3), half).attr is 3 * X[0]  # nodes fuse in the fuse pass
    assert ops.elementwise(3 * (0.5 * X[0]), [x]).attr is 1.5 * X[0]  # numbers multiply
    # x * 1 and x + 0 are x itself: the expression constructors simplify
    assert ops.mul(x, ops.const(1)) is x
    assert ops.add(x, ops.const(0)) is x
    # x - x is a constant, broadcast to x's shape; it no longer depends on the batch
    zero = ops.sub(x, x)
    assert zero.op is Op.BROADCAST and zero.shape == (2,) and not zero.batched
    assert zero.args[0].op is Op.CONST and zero.args[0].attr == 0


def test_no_explicit_broadcast_feeds_an_elementwise_node():
    """Elementwise broadcasting does what a broadcast or a reshape adding leading size-1
    axes would: the constructor drops them, where the result keeps its shape."""
    z, w = ops.input_node("z", (2, 3)), ops.param_node("w", (3,))
    assert ops.mul(z, ops.broadcast(w, (2, 3))) is ops.mul(z, w)
    assert ops.mul(z, ops.reshape(w, (1, 3))) is ops.mul(z, w)
    wide = ops.mul(w, ops.broadcast(w, (2, 3)))  # the broadcast makes the shape: kept
    assert wide.shape == (2, 3) and [a.op for a in wide.args] == [Op.PARAM, Op.BROADCAST]
    assert ops.elementwise(
        X[0] * X[1], [z, ops.broadcast(ops.reshape(w, (1, 3)), (2, 3))]
    ) is ops.mul(z, w)  # both layers go


def test_negation_of_negation_fuses_away():
    x = ops.input_node("x", (2,))
    twice = ops.neg(ops.neg(x))
    assert twice.op is Op.EW and twice.args[0].op is Op.EW  # two nodes as built
    assert _run(FUSE, ops.mul(twice, ops.const(3)))[0].attr is 3 * X[0]


def test_transpose_of_transpose_and_transpose_into_matmul():
    w = ops.param_node("W", (3, 4))
    assert ops.transpose(ops.transpose(w)) is w
    x = ops.input_node("x", (3,))
    prod = ops.matmul(ops.transpose(w), x)  # W.T @ x: no transpose node, folded letters
    assert prod.op is Op.DOT and all(a.op is not Op.TRANSPOSE for a in prod.args)
    assert prod.shape == (4,) and prod.batched


def test_shape_errors_quote_both_shapes():
    with pytest.raises(ops.GraphError, match=r"\(3, 4\) @ \(5,\)"):
        ops.matmul(ops.param_node("W", (3, 4)), ops.input_node("x", (5,)))
    with pytest.raises(ops.GraphError, match=r"\(3,\) and \(4,\)"):
        ops.add(ops.param_node("a", (3,)), ops.param_node("b", (4,)))


@pytest.mark.parametrize(
    "bad, message",
    [
        (Node(Op.EW, (ops.param_node("a", (2,)),), X[0] + X[1], (2,), False), "uses"),
        (Node(Op.SUM, (ops.param_node("a", (2, 3)),), (1,), (3,), False), "shape"),
        (Node(Op.BATCH_SUM, (ops.param_node("a", (2,)),), None, (2,), False), "batched"),
        (Node(Op.PARAM, (), "p", (2,), True), "batched"),
        (
            Node(
                Op.DOT,
                (ops.param_node("a", (2, 3)), ops.param_node("b", (4,))),
                Contraction("ij", "j", "i"),
                (2,),
                False,
            ),
            "sizes",
        ),
        (Node(Op.TRANSPOSE, (ops.param_node("a", (2, 3)),), (0, 1), (2, 3), False), "permutation"),
        (Node(Op.CONST, (), Expr("undefined", (), "infinite or undefined"), (), False), "finite"),
        (
            Node(
                Op.EW,
                (ops.input_node("z", (2, 3)), ops.broadcast(ops.param_node("w", (3,)), (2, 3))),
                X[0] * X[1],
                (2, 3),
                True,
            ),
            "canonical",
        ),  # a broadcast the constructor drops
    ],
)
def test_verifier_rejects_malformed_nodes(bad, message):
    with pytest.raises(IRError, match=message):
        verify([bad])


def test_verifier_accepts_every_example_after_every_pass():
    from pathlib import Path

    for spec in sorted(Path(__file__).resolve().parent.parent.glob("examples/*.sbp")):
        program = optimize(symbp.parse(spec), verify=True)
        verify([*program.outputs.values(), *program.grads.values()])


# ------------------------------------------------------------------------ builder


def test_python_builder_matches_the_spec():
    spec = symbp.compile(symbp.parse(Path_examples("mlp.sbp")))
    x = symbp.input("x", 784)
    y = symbp.input("y", 10)
    W1 = symbp.param("W1", 256, 784, init="glorot")
    b1 = symbp.param("b1", 256)
    W2 = symbp.param("W2", 10, 256, init="glorot")
    b2 = symbp.param("b2", 10)
    a1 = symbp.sigmoid(W1 @ x + b1)
    a2 = symbp.sigmoid(W2 @ a1 + b2)
    net = symbp.network(
        loss=0.5 * symbp.sum((a2 - y) ** 2),
        outputs={"p": a2},
        names={"a1": a1, "a2": a2},
        name="mlp_py",
    )
    built = symbp.compile(net)
    assert built.PARAMS == spec.PARAMS and built.INPUTS == spec.INPUTS
    rng = np.random.default_rng(0)
    params = spec.init_params(3)
    assert all(np.array_equal(params[k], v) for k, v in built.init_params(3).items())
    data = {"x": rng.normal(size=(4, 784)), "y": rng.uniform(size=(4, 10))}
    l1, g1 = spec.loss_and_grads(params, **data)
    l2, g2 = built.loss_and_grads(params, **data)
    assert l1 == pytest.approx(l2, rel=1e-14)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-12)
    assert "a1 = _sigmoid(" in symbp.generate(net)


def test_builder_rejects_bad_values():
    with pytest.raises(TypeError):
        symbp.sigmoid("x")
    with pytest.raises(ValueError, match="init"):
        symbp.param("w", 3, init="lecun")
    with pytest.raises(ValueError, match="scalar"):
        symbp.network(loss=symbp.param("v", 3))


def Path_examples(name):
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "examples" / name


# -------------------------------------------------------------------------- rules

FUSE = rewrite.Pass("fuse", [rules.FUSE])


def _run(p, root, keep=()):
    mapping, stats = rewrite.run_pass(p, [root], set(keep))
    return mapping.get(root, root), stats


def test_rule_batch_sum_of_outer_product_is_one_contraction():
    d = ops.input_node("d", (3,))
    a = ops.input_node("a", (4,))
    outer = ops.dot(d, a, Contraction("i", "j", "ij"))
    summed = ops.batch_sum(outer)
    assert summed.op is Op.DOT and summed.attr.sum_batch and not summed.batched


def test_rule_batch_sum_pulls_out_constant_factors():
    d = ops.input_node("d", (3,))
    w = ops.param_node("w", (3,))
    node = Node(Op.BATCH_SUM, (ops.mul(w, d),), None, (3,), False)
    out, stats = _run(rewrite.Pass("simplify", [rules.SIMPLIFY]), node)
    assert stats.fired["batch_sum_scale"] == 1
    assert out.op is Op.EW and ops.batch_sum(d) in out.args and w in out.args


def test_a_compile_leaves_the_callers_frozen_objects_frozen():
    """The compiler moves the objects it made to the collector's oldest generation with
    gc.freeze() and unfreeze(); a process that froze objects itself (to share them with
    forked workers) must find them still frozen."""
    import gc

    import symbp

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        symbp.parse_text("x: Input\nw: Param = 0.5\nC: Loss = (w * x) ** 2\n")
        # (a frozen object that dies meanwhile, an evicted cache entry, leaves the count)
        assert frozen > 0 and frozen * 0.9 <= gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
