"""Code injection (issue #7): no name, number, comment or file name of a spec puts text of its
choosing into generated Python or C outside a literal, a comment or an identifier of its own.

Each hostile spec has a neutral twin: the same network with every name replaced by q0, q1, ...
and every comment by "c". Both are generated with both backends and compared token by token
(Python's tokenizer for the NumPy module and the C wrapper, a small C lexer for the C
source): the token kinds must be the same, spelled the same except identifiers, strings and
comments, and within each function the identifiers of the two versions must correspond one to
one. So user text stayed inside the tokens it was given (a comment could not be closed, a
string not ended) and no user name became one of the generator's own identifiers (``np``,
``_params``, ``_n``, a macro of the C headers). Then the compiled modules run: hostile and
neutral give bitwise the same numbers on each backend, the two backends agree to 1e-12, and
the neutral network's gradients match finite differences.

The names are C keywords (C89 to C23 and GNU), macros and functions of the headers the C code
includes, Python builtins and soft keywords, every identifier the generators themselves write
(read from a generated module and C source, so new helpers are covered as they appear), names
differing only in case, and non-ASCII names that collide with their own C spelling.
"""

from __future__ import annotations

import io
import keyword
import math
import os
import re
import shutil
import tokenize
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_grads_match, finite_differences, is_long, scale
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from test_random_graphs import specs as random_specs

import symbp
from symbp import cli

