"""The parser's fast path (``symbp.parse_shapes``) against its general reader.

Whatever the spec, the fast path must build the very graph the general reader builds (the
same nodes, names, lines, equations, declarations, statements), or give up, in which case
``parse_text`` reads the spec with the general reader; it must never accept a spec the
general reader refuses. Checked on every example, on the benchmark's large specs, on specs
generated to repeat statement shapes with names of every kind (bound to constants, unbound,
bound twice), and on the parser fuzzer's mutated examples and token soup.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import scale
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from test_fuzz_parser import LITERAL_PLACES, NUMBER_TEXT, mutated_example, token_soup

from bench.scale import spec_for
from symbp import SpecError
from symbp.frontend import shapes as parse_shapes
from symbp.frontend.parser import _Parser, parse_text
from symbp.frontend.shapes import FALLBACK, LOOP, read_by_shapes
from symbp.ir.graph import Graph
from symbp.ir.node import gc_paused

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {
    p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
    for p in sorted((ROOT / "examples").rglob("*.sbp"))
}
SETTINGS = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


def assert_same_graph(a: Graph, b: Graph) -> None:
    """Equal graphs, node for node (nodes are hash-consed: equal ones are the same object)."""
    assert (a.name, a.source, a.filename) == (b.name, b.source, b.filename)
    for decls_a, decls_b in ((a.inputs, b.inputs), (a.params, b.params), (a.consts, b.consts)):
        assert list(decls_a) == list(decls_b)
        for name, d in decls_a.items():
            e = decls_b[name]
            assert (d.node, d.line, d.init) == (e.node, e.line, e.init) and d.node is e.node
    assert len(a.equations) == len(b.equations)
    for (name, node, line), (name_b, node_b, line_b) in zip(a.equations, b.equations):
        assert (name, line) == (name_b, line_b) and node is node_b
    assert list(a.outputs) == list(b.outputs)
    assert all(a.outputs[k] is b.outputs[k] for k in a.outputs)
    assert a.loss is b.loss and a.loss_name == b.loss_name
    assert [(id(k), v) for k, v in a.names.items()] == [(id(k), v) for k, v in b.names.items()]
    assert [(id(k), v) for k, v in a.lines.items()] == [(id(k), v) for k, v in b.lines.items()]
    assert list(a.functions.items()) == list(b.functions.items())
    assert list(a.statements.items()) == list(b.statements.items())


@gc_paused
def fast(source: str):
    """The fast path's graph, or the exception it gave up with (only those it may raise)."""
    try:
        return read_by_shapes(_Parser(source, "t.sbp", "t"))
    except FALLBACK as e:
        return e


def general(source: str):
    try:
        return _Parser(source, "t.sbp", "t").run()
    except SpecError as e:
        return e


def check(source: str, must_read: bool = False) -> None:
    """Both readers agree on ``source``, and ``parse_text`` gives the general reader's
    answer; with ``must_read``, the fast path read the spec itself."""
    if currently_in_test_context():
        note(source)
    given, source = source, source.removeprefix("\ufeff")  # as parse_text does, once
    reference, quick = general(source), fast(source)
    if isinstance(reference, SpecError):
        assert not isinstance(quick, Graph), f"the fast path accepted: {reference}"
        err = pytest.raises(SpecError, parse_text, given, "t.sbp", "t").value
        assert (err.line, err.col, err.message) == (
            reference.line,
            reference.col,
            reference.message,
        )
        return
    if must_read:
        assert isinstance(quick, Graph), f"the fast path gave up: {quick!r}"
    if isinstance(quick, Graph):
        assert_same_graph(reference, quick)
    assert_same_graph(reference, parse_text(given, "t.sbp", "t"))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples(name):
    source = EXAMPLES[name]
    check(source, must_read=not LOOP.search(source))  # loops: the general reader's


@pytest.mark.parametrize("family", ["dag", "mlp"])
def test_benchmark_specs(family):
    check(spec_for(family, 3000), must_read=True)


