"""Parser fuzzing (issue #7): whatever the bytes of a spec, parsing ends in a ``Graph`` or in a
``SpecError`` located at a line of the spec, in bounded time, and executes nothing.

Campaigns, each a hypothesis strategy: (a) random token sequences, (b) the specs of
``examples/`` with lines and tokens deleted, swapped, duplicated or replaced, (c) deep nesting
and long chains, (d) huge and odd literals in every place a number may stand, (e) bytes that
are not UTF-8, NUL bytes and other encodings, then (f) a 10,000-line spec, and specs written
to run code (``__import__('os').system(...)`` and friends) that must run nothing.

Any other exception (RecursionError, MemoryError, OverflowError, a ValueError that is not a
SpecError, ...) fails the test with the shrunk spec; so does a parse that runs longer than
``HANG_SECONDS`` (a hang guard, not a timing assertion). A spec that parses must also compile
to a NumPy module that imports. ``--long`` runs ten times more examples.
"""

from __future__ import annotations

import io
import re
import resource
import time
import tokenize
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest
from conftest import scale
from conftest import time_limit as shared_time_limit
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import symbp
from symbp import SpecError, cli
from symbp.frontend.parser import parse_bytes
from symbp.ir.graph import Graph

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {
    p.relative_to(ROOT / "examples").as_posix(): p.read_text(encoding="utf-8")
    for p in sorted((ROOT / "examples").rglob("*.sbp"))
}
HANG_SECONDS = 30.0  # per example; a guard against hangs, far above any real parse
SETTINGS = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


# ------------------------------------------------------------------------- the oracle


class Hang(Exception):
    """Parsing (or compiling) one example took longer than the hang guard allows."""


def time_limit(seconds: float):
    """Raise ``Hang`` after ``seconds`` (conftest's guard)."""
    return shared_time_limit(seconds, Hang)


def spec_lines(data: bytes | str) -> list[str]:
    """The spec's lines as its reader sees them (BOM dropped, any of the three newlines)."""
    if isinstance(data, bytes):
        data = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    return re.split(r"\r\n|\r|\n", data.removeprefix("\ufeff"))


def assert_located(err: SpecError, data: bytes | str, filename: str) -> None:
    """A SpecError that names a line of the spec, a column, the file and the line's text."""
    lines = spec_lines(data)
    assert type(err) is SpecError
    assert err.message and "Traceback" not in str(err)
    assert 1 <= err.line <= len(lines), f"line {err.line} of {len(lines)}: {err}"
    assert err.col >= 1, str(err)
    assert err.filename == filename
    assert str(err).startswith(f"{filename}:{err.line}:{err.col}: error: {err.message}")
    assert err.source_line == lines[err.line - 1]


def outcome(data: bytes | str, filename: str = "fuzz.sbp", build: bool = True):
    """Parse ``data`` (bytes as read from a file, or text); return the Graph or the SpecError.

    Anything else propagates and fails the test. A spec that parses is compiled to a NumPy
    module, which must import (it is exec'd: generated text escaping a comment would run).
    """
    with time_limit(HANG_SECONDS):
        try:
            if isinstance(data, bytes):
                graph = parse_bytes(data, filename)
            else:
                graph = symbp.parse_text(data, filename)
        except SpecError as err:
            assert_located(err, data, filename)
            if currently_in_test_context():
                event("SpecError")  # counted in --hypothesis-show-statistics
            return err
        if currently_in_test_context():
            event("parsed")
        assert isinstance(graph, Graph) and graph.loss is not None
        if build:
            module = symbp.compile(graph)
            assert module.OUTPUTS[-1] == graph.loss_name
    return graph


# ------------------------------------------------------------------- (a) token soup