HAS_CC = bool(shutil.which(os.environ.get("CC", "cc").split()[0]) or shutil.which("gcc"))
needs_cc = pytest.mark.skipif(not HAS_CC, reason="no C compiler")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def cache_root(tmp_path_factory):
    """This module's own build cache."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYMBP_CACHE_DIR", str(root))
        yield root


@pytest.fixture
def quick_c(monkeypatch):
    """Networks of a hundred names make C files of thousands of lines, which take gcc -O3
    ten seconds each; names are names at -O0 too (with the same -std=gnu99)."""
    monkeypatch.setenv("SYMBP_CFLAGS", "-O0 -std=gnu99 -g0")


# ------------------------------------------------------------------- hostile names

C_KEYWORDS = [
    "auto",
    "char",
    "const",
    "default",
    "do",
    "double",
    "enum",
    "extern",
    "float",
    "goto",
    "int",
    "long",
    "register",
    "restrict",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "inline",
    "bool",
    "true",
    "false",
    "complex",
    "imaginary",
    "asm",
    "typeof",
    "typeof_unqual",
    "alignas",
    "alignof",
    "constexpr",
    "nullptr",
    "static_assert",
    "thread_local",
    "noreturn",
    "_Bool",
    "_Complex",
    "_Generic",
    "_Atomic",
    "_Noreturn",
    "_Static_assert",
    "_Thread_local",
    "_Alignas",
    "_Pragma",
    "__attribute__",
    "__asm__",
    "__typeof__",
    "__restrict",
    "__extension__",
    "__int128",
    "__func__",
    "__LINE__",
    "__FILE__",
    "case",
    "main",
]
C_LIBRARY = [
    # macros of <math.h>, <tgmath.h>, <string.h>, cblas.h and Python.h (cffi includes it)
    "linux",
    "unix",
    "i386",
    "errno",
    "math_errhandling",
    "stdin",
    "stdout",
    "stderr",
    "st_atime",
    "st_mtime",
    "sched_priority",
    "xdouble",
    "offsetof",
    "assert",
    "NULL",
    "NAN",
    "INFINITY",
    "HUGE_VAL",
    "EOF",
    "M_PI",
    "M_E",
    "I",
    "PRId64",
    "PRIu32",
    "SCNd64",
    "L_tmpnam",
    "P_tmpdir",
    "Py_None",
    "Py_True",
    "PyObject_HEAD",
    "Py_RETURN_NONE",
    "FP_NAN",
    "CBLAS_INDEX",
    "CblasRowMajor",
    "CblasTrans",
    "OPENBLAS_VERSION",
    # functions and types the generated C calls or its headers declare
    "exp",
    "expf",
    "log",
    "log1p",
    "sqrt",
    "pow",
    "fabs",
    "fmax",
    "tanh",
    "sin",
    "cos",
    "floor",
    "round",
    "y0",
    "j0",
    "gamma",
    "signgam",
    "isfinite",
    "isnan",
    "signbit",
    "memcpy",
    "memset",
    "malloc",
    "free",
    "printf",
    "system",
    "exit",
    "abort",
    "strlen",
    "cblas_dgemm",
    "cblas_sgemm",
    "cblas_ddot",
    "openblas_set_num_threads",
    "blasint",
    "size_t",
    "ptrdiff_t",
    "int64_t",
    "FILE",
    "va_list",
    "real",
    "sigmoid_",
    "softplus_",
    "relu_",
    "step_",
    "sign_",
    "gemm_",
    "ffi",
    "lib",
]
PYTHON_NAMES = [
    "np",
    "numpy",
    "sum",
    "len",
    "print",
    "range",
    "float",
    "int",
    "dict",
    "list",
    "object",
    "type",
    "match",
    "case",
    "_",
    "__",
    "__name__",
    "__builtins__",
    "__import__",
    "__file__",
    "__doc__",
    "exec",
    "eval",
    "open",
    "compile",
    "globals",
    "locals",
    "vars",
    "getattr",
    "setattr",
    "self",
    "cls",
    "math",
    "os",
    "sys",
    "threading",
    "ctypes",
    "cffi",
    "symbp",
    "Exception",
    "ValueError",
    "NotImplemented",
    "Ellipsis",
    "breakpoint",
    "super",
]
CASE_NAMES = [
    "W",
    "w",
    "X",
    "x",
    "N",
    "n",
    "C",
    "c",
    "Nan",
    "nan",
    "NaN",
    "inf",
    "Inf",
    "INF",
    "Infinity",
    "Loss",
    "loss",
    "LOSS",
    "Input",
    "Param",
    "Output",
    "T",
    "t",
]
UNICODE_NAMES = [
    "α",
    "u03b1",
    "u03b1_",
    "Ω",
    "u03a9",
    "ℌ_",
    "µ",
    "ǅ",
    "x_α",
    "vNAN",
    "v_params",
    "θ_1",
    "u",
    "v",
    "σ",
    "π",
    "e",
]


# ---------------------------------------------------------------- specs and twins


def spec_for(names: list[str], comments: bool = True) -> str:
    """A network in which every name of ``names`` is used: in turn a Param (a vector), an
    Input, an intermediate and an Output; the last one is the Loss. The values are tanh
    chains of Params times Inputs, so every name reaches the loss."""
    assert len(names) >= 5 and len(set(names)) == len(names)
    *rest, loss = names
    params, inputs, rows = [], [], []
    for k, name in enumerate(rest):
        role = k % 4
        if role == 0 or not params:
            rows.append(f"{name}: Param[2] = uniform(-0.9, 0.9)")
            params.append(name)
        elif role == 1 or not inputs:
            rows.append(f"{name}: Input[2]")
            inputs.append(name)
    prev = None
    for k, name in enumerate(rest):
        if name in params or name in inputs:
            continue
        p, x = params[k % len(params)], inputs[k % len(inputs)]
        value = f"tanh({p} * {x}" + (f" + 0.5 * {prev})" if prev else ")")
        rows.append(f"{name}: Output = {value}" if k % 4 == 3 else f"{name} = {value}")
        prev = name
    terms = [f"sum({prev} ** 2)"] + [f"0.1 * sum({p} * {p})" for p in params]
    rows.append(f"{loss}: Loss = " + " + ".join(terms))
    if comments:
        rows = [rows[0] + "  # first"] + rows[1:]
    return "# a network of hostile names\n" + "\n".join(rows) + "\n"


def neutral_names(n: int) -> list[str]:
    return [f"q{k}" for k in range(n)]


def valid_names(names) -> list[str]:
    """Names a spec may bind, once each, in order, as Python reads them (NFKC: ℌ is H)."""
    out = []
    for name in names:
        name = unicodedata.normalize("NFKC", name)
        if name.isidentifier() and not keyword.iskeyword(name) and name not in out:
            out.append(name)
    return out


# -------------------------------------------------------------------- tokenizers

C_TOKEN = re.compile(
    r"""
    (?P<comment>/\*.*?\*/|//[^\n]*)
  | (?P<directive>^[ \t]*\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<number>\.?[0-9](?:[eEpP][+-]|[A-Za-z_0-9.])*)
  | (?P<space>[ \t\r\f\v]+|\n)
  | (?P<op>->|\+\+|--|<<=?|>>=?|[<>=!&|*/%^+-]=|&&|\|\||\.\.\.|[{}()\[\];,.?:~!<>=&|*/%^+-])
  | (?P<other>.)
""",
    re.X | re.S | re.M,
)


def c_tokens(source: str) -> list[tuple[str, str, int]]:
    """(kind, text, scope) of each C token; a scope is one top-level declaration or function
    (it ends at a ``;`` or a ``}`` at the top level). Member names are kind "member"."""
    out, depth, scope = [], 0, 0
    for m in C_TOKEN.finditer(source):
        kind, text = m.lastgroup, m.group()
        if kind == "space":
            continue
        assert kind != "other", f"a character no C token has: {text!r}"
        if kind == "name" and out and out[-1][1] in (".", "->"):
            kind = "member"
        out.append((kind, text, scope))
        if text == "{":
            depth += 1
        elif text == "}":
            depth -= 1
        if depth == 0 and text in ("}", ";"):
            scope += 1
    return out


def py_tokens(source: str) -> list[tuple[str, str, int]]:
    """(kind, text, scope) of each Python token; a scope starts at each top-level def.
    Attribute names (``np.exp``) are kind ATTRIBUTE, keyword-argument names (``dtype=``)
    KEYWORD_ARGUMENT, which must be spelled the same."""
    out, scope, depth = [], 0, 0
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for k, tok in enumerate(tokens):
        kind = tokenize.tok_name[tok.type]
        if kind == "NAME" and tok.string in ("def", "class") and tok.start[1] == 0:
            scope += 1
        if tok.string in "([{" and kind == "OP":
            depth += 1
        elif tok.string in ")]}" and kind == "OP":
            depth -= 1
        after = tokens[k + 1].string if k + 1 < len(tokens) else ""
        if kind == "NAME" and out and out[-1][1] == "." and out[-2][1] != "from":
            kind = "ATTRIBUTE"
        elif kind == "NAME" and depth and after == "=":
            kind = "KEYWORD_ARGUMENT"
        out.append((kind, tok.string, scope))
    return out


FREE = {
    "comment": "text",
    "COMMENT": "text",
    "string": "literal",
    "STRING": "literal",
    "FSTRING_MIDDLE": "literal",
}


def string_frame(text: str) -> tuple[str, str]:
    """A literal's prefix and quotes, which must not change (an r or f prefix, triple
    quotes)."""
    m = re.match(r"([A-Za-z]*)('''|\"\"\"|'|\")", text)
    return (m.group(1).lower(), m.group(2)) if m else ("", text[:1])


def same_structure(neutral: list, hostile: list, what: str) -> dict[str, str]:
    """Token streams equal but for identifiers (one to one within each scope; attribute
    names one to one among themselves), literals (same prefix and quotes) and comments;
    returns the identifier correspondence."""
    assert len(neutral) == len(hostile), f"{what}: {len(neutral)} tokens, now {len(hostile)}"
    forward: dict[tuple[int, str], str] = {}
    backward: dict[tuple[int, str], str] = {}
    names = {}
    for (kind, a, scope), (kind_b, b, scope_b) in zip(neutral, hostile):
        assert (kind, scope) == (kind_b, scope_b), f"{what}: {kind} {a!r} became {kind_b} {b!r}"
        if kind in ("name", "NAME", "ATTRIBUTE", "member"):
            if kind in ("ATTRIBUTE", "member"):  # names of members: a namespace of their own
                scope = "attribute"
            if forward.setdefault((scope, a), b) != b or backward.setdefault((scope, b), a) != a:
                raise AssertionError(
                    f"{what}: identifiers do not correspond one to one in scope {scope}: "
                    f"{a!r} -> {b!r}, but {forward[(scope, a)]!r} / {backward[(scope, b)]!r}"
                )
            names[a] = b
        elif kind in FREE:
            if FREE[kind] == "literal":
                assert string_frame(a) == string_frame(b), f"{what}: {a!r} became {b!r}"
            if kind == "comment":
                assert b.startswith("/*") == a.startswith("/*"), f"{what}: {b!r}"
        else:
            assert a == b, f"{what}: {kind} {a!r} became {b!r}"
    return names


def generated_texts(graph, dtypes=("float64", "float32")) -> dict[str, list]:
    """Every generated text of a network, tokenized: the NumPy module, the C wrapper, the C
    source and the cffi declarations, for each dtype."""
    from symbp.backends.c import module as c_backend
    from symbp.backends.numpy import module as numpy_backend
    from symbp.passes.pipeline import optimize

    program = optimize(graph)
    texts = {}
    for dtype in dtypes:
        files, cdef, ext, c_file = c_backend.package_files(program, dtype)
        texts[f"numpy module ({dtype})"] = py_tokens(numpy_backend.generate(program, dtype))
        texts[f"C wrapper ({dtype})"] = py_tokens(files["__init__.py"])
        texts[f"C source ({dtype})"] = c_tokens(files[c_file])
        texts[f"cffi declarations ({dtype})"] = c_tokens(cdef)
    return texts


def assert_contained(neutral_graph, hostile_graph) -> None:
    neutral = generated_texts(neutral_graph)
    hostile = generated_texts(hostile_graph)
    for what in neutral:
        same_structure(neutral[what], hostile[what], what)


# ------------------------------------------------------------------------ numbers


def rename(d: dict, mapping: dict) -> dict:
    return {mapping[k]: v for k, v in d.items()}


def assert_same_numbers(neutral, hostile, mapping: dict, exact: bool = True, batch=3):
    """``hostile`` computes what ``neutral`` does, its names renamed by ``mapping``."""
    rng = np.random.default_rng(7)
    params = neutral.init_params(3)
    inputs = {k: rng.uniform(-1, 1, (batch, *shape)) for k, shape in neutral.INPUTS.items()}
    compare = (
        np.testing.assert_array_equal
        if exact
        else lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    )
    assert list(hostile.PARAMS) == [mapping[k] for k in neutral.PARAMS]
    assert list(hostile.INPUTS) == [mapping[k] for k in neutral.INPUTS]
    assert hostile.OUTPUTS == tuple(mapping[k] for k in neutral.OUTPUTS)
    for name, value in hostile.init_params(3).items():
        compare(value, rename(params, mapping)[name])
    want = neutral.forward(params, **inputs)
    got = hostile.forward(rename(params, mapping), **rename(inputs, mapping))
    assert set(got) == {mapping[k] for k in want}
    for k, v in want.items():
        compare(got[mapping[k]], v)
    loss, grads = neutral.loss_and_grads(params, **inputs)
    loss_h, grads_h = hostile.loss_and_grads(rename(params, mapping), **rename(inputs, mapping))
    compare(loss_h, loss)
    for k, v in grads.items():
        compare(grads_h[mapping[k]], v)
    p_n = {k: v.copy() for k, v in params.items()}
    p_h = rename({k: v.copy() for k, v in params.items()}, mapping)
    compare(
        hostile.train_step(p_h, 0.1, **rename(inputs, mapping)),
        neutral.train_step(p_n, 0.1, **inputs),
    )
    for k, v in p_n.items():
        compare(p_h[mapping[k]], v)
    # a whole epoch through the Trainer (train_epoch, optimizer state keyed by the names)
    data = {k: rng.uniform(-1, 1, (10, *shape)) for k, shape in neutral.INPUTS.items()}
    t_n = symbp.Trainer(neutral, optimizer="adam", lr=0.01, batch_size=4, seed=1)
    t_h = symbp.Trainer(hostile, optimizer="adam", lr=0.01, batch_size=4, seed=1)
    compare(t_h.fit(rename(data, mapping), epochs=2)[-1].loss, t_n.fit(data, epochs=2)[-1].loss)
    for k, v in t_n.params.items():
        compare(t_h.params[mapping[k]], v)


def check_twins(names: list[str], tmp_path: Path, comments_of=None, run: bool = True) -> None:
    """The whole check for one list of hostile names; ``run``: compile and run too."""
    names = valid_names(names)
    print(f"RELIABILITY injection: {len(names)} names, run={run}")
    hostile_text = spec_for(names)
    neutral_text = spec_for(neutral_names(len(names)))
    if comments_of is not None:
        hostile_text = comments_of(hostile_text)
    hostile_graph = symbp.parse_text(hostile_text, "net.sbp")
    neutral_graph = symbp.parse_text(neutral_text, "net.sbp")
    assert_contained(neutral_graph, hostile_graph)
    if not run:
        return
    mapping = dict(zip(neutral_names(len(names)), names))
    numpy_n, numpy_h = symbp.compile(neutral_graph), symbp.compile(hostile_graph)
    assert_same_numbers(numpy_n, numpy_h, mapping)
    if HAS_CC:
        c_n = symbp.compile(neutral_graph, backend="c")
        c_h = symbp.compile(hostile_graph, backend="c")
        assert_same_numbers(c_n, c_h, mapping)
        assert_same_numbers(numpy_n, c_h, mapping, exact=False)
    # and the neutral network is right: its gradients are the finite differences'
    rng = np.random.default_rng(11)
    params = numpy_n.init_params(0)
    inputs = {k: rng.uniform(-1, 1, (3, *s)) for k, s in numpy_n.INPUTS.items()}
    loss, grads = numpy_n.loss_and_grads(params, **inputs)
    expected = finite_differences(lambda p: numpy_n.loss(p, **inputs), params)
    assert_grads_match(grads, expected, loss)


# -------------------------------------------------------------------------- tests


@needs_cc
def test_c_keywords(tmp_path, quick_c):
    check_twins(C_KEYWORDS, tmp_path)


@needs_cc
def test_names_of_the_c_headers(tmp_path, quick_c):
    check_twins(C_LIBRARY, tmp_path)


@needs_cc
def test_python_builtins_and_modules(tmp_path, quick_c):
    check_twins(PYTHON_NAMES, tmp_path)


@needs_cc
def test_names_differing_in_case_and_non_ascii(tmp_path, quick_c):
    check_twins(CASE_NAMES + UNICODE_NAMES, tmp_path)


def harvested(graph) -> list[str]:
    """Every identifier the generators write for ``graph`` (NumPy module, C wrapper, C source),
    whether spec names or not."""
    seen = []
    for tokens in generated_texts(graph).values():
        for kind, text, _ in tokens:
            if kind in ("name", "NAME") and text not in seen:
                seen.append(text)
    return valid_names(seen)


EVERY_OP = """\
q0: Input[4]
q1: Input[3]
q2: Param[3, 4] = glorot
q3: Param[3] = zeros
q4: Param = 0.5
q5: Param[4, 4] = he
def q6(q7, q8):
    return q7 * sigmoid(q8) + softplus(q7) - relu(q8) + abs(q7) / (1 + q8 * q8)
