"""Property test: random DAG specs get the gradients that finite differences measure.

Hypothesis builds specs of Inputs and Params of rank 0 to 2 over small dimensions (1, 2, 3),
then a handful of equations, each picking an op from a safe set (smooth, defined everywhere)
and operands from everything bound so far: Params and intermediates get reused, values
branch and rejoin, shapes broadcast, values are gathered by Inputs of integer ids (``h[k0]``),
convolved and pooled as one-channel images.
The Loss sums squares and sines of a few nodes.

The generator carries a bound on every value's magnitude (leaves are within 1.4) and
replaces an op that could exceed ``LIMIT`` by tanh: so no sine of a huge argument makes the
finite differences themselves the inaccurate side.
"""

import math

import numpy as np
import pytest
from conftest import (
    assert_grads_match,
    basic_index,
    finite_differences,
    random_inputs,
    random_params,
    scale,
)
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import symbp

LIMIT = 10.0
LEAF_BOUND = 1.4  # conftest.away_from_zero draws values within ±1.4

DEFS = (
    "def swish(u):\n    return u * sigmoid(u)\n"
    "def blend(u, v):\n    return u * tanh(v) + v / (1 + u * u)\n"
)
# template -> bound of the result's magnitude from the bound of each operand
UNARY = {
    "tanh({a})": lambda a: 1.0,
    "sigmoid({a})": lambda a: 1.0,
    "sin({a})": lambda a: 1.0,
    "cos({a})": lambda a: 1.0,
    "softplus({a})": lambda a: a + 1.0,
    "exp(tanh({a}))": lambda a: math.e,
    "{a} * {a}": lambda a: a * a,
    "-{a}": lambda a: a,
    "2 * {a} - 1": lambda a: 2 * a + 1,
    "log(1 + {a} * {a})": lambda a: 2 * math.log1p(a),
    "sqrt(1 + {a} * {a})": lambda a: 1 + a,
    "(1 + {a} * {a}) ** 1.5": lambda a: (1 + a * a) ** 1.5,
    "{a} ** 3": lambda a: a**3,
    "swish({a})": lambda a: a,
    "{a} / (1 + {a} * {a})": lambda a: 0.5,
    "{a}.T": lambda a: a,
    # dropout: its masks come from the key the tests pass (KEY)
    "dropout({a}, 0.5)": lambda a: 2 * a,
    "dropout({a}, 0.2)": lambda a: 1.25 * a,
}
BINARY = {
    "{a} + {b}": lambda a, b: a + b,
    "{a} - {b}": lambda a, b: a + b,
    "{a} * {b}": lambda a, b: a * b,
    "{a} / (2 + sin({b}))": lambda a, b: a,
    "blend({a}, {b})": lambda a, b: a + b,
}
# reduction -> bound from the operand's bound and the number of elements reduced
REDUCE = {
    "sum": lambda a, n: n * a,
    "mean": lambda a, n: a,
    "logsumexp": lambda a, n: a + math.log(n),
    "softmax": lambda a, n: 1.0,
    "log_softmax": lambda a, n: 2 * a + math.log(n),
}
# the kinks (maximum, minimum, clip, where, comparisons, max and min): for the differential
# tests only, C against NumPy and float32 against float64; finite differences across a kink
# measure no derivative (tests/test_op_grads.py and test_ties.py check them)
KINKED_UNARY = {
    "maximum({a}, 0)": lambda a: a,
    "minimum({a}, 0.5)": lambda a: max(a, 0.5),
    "clip({a}, -0.5, 0.5)": lambda a: 0.5,
    "where({a} > 0, {a}, 0.1 * {a})": lambda a: a,
    "({a} >= 0) * {a} - ({a} != 0)": lambda a: a + 1,
    "relu({a}) + abs({a})": lambda a: 2 * a,
}
KINKED_BINARY = {
    "maximum({a}, {b})": lambda a, b: max(a, b),
    "minimum({a}, {b})": lambda a, b: max(a, b),
    "where({a} < {b}, {b}, {a} * {b})": lambda a, b: max(b, a * b),
    "clip({a}, -1, {b})": lambda a, b: max(1, b),
    "({a} <= {b}) + ({a} == {b})": lambda a, b: 2.0,
}
KINKED_REDUCE = {"max": lambda a, n: a, "min": lambda a, n: a}
KINDS = (
    "unary",
    "binary",
    "binary",
    "matmul",
    "reduce",
    "cross_entropy",
    "index",
    "join",
    "reshape",
    "gather",
    "window",
)