@pytest.mark.parametrize("family", ["dag", "mlp"])
def test_benchmark_specs_are_read_by_plans(family, monkeypatch):
    """Only the first line of each shape goes to the general reader (the fast path cannot
    quietly become the slow one)."""
    general = []
    read = parse_shapes._Reader.general

    def counted(reader, start: int, end: int) -> None:
        general.append(end - start)
        read(reader, start, end)

    monkeypatch.setattr(parse_shapes._Reader, "general", counted)
    source = spec_for(family, 3000)
    assert isinstance(fast(source), Graph)
    assert sum(general) < 20 < source.count("\n")


@pytest.mark.parametrize(
    "head",
    [
        '"""A spec. If and for are words here # and this no comment\n"""\n',
        "def f(u):\n    '''doc, with if'''\n\n    return u * 2\n",
        "# it's a comment\ns = 'a' if 1 else 'b' # \\\n",
        "k = 1 + \\\n  2\n",
    ],
)
def test_strings_and_continuations_at_the_top(head):
    """The lines up to the last string or backslash are the general reader's; the fast path
    reads the rest (the general reader refuses the third head, so the fast path gives up)."""
    check(head + spec_for("dag", 300), must_read="if 1" not in head)


# --------------------------------------------------------------- generated specs

NAMES = ["x", "y", "w", "v", "s", "c", "k", "q", "W", "f", "he", "match", "Input", "nowhere"]
GOOD = [  # statement shapes over names a and b (vectors), which recur with other names
    "{t} = {a} + {b}",
    "{t} = {a} * {b}",
    "{t} = {a} - 0.5 * {b}",
    "{t} = sigmoid({a})",
    "{t} = tanh({a}) * {b}",
    "{t} = exp(-{a} * {a})",
    "{t} = softplus({a}) / (1 + {b} * {b})",
    "{t} = {a} / {b}",
    "{t} = {a} ** 2",
    "{t} = 2 ** {a}",
    "{t} = {a} ** {b}",
    "{t} = W @ {a} + {b}",
    "{t} = {a}.T",
    "{t} = -{a}",
    "{t} = +{a}",
    "{t} = softmax({a})",
    "{t} = log_softmax({a}, axis=0)",
    "{t} = f({a})",
    "{t} = g2({a}, {b})",
    "{t} = exp(1) * {a}",
    "{t} = 1.e5 * {a}",
    "{t}=({a}+{b})",
    "{t} = {a}  +  {b}   ",
    "{t} = {a} + {b}  # f(x) = 'quoted' \\",
    "{t}: Output = {a} * {b}",
    "{t} = {a}",
    "{t} = {a}\f",
    "{t} = sum({a} +\n    {b}) * {a}",
    "{t} = (\n{a} + {b})",
    "{t}: Input[3]",
    "{t}: Param[3] = normal(0.1)",
    "{t} = {a}; {t}2 = 1",
    "{t} = sum({a}) * {b}",
    "{t} = {b} - mean({a}, axis=0)",
    "{t} = logsumexp({a}) + {b}",
    "{t} = cross_entropy({a}, {b}) * {b}",
    "{t} = sum({a}, axis=-1) + {b}",
    # maximum, minimum, clip, where, comparisons; max and min
    "{t} = maximum({a}, {b})",
    "{t} = clip({a}, {b}, {a})",
    "{t} = where({a} > {b}, {a}, {b})",
    "{t} = max({a}) + min({b}, axis=0)",
    "{t} = ({a} <= 1) * {b}",
]
NOT_BOUND = [
    "",
    "# {a} = {b}",
    "def {t}(u): return u * 2",
    "def {t}(u):\n    return sigmoid(u)\n",
    "{t}: Param = 0.5",
    "{t} = sum({a})",
]
RISKY = [  # shapes that fail, or fail with some names
    "{t} = (-2) ** {a}",
    "{t} = {a} / 0",
    "{t} = {a} / (1 - 1)",
    "{t} = {a} @ {b}",
    "{t} = {a}.T @ {b}",
    "{t} = {a} - {a}",
    "{t} = {a} * 0",
    "{t} = f({a}, {b})",
    "{t} = f(2)",
    "{t} = f(0) ** {a}",
    "{t} = log(0) * {a}",
    "{t} = sum(1) + {a}",
    "{t} = 3",
    "{t} = 1 / 4",
    "{t} = 1e999 * {a}",
    "{t} = {a} + 1e-320",
    "{t} = {a} / 1e-320",
    "{t}: Loss = sum({a})",
    "{t}: Loss = {a}",
    "{t}: Input",
    "{t}: Param[3, 3] = glorot",
    "{t}: Param[3] = uniform(1, 0)",
    "{t}: Input = 3",
    "{t}: Param[3]",
    "{t}: Loss[3] = {a}",
    "{t}: Foo = {a}",
    "{t} = {b} = {a}",
    "{t} = {a};",
    "{t} = sum({a}, foo=1)",
    "{t} = sigmoid({a}, axis=0)",
    "{t} = sum(*{a})",
    "{t} = {a}.x",
    "{t} = {a} % 2",
    "{t} += {a}",
    "def {t}(u):\n    return u / 0",
    "    {t} = {a}",
    "\t{t} = {a}",
    "{t} = {a}\\\n + {b}",
    "{t} = '{a}'",
    "{t} = {a} if {b} else {a}",
    "{t} = (",
    "{t} = {a})",
    "def {t}(u):",
    "@{a}",
    "{t} = {a} # α",
    "α{t} = {a}",
]
PRELUDE = (
    "x: Input[3]\ny: Input[3]\nw: Param[3] = normal(0.1)\nv: Param[3] = zeros\n"
    "s: Param = 0.5\nc = 2\nk = -1\nq = c - c\nW: Param[3, 3] = glorot\n"
    "def f(u):\n    return u * u + 1\ndef g2(u, z):\n    return u * z\n"
)