EXTRA_TOKENS = [
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "=",
    "+",
    "-",
    "*",
    "/",
    "**",
    "@",
    ".T",
    ".",
    "%",
    "//",
    "<",
    "==",
    "~",
    "&",
    "|",
    "^",
    "<<",
    "!",
    "?",
    "$",
    ";",
    "\\",
    "'",
    '"',
    '"""',
    "#",
    "def",
    "return",
    "lambda",
    "if",
    "else",
    "for",
    "in",
    "import",
    "from",
    "class",
    "with",
    "not",
    "and",
    "or",
    "yield",
    "await",
    "async",
    "global",
    "del",
    "pass",
    "None",
    "True",
    "Input",
    "Param",
    "Loss",
    "Output",
    "sum",
    "mean",
    "logsumexp",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "exp",
    "log",
    "sqrt",
    "abs",
    "tanh",
    "sigmoid",
    "relu",
    "softplus",
    "sin",
    "cos",
    "zeros",
    "ones",
    "glorot",
    "he",
    "normal",
    "uniform",
    "axis",
    "axis=0",
    "axis=-1",
    "0",
    "1",
    "-1",
    "0.5",
    "2",
    "1e999",
    "1e-999",
    "9999999999",
    "0x7fffffff",
    "1_000",
    "1j",
    "0b101",
    "'s'",
    "b'x'",
    "f'{x}'",
    "...",
    "__import__",
    "eval",
    "exec",
    "open",
    "os",
    "system",
    "x",
    "y",
    "w",
    "W",
    "b",
    "C",
    "u",
    "v",
    "α",
    "ﬁ",
    "\t",
    "\x0c",
    "\r",
    "\n",
    "\n    ",
    "\u2028",
    "\ufeff",
    # maximum, minimum, clip, where, comparisons; max and min
    "maximum",
    "minimum",
    "clip",
    "where",
    "max",
    "min",
    "<=",
    ">",
    ">=",
    "!=",
    "is",
]


def example_tokens() -> list[str]:
    seen = []
    for text in EXAMPLES.values():
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.string.strip() and tok.string not in seen:
                seen.append(tok.string)
    return seen


TOKENS = example_tokens() + [t for t in EXTRA_TOKENS if t not in example_tokens()]
SEPARATORS = [" ", " ", " ", "", "\n", "\n    ", "\t", "\r\n"]


@st.composite
def token_soup(draw) -> str:
    pieces = draw(
        st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(SEPARATORS)), max_size=60)
    )
    return "".join(tok + sep for tok, sep in pieces)


@settings(max_examples=scale(1000), **SETTINGS)
@given(source=token_soup())
def test_random_token_sequences(source):
    note(repr(source))
    outcome(source)


# --------------------------------------------------------------- (b) mutated examples

Line = tuple[str, list[str]]  # (indentation, tokens)