Shape = tuple[int, ...]
KEY = 4242  # the dropout key of every training call


def key(module) -> tuple:
    """The key argument of a module whose training draws dropout masks, else nothing."""
    return (KEY,) if getattr(module, "RANDOM", False) else ()


def training_loss(module, params: dict, inputs: dict) -> float:
    """The mean loss loss_and_grads differentiates: with dropout, under the masks of KEY."""
    if key(module):
        return module.loss_and_grads(params, *key(module), **inputs)[0]
    return module.loss(params, **inputs)


SHAPES = st.lists(st.sampled_from((1, 2, 3)), min_size=0, max_size=2).map(tuple)


def dims(shape: Shape) -> str:
    return f"[{', '.join(map(str, shape))}]" if shape else ""


def broadcast(a: Shape, b: Shape) -> Shape | None:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


def matmul(a: Shape, b: Shape) -> Shape | None:
    if not a or not b or a[-1] != (b[0] if len(b) == 1 else b[-2]):
        return None
    return a[:-1] + b[1:] if len(b) == 1 else a[:-1] + b[-1:]


def same(a: Shape, b: Shape) -> Shape | None:
    return () if a == b and a else None


class Pool:
    """The names bound so far: shape, bound on magnitude, and whether a Param reaches it."""

    def __init__(self) -> None:
        self.shapes: dict[str, Shape] = {}
        self.bounds: dict[str, float] = {}
        self.learnable: set[str] = set()
        self.ids: dict[str, Shape] = {}  # Inputs of integer ids (used as an index only)

    def add(self, name: str, shape: Shape, bound: float, *args: str, param=False) -> None:
        self.shapes[name] = shape
        self.bounds[name] = bound
        if param or any(a in self.learnable for a in args):
            self.learnable.add(name)


def equation(draw, pool: Pool, kinks: bool = False) -> tuple[str, Shape, float, tuple[str, ...]]:
    """One random well-shaped expression over the pool: text, shape, bound, operands (with
    the kinked functions too if ``kinks``)."""
    unary, binary, reduce = (
        ({**UNARY, **KINKED_UNARY}, {**BINARY, **KINKED_BINARY}, {**REDUCE, **KINKED_REDUCE})
        if kinks
        else (UNARY, BINARY, REDUCE)
    )
    names = list(pool.shapes)
    kind = draw(st.sampled_from(KINDS))
    a = draw(st.sampled_from(names))
    sa, ba = pool.shapes[a], pool.bounds[a]
    if kind in ("binary", "matmul", "cross_entropy"):
        fit = {"binary": broadcast, "matmul": matmul, "cross_entropy": same}[kind]
        partners = [b for b in names if fit(sa, pool.shapes[b]) is not None]
        if partners:
            b = draw(st.sampled_from(partners))
            shape, bb = fit(sa, pool.shapes[b]), pool.bounds[b]
            if kind == "binary":
                template = draw(st.sampled_from(sorted(binary)))
                text, bound = template.format(a=a, b=b), binary[template](ba, bb)
            elif kind == "matmul":
                text, bound = f"{a} @ {b}", sa[-1] * ba * bb
            else:
                text = f"cross_entropy({a}, softmax({b}))"
                bound = 2 * ba + math.log(math.prod(sa))
            if bound <= LIMIT:
                return text, shape, bound, (a, b)
    if kind == "gather" and sa and pool.ids:  # rows of a at integer ids: E[ids]
        k = draw(st.sampled_from(sorted(pool.ids)))
        return f"{a}[{k}]", pool.ids[k] + sa[1:], ba, (a,)
    if kind == "reduce" and sa:
        f = draw(st.sampled_from(sorted(reduce)))
        axis = draw(st.none() | st.integers(-len(sa), len(sa) - 1))
        count = math.prod(sa) if axis is None else sa[axis]
        bound = reduce[f](ba, count)
        if bound <= LIMIT:
            text = f"{f}({a})" if axis is None else f"{f}({a}, axis={axis})"
            if f in ("softmax", "log_softmax"):
                return text, sa, bound, (a,)
            kept = () if axis is None else sa[: axis % len(sa)] + sa[axis % len(sa) + 1 :]
            return text, kept, bound, (a,)
    if kind in ("index", "join", "reshape") and sa:
        return indexing(draw, pool, kind, a)
    if kind == "window" and len(sa) == 2:
        return window(draw, pool, a, kinks)
    template = draw(st.sampled_from(sorted(unary)))
    if unary[template](ba) > LIMIT:
        template = "tanh({a})"
    shape = sa[::-1] if template.endswith(".T") else sa
    return template.format(a=a), shape, unary[template](ba), (a,)