@st.composite
def shaped_spec(draw) -> str:
    """A spec of statements of ``GOOD`` shapes (and ``RISKY`` ones, in a spec out of two),
    naming mostly what earlier ones bound, so shapes recur with different names and the
    names stand for values of every kind."""
    risk = draw(st.sampled_from([0, 0, 0.02, 0.1]))
    bound = ["x", "y", "w", "v"]
    lines = [PRELUDE]
    for i in range(draw(st.integers(0, 40))):
        risky = draw(st.floats(0, 1)) < risk
        shape = draw(st.sampled_from(RISKY if risky else GOOD + NOT_BOUND))
        pool = NAMES if draw(st.floats(0, 1)) < risk else bound
        a, b = draw(st.sampled_from(pool)), draw(st.sampled_from(pool))
        t = f"h{i}" if draw(st.floats(0, 1)) >= risk else draw(st.sampled_from(pool))
        lines.append(shape.format(t=t, a=a, b=b))
        if shape not in NOT_BOUND:
            bound.append(t)
    if draw(st.floats(0, 1)) > risk:
        lines.append(f"C: Loss = sum({draw(st.sampled_from(bound))})")
    newline = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    return newline.join("\n".join(lines).split("\n")) + newline


@settings(max_examples=scale(250), **SETTINGS)
@given(source=shaped_spec())
def test_generated_specs(source):
    check(source)


@st.composite
def valid_spec(draw) -> str:
    """A spec that parses, of shapes the fast path must read itself."""
    lines = [PRELUDE]
    bound = ["x", "y", "w", "v"]
    for i in range(draw(st.integers(1, 40))):
        shape = draw(st.sampled_from([s for s in GOOD if ";" not in s and "\n" not in s]))
        a, b = draw(st.sampled_from(bound)), draw(st.sampled_from(bound))
        lines.append(shape.format(t=f"h{i}", a=a, b=b))
        bound.append(f"h{i}")
    lines.append(f"C: Loss = sum({bound[-1]} * {bound[-1]})")
    return "\n".join(lines) + "\n"


@settings(max_examples=scale(200), **SETTINGS)
@given(source=valid_spec())
def test_valid_specs_are_read_by_the_fast_path(source):
    check(source, must_read=True)


@settings(max_examples=scale(300), **SETTINGS)
@given(source=mutated_example())
def test_mutated_examples(source):
    check(source)