q9 = q2 @ tanh(q5 @ q0) + q3
q10 = q6(q9, exp(q4) * sin(q9) + cos(q9)) ** 2 + sqrt(1 + q9 * q9) + log(1 + q9 * q9)
q11: Output = softmax(q10)
q12 = log_softmax(q10) + logsumexp(q10) + mean(q10) + sum(q5, axis=0).T @ q5.T @ q0
q13: Loss = cross_entropy(q10, q1) + sum(q12) * q4 + mean(q11 * q11)
"""


@needs_cc
def test_the_generators_own_identifiers(tmp_path, quick_c):
    """Every identifier the generated files of a network using every op hold, other than its
    own names: helpers, locals, temporaries, adjoints, loop indices, C functions, macros.
    All are checked token by token; by default the first 120 are also compiled and run
    (all of them under --long)."""
    graph = symbp.parse_text(EVERY_OP, "net.sbp")
    vocabulary = [n for n in harvested(graph) if not re.fullmatch(r"q\d+", n)]
    assert {
        "np",
        "_params",
        "_inputs",
        "_n",
        "_ws",
        "lib",
        "ffi",
        "_LOCAL",
        "grads",
        "t1",
        "dq2",
        "_i0",
        "memcpy",
        "real",
    } <= set(vocabulary)
    assert len(vocabulary) > 200
    for start in range(0, len(vocabulary), 120):
        run = start == 0 or is_long()
        check_twins(vocabulary[start : start + 120], tmp_path, run=run)


# ---------------------------------------------------------------- hostile comments

HOSTILE_TEXT = [
    "*/ int pwned = 1; /*",
    '"""; import os; os.system("touch MARK"); """',
    "'''; import os; '''",
    "\\",
    "\\\\",
    "{{ 7 * 7 }} {% for x in y %}{# c #}",
    "#include <stdlib.h>",
    "??/ trigraph ??= ??'",
    "\x0c form feed",
    "\u2028 line separator \u2029",
    "\u0085 NEL",
    "\u202e right-to-left",
    "tab\there",
    "// C++ comment",
    "/* nested /* */",
    "\\\n",
    "${HOME} $(touch MARK) `touch MARK`",
    "%s %n %x",
    "\ufeff BOM",
    "€ ☃ 𝔘",
]


def with_comments(text: str) -> str:
    """``text`` with hostile comments on its lines and as its title, and docstrings."""
    out = []
    for k, line in enumerate(text.splitlines()):
        hostile = HOSTILE_TEXT[k % len(HOSTILE_TEXT)].replace("\n", " ")
        if line.startswith("#"):
            out.append("# " + " ".join(HOSTILE_TEXT).replace("\n", " "))
        else:
            out.append(f"{line}  # {hostile}")
    out.insert(1, '"""' + " ".join(HOSTILE_TEXT).replace('"""', "'''") + '"""')
    return "\n".join(out) + "\n"