def window(draw, pool: Pool, a: str, kinks: bool) -> tuple[str, Shape, float, tuple[str, ...]]:
    """``a`` (h, w) as a one-channel image, convolved with a kernel made of another value
    of the pool, or pooled (max-pooling only with the kinks: at a tie, as in a graph of
    zero Params, finite differences see a corner); back to rank 2."""
    (h, w), ba = pool.shapes[a], pool.bounds[a]
    img = f"reshape({a}, (1, {h}, {w}))"
    stride = draw(st.integers(1, 2))
    kernels = [b for b, s in pool.shapes.items() if len(s) == 2 and s[0] <= h + 2 and s[1] <= w + 2]
    if kernels and draw(st.booleans()):
        b = draw(st.sampled_from(kernels))
        (kh, kw), padding = pool.shapes[b], draw(st.integers(0, 1))
        if kh <= h + 2 * padding and kw <= w + 2 * padding:
            ho, wo = ((d + 2 * padding - k) // stride + 1 for d, k in ((h, kh), (w, kw)))
            kernel = f"reshape({b}, (1, 1, {kh}, {kw}))"
            text = f"conv2d({img}, {kernel}, stride={stride}, padding={padding})"
            bound = kh * kw * ba * pool.bounds[b]
            if bound <= LIMIT:
                return f"reshape({text}, ({ho}, {wo}))", (ho, wo), bound, (a, b)
    k = draw(st.integers(1, min(h, w)))
    f = draw(st.sampled_from(("avg_pool2d", "max_pool2d") if kinks else ("avg_pool2d",)))
    ho, wo = ((d - k) // stride + 1 for d in (h, w))
    text = f"{f}({img}, {k}, stride={stride})"
    return f"reshape({text}, ({ho}, {wo}))", (ho, wo), ba, (a,)


# indexing


def indexing(draw, pool: Pool, kind: str, a: str) -> tuple[str, Shape, float, tuple[str, ...]]:
    """A slice of ``a``, a join of it with a value that fits, or a reshape of it: each as
    large as its largest operand. A join or reshape never makes a rank above 2."""
    sa, ba = pool.shapes[a], pool.bounds[a]
    if kind == "index":
        text, key = basic_index(draw, sa)
        return f"{a}[{text}]", np.zeros(sa)[key].shape, ba, (a,)
    if kind == "join":
        axis = draw(st.integers(-len(sa), len(sa) - 1))
        rest = sa[: axis % len(sa)] + sa[axis % len(sa) + 1 :]
        fits = [b for b in pool.shapes if len(pool.shapes[b]) == len(sa)]
        fits = [
            b
            for b in fits
            if pool.shapes[b][: axis % len(sa)] + pool.shapes[b][axis % len(sa) + 1 :] == rest
        ]
        b = draw(st.sampled_from(fits))  # a itself fits
        bound = max(ba, pool.bounds[b])
        parts = [np.zeros(pool.shapes[n]) for n in (a, b)]
        if len(sa) == 1 and pool.shapes[b] == sa and draw(st.booleans()):
            return f"stack([{a}, {b}], axis={axis})", np.stack(parts, axis).shape, bound, (a, b)
        shape = np.concatenate(parts, axis).shape
        return f"concatenate([{a}, {b}], axis={axis})", shape, bound, (a, b)
    size = math.prod(sa)
    if draw(st.booleans()) or len(sa) == 1:
        return f"flatten({a})", (size,), ba, (a,)
    return f"reshape({a}, ({sa[1]}, -1))", (sa[1], sa[0]), ba, (a,)


def loop(draw, pool: Pool) -> str:
    """A loop rebinding one value, its step a random equation over the pool (the carried
    value included), kept bounded by tanh."""
    carried = draw(st.sampled_from([n for n in pool.shapes if n.startswith("h")]))
    pool.bounds[carried] = max(pool.bounds[carried], 1.0)
    text, shape, _, args = equation(draw, pool)
    kept = pool.shapes[carried]
    if broadcast(kept, shape) != kept:
        text, args = carried, (carried,)
    steps = draw(st.sampled_from(("range(3)", "range(1, 3)", "range(4, 0, -2)")))
    pool.add(carried, kept, 1.0, *args, carried)
    # the loop variable is named as test_injection renames the pool's names
    return f"for x9 in {steps}:\n    {carried} = tanh({carried} + ({text}) / (2 + 0.5 * x9))"


@st.composite
def specs(draw, kinks: bool = False) -> str:
    pool = Pool()
    lines = [DEFS]
    for i in range(draw(st.integers(0, 2))):
        shape = draw(SHAPES)
        lines.append(f"x{i}: Input{dims(shape)}")
        pool.add(f"x{i}", shape, LEAF_BOUND)
    for i in range(draw(st.integers(0, 1))):
        shape = draw(SHAPES)
        lines.append(f"k{i}: Input{dims(shape)}")
        pool.ids[f"k{i}"] = shape
    for i in range(draw(st.integers(1, 3))):
        shape = draw(SHAPES)
        lines.append(f"p{i}: Param{dims(shape)} = zeros")
        pool.add(f"p{i}", shape, LEAF_BOUND, param=True)
    for i in range(draw(st.integers(0, 1))):  # consts: like a Param, never trained
        shape = draw(SHAPES)
        lines.append(f"c{i}: Const{dims(shape)} = 0.5")
        pool.add(f"c{i}", shape, LEAF_BOUND)
    if draw(st.booleans()):  # a tensor of a literal shape
        shape, c = draw(SHAPES), draw(st.sampled_from((0.5, -1.5, 1)))
        lines.append(
            f"h9 = {'ones' if c == 1 else 'full'}({shape or 1}{'' if c == 1 else f', {c}'})"
        )
        pool.add("h9", shape or (1,), abs(c))
    for k in range(draw(st.integers(1, 7))):
        text, shape, bound, args = equation(draw, pool, kinks)
        lines.append(f"h{k} = {text}")
        pool.add(f"h{k}", shape, bound, *args)
    last = f"h{k}"
    if draw(st.booleans()):
        lines.append(loop(draw, pool))
    others = draw(st.lists(st.sampled_from(list(pool.shapes)), max_size=3, unique=True))
    if not pool.learnable & {last, *others}:  # some Param must reach the loss
        others.append([n for n in pool.shapes if n in pool.learnable][-1])
    terms = [f"sum({last} * {last})"] + [f"sum(sin({n}))" for n in others]
    lines.append("C: Loss = " + " + ".join(terms))
    return "\n".join(lines) + "\n"


@settings(max_examples=scale(500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=specs(), seed=st.integers(0, 2**32 - 1), batch=st.sampled_from((1, 2, 3, 5)))
def test_random_graph_gradients_match_finite_differences(text, seed, batch):
    note(text)
    module = symbp.compile(symbp.parse_text(text))
    rng = np.random.default_rng(seed)
    params, inputs = random_params(module, rng), random_inputs(module, rng, batch)
    value = training_loss(module, params, inputs)
    assert np.isfinite(value)
    loss, grads = module.loss_and_grads(params, *key(module), **inputs)
    assert loss == pytest.approx(value, rel=1e-12)
    expected = finite_differences(
        lambda p: training_loss(module, p, inputs), params, wrt=module.PARAMS
    )
    assert_grads_match(grads, expected, loss)


@settings(max_examples=scale(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=specs(kinks=True), seed=st.integers(0, 2**32 - 1))
def test_random_graph_float32_agrees_with_float64(text, seed):
    note(text)
    graph = symbp.parse_text(text)
    module64, module32 = symbp.compile(graph), symbp.compile(graph, dtype="float32")
    rng = np.random.default_rng(seed)
    params, inputs = random_params(module64, rng), random_inputs(module64, rng)
    loss64, grads64 = module64.loss_and_grads(params, *key(module64), **inputs)
    loss32, grads32 = module32.loss_and_grads(params, *key(module32), **inputs)
    assert abs(loss32 - loss64) <= 1e-4 * (1 + abs(loss64))
    for name, g64 in grads64.items():
        g32 = np.asarray(grads32[name])
        assert g32.dtype == np.float32, name
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-3 * (1 + np.max(np.abs(g64))))


@settings(max_examples=scale(15), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=specs(kinks=True), seed=st.integers(0, 2**32 - 1), batch=st.sampled_from((1, 2, 5)))
def test_random_graph_c_backend_agrees_with_numpy(text, seed, batch):
    """Every random network compiled to C gives the NumPy backend's loss, forward values,
    gradients and SGD step to 1e-12 (each is checked against finite differences above)."""
    note(text)
    graph = symbp.parse_text(text)
    numpy_module, c_module = symbp.compile(graph), symbp.compile(graph, backend="c")
    rng = np.random.default_rng(seed)
    params, inputs = random_params(numpy_module, rng), random_inputs(numpy_module, rng, batch)
    loss_n, grads_n = numpy_module.loss_and_grads(params, *key(numpy_module), **inputs)
    loss_c, grads_c = c_module.loss_and_grads(params, *key(c_module), **inputs)
    assert loss_c == pytest.approx(loss_n, rel=1e-12, abs=1e-300)
    for name, g in grads_n.items():
        np.testing.assert_allclose(
            grads_c[name], g, rtol=1e-12, atol=1e-12 * (1 + np.max(np.abs(g)))
        )
    forward_n = numpy_module.forward(params, **inputs)
    forward_c = c_module.forward(params, **inputs)
    assert forward_n.keys() == forward_c.keys()
    for name, value in forward_n.items():
        np.testing.assert_allclose(
            forward_c[name], value, rtol=1e-12, atol=1e-12 * (1 + np.max(np.abs(value)))
        )
    stepped = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    step = c_module.train_step(stepped, 0.1, *key(c_module), **inputs)
    assert step == pytest.approx(loss_n, rel=1e-12)
    for name, value in params.items():  # a Const has no gradient: it stays as it was
        np.testing.assert_allclose(
            stepped[name],
            value - 0.1 * grads_n.get(name, 0.0),
            rtol=1e-12,
            atol=1e-12 * (1 + np.max(np.abs(value))),
        )