@settings(max_examples=scale(300), **SETTINGS)
@given(source=token_soup())
def test_token_soup(source):
    check(source)


@settings(max_examples=scale(200), **SETTINGS)
@given(place=st.sampled_from(LITERAL_PLACES), number=NUMBER_TEXT)
def test_literals(place, number):
    check(place.format(n=number))


@pytest.mark.parametrize(
    "source",
    [
        "x: Input[3]\nc = 2\nh = x * c\nC: Loss = sum(h)\n",  # a name bound to a constant
        "x: Input[3]\nc = 0\nh = x / c\nC: Loss = sum(h)\n",  # ... which is zero
        "x: Input[3]\nc = -2\nh = c ** x\nC: Loss = sum(h)\n",
        "x: Input[3]\nc = 2e-313\nh = x / c\nC: Loss = sum(h)\n",
        "x: Input[3]\nc = 0\nh = log(c) * x\nC: Loss = sum(h)\n",
        "x: Input[3]\nc = 0\ndef f(u, v):\n    return u ** v\nh = f(c, x)\nC: Loss = sum(h)\n",
        "x: Input[3]\nc = 2\nh = (x * c + c) @ x.T - c\nC: Loss = sum(h)\n",
        "x: Input[3]\nh = x - x\nk = x / h\nC: Loss = sum(k)\n",  # a node folded to a constant
        "x: Input[3]\nh = (x - x - 1) ** x\nC: Loss = sum(h)\n",
        "x: Input\nC: Loss = x\nD: Loss = x\n",  # a second Loss, from the same shape
        "x: Input[3]\nC: Loss = x\n",  # a Loss that is no scalar
        "x: Input\nh = softmax(x)\nC: Loss = h\n",
        "x: Input[3]\nh = x\nh = x\nC: Loss = sum(h)\n",
        "x: Input[3]\nx: Input[3]\nC: Loss = sum(x)\n",
        "x: Input[3]\ndef f(u):\n    return u\nf = x\nC: Loss = sum(f)\n",
        "x: Input[3]\nh = f(x)\ndef f(u):\n    return u\nC: Loss = sum(h)\n",
        "x: Input[3]\nh = x\n  k = x\nC: Loss = sum(h)\n",
        "x: Input[3]\nh = sum(x,\n)\nC: Loss = h\n",
        "x: Input[3]\nh = (x\nC: Loss = sum(x)\n",
        "x: Input[3]\nh = x)\nC: Loss = sum(x)\n",
        "x: Input[3]\nh = x;\nC: Loss = sum(h)\n",
        "x: Input[3]\nhe = x\nmatch = he\nC: Loss = sum(match)\n",
        "x: Input[3]\nh = 1.e5 * x\nC: Loss = sum(h)\n",
        "x: Input[3]\nh = 1.T * x\nC: Loss = sum(h)\n",
        "x: Input[3]\nh = 2x\nC: Loss = sum(h)\n",
        "x: Input[3]\nh = x if x else x\nC: Loss = sum(h)\n",
        "x: Input[3]\nlambda: x\nC: Loss = sum(x)\n",
        "x: Input[3]\nαx = x\nC: Loss = sum(αx)\n",
        "x: Input[3]\nh = x\nTrue = x\nC: Loss = sum(h)\n",  # keywords where names stand
        "x: Input[3]\nh = x\nk = h * None\nC: Loss = sum(k)\n",
        "x: Input[3]\nh = x\n__debug__ = x\nC: Loss = sum(h)\n",
        "x: Input[3]\nh = x.foo\nk = x.T\nC: Loss = sum(k)\n",
        "x: Input[3]\nT = x\nk = T.T\nC: Loss = sum(k)\n",
        "x: Input[3]\nh = x\nk = h\nu = k * x\nv = k * he\nC: Loss = sum(u)\n",
        "x: Input[3]\nﬁ = x\nC: Loss = sum(fi)\n",
        "x: Input[3]\nh = x\n@h\ndef f(u):\n    return u\nC: Loss = sum(h)\n",
        "x: Input[3]\ndef f(u):\nh = x\nC: Loss = sum(h)\n",
        "x: Input[3]\nif x:\n    h = x\nC: Loss = sum(x)\n",
        "x: Input[3]\nh = x\n" + "k = " + " + ".join(["x"] * 300) + "\nC: Loss = sum(k)\n",
        "x: Input[3]\nh = x\n" + "k = " + "(" * 150 + "x" + ")" * 150 + "\nC: Loss = sum(k)\n",
        "x: Input[3]\n\x00h = x\nC: Loss = sum(x)\n",
        "x: Input[3]\nh = x\n",  # no Loss
        'x: Input[3]\nh = """start\n# end"""\ny = x\nC: Loss = sum(y)\n',  # no comment
        'x: Input[3]\nh = f("x",\ny)\nC: Loss = sum(x)\n',
        "x: Input[3]\nh = x * \\\n x\nk = h\nC: Loss = sum(k)\n",
        "x: Input[3]\nh = x\nk = 2 * $h\nC: Loss = sum(k)\n",
    ],
)
def test_cases(source):
    check(source)