@needs_cc
def test_hostile_comments_and_docstrings(tmp_path):
    check_twins(C_KEYWORDS[:12] + PYTHON_NAMES[:12], tmp_path, comments_of=with_comments)


HOSTILE_FILENAMES = [
    'we"""ird',
    "a*/b",
    "x{{y}}z",
    "back\\slash",
    "new\nline",
    "ünï cödé",
    "int",
    "-rf",
    ".hidden",
    "a b c",
    "1st",
    "__init__",
    "ffi",
    "lib",
    "$(x)",
]


@needs_cc
@pytest.mark.parametrize("stem", HOSTILE_FILENAMES)
def test_hostile_file_names(tmp_path, stem):
    """The file name reaches the module docstring, the C prefix and the extension's name."""
    names = valid_names(["x", "w", "h", "o", "C"])
    hostile = symbp.parse_text(spec_for(names), f"{stem}.sbp")
    neutral = symbp.parse_text(spec_for(names), "neutral.sbp")
    assert_contained(neutral, hostile)


@needs_cc
def test_hostile_file_name_through_the_cli(tmp_path):
    """A spec file whose name holds quotes, a comment end, jinja and a newline, compiled by
    the CLI to both backends; the package imports and agrees with NumPy."""
    mark = tmp_path / "MARK"
    stem = 'ev"""il \\*/ {{x}}\nname'.replace("/", "|")
    spec = tmp_path / f"{stem}.sbp"
    spec.write_text(
        with_comments(spec_for(["int", "np", "_n", "W", "w"])).replace("MARK", str(mark)),
        encoding="utf-8",
    )
    assert cli.main(["compile", str(spec), "-o", str(tmp_path / "m.py")]) == 0
    assert cli.main(["compile", str(spec), "--backend", "c", "-o", str(tmp_path / "pkg")]) == 0
    numpy_module = symbp.compile(spec)
    c_module = symbp.compile(spec, backend="c")
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("m_from_cli", tmp_path / "m.py")
    from_cli = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(from_cli)
    params = numpy_module.init_params(0)
    inputs = {k: np.full((2, *s), 0.25) for k, s in numpy_module.INPUTS.items()}
    want = numpy_module.loss(params, **inputs)
    assert from_cli.loss(params, **inputs) == want
    assert math.isclose(c_module.loss(params, **inputs), want, rel_tol=1e-12)
    assert not mark.exists()