def split_spec(text: str) -> list[Line]:
    """A spec as lines of tokens (comments kept as tokens, blank lines as empty ones)."""
    rows: dict[int, list[str]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (
            tokenize.NEWLINE,
            tokenize.NL,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        ):
            continue
        rows.setdefault(tok.start[0], []).append(tok.string)
    raw = text.splitlines()
    return [
        (line[: len(line) - len(line.lstrip())], rows.get(i, [])) for i, line in enumerate(raw, 1)
    ]


SPLIT = {name: split_spec(text) for name, text in EXAMPLES.items()}
MUTATIONS = (
    "delete line",
    "duplicate line",
    "swap lines",
    "move line",
    "delete token",
    "duplicate token",
    "swap tokens",
    "swap across lines",
    "replace token",
    "insert token",
    "dedent",
    "indent",
)


def mutate(lines: list[Line], kind: str, i: int, j: int, k: int, token: str) -> list[Line]:
    """One edit of the spec; ``i``, ``j``, ``k`` are any integers, taken modulo the sizes."""
    lines = [(indent, list(toks)) for indent, toks in lines]
    if not lines:
        return [("", [token])]
    a, b = i % len(lines), j % len(lines)
    indent, toks = lines[a]
    if kind == "delete line":
        del lines[a]
    elif kind == "duplicate line":
        lines.insert(a, (indent, list(toks)))
    elif kind == "swap lines":
        lines[a], lines[b] = lines[b], lines[a]
    elif kind == "move line":
        lines.insert(b, lines.pop(a))
    elif kind == "dedent":
        lines[a] = ("", toks)
    elif kind == "indent":
        lines[a] = ("    " + indent, toks)
    elif kind == "insert token":
        toks.insert(k % (len(toks) + 1), token)
    elif not toks:
        lines[a] = (indent, [token])
    elif kind == "delete token":
        del toks[k % len(toks)]
    elif kind == "duplicate token":
        toks.insert(k % len(toks), toks[k % len(toks)])
    elif kind == "swap tokens":
        m, n = k % len(toks), j % len(toks)
        toks[m], toks[n] = toks[n], toks[m]
    elif kind == "swap across lines":
        other = lines[b][1]
        if other:
            m, n = k % len(toks), j % len(other)
            toks[m], other[n] = other[n], toks[m]
    elif kind == "replace token":
        toks[k % len(toks)] = token
    return lines


def join_spec(lines: list[Line]) -> str:
    return "".join(indent + " ".join(toks) + "\n" for indent, toks in lines)


@st.composite
def mutated_example(draw, payloads: list[str] = ()) -> str:
    """An example spec after a few random edits; with ``payloads``, one of them is put in
    place of a token or inserted (as a token or as a line of its own) too."""
    name = draw(st.sampled_from(sorted(EXAMPLES)))
    lines = SPLIT[name]
    edits = [
        (kind, st.sampled_from(TOKENS))
        for kind in draw(st.lists(st.sampled_from(MUTATIONS), min_size=not payloads, max_size=6))
    ]
    if payloads:
        kind = draw(st.sampled_from(["replace token", "insert token", "new line"]))
        at = draw(st.integers(0, len(edits)))
        edits.insert(at, (kind, st.sampled_from(payloads)))
    for kind, pool in edits:
        i, j, k = (draw(st.integers(0, 10_000)) for _ in range(3))
        if kind == "new line":
            lines = [*lines, ("", [draw(pool)])]
            kind = "move line"
            i = len(lines) - 1
        lines = mutate(lines, kind, i, j, k, draw(pool))
    return join_spec(lines)


def test_examples_survive_the_token_round_trip():
    """Unmutated, every example still parses after splitting and joining its tokens (so the
    mutations start from valid specs)."""
    for name, lines in SPLIT.items():
        assert isinstance(outcome(join_spec(lines), build=False), Graph), name


@settings(max_examples=scale(500), **SETTINGS)
@given(source=mutated_example())
def test_mutated_examples(source):
    note(source)
    outcome(source)


# ------------------------------------------------------------------- (c) deep nesting

HEAD = "x: Input[3]\nw: Param[3] = ones\ns: Param = 0.5\n"


def nested(kind: str, depth: int) -> tuple[str, bool]:
    """A spec nesting ``kind`` ``depth`` deep, and whether it is a valid spec at all."""
    d = depth
    body = {
        "parentheses": "(" * d + "w * x" + ")" * d,
        "minus signs": "-" * d + "w * x",
        "plus and minus": "-+" * (d // 2) + "w * x",
        "calls": "tanh(" * d + "w * x" + ")" * d,
        "power tower": "s" + " ** s" * d,
        "sum chain": "w * x" + " + w * x" * d,
        "mixed chain": "s"
        + "".join(f" {op} s" for op in ["+", "*", "-", "/"] * (d // 4 + 1))[: 4 * d],
        "transposes": "w" + ".T" * d + " * x",
        "reductions": "sum(" * d + "w * x" + ")" * d,
        "lists": "[" * d + "w" + "]" * d,
        "subscripts": "w" + "[0]" * d,
        "lambdas": "lambda u: " * d + "w",
        "comparisons": "w" + " < w" * d,
        "attribute chain": "w" + ".a" * d,
    }
    if kind in body:
        text = HEAD + f"C: Loss = sum({body[kind]})\n"
        valid = kind in (
            "parentheses",
            "minus signs",
            "plus and minus",
            "calls",
            "power tower",
            "sum chain",
            "mixed chain",
            "transposes",
            "reductions",
        ) or (kind == "comparisons" and d == 1)  # one comparison; a chain is an error
        return text, valid
    if kind == "function body":
        return HEAD + "def f(u):\n    return " + "-" * d + "u\nC: Loss = sum(f(w * x))\n", True
    if kind == "nested functions":
        defs = "def f0(u):\n    return u * 0.5\n" + "".join(
            f"def f{i}(u):\n    return f{i - 1}(u) + 1\n" for i in range(1, d)
        )
        return HEAD + defs + f"C: Loss = sum(f{d - 1}(w * x))\n", True
    if kind == "indented blocks":
        block = "".join(" " * i + "if x:\n" for i in range(d)) + " " * d + "pass\n"
        return HEAD + block + "C: Loss = sum(w * x)\n", False
    if kind == "shape brackets":
        return "x: Input" + "[" * d + "3" + "]" * d + "\nC: Loss = sum(x)\n", d == 1
    if kind == "line continuations":
        return HEAD + "C: Loss = sum(w * \\\n" + "\\\n" * d + "x)\n", True
    if kind == "many operands on one line":
        return HEAD + "C: Loss = sum(" + " + ".join(["w"] * d) + ") * s\n", True
    raise AssertionError(kind)


NESTINGS = [
    "parentheses",
    "minus signs",
    "plus and minus",
    "calls",
    "power tower",
    "sum chain",
    "mixed chain",
    "transposes",
    "reductions",
    "lists",
    "subscripts",
    "lambdas",
    "comparisons",
    "attribute chain",
    "function body",
    "nested functions",
    "indented blocks",
    "shape brackets",
    "line continuations",
    "many operands on one line",
]
DEPTHS = st.integers(1, 60) | st.integers(60, 600) | st.integers(600, scale(5000, 4))


@settings(max_examples=scale(200), **SETTINGS)
@given(kind=st.sampled_from(NESTINGS), depth=DEPTHS)
def test_deep_nesting(kind, depth):
    if kind == "nested functions":
        depth = min(depth, 400)  # each level is a def of its own: the spec grows as depth
    source, valid = nested(kind, depth)
    result = outcome(source, build=depth <= 100)
    if valid and depth <= 60:  # shallow nesting of a valid construct must parse
        assert isinstance(result, Graph), str(result)
    if kind in ("sum chain", "mixed chain", "many operands on one line") and depth <= 2000:
        assert isinstance(result, Graph), str(result)  # long, but flat


@pytest.mark.parametrize(
    "op, n, value", [("+", 2000, 2000.0), ("*", 2000, 1.0), ("-", 1500, -1498.0), ("/", 1000, 1.0)]
)
def test_long_flat_chains_compile(op, n, value):
    """Found by this file's campaigns: a sum of 500 terms was "nested too deeply" (the parser
    recursed once per operator of a left-nested chain); now only Python's own parser limits
    the length (about 2500 operators)."""
    source = "a: Param = 1\nC: Loss = a" + f" {op} a" * (n - 1) + "\n"
    graph = outcome(source, build=False)
    assert isinstance(graph, Graph), str(graph)
    module = symbp.compile(graph)
    assert module.loss({"a": np.array(1.0)}) == value


@pytest.mark.parametrize("kind", NESTINGS)
def test_every_nesting_at_500(kind):
    """The brief's case for every kind: 500 deep (parentheses: Python allows 200)."""
    source, _ = nested(kind, 500)
    outcome(source, build=False)


# --------------------------------------------------------------------- (d) huge literals

BIG_INTS = (
    st.integers(1, 2**31 + 10)
    | st.integers(2**31, 10**40)
    | st.sampled_from(
        [2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, 9999999999, 46340, 46341, 65536]
    )
)
NUMBER_TEXT = (
    st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | BIG_INTS.map(str)
    | st.sampled_from(
        [
            "1e999",
            "-1e999",
            "1e-999",
            "1e308",
            "1.7976931348623157e308",
            "1.8e308",
            "5e-324",
            "2e-324",
            "0.0",
            "-0.0",
            "0x" + "f" * 300,
            "9" * 309,
            "9" * 4300,
            "9" * 4301,
            "1" + "_0" * 400,
            "0b" + "1" * 1100,
            "0o" + "7" * 400,
            "1e" + "9" * 50,
            "1.5e-" + "9" * 50,
            "10**308",
            "10**309",
            "10**10**10",
            "2.0**-1075",
            "(-8)**(1/3)",
            "0**-1",
            "1/0",
            "1/0.0",
            "1j",
            "True",
            "None",
            "...",
        ]
    )
    | st.integers(1, 5000).map(lambda k: "9" * k)
)
LITERAL_PLACES = [
    "x: Input[{n}]\nw: Param = 0.5\nC: Loss = sum(w * x)\n",
    "x: Input[{n}, 2]\nw: Param[2] = ones\nC: Loss = sum(x @ w)\n",
    "x: Input[2, {n}]\nW: Param[{n}, 3] = glorot\nC: Loss = sum(x @ W)\n",
    "w: Param[{n}] = he\nC: Loss = sum(w * w)\n",
    "w: Param[{n}, {n}] = zeros\nC: Loss = mean(w)\n",
    "x: Input[3]\nw: Param[3] = {n}\nC: Loss = sum(w * x)\n",
    "x: Input[3]\nw: Param[3] = normal({n})\nC: Loss = sum(w * x)\n",
    "x: Input[3]\nw: Param[3] = uniform(-{n}, {n})\nC: Loss = sum(w * x)\n",
    "x: Input[3]\nw: Param[3] = uniform(0, {n})\nC: Loss = sum(w * x)\n",
    "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(w * x) * {n}\n",
    "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(w * x) + {n} * {n}\n",
    "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(w * x) ** {n}\n",
    "x: Input[3]\nw: Param[3] = ones\nC: Loss = {n} ** sum(w * x)\n",
    "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(w / {n} * x)\n",
    "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(exp({n}) * w * x)\n",
    "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(log({n}) * w * x)\n",
    "x: Input[3, 2]\nw: Param[3, 2] = ones\nC: Loss = sum(sum(w * x, axis={n}))\n",
    "x: Input[3, 2]\nw: Param[3, 2] = ones\nC: Loss = sum(softmax(w * x, axis=-{n}))\n",
    "x: Input[3]\nw: Param[3] = ones\ndef f(u):\n    return u * {n} + {n}\n"
    "C: Loss = sum(f(w * x))\n",
    "x: Input[3]\nw: Param[3] = ones\ndef f(u):\n    return u ** {n}\nC: Loss = sum(f(w * x))\n",
]
MAX_GROWTH = 512 * 2**20  # bytes of peak memory one example may add (a hang-sized leak)


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def small_enough_to_run(graph: Graph) -> bool:
    sizes = [int(np.prod(d.node.shape)) for d in [*graph.params.values(), *graph.inputs.values()]]
    return max(sizes, default=1) <= 10_000


@settings(max_examples=scale(500), **SETTINGS)
@given(place=st.sampled_from(LITERAL_PLACES), number=NUMBER_TEXT)
def test_huge_literals(place, number):
    source = place.format(n=number)
    note(source[:500])
    before = max_rss()
    result = outcome(source)
    assert max_rss() - before < MAX_GROWTH
    if isinstance(result, Graph) and small_enough_to_run(result):
        # what the spec declares must be usable: initial values finite, a loss computed
        module = symbp.compile(result)
        with np.errstate(all="ignore"):
            params = module.init_params(0)
            for name, value in params.items():
                assert np.all(np.isfinite(value)), f"init_params gives {name} = {value}"
            inputs = {k: np.full((2, *shape), 0.5) for k, shape in module.INPUTS.items()}
            module.loss(params, **inputs)


@pytest.mark.parametrize(
    "source, line, words",
    [
        pytest.param("x: Input[9999999999]\nC: Loss = sum(x)\n", 1, ["too large"], id="10-digits"),
        pytest.param(
            "x: Input[2]\nC: Loss = 1e999 * sum(x)\n", 2, ["too large for a float"], id="1e999"
        ),
        pytest.param(
            "x: Input[46341, 46341]\nC: Loss = sum(x)\n", 1, ["elements"], id="too-many-elements"
        ),
        # found by this campaign: numpy's uniform cannot draw from a range wider than a float
        pytest.param(
            "w: Param[2] = uniform(-1e308, 1e308)\nC: Loss = sum(w)\n",
            1,
            ["high - low"],
            id="uniform-range-overflows",
        ),
        # found by this campaign: samples of normal(1e308) are infinite
        pytest.param(
            "w: Param[2] = normal(1e307)\nC: Loss = sum(w)\n",
            1,
            ["infinite"],
            id="normal-std-overflows",
        ),
    ],
)
def test_huge_literal_regressions(source, line, words):
    err = outcome(source)
    assert isinstance(err, SpecError) and err.line == line, str(err)
    for word in words:
        assert word in err.message, err.message


@pytest.mark.parametrize(
    "source, line",
    [
        ("x: Input[3]\nw: Param[3] = ones\nC: Loss = 0.0 ** sum(w * x)\n", 3),
        ("x: Input[3]\nw: Param[3] = ones\nC: Loss = sum((-1) ** w)\n", 3),
        ("x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(exp(-1000) ** w)\n", 3),
        ("w: Param[3] = ones\ndef f(u):\n    return 0 ** u\nC: Loss = sum(f(w))\n", 3),
        ("w: Param[3] = ones\ndef f(u, v):\n    return u ** v\nC: Loss = sum(f(-3, w))\n", 4),
    ],
)
def test_power_of_a_constant_at_most_zero(source, line):
    """Found by test_huge_literals (0.0 ** sum(w * x)): these parsed, then differentiation
    failed with an internal GraphError (the derivative holds log of the base)."""
    err = outcome(source)
    assert isinstance(err, SpecError) and err.line == line, str(err)
    assert "base of such a power must be above 0" in err.message


@pytest.mark.parametrize(
    "source",
    [
        "w: Param[3] = ones\nC: Loss = sum(w / 1e155)\n",
        "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(w * x / 1.3407807929942597e+154)\n",
        "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(w / 1.2592262090932812e-228 * x)\n",
    ],
)
def test_the_adjoint_of_a_constant_divisor_is_built_without_its_square(source):
    """Found by test_huge_literals: differentiation built -u / c**2, which overflows (or
    underflows to a division by zero) for |c| beyond 1e154 or below 1e-154, and compiling
    raised GraphError. d(a/b) is now (a' - (a/b) b')/b: a constant b gives a'/b."""
    assert outcome(source) is not None


def test_largest_declarations_do_not_allocate():
    """A declaration at the element limit parses and generates code without allocating it
    (it is only allocated by whoever calls the module)."""
    source = (
        "x: Input[2147483647]\nW: Param[46340, 46340] = glorot\nv: Param[46340] = he\n"
        "C: Loss = sum(x) * 0 + sum(W @ v) + mean(softmax(x))\n"
    )
    before = max_rss()
    graph = outcome(source, build=False)
    symbp.generate(graph)
    symbp.generate(graph, backend="c")
    assert max_rss() - before < MAX_GROWTH


# ----------------------------------------------------------- (e) bytes that are not text


def first_bad(data: bytes) -> tuple[int, str] | None:
    """(byte offset, what) of the first problem the reader must report, if any."""
    body = data.removeprefix(b"\xef\xbb\xbf")
    skipped = len(data) - len(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return skipped + e.start, "UTF-8"
    if "\x00" in text:
        return skipped + len(text[: text.index("\x00")].encode("utf-8")), "NUL"
    return None


def line_of(data: bytes, offset: int) -> int:
    return len(
        re.split(
            rb"\r\n|\r|\n",
            data.removeprefix(b"\xef\xbb\xbf")[
                : offset - (3 if data.startswith(b"\xef\xbb\xbf") else 0)
            ],
        )
    )


ODD_BYTES = st.sampled_from(
    [
        b"\x00",
        b"\xff",
        b"\xfe",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\x80",
        b"\xbf",
        b"\xc3",
        b"\xe2\x82",
        b"\xef\xbb\xbf",
        b"\x1b[2J",
        b"\x0c",
        b"\x0b",
        b"\x7f",
        b"\xc2\x85",
        b"\xe2\x80\xa8",
        b"\xe2\x80\xae",
        b"\xef\xbf\xbe",
    ]
) | st.binary(min_size=1, max_size=6)


@st.composite
def damaged_bytes(draw) -> bytes:
    base = draw(st.sampled_from(sorted(EXAMPLES)))
    data = EXAMPLES[base].encode("utf-8")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(ODD_BYTES) + data[at:]
    return data


def check_bytes(data: bytes) -> None:
    result = outcome(data)
    bad = first_bad(data)
    if bad is not None:
        offset, what = bad
        assert isinstance(result, SpecError), f"{what} at byte {offset} was accepted"
        assert result.line == line_of(data, offset), str(result)
        assert what in result.message, result.message


@settings(max_examples=scale(500), **SETTINGS)
@given(data=damaged_bytes())
def test_damaged_bytes(data):
    note(repr(data))
    check_bytes(data)


@settings(max_examples=scale(500), **SETTINGS)
@given(data=st.binary(max_size=400))
def test_random_bytes(data):
    note(repr(data))
    check_bytes(data)


@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "shift_jis", "utf-7"]
)
def test_other_encodings(tmp_path, encoding):
    """The same spec saved in another encoding (with a non-ASCII comment): an error naming
    UTF-8, or (where the bytes happen to be UTF-8) a result; read from a file, as the CLI
    does."""
    text = "# Größe: αβγ ☃\nx: Input[2]\nw: Param[2] = ones\nC: Loss = sum(w * x)\n"
    path = tmp_path / "spec.sbp"
    path.write_bytes(text.encode(encoding, errors="replace"))
    try:
        symbp.parse(path)
    except SpecError as err:
        assert_located(err, path.read_bytes(), str(path))
        assert "UTF-8" in err.message or "NUL" in err.message or "syntax" in err.message


# ------------------------------------------------------------------- (f) a long spec


def long_spec(lines: int) -> str:
    """A valid spec of ``lines`` lines: layers of ops over a few inputs and params, with
    comments and blank lines between them."""
    head = [
        "# a long generated spec",
        "x: Input[8]",
        "t: Input[4]",
        "W: Param[4, 8] = glorot",
        "V: Param[8, 8] = he",
        "b: Param[8] = zeros",
        "def swish(u):",
        "    return u * sigmoid(u)",
        "",
    ]
    body = []
    k = 0
    while len(head) + len(body) < lines - 1:
        prev = f"h{k - 1}" if k else "x"
        op = k % 5
        if len(body) % 7 == 6:
            body.append("")
            continue
        if op == 0:
            body.append(f"h{k} = tanh(V @ {prev} + b)")
        elif op == 1:
            body.append(f"h{k} = swish({prev}) * 0.5  # halve")
        elif op == 2:
            body.append(f"h{k} = {prev} - mean({prev})")
        elif op == 3:
            body.append(f"h{k} = softmax({prev}) + {prev} / 8")
        else:
            body.append(f"h{k} = sigmoid({prev}) * (1 + 0.01 * sum({prev} ** 2))")
        k += 1
    body.append(f"C: Loss = cross_entropy(W @ h{k - 1}, t)")
    return "\n".join(head + body) + "\n"


def test_ten_thousand_lines_parse():
    source = long_spec(10_000)
    assert source.count("\n") == 10_000
    start = time.perf_counter()
    graph = outcome(source, build=False)
    seconds = time.perf_counter() - start
    assert isinstance(graph, Graph), str(graph)
    assert len(graph.equations) > 8000, len(graph.equations)
    print(f"10,000 lines parsed in {seconds:.2f} s")
    # and an error on the very last line is found, located there
    broken = source[: source.rindex("C: Loss")] + "C: Loss = cross_entropy(W @ nope, t)\n"
    err = outcome(broken, build=False)
    assert isinstance(err, SpecError) and err.line == 10_000 and "nope" in err.message


# ------------------------------------------------------------------- nothing executed

PAYLOADS = [
    "__import__('os').system('touch {mark}')",
    "open('{mark}', 'w')",
    "exec(\"open('{mark}', 'w')\")",
    "eval(\"open('{mark}', 'w')\")",
    "(lambda: open('{mark}', 'w'))()",
    "[open('{mark}', 'w') for _ in (1,)]",
    "(m := __import__('pathlib')).Path('{mark}').touch()",
    "getattr(__builtins__, 'open')('{mark}', 'w')",
    "f\"{{open('{mark}', 'w')}}\"",
    "breakpoint()",
    "__import__('subprocess').run(['touch', '{mark}'])",
    "w.__class__.__init__.__globals__['os'].system('touch {mark}')",
]
PAYLOAD_SPECS = [
    "{p}\n",
    "import os\nos.system('touch {mark}')\n",
    "from os import system\n",
    "x: Input[2]\nw: Param[2] = ones\nC: Loss = sum(w * x) + {p}\n",
    "x: Input[2]\nw: Param[2] = {p}\nC: Loss = sum(w * x)\n",
    "x: Input[{p}]\nw: Param[2] = ones\nC: Loss = sum(w * x)\n",
    "x: Input[2]\nw: Param[2] = normal({p})\nC: Loss = sum(w * x)\n",
    "x: {p}\nC: Loss = x\n",
    "x: Input[2]\nw: Param[2] = ones\ndef f(u, v={p}):\n    return u\nC: Loss = sum(f(w * x))\n",
    "x: Input[2]\nw: Param[2] = ones\n@{p}\ndef f(u):\n    return u\nC: Loss = sum(f(w * x))\n",
    "x: Input[2]\nw: Param[2] = ones\ndef f(u):\n    {p}\n    return u\nC: Loss = sum(f(w))\n",
    "x: Input[2]\nw: Param[2] = ones\ndef f(u):\n    return {p}\nC: Loss = sum(f(w))\n",
    "class A:\n    z = {p}\n",
    "x: Input[2]\nw: Param[2] = ones\nh = sum(w * x, axis={p})\nC: Loss = h\n",
    "x: Input[2]\nw: Param[2] = ones\nC: Loss = sum(w * x).T.__class__\n",
    "x: Input[2]\nw: Param[2] = ones\nwith open('{mark}', 'w') as f:\n    pass\n",
    "x: Input[2]\nw: Param[2] = ones\nfor _ in [{p}]:\n    pass\n",
    'x: Input[2]\nw: Param[2] = ones\nC: Loss = sum(w * x)  # {p}\n"""{p}"""\n',
    "# {p}\n'''{p}'''\nx: Input[2]\nw: Param[2] = ones\nC: Loss = sum(w * x)\n",
    "x: Input[2]\nw: Param[2] = ones\nC: Loss = sum(w * x) \\\n  # {p}\n",
]


def payload_cases(mark: Path) -> list[str]:
    m = str(mark).replace("\\", "/")
    return [spec.format(p=p.format(mark=m), mark=m) for spec in PAYLOAD_SPECS for p in PAYLOADS]


def test_payloads_run_nothing(tmp_path):
    """Specs written to run code: a SpecError (or, for code in comments and docstrings, a
    network); the file they would create never appears, through the API and the CLI."""
    mark = tmp_path / "pwned"
    accepted = 0
    for k, source in enumerate(payload_cases(mark)):
        result = outcome(source)  # parse, and compile to NumPy what parses
        accepted += isinstance(result, Graph)
        if isinstance(result, Graph):
            symbp.compile(result, backend="numpy").init_params(0)
        assert not mark.exists(), source
        if k % 7 == 0:  # the CLI too, on a sample (each compile is a full run)
            spec = tmp_path / f"p{k}.sbp"
            spec.write_text(source, encoding="utf-8")
            err = io.StringIO()
            with redirect_stderr(err):
                code = cli.main(["compile", str(spec), "-o", str(tmp_path / f"p{k}.py")])
            assert code == (0 if isinstance(result, Graph) else 2), err.getvalue()
            if code:
                assert re.match(rf"{re.escape(str(spec))}:\d+:\d+: error: ", err.getvalue())
            assert "Traceback" not in err.getvalue()
            assert not mark.exists(), source
    # accepted: the payload in a comment, a docstring or after a line continuation (all but
    # the f-string, whose quotes close the docstring early)
    assert accepted == 3 * len(PAYLOADS) - 1


@settings(max_examples=scale(300), **SETTINGS)
@given(source=mutated_example(payloads=[p.format(mark="MARK") for p in PAYLOADS]))
def test_mutated_examples_with_payloads(source, tmp_path_factory):
    mark = tmp_path_factory.getbasetemp() / "pwned-by-fuzz"
    source = source.replace("MARK", str(mark))
    note(source)
    outcome(source)
    assert not mark.exists()