CONST_SPEC = (
    "x: Input[3]\n"
    + "".join(f"K{i}: Const[3] = {i / 4}\nh{i} = K{i} * x\n" for i in range(6))
    + "t: Const = normal(0.5)\nu: Const = uniform(-1, 1)\n"
    + "C: Loss = sum(h5 * t * u)\n"
)


@pytest.mark.parametrize(
    "source",
    [
        CONST_SPEC,
        CONST_SPEC.replace("K3: Const[3] = 0.75", "K3: Const[3]"),  # no initializer
        CONST_SPEC.replace("K3: Const[3]", "K2: Const[3]"),  # declared twice
        CONST_SPEC.replace("K3: Const[3]", "h1: Const[3]"),  # bound before
        CONST_SPEC.replace("K3: Const[3] = 0.75", "K3: Const[3] = xavier"),
        CONST_SPEC.replace("K3: Const[3]", "K3: Const[0]"),
    ],
)
def test_consts(source):
    """Const declarations are read by the plans of their shapes, errors by the general
    reader."""
    check(source, must_read=source == CONST_SPEC)
    if source == CONST_SPEC:
        assert list(fast(source).consts) == [*(f"K{i}" for i in range(6)), "t", "u"]


def test_const_lines_are_read_by_plans(monkeypatch):
    read, lines = parse_shapes._Reader.general, []
    monkeypatch.setattr(
        parse_shapes._Reader, "general", lambda r, s, e: (lines.append(e - s), read(r, s, e))
    )
    source = "x: Input[3]\n" + "".join(
        f"K{i}: Const[3] = 0.5\nh{i} = K{i} * x\n" for i in range(20)
    )
    graph = fast(source + "C: Loss = sum(h19)\n")
    assert isinstance(graph, Graph) and len(graph.consts) == 20
    assert sum(lines) < 6


# ------------------------------------------------------------- gather: E[ids] (SPEC.md §5)

IDS_HEAD = "E: Param[5, 2] = zeros\nF: Param[5, 2] = zeros\nids: Input[2]\nx: Input[2]\n"


def test_integer_ids_are_settled_before_the_fast_path_reads():
    """Both readers make ids an integer Input, and the fast path reads the spec itself; a
    planned line (its shape met before) that uses ids as a value is the general reader's
    located error."""
    body = "a = x * x\nb = x * x\nv = E[ids]\nw = F[ids]\n"
    check(IDS_HEAD + body + "C: Loss = sum(v * w)\n", must_read=True)
    graph = parse_text(IDS_HEAD + body + "C: Loss = sum(v * w)\n")
    assert graph.inputs["ids"].node.dtype == "int" and graph.inputs["x"].node.dtype == "float"
    check(IDS_HEAD + body + "c = ids * x\nC: Loss = sum(c)\n")
    err = pytest.raises(SpecError, parse_text, IDS_HEAD + body + "c = ids * x\nC: Loss = 1\n")
    assert (err.value.line, err.value.col) == (9, 5)