# ------------------------------------------------------ random networks, hostile names

NAME_POOL = valid_names(
    C_KEYWORDS
    + C_LIBRARY
    + PYTHON_NAMES
    + CASE_NAMES
    + UNICODE_NAMES
    + [
        "grads",
        "_params",
        "_inputs",
        "_full",
        "t1",
        "t2",
        "dp0",
        "_n",
        "_ws",
        "_i0",
        "_acc",
        "value",
        "n",
        "symbp_net_loss",
    ]
)
NAME_POOL = [n for n in NAME_POOL if n not in ("swish", "blend")]  # the random specs' defs


@st.composite
def renamed_random_network(draw) -> tuple[str, str]:
    """A random network of test_random_graphs (names x0, p0, k0, h0, ..., C) and the same
    network with every name replaced by a hostile one."""
    text = draw(random_specs())
    names = list(dict.fromkeys(re.findall(r"\b(?:[xphkc]\d+|C)\b", text)))
    hostile = draw(
        st.lists(st.sampled_from(NAME_POOL), min_size=len(names), max_size=len(names), unique=True)
    )
    mapping = dict(zip(names, hostile))
    renamed = re.sub(r"\b(?:[xphkc]\d+|C)\b", lambda m: mapping[m.group()], text)
    return text, renamed


@settings(
    max_examples=scale(12),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(pair=renamed_random_network())
def test_random_networks_with_hostile_names(pair):
    """Random networks (every op, branches, reuse) whose names are drawn from all of the
    above: the generated texts keep their structure, and the NumPy module computes the same
    numbers bit for bit."""
    neutral_text, hostile_text = pair
    note(hostile_text)
    neutral = symbp.parse_text(neutral_text, "net.sbp")
    hostile = symbp.parse_text(hostile_text, "net.sbp")
    assert_contained(neutral, hostile)
    numpy_n, numpy_h = symbp.compile(neutral), symbp.compile(hostile)
    mapping = {}
    consts_n, consts_h = (getattr(m, "CONSTS", {}) for m in (numpy_n, numpy_h))
    for a, b in [(numpy_n.PARAMS, numpy_h.PARAMS), (numpy_n.INPUTS, numpy_h.INPUTS)]:
        mapping.update(zip(a, b))
    mapping.update(zip(consts_n, consts_h))
    mapping.update(zip(numpy_n.OUTPUTS, numpy_h.OUTPUTS))
    rng = np.random.default_rng(0)
    params = {k: rng.uniform(-1, 1, s) for k, s in numpy_n.PARAMS.items()}
    ids = getattr(numpy_n, "INT_INPUTS", {})  # Inputs of integer ids get valid ids
    inputs = {
        k: rng.integers(0, ids[k], (2, *s)) if k in ids else rng.uniform(-1, 1, (2, *s))
        for k, s in numpy_n.INPUTS.items()
    }
    params |= {k: rng.uniform(-1, 1, s) for k, s in consts_n.items()}
    key = (7,) if getattr(numpy_n, "RANDOM", False) else ()  # dropout draws with a key
    loss, grads = numpy_n.loss_and_grads(params, *key, **inputs)
    loss_h, grads_h = numpy_h.loss_and_grads(
        rename(params, mapping), *key, **rename(inputs, mapping)
    )
    assert loss_h == loss or (math.isnan(loss) and math.isnan(loss_h))
    for k, g in grads.items():
        np.testing.assert_array_equal(grads_h[mapping[k]], g)
