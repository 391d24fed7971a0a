"""Bad specs: every error of SPEC.md §1 is a located ``SpecError``, never a traceback.

Each table row is a spec, the (line, column) the error must point at and words its message
must contain. ``located`` checks the whole contract: the exception is a ``SpecError`` (a
``ValueError``) and ``str(err)`` reads ``file:line:col: error: message``, then the offending
source line, then a caret under the column (1-based, in characters).

The last part holds valid specs that look dangerous (names of Python builtins, of the
generated code's helpers, non-ASCII names): they must parse, compile and check.
"""

from __future__ import annotations

import ast
import math
import pickle
import re
import sys
import time
import warnings

import numpy as np
import pytest
from conftest import time_limit

import symbp
from symbp import SpecError
from symbp.frontend.parser import parse_bytes

HEAD = "x: Input[4]\nW: Param[3, 4] = glorot\n"  # two lines many cases build on


def parse_error(source: str, filename: str = "t.sbp") -> SpecError:
    with pytest.raises(SpecError) as info:
        symbp.parse_text(source, filename=filename)
    return info.value


def located(err: SpecError, line: int, col: int, words=(), source: str | None = None):
    """Assert the full error contract; ``source`` is the spec, to find the quoted line."""
    assert isinstance(err, ValueError)
    assert (err.line, err.col) == (line, col), str(err)
    for word in words:
        assert word in err.message, f"{word!r} not in {err.message!r}"
    text = str(err)
    assert text.startswith(f"{err.filename}:{line}:{col}: error: {err.message}"), text
    assert "Traceback" not in text
    if source is not None:
        expected = source.splitlines()[line - 1]
        assert err.source_line == expected
        head, shown, caret = text.split("\n")
        if expected.isprintable() and len(expected) <= 100:
            assert shown == "    " + expected
            assert caret == " " * (4 + col - 1) + "^"
        else:
            assert caret.strip() == "^"


def check(source: str, line: int, col: int, words=()) -> SpecError:
    err = parse_error(source)
    located(err, line, col, words, source)
    return err


def deadline(seconds: float):
    """Fail instead of hanging: specs that once made the compiler compute for ever."""
    return time_limit(seconds)


# ---------------------------------------------------------------------------- syntax

SYNTAX = [
    pytest.param("x: Input[4\n", 1, 9, ["syntax error", "never closed"], id="unclosed-bracket"),
    pytest.param(
        "a: Param = 1\nb = (1 +\nC: Loss = a\n",
        2,
        5,
        ["syntax error", "never closed"],
        id="unclosed-paren",
    ),
    pytest.param(
        "a: Param = 1\nb = 1 +* 2\nC: Loss = a\n", 2, 8, ["syntax error"], id="two-operators"
    ),
    pytest.param("a: Param = 1\nb = )\n", 2, 5, ["syntax error", "unmatched ')'"], id="unmatched"),
    pytest.param("a: Param = 1\nb = a a\n", 2, 7, ["syntax error"], id="missing-operator"),
    pytest.param(
        "a: Param = 1\nb = 'abc\n",
        2,
        5,
        ["syntax error", "unterminated string"],
        id="unterminated-string",
    ),
    pytest.param("a: Param = 1\nC: Loss = \n", 2, 11, ["syntax error"], id="empty-rhs"),
    pytest.param(
        "a: Param = 1\nb = 1e\n", 2, 5, ["syntax error", "decimal literal"], id="bad-number"
    ),
    pytest.param(
        "a: Param = 1\nb = 007\n", 2, 5, ["syntax error", "leading zeros"], id="leading-zeros"
    ),
    pytest.param(
        "a: Param = 1\nb = a ∑ a\n",
        2,
        7,
        ["syntax error", "invalid character"],
        id="invalid-character",
    ),
    pytest.param(
        "αβγ: Param = 1\nb = (αβγ +\n", 2, 5, ["syntax error", "never closed"], id="non-ascii-line"
    ),
    pytest.param(
        "def f(u):\nreturn u\n", 2, 1, ["syntax error", "indented block"], id="missing-indent"
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = a\n  D = a\n",
        3,
        3,
        ["syntax error", "indent"],
        id="unexpected-indent",
    ),
    pytest.param(
        "a: Param = 1\nb = 9" + "9" * 5000 + "\n",
        2,
        5,
        ["syntax error", "too many digits"],
        id="5000-digit-integer",
    ),
]


@pytest.mark.parametrize("source, line, col, words", SYNTAX)
def test_syntax_errors(source, line, col, words):
    check(source, line, col, words)


def test_syntax_error_message_is_not_python_advice():
    err = check("a: Param = 1\nb = 9" + "9" * 5000 + "\n", 2, 5)
    assert "sys.set_int_max_str_digits" not in str(err)


def test_no_python_warnings_leak_from_parsing():
    """ast.parse warns about some Python constructs; a spec error is the whole story."""
    sources = ['"""\\d"""\na: Param = 1\nC: Loss = a\n', "a: Param = 1\nC: Loss = (1)(a)\n"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        symbp.parse_text(sources[0])
        check(sources[1], 2, 12, ["call"])
    assert [str(w.message) for w in caught] == []


# ----------------------------------------------------------------------------- names

NAMES = [
    pytest.param(
        "a: Param = 1\nC: Loss = a + bb\n", 2, 15, ["unknown name 'bb'"], id="unknown-name"
    ),
    pytest.param(
        "rate: Param = 1\nC: Loss = 2 * rat\n",
        2,
        15,
        ["unknown name 'rat'", "did you mean rate?"],
        id="suggestion",
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = foo(a)\n", 2, 11, ["unknown function 'foo'"], id="unknown-function"
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = sigmiod(a)\n",
        2,
        11,
        ["unknown function 'sigmiod'", "did you mean sigmoid?"],
        id="typo-function",
    ),
    pytest.param(
        "a: Param = 1\na = 2 * a\nC: Loss = a\n",
        2,
        1,
        ["'a' is already bound at line 1"],
        id="rebind-param",
    ),
    pytest.param(
        "a: Param = 1\nb = a\nc = a\nb = c\nC: Loss = b\n",
        4,
        1,
        ["'b' is already bound at line 2"],
        id="rebind-equation",
    ),
    pytest.param(
        "a: Param = 1\na: Input\nC: Loss = a\n", 2, 1, ["already bound at line 1"], id="redeclare"
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = a\nC: Output = a\n",
        3,
        1,
        ["'C' is already bound at line 2"],
        id="rebind-loss",
    ),
    pytest.param(
        "def f(u):\n    return u\nf: Param = 1\nC: Loss = f\n",
        3,
        1,
        ["'f' is already a function", "line 1"],
        id="value-named-like-def",
    ),
    pytest.param(
        "f: Param = 1\ndef f(u):\n    return u\nC: Loss = f\n",
        2,
        1,
        ["'f' is already bound at line 1"],
        id="def-named-like-value",
    ),
    pytest.param(
        "def f(u):\n    return u\ndef f(u):\n    return u\n",
        3,
        1,
        ["'f' is already defined at line 1"],
        id="def-twice",
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = a * b\nb = a + 1\n",
        2,
        15,
        ["'b' is used before it is defined", "line 3"],
        id="use-before-definition",
    ),
    pytest.param(
        "C: Loss = w * 2\nw: Param = 1\n",
        1,
        11,
        ["'w' is used before it is defined", "line 2"],
        id="param-declared-late",
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = f(a)\ndef f(u):\n    return u\n",
        2,
        11,
        ["'f' is used before it is defined", "line 3"],
        id="def-after-use",
    ),
    pytest.param(
        "a: Param = 1\nb = b + a\nC: Loss = b\n",
        2,
        5,
        ["'b' is used in its own definition"],
        id="self-reference",
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = exp\n",
        2,
        11,
        ["'exp' is a function", "exp(z)"],
        id="function-as-value",
    ),
    pytest.param(
        "x: Input[3]\nC: Loss = sum\n", 2, 11, ["'sum' is a function"], id="reduction-as-value"
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = a(2)\n",
        2,
        11,
        ["'a' is a value, not a function"],
        id="value-called",
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = a * glorot\n",
        2,
        15,
        ["'glorot' is an initializer"],
        id="initializer-as-value",
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = normal(a)\n",
        2,
        11,
        ["'normal' is an initializer"],
        id="initializer-called",
    ),
    pytest.param(
        "α: Param = 1\nC: Loss = α + β\n", 2, 15, ["unknown name 'β'"], id="non-ascii-unknown"
    ),
    pytest.param(
        "αβ: Param = 1\nC: Loss = αβ * γδ\n", 2, 16, ["unknown name 'γδ'"], id="non-ascii-column"
    ),
]


@pytest.mark.parametrize("source, line, col, words", NAMES)
def test_name_errors(source, line, col, words):
    check(source, line, col, words)


# ---------------------------------------------------------------------------- shapes

SHAPES = [
    pytest.param(
        "x: Input[5]\nW: Param[3, 4] = glorot\nz = W @ x\nC: Loss = sum(z)\n",
        3,
        5,
        ["matmul", "(3, 4) @ (5,)"],
        id="matmul-vector",
    ),
    pytest.param(
        HEAD + "V: Param[5, 6] = glorot\nz = W @ V\nC: Loss = sum(z)\n",
        4,
        5,
        ["matmul", "(3, 4) @ (5, 6)"],
        id="matmul-matrix",
    ),
    pytest.param(
        HEAD + "a: Param = 1\nC: Loss = sum(a @ x)\n",
        4,
        15,
        ["matmul", "() @ (4,)"],
        id="matmul-scalar",
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = a + 2 @ 3\n", 2, 15, ["matmul of two numbers"], id="matmul-numbers"
    ),
    pytest.param(
        "x: Input[3]\nb: Param[4] = zeros\nz = x + b\nC: Loss = sum(z)\n",
        3,
        5,
        ["(3,)", "(4,)", "broadcast"],
        id="add-broadcast",
    ),
    pytest.param(
        "x: Input[2, 3]\nb: Param[2] = zeros\nC: Loss = sum(x * b)\n",
        3,
        15,
        ["(2, 3)", "(2,)", "broadcast"],
        id="mul-broadcast",
    ),
    pytest.param(HEAD + "C: Loss = sum((W @ x) - x)\n", 3, 15, ["(3,)", "(4,)"], id="sub-nested"),
    pytest.param(HEAD + "C: Loss = sum(W.T @ W.T)\n", 3, 15, ["(4, 3) @ (4, 3)"], id="transpose"),
    pytest.param(
        "x: Input[3]\ny: Input[4]\nC: Loss = cross_entropy(x, y)\n",
        3,
        11,
        ["cross_entropy", "(3,)", "(4,)"],
        id="cross-entropy",
    ),
    pytest.param(
        "x: Input[3]\nC: Loss = sum(x, axis=1)\n",
        2,
        11,
        ["axis 1", "out of range"],
        id="axis-out-of-range",
    ),
    pytest.param(
        "x: Input[3, 2]\nC: Loss = sum(x, axis=(0, -2))\n",
        2,
        11,
        ["repeated axis"],
        id="axis-repeated",
    ),
    pytest.param(
        "x: Input[3]\nC: Loss = sum(x, axis=" + "9" * 40 + ")\n",
        2,
        23,
        ["axis", "out of range"],
        id="axis-huge",
    ),
    pytest.param(
        "x: Input[3]\nC: Loss = sum(x, axis=k)\n",
        2,
        23,
        ["axis must be an integer"],
        id="axis-name",
    ),
    pytest.param(
        "x: Input[3]\nC: Loss = sum(x, axis=0.0)\n",
        2,
        23,
        ["axis must be an integer"],
        id="axis-float",
    ),
    pytest.param(
        "a: Param = 1\nC: Loss = softmax(a)\n", 2, 11, ["softmax", "rank 1"], id="softmax-scalar"
    ),
]


@pytest.mark.parametrize("source, line, col, words", SHAPES)
def test_shape_errors(source, line, col, words):
    check(source, line, col, words)


# ------------------------------------------------------------------------------ loss

LOSS = [
    pytest.param(
        "x: Input[3]\nC: Loss = x * 2\n",
        2,
        11,
        ["Loss must be a scalar", "(3,)", "sum(...)"],
        id="vector-loss",
    ),
    pytest.param(
        HEAD + "C: Loss = W\n", 3, 11, ["Loss must be a scalar", "(3, 4)"], id="matrix-loss"
    ),
    pytest.param("x: Input[3]\ny = x * 2\n", 2, 1, ["no Loss", "C: Loss = ..."], id="missing"),
    pytest.param(
        "x: Input[3]\ny = x * 2\n\n# the end\n", 4, 1, ["no Loss"], id="missing-points-at-the-end"
    ),
    pytest.param(
        "x: Input[3]\nC: Loss = sum(x)\nD: Loss = mean(x)\n",
        3,
        1,
        ["second Loss", "'C' at line 2"],
        id="two-losses",
    ),
    pytest.param(
        "x: Input[3]\nC: Loss\n", 2, 1, ["Loss 'C' needs an expression"], id="loss-without-value"
    ),
    pytest.param(
        "x: Input[3]\nC: Loss[3] = x\n", 2, 4, ["Loss takes no shape"], id="loss-with-shape"
    ),
    pytest.param(
        "x: Input[3]\np: Output\nC: Loss = sum(x)\n",
        2,
        1,
        ["Output 'p' needs an expression"],
        id="output-without-value",
    ),
]


@pytest.mark.parametrize("source, line, col, words", LOSS)
def test_loss_errors(source, line, col, words):
    check(source, line, col, words)


@pytest.mark.parametrize("source", ["", "\n\n", "# only a comment\n", '"""a docstring"""\n'])
def test_spec_without_statements_has_no_loss(source):
    err = parse_error(source)
    assert (err.line, err.col) == (max(len(source.splitlines()), 1), 1)
    assert "no Loss" in err.message
    assert str(err).startswith(f"t.sbp:{err.line}:1: error: the spec has no Loss")


# ----------------------------------------------------------------------- unsupported

A = "a: Param = 1\n"
UNSUPPORTED = [
    pytest.param(A + "for i in a:\n    b = i\nC: Loss = a\n", 2, 1, ["for loop"], id="for"),
    pytest.param(A + "while a:\n    b = a\nC: Loss = a\n", 2, 1, ["while loop"], id="while"),
    pytest.param(A + "if a:\n    b = 1\nC: Loss = a\n", 2, 1, ["if statement"], id="if"),
    pytest.param("import numpy\n" + A + "C: Loss = a\n", 1, 1, ["import"], id="import"),
    pytest.param(
        "from math import exp\n" + A + "C: Loss = a\n", 1, 1, ["import"], id="from-import"
    ),
    pytest.param(A + "class K:\n    pass\nC: Loss = a\n", 2, 1, ["class"], id="class"),
    pytest.param(A + "with a:\n    pass\nC: Loss = a\n", 2, 1, ["with"], id="with"),
    pytest.param(A + "try:\n    b = a\nexcept E:\n    pass\n", 2, 1, ["try"], id="try"),
    pytest.param(A + "match a:\n    case 1:\n        pass\n", 2, 1, ["match"], id="match"),
    pytest.param(A + "del a\n", 2, 1, ["del"], id="del"),
    pytest.param(A + "assert a\n", 2, 1, ["assert"], id="assert"),
    pytest.param(A + "pass\n", 2, 1, ["pass"], id="pass"),
    pytest.param(A + "return a\n", 2, 1, ["return outside a def"], id="return"),
    pytest.param("global a\n" + A, 1, 1, ["global"], id="global"),
    pytest.param(A + "async def f(u):\n    return u\n", 2, 1, ["async def"], id="async-def"),
    pytest.param(
        A + "b = a\nb += 1\nC: Loss = b\n",
        3,
        1,
        ["augmented assignment"],
        id="augmented-assignment",
    ),
    pytest.param(A + "a\nC: Loss = a\n", 2, 1, ["expression statement"], id="expression-statement"),
    pytest.param(A + "b, c = a, a\nC: Loss = b\n", 2, 1, ["plain name"], id="tuple-target"),
    pytest.param(
        A + "b = c = a\nC: Loss = b\n", 2, 1, ["one name per equation"], id="chained-assignment"
    ),
    pytest.param(A + "a.b = 1\nC: Loss = a\n", 2, 1, ["plain name"], id="attribute-target"),
    pytest.param(
        A + "b: int = 2\nC: Loss = a\n", 2, 4, ["unknown annotation"], id="python-annotation"
    ),
    pytest.param(A + "f = lambda u: u\nC: Loss = a\n", 2, 5, ["lambda"], id="lambda"),
    pytest.param(
        A + "b = a < 2 < 3\nC: Loss = a\n",
        2,
        5,
        ["chained comparison", "`a < 2 < 3`", "(a < 2) * (2 < 3)"],
        id="comparison-chain",
    ),
    pytest.param(
        "x: Input[3]\nb = x[...]\nC: Loss = b\n", 2, 7, ["Ellipsis", "x[:, 3]"], id="ellipsis"
    ),
    pytest.param(
        A + "b = a.shape\nC: Loss = b\n", 2, 5, ["attribute '.shape'", ".T"], id="attribute"
    ),
    pytest.param("x: Input[3]\nC: Loss = x.sum()\n", 2, 11, ["method call"], id="method-call"),
    pytest.param(
        A + "C: Loss = exp(a, out=a)\n", 2, 18, ["keyword argument 'out'"], id="keyword-argument"
    ),
    pytest.param(
        A + "C: Loss = sigmoid(x=a)\n", 2, 19, ["keyword argument 'x'"], id="keyword-only-call"
    ),
    pytest.param("x: Input[3]\nC: Loss = sum(*x)\n", 2, 15, ["unpacking"], id="star-args"),
    pytest.param("x: Input[3]\nC: Loss = sum(**x)\n", 2, 15, ["unpacking"], id="star-kwargs"),
    pytest.param(
        "x: Input[3]\nC: Loss = sum(x, 0)\n",
        2,
        11,
        ["takes 1 argument, got 2", "axis=k"],
        id="positional-axis",
    ),
    pytest.param(A + "C: Loss = exp(a, a)\n", 2, 11, ["exp() takes 1 argument, got 2"], id="arity"),
    pytest.param(
        A + "C: Loss = cross_entropy(a)\n", 2, 11, ["takes 2 arguments, got 1"], id="arity-two"
    ),
    pytest.param(
        A + "C: Loss = a if a else a\n", 2, 11, ["conditional expression"], id="conditional"
    ),
    pytest.param(A + "C: Loss = a and a\n", 2, 11, ["and/or"], id="boolean"),
    pytest.param(A + "C: Loss = not a\n", 2, 11, ["operator not"], id="not"),
    pytest.param(A + "C: Loss = ~a\n", 2, 11, ["operator ~"], id="invert"),
    pytest.param(A + "C: Loss = a % 2\n", 2, 11, ["operator %"], id="modulo"),
    pytest.param(A + "C: Loss = a // 2\n", 2, 11, ["operator //"], id="floor-division"),
    pytest.param(A + "C: Loss = [a]\n", 2, 11, ["a list"], id="list"),
    pytest.param(A + "C: Loss = (a, a)\n", 2, 11, ["a tuple"], id="tuple"),
    pytest.param(A + "C: Loss = {a: a}\n", 2, 11, ["a dict"], id="dict"),
    pytest.param(
        A + "C: Loss = sum([a for i in a])\n", 2, 15, ["comprehension"], id="comprehension"
    ),
    pytest.param(A + "C: Loss = (b := a)\n", 2, 12, ["assignment expression"], id="walrus"),
    pytest.param(A + "C: Loss = f'{a}'\n", 2, 11, ["f-string"], id="f-string"),
    pytest.param(
        A + "C: Loss = a * 'two'\n", 2, 15, ["literal", "'two'", "only numbers"], id="string"
    ),
    pytest.param(A + "C: Loss = a * True\n", 2, 15, ["literal", "True"], id="bool"),
    pytest.param(A + "C: Loss = a * None\n", 2, 15, ["literal", "None"], id="none"),
    pytest.param(A + "C: Loss = a * 1j\n", 2, 15, ["literal", "1j"], id="complex"),
    pytest.param(A + "C: Loss = a + ...\n", 2, 15, ["literal", "..."], id="ellipsis"),
    pytest.param(
        A + "C: Loss = (a + a)(a)\n",
        2,
        12,
        ["unsupported", "a call", "by name"],
        id="call-of-expression",
    ),
]


@pytest.mark.parametrize("source, line, col, words", UNSUPPORTED)
def test_unsupported_constructs(source, line, col, words):
    check(source, line, col, words)


# ---------------------------------------------------------------------- initializers

INITIALIZERS = [
    pytest.param(
        "a: Param[3] = normal()\nC: Loss = sum(a)\n",
        1,
        15,
        ["normal(std)"],
        id="normal-without-std",
    ),
    pytest.param(
        "a: Param[3] = normal(1, 2)\nC: Loss = sum(a)\n",
        1,
        15,
        ["normal(std)"],
        id="normal-two-arguments",
    ),
    pytest.param(
        "a: Param[3] = normal(std=1)\nC: Loss = sum(a)\n",
        1,
        15,
        ["normal(std)"],
        id="normal-keyword",
    ),
    pytest.param(
        "s: Param = 1\na: Param[3] = normal(s)\nC: Loss = sum(a)\n",
        2,
        15,
        ["number literals"],
        id="normal-of-name",
    ),
    pytest.param(
        "a: Param[3] = normal(-1)\nC: Loss = sum(a)\n", 1, 15, ["std >= 0"], id="normal-negative"
    ),
    pytest.param(
        "a: Param[3] = normal(1e999)\nC: Loss = sum(a)\n",
        1,
        22,
        ["too large"],
        id="normal-overflow",
    ),
    pytest.param(
        "a: Param[3] = uniform(2, 1)\nC: Loss = sum(a)\n",
        1,
        15,
        ["low <= high"],
        id="uniform-reversed",
    ),
    pytest.param(
        "a: Param[3] = uniform(1)\nC: Loss = sum(a)\n",
        1,
        15,
        ["uniform(low, high)"],
        id="uniform-one-argument",
    ),
    pytest.param(
        "a: Param[3] = zeros()\nC: Loss = sum(a)\n",
        1,
        15,
        ["zeros takes no arguments", "`= zeros`"],
        id="zeros-called",
    ),
    pytest.param(
        "a: Param[3] = xavier\nC: Loss = sum(a)\n",
        1,
        15,
        ["bad initializer", "glorot"],
        id="unknown-initializer",
    ),
    pytest.param(
        "a: Param[3] = 1 + 2\nC: Loss = sum(a)\n", 1, 15, ["bad initializer"], id="expression"
    ),
    pytest.param("a: Param[3] = True\nC: Loss = sum(a)\n", 1, 15, ["bad initializer"], id="bool"),
    pytest.param(
        "a: Param = 1e999\nC: Loss = a\n", 1, 12, ["too large for a float"], id="float-overflow"
    ),
    pytest.param(
        "a: Param = -" + "9" * 400 + "\nC: Loss = a\n",
        1,
        13,
        ["too large for a float"],
        id="huge-integer",
    ),
    pytest.param(
        "x: Input[3] = 1\nC: Loss = sum(x)\n",
        1,
        15,
        ["Input takes no value"],
        id="input-with-value",
    ),
    pytest.param(
        "w: Param[3]\nC: Loss = sum(w)\n",
        1,
        1,
        ["Param 'w' needs an initializer", "w: Param[...] = zeros"],
        id="param-without-initializer",
    ),
]


@pytest.mark.parametrize("source, line, col, words", INITIALIZERS)
def test_bad_initializers(source, line, col, words):
    check(source, line, col, words)


# ------------------------------------------------------------------------ dimensions

DIMENSIONS = [
    pytest.param("a: Param[0] = zeros\n", 1, 10, ["positive integer literals"], id="zero"),
    pytest.param("a: Param[-1] = zeros\n", 1, 10, ["positive integer literals"], id="negative"),
    pytest.param("a: Param[3.5] = zeros\n", 1, 10, ["positive integer literals"], id="float"),
    pytest.param(
        "a: Param[3, 2.0] = zeros\n", 1, 13, ["positive integer literals"], id="float-second"
    ),
    pytest.param(
        "n = 3\na: Param[n] = zeros\n", 2, 10, ["positive integer literals", "`n`"], id="name"
    ),
    pytest.param(
        "x: Input[2 * 3]\n", 1, 10, ["positive integer literals", "`2 * 3`"], id="expression"
    ),
    pytest.param("x: Input[True]\n", 1, 10, ["positive integer literals"], id="bool"),
    pytest.param("x: Input['3']\n", 1, 10, ["positive integer literals"], id="string"),
    pytest.param("x: Input[1:3]\n", 1, 10, ["positive integer literals"], id="slice"),
    pytest.param("x: Input[[3]]\n", 1, 10, ["positive integer literals"], id="list"),
    pytest.param("x: Input[()]\n", 1, 10, ["empty shape", "without brackets"], id="empty"),
    pytest.param(
        "a: Param[9999999999] = zeros\n", 1, 10, ["9999999999", "too large"], id="ten-digits"
    ),
    pytest.param("a: Param[" + "9" * 400 + "] = zeros\n", 1, 10, ["too large"], id="400-digits"),
    pytest.param("a: Param[0x" + "f" * 5000 + "] = zeros\n", 1, 10, ["too large"], id="huge-hex"),
    pytest.param(
        "a: Param[100000, 100000] = zeros\n",
        1,
        10,
        ["(100000, 100000)", "more than 2147483647 elements"],
        id="too-many-elements",
    ),
    pytest.param("x: Input(3)\n", 1, 4, ["unknown annotation", "Input[...]"], id="call"),
    pytest.param("x: Inputs[3]\n", 1, 4, ["unknown annotation"], id="misspelled"),
]


@pytest.mark.parametrize("source, line, col, words", DIMENSIONS)
def test_bad_dimensions(source, line, col, words):
    err = check(source, line, col, words)
    assert len(err.message) < 200  # a 5000-digit number is not quoted back


# ------------------------------------------------------------------------- functions

X = "x: Input[3]\n"
FUNCTIONS = [
    pytest.param(
        "def f(u):\n    v = u\n    return v\n", 2, 5, ["single `return"], id="two-statements"
    ),
    pytest.param(
        "def f(u):\n    return u\n    return u\n", 3, 5, ["single `return"], id="two-returns"
    ),
    pytest.param("def f(u):\n    u\n", 2, 5, ["single `return"], id="no-return"),
    pytest.param("def f(u):\n    return\n", 2, 5, ["single `return"], id="bare-return"),
    pytest.param("def f(u=1):\n    return u\n", 1, 9, ["plain names", "defaults"], id="default"),
    pytest.param("def f(*u):\n    return u\n", 1, 8, ["plain names"], id="varargs"),
    pytest.param("def f(u, **k):\n    return u\n", 1, 12, ["plain names"], id="kwargs"),
    pytest.param("def f(u, *, v):\n    return u\n", 1, 13, ["plain names"], id="keyword-only"),
    pytest.param(
        "def f():\n    return 1\n", 1, 1, ["needs at least one parameter"], id="no-parameters"
    ),
    pytest.param(
        "def f(u, u):\n    return u\n", 1, 1, ["repeats a parameter"], id="repeated-parameter"
    ),
    pytest.param("@cache\ndef f(u):\n    return u\n", 1, 2, ["decorators"], id="decorator"),
    pytest.param(
        "def f(u) -> float:\n    return u\n", 1, 13, ["annotations"], id="return-annotation"
    ),
    pytest.param(
        "def f(u):\n    return sum(u)\n", 2, 12, ["elementwise", "'sum'"], id="sum-inside"
    ),
    pytest.param(
        "def f(u):\n    return softmax(u)\n",
        2,
        12,
        ["elementwise", "'softmax'"],
        id="softmax-inside",
    ),
    pytest.param(
        "def f(u):\n    return u @ u\n", 2, 12, ["function body", "@"], id="matmul-inside"
    ),
    pytest.param("def f(u):\n    return u.T\n", 2, 12, ["function body"], id="transpose-inside"),
    pytest.param(
        "def f(u):\n    return u * k\n",
        2,
        16,
        ["unknown name 'k'", "only its parameters"],
        id="unknown-name",
    ),
    pytest.param(
        X + "def f(u):\n    return u * x\n",
        3,
        16,
        ["unknown name 'x'", "only its parameters"],
        id="global-value",
    ),
    pytest.param(
        "def f(u):\n    return g(u)\n", 2, 12, ["unknown function 'g'"], id="unknown-function"
    ),
    pytest.param("def f(u):\n    return f(u)\n", 2, 12, ["calls itself"], id="recursion"),
    pytest.param(
        "def f(u):\n    return exp(u, u)\n", 2, 12, ["exp() takes 1 argument"], id="arity-inside"
    ),
    pytest.param("def f(u):\n    return exp(x=u)\n", 2, 12, ["positional"], id="keyword-inside"),
    pytest.param(
        "def f(u):\n    return u < 1 <= u\n", 2, 12, ["chained comparison"], id="chain-inside"
    ),
    pytest.param(
        "def f(u):\n    return u / 0\n", 2, 12, ["division by zero"], id="division-by-zero"
    ),
    pytest.param(
        "def f(u):\n    return u + log(0)\n", 2, 16, ["infinite or undefined"], id="log-zero-inside"
    ),
    pytest.param(
        "def sigmoid(u):\n    return u\n", 1, 1, ["redefine", "'sigmoid'"], id="redefine-sigmoid"
    ),
    pytest.param("def exp(u):\n    return u\n", 1, 1, ["redefine", "'exp'"], id="redefine-exp"),
    pytest.param("def sum(u):\n    return u\n", 1, 1, ["redefine", "'sum'"], id="redefine-sum"),
    pytest.param(
        "def cross_entropy(u, v):\n    return u\n", 1, 1, ["redefine"], id="redefine-cross-entropy"
    ),
    pytest.param(
        X + "def f(u, v):\n    return u * v\nC: Loss = sum(f(x))\n",
        4,
        15,
        ["f() takes 2 arguments, got 1"],
        id="call-arity",
    ),
]


@pytest.mark.parametrize("source, line, col, words", FUNCTIONS)
def test_bad_functions(source, line, col, words):
    check(source, line, col, words)


def test_exponentially_growing_functions_are_refused_quickly():
    """f_k(u) = f_{k-1}(f_{k-1}(u)) doubles per level: sympy would build it forever."""
    defs = "def f0(u):\n    return u * u * u\n" + "".join(
        f"def f{k}(u):\n    return f{k - 1}(f{k - 1}(u))\n" for k in range(1, 30)
    )
    with deadline(10):
        err = parse_error(defs + "a: Param = 1\nC: Loss = f29(a)\n")
    assert "too large once the functions it calls are expanded" in err.message
    assert err.line > 2 and err.col == 12
    located(err, err.line, 12, source=defs)


# --------------------------------------------------------------------------- numbers

NUMBERS = [
    pytest.param(
        A + "C: Loss = a * 1e999\n", 2, 15, ["number is too large for a float"], id="float-literal"
    ),
    pytest.param(
        A + "C: Loss = a * " + "9" * 400 + "\n", 2, 15, ["too large for a float"], id="int-literal"
    ),
    pytest.param(
        A + "C: Loss = a * 0x" + "f" * 400 + "\n",
        2,
        15,
        ["too large for a float"],
        id="hex-literal",
    ),
    pytest.param(
        A + "C: Loss = a * 10**400\n",
        2,
        15,
        ["`10**400`", "too large for a float"],
        id="integer-power",
    ),
    pytest.param(
        A + "C: Loss = a + 10.0 ** 400\n", 2, 15, ["too large for a float"], id="float-power"
    ),
    pytest.param(A + "C: Loss = a * 10**10**10\n", 2, 15, ["too large for a float"], id="tower"),
    pytest.param(
        A + "C: Loss = a * (1e300 * 1e300)\n", 2, 16, ["`1e300 * 1e300`", "too large"], id="product"
    ),
    pytest.param(A + "C: Loss = a + exp(1000)\n", 2, 15, ["`exp(1000)`", "too large"], id="exp"),
    pytest.param(
        A + "C: Loss = a + sqrt(-1)\n",
        2,
        15,
        ["`sqrt(-1)`", "not a real number"],
        id="sqrt-negative",
    ),
    pytest.param(A + "C: Loss = a + log(-1)\n", 2, 15, ["not a real number"], id="log-negative"),
    pytest.param(
        A + "C: Loss = a + (-8) ** 0.5\n", 2, 15, ["not a real number"], id="negative-base"
    ),
    pytest.param(
        A + "C: Loss = a + log(0)\n", 2, 15, ["`log(0)`", "infinite or undefined"], id="log-zero"
    ),
    pytest.param(
        A + "C: Loss = a + 0 ** -1\n", 2, 15, ["infinite or undefined"], id="zero-to-negative-power"
    ),
    pytest.param(
        A + "C: Loss = a + 1 / 0\n", 2, 15, ["division by zero", "`1 / 0`"], id="divide-by-zero"
    ),
    pytest.param(A + "C: Loss = a / 0\n", 2, 11, ["division by zero"], id="divide-value-by-zero"),
    pytest.param(
        A + "C: Loss = a / (a * 0)\n", 2, 11, ["division by zero"], id="divide-by-folded-zero"
    ),
    pytest.param(
        "def f(u):\n    return log(u)\n" + A + "C: Loss = a + f(0)\n",
        4,
        15,
        ["`f(0)`", "infinite or undefined"],
        id="def-of-constant",
    ),
    pytest.param(
        A + "C: Loss = a * exp(2) ** 10**10\n", 2, 15, ["too large"], id="constant-node-power"
    ),
    pytest.param("def f(u):\n    return u * 1e999\n", 2, 16, ["too large"], id="in-def-literal"),
    pytest.param("def f(u):\n    return u * 10**10**10\n", 2, 16, ["too large"], id="in-def-tower"),
    pytest.param(
        "def f(u):\n    return u + sqrt(-2)\n", 2, 16, ["not a real number"], id="in-def-complex"
    ),
    pytest.param(
        "def f(u):\n    return u * " + "9" * 400 + "\n", 2, 16, ["too large"], id="in-def-int"
    ),
]


@pytest.mark.parametrize("source, line, col, words", NUMBERS)
def test_numbers_out_of_float_range(source, line, col, words):
    with deadline(10):
        check(source, line, col, words)


@pytest.mark.parametrize(
    "expr, value",
    [
        ("0.5 ** 5000", 0.0),  # underflows: folded in floating point, not exactly
        ("(1 + 1e-9) ** 10**9", math.exp(1)),
        ("2 ** 1000 / 2 ** 999", 2.0),
        ("exp(700) / exp(699)", math.e),
    ],
)
def test_large_exponents_fold_quickly(expr, value):
    with deadline(10):
        graph = symbp.parse_text(f"a: Param = 1\nk = {expr}\nC: Loss = a * k\n")
    module = symbp.compile(graph)
    assert module.loss({"a": np.array(1.0)}) == pytest.approx(value, rel=1e-6, abs=1e-300)


# -------------------------------------------------------------- bytes and characters


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_non_utf8_bytes(tmp_path, newline):
    data = f"a: Param = 1{newline}C: Loss = a + α".encode() + b"\xff" + newline.encode()
    err = pytest.raises(SpecError, parse_bytes, data, "t.sbp").value
    located(err, 2, 16, ["not valid UTF-8", "0xff"])
    assert err.source_line == "C: Loss = a + α\ufffd"
    path = tmp_path / "latin1.sbp"
    path.write_bytes(f"a: Param = 1{newline}# café{newline}C: Loss = a".encode("latin-1"))
    err = pytest.raises(SpecError, symbp.parse, path).value
    assert (err.filename, err.line, err.col) == (str(path), 2, 6)
    assert str(err).startswith(f"{path}:2:6: error: the spec is not valid UTF-8 (byte 0xe9)")


def test_utf8_with_bom_parses(tmp_path):
    source = "a: Param = 1\nC: Loss = a * 2\n"
    path = tmp_path / "bom.sbp"
    path.write_bytes(b"\xef\xbb\xbf" + source.encode())
    assert symbp.parse(path).loss_name == "C"
    assert symbp.parse_text("\ufeff" + source).loss_name == "C"
    err = parse_error("\ufeffa: Param = 1\nC: Loss = b\n")
    located(err, 2, 11, ["unknown name 'b'"])


@pytest.mark.parametrize(
    "source, line, col",
    [
        ("a: Param = 1\nC: Loss = a\x00\n", 2, 12),
        ("\x00", 1, 1),
        ("a: Param = 1\n# x\x00y\nC: Loss = a\n", 2, 4),
    ],
)
def test_nul_bytes(source, line, col):
    err = parse_error(source)
    located(err, line, col, ["NUL byte"])
    assert "\x00" not in str(err)
    err = pytest.raises(SpecError, parse_bytes, source.encode(), "t.sbp").value
    assert (err.line, err.col) == (line, col)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_keep_lines_right(newline):
    source = newline.join(["a: Param = 1", "", "C: Loss = a + b", ""])
    err = parse_error(source)
    located(err, 3, 15, ["unknown name 'b'"])
    assert err.source_line == "C: Loss = a + b"


def test_tab_keeps_the_caret_under_the_column():
    err = parse_error("a: Param = 1\nC: Loss =\ta + b\n")
    assert (err.line, err.col) == (2, 15)  # the tab is one character
    _, shown, caret = str(err).split("\n")
    assert shown[caret.index("^")] == "b"
    assert "\t" not in str(err)


def test_control_characters_are_shown_printable():
    err = parse_error("a: Param = 1\n\x0cC: Loss = a + b\n")
    assert (err.line, err.col) == (2, 16)
    _, shown, caret = str(err).split("\n")
    assert shown == "    ?C: Loss = a + b" and shown[caret.index("^")] == "b"


def test_long_lines_are_shown_around_the_column():
    source = "a: Param = 1\nC: Loss = a" + " + a" * 300 + " + b\n"
    err = parse_error(source)
    located(err, 2, 1215, ["unknown name 'b'"], source)
    _, shown, caret = str(err).split("\n")
    assert len(shown) < 120 and shown.startswith("    ...")
    assert shown[caret.index("^")] == "b"


# --------------------------------------------------------------------------- nesting


@pytest.mark.parametrize(
    "expr",
    [
        pytest.param("-" * 100_000 + "a", id="100000-minus-signs"),
        pytest.param("a" + " + a" * 100_000, id="100000-terms"),
        pytest.param("-" * 900 + "a", id="900-minus-signs"),
        pytest.param("a" + " ** a" * 2000, id="2000-level-power-tower"),
    ],
)
def test_deep_nesting_points_at_its_statement(expr):
    source = "a: Param = 1\nb: Param = 2\nC: Loss = " + expr + "\n"
    with deadline(20):
        err = parse_error(source)
    located(err, 3, 1, ["nested too deeply"], source)


def test_deep_nesting_in_a_function():
    source = "def f(u):\n    return " + "-" * 100_000 + "u\n"
    err = parse_error(source)
    located(err, 2, 5, ["nested too deeply"], source)


def test_too_many_parentheses_is_a_syntax_error():
    source = "a: Param = 1\nC: Loss = " + "exp(" * 300 + "a" + ")" * 300 + "\n"
    err = parse_error(source)
    assert err.line == 2 and "syntax error" in err.message
    assert "parentheses" in err.message


def test_moderate_nesting_compiles():
    source = "a: Param = 0.1\nC: Loss = " + "sigmoid(" * 150 + "a" + ")" * 150 + "\n"
    module = symbp.compile(symbp.parse_text(source))
    assert 0.5 < module.loss({"a": np.array(0.1)}) < 1


def test_long_specs_parse_in_linear_time():
    """2000 equations: the parser once re-split the whole source for every statement."""
    n = 2000
    source = "a0: Param = 1\n" + "".join(f"a{i} = sigmoid(a{i - 1}) * 1.5\n" for i in range(1, n))
    start = time.perf_counter()
    graph = symbp.parse_text(source + f"C: Loss = a{n - 1}\n")
    assert time.perf_counter() - start < 3
    assert len(graph.equations) == n
    assert graph.statements[n] == f"a{n - 1} = sigmoid(a{n - 2}) * 1.5"
    err = parse_error(source + "C: Loss = a1 + nope\n")
    located(err, n + 1, 16, ["unknown name 'nope'"])


# ----------------------------------------------------------- the error object itself


def test_spec_error_is_a_value_error_and_pickles():
    err = parse_error("a: Param = 1\nC: Loss = a + b\n")
    assert isinstance(err, ValueError) and isinstance(err, symbp.SpecError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.filename, copy.line, copy.col, copy.message) == (
        "t.sbp",
        2,
        15,
        "unknown name 'b'",
    )
    assert str(copy) == str(err)


def test_unreadable_file(tmp_path):
    err = pytest.raises(SpecError, symbp.parse, tmp_path / "missing.sbp").value
    assert (
        str(err) == f"{tmp_path / 'missing.sbp'}: error: cannot read spec: "
        "No such file or directory"
    )
    err = pytest.raises(SpecError, symbp.parse, tmp_path).value
    assert "cannot read spec" in str(err) and err.line == 0


def test_filename_defaults_and_is_used():
    with pytest.raises(SpecError, match=r"^<spec>:1:11: error: unknown name 'q'"):
        symbp.parse_text("C: Loss = q\n")
    with pytest.raises(SpecError, match=r"^nets/mlp\.sbp:1:11: "):
        symbp.parse_text("C: Loss = q\n", filename="nets/mlp.sbp")


def test_every_table_row_is_fast():
    """All the error tables together stay well under a second per hundred specs."""
    rows = SYNTAX + NAMES + SHAPES + LOSS + UNSUPPORTED + INITIALIZERS + DIMENSIONS + FUNCTIONS
    start = time.perf_counter()
    for row in rows:
        with pytest.raises(SpecError):
            symbp.parse_text(row.values[0])
    assert time.perf_counter() - start < 0.02 * len(rows)


# ------------------------------------------------------------ valid but tricky specs

TRICKY = [
    pytest.param(
        "sum: Input[3]\nnp: Param[3] = ones\nparams = sum * np\nC: Loss = mean(params ** 2)\n",
        id="python-builtin-names",
    ),
    pytest.param(
        "inputs: Input[3]\nlr: Param[3] = normal(0.1)\nn: Param = 0.5\n"
        "_sigmoid = sigmoid(inputs * lr) * n\nforward = sum(_sigmoid)\n"
        "loss: Loss = forward ** 2\n",
        id="generated-helper-names",
    ),
    pytest.param(
        "PARAMS: Input[2]\nDTYPE: Param[2] = uniform(-1, 1)\nINPUTS = PARAMS * DTYPE\n"
        "OUTPUTS: Output = INPUTS\nC: Loss = sum(exp(INPUTS))\n",
        id="generated-constant-names",
    ),
    pytest.param(
        "self: Input[2]\ncls: Param[2] = ones\ntrain_step = self * cls\n"
        "init_params = sum(train_step)\nloss_and_grads: Loss = init_params ** 2\n",
        id="generated-function-names",
    ),
    pytest.param(
        "x: Input[3]\nw: Param[3] = ones\nexp = exp(w * x)\nlog = log(exp + 1)\n"
        "C: Loss = sum(log)\n",
        id="exp-as-variable",
    ),
    pytest.param(
        "x: Input[3]\nsum = x * 2\nw: Param[3] = ones\nC: Loss = sum(sum * w)\n",
        id="sum-as-variable-and-function",
    ),
    pytest.param(
        "x: Input[3]\nW: Param[3, 3] = glorot\nw: Param[3] = he\n"
        "C: Loss = sum(sigmoid(W @ x + w))\n",
        id="names-differing-in-case",
    ),
    pytest.param(
        "match: Input[3]\ntype: Param[3] = ones\ncase = match * type\n_ = sum(case)\n"
        "__: Param = 0.5\nC: Loss = _ ** 2 + __ * _\n",
        id="soft-keywords",
    ),
    pytest.param("ﬁ: Param = 1\nC: Loss = fi * 2\n", id="nfkc-normalized-name"),
    pytest.param(
        "ξ: Input[3]\nα: Param[3] = ones\nβ: Param = 0.5\nγ = tanh(α * ξ) * β\n"
        "C: Loss = sum(γ ** 2)\n",
        id="greek",
    ),
    pytest.param(
        "int: Input[2]\nfloat: Param[2] = ones\nreturn_ = int * float\n"
        "static = sum(return_)\ndouble: Param = 1\n"
        "C: Loss = static * double + softplus(double)\n",
        id="c-keywords",
    ),
    pytest.param(
        "__name__: Input[2]\n__builtins__: Param[2] = ones\n"
        "__import__ = __name__ * __builtins__\nC: Loss = sum(__import__ ** 2)\n",
        id="dunder-names",
    ),
    pytest.param(
        "math: Input[2]\nsys: Param[2] = ones\nos = math * sys\n"
        "def swish(u):\n    return u * sigmoid(u)\nnumpy = swish(os)\n"
        "C: Loss = sum(numpy)\n",
        id="module-names",
    ),
    pytest.param(
        "def np(u):\n    return u * 2\ndef params(u, v):\n    return u * v + exp(u)\n"
        "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(params(np(x), w))\n",
        id="functions-named-like-helpers",
    ),
    pytest.param(
        "x: Input[3]\nw: Param[3] = ones\ndw: Param[3] = ones\nd_w = w * dw\n"
        "C: Loss = sum(d_w * x)\n",
        id="adjoint-like-names",
    ),
    pytest.param(
        "b: Input[3]\ni: Param[3] = ones\nj = b * i\nk = sum(j)\nC: Loss = k ** 2\n",
        id="einsum-letters",
    ),
    pytest.param(
        "x: Input[3]\nw: Param[3] = ones\nt1 = w * x\nt2 = sigmoid(t1)\nC: Loss = sum(t2 * t1)\n",
        id="temporary-like-names",
    ),
    pytest.param(
        "a: Param = 1.5\nb: Param = -2\nc: Param = 0.5\nf: Loss = (a + b) * (b + c)\n",
        id="no-input",
    ),
    pytest.param("x: Input\nw: Param = 0.5\nC: Loss = (w * x - 1) ** 2\n", id="scalar-input"),
    pytest.param(
        '"""A docstring."""\nx: Input[3]  # comment\nw: Param[3] = he\n\n'
        "C: Loss = sum(w * x) ** 2  # cost\n",
        id="docstring-and-comments",
    ),
    pytest.param(
        "x: Input[3]\nw: Param[3] = ones\nq: Output = x\nr: Output = w\n"
        "C: Loss = sum(w * x)\ns: Output = C\n",
        id="outputs-of-leaves-and-loss",
    ),
    pytest.param(
        "x: Input[3]\nw: Param[3] = ones\nk = 2 ** 0.5 * exp(1) / 3\nC: Loss = sum(k * w * x)\n",
        id="constant-folding",
    ),
    pytest.param(
        "x: Input[3]\nw: Param[3] = ones\nC: Loss = sum(w * x, axis=-1) + mean(w, axis=(0,))\n",
        id="axis-forms",
    ),
]


@pytest.mark.parametrize("source", TRICKY)
def test_tricky_names_compile_and_check(source):
    graph = symbp.parse_text(source, filename="t.sbp")
    module = symbp.compile(graph)
    params = module.init_params(0)
    rng = np.random.default_rng(1)
    inputs = {name: rng.normal(size=(2, *shape)) for name, shape in module.INPUTS.items()}
    loss = module.loss(params, **inputs)
    assert isinstance(loss, float) and math.isfinite(loss)
    assert set(module.forward(params, **inputs)) == {*graph.outputs, graph.loss_name}
    report = symbp.check_grads(graph)
    assert report.ok, report.table()
    assert [p.name for p in report.params] == list(graph.params)


def test_tricky_names_reach_the_generated_module_unchanged():
    graph = symbp.parse_text(TRICKY[1].values[0])
    module = symbp.compile(graph)
    assert list(module.PARAMS) == ["lr", "n"] and list(module.INPUTS) == ["inputs"]
    assert module.OUTPUTS == ("loss",)
    assert "symbp" not in vars(module)
    assert sys.modules.get("symbp") is symbp  # compiling did not shadow the package


# ---------------------------------------------------------------------------- consts

CONSTS = [
    pytest.param("P: Const[0, 4] = 1\nC: Loss = sum(P)\n", 1, 10, ["Const dimensions"], id="dim"),
    pytest.param(
        "P: Const[()] = 1\nC: Loss = sum(P)\n", 1, 10, ["scalar Const", "brackets"], id="empty"
    ),
    pytest.param(
        "P: Const[4] = xavier\nC: Loss = sum(P)\n", 1, 15, ["bad initializer"], id="unknown-init"
    ),
    pytest.param(
        "P: Const[4] = normal(-1)\nC: Loss = sum(P)\n", 1, 15, ["std >= 0"], id="normal-negative"
    ),
    pytest.param(
        "P: Const[4]\nC: Loss = sum(P)\n",
        1,
        1,
        ["Const 'P' needs an initializer", "P: Const[...] = 0.5"],
        id="no-initializer",
    ),
    pytest.param(
        "P: Const[4] = 1\nP: Const[4] = 2\nC: Loss = sum(P)\n",
        2,
        1,
        ["'P' is already bound at line 1"],
        id="declared-twice",
    ),
    pytest.param(
        "W: Param[4] = zeros\nW: Const[4] = 1\nC: Loss = sum(W)\n",
        2,
        1,
        ["'W' is already bound at line 1"],
        id="param-then-const",
    ),
    pytest.param(
        "P: Const[4] = 1\nP = P + 1\nC: Loss = sum(P)\n",
        2,
        1,
        ["'P' is already bound at line 1"],
        id="rebound",
    ),
    pytest.param(
        "x: Input[3]\nP: Const[4, 8] = 0.125\nh = P @ x\nC: Loss = sum(h)\n",
        3,
        5,
        ["(4, 8)", "(3,)"],
        id="shapes",
    ),
    pytest.param(
        "x: Input[3]\nh = x * P\nP: Const[3] = 1\nC: Loss = sum(h)\n",
        2,
        9,
        ["'P' is used before it is defined (at line 3)"],
        id="used-before",
    ),
    pytest.param(
        "x: Input[3]\nP: Const(4) = 0.5\nC: Loss = sum(x)\n",
        2,
        4,
        ["unknown annotation", "Const[...]"],
        id="called",
    ),
]


@pytest.mark.parametrize("source, line, col, words", CONSTS)
def test_bad_consts(source, line, col, words):
    check(source, line, col, words)


@pytest.mark.parametrize(
    "names",
    [("CONSTS", "PARAMS"), ("_consts", "_params"), ("c0", "p0"), ("int", "static"), ("n", "lr")],
    ids=lambda names: "-".join(names),
)
def test_tricky_const_names_compile_on_both_backends(names):
    """A Const may have any name, those of the generated code's own helpers and locals
    included (c0 is the C wrapper's name of its first Const)."""
    k, w = names
    source = (
        f"x: Input[3]\n{k}: Const[3] = 0.5\n{w}: Param[3] = ones\nC: Loss = sum({k} * {w} * x)\n"
    )
    graph = symbp.parse_text(source, filename="t.sbp")
    inputs = {"x": np.arange(6.0).reshape(2, 3)}
    params = {k: np.array([1.0, 2.0, 3.0]), w: np.array([0.5, 0.25, 2.0])}
    want = np.mean(np.sum(params[k] * params[w] * inputs["x"], axis=1))
    for backend in ("numpy", "c"):
        module = symbp.compile(graph, backend=backend)
        assert dict(module.CONSTS) == {k: (3,)} and list(module.PARAMS) == [w]
        assert set(module.init_params(0)) == {k, w}
        state = {name: v.copy() for name, v in params.items()}
        assert module.train_step(state, 0.1, **inputs) == pytest.approx(want, rel=1e-12)
        assert np.array_equal(state[k], params[k])
        _, grads = module.loss_and_grads(params, **inputs)
        np.testing.assert_allclose(grads[w], params[k] * np.mean(inputs["x"], axis=0))
        assert list(grads) == [w]


# ------------------------------------------------------------------------------ dropout

DROPOUT = [
    pytest.param(
        HEAD + "C: Loss = sum(dropout(W @ x, 1))\n",
        3,
        30,
        ["dropout", "below 1", "got 1"],
        id="p-one",
    ),
    pytest.param(
        HEAD + "C: Loss = sum(dropout(W @ x, 1.5))\n", 3, 30, ["dropout", "got 1.5"], id="p-above"
    ),
    pytest.param(
        HEAD + "C: Loss = sum(dropout(W @ x, -0.1))\n",
        3,
        30,
        ["at least 0", "got -0.1"],
        id="p-negative",
    ),
    pytest.param(
        HEAD + "q: Param = 0.5\nC: Loss = sum(dropout(W @ x, q))\n",
        4,
        30,
        ["p must be a number", "`q`"],
        id="p-param",
    ),
    pytest.param(
        HEAD + "C: Loss = sum(dropout(W @ x, sum(x)))\n",
        3,
        30,
        ["p must be a number"],
        id="p-varies",
    ),
    pytest.param(
        HEAD + "C: Loss = sum(dropout(W @ x))\n",
        3,
        15,
        ["dropout() takes 2 arguments, got 1"],
        id="arity",
    ),
    pytest.param(
        HEAD + "C: Loss = sum(dropout(W @ x, p=0.5))\n",
        3,
        30,
        ["no keyword argument 'p'"],
        id="keyword",
    ),
    pytest.param(
        HEAD + "C: Loss = sum(dropout(W @ y, 0.5))\n",
        3,
        27,
        ["unknown name 'y'"],
        id="bad-argument",
    ),
    pytest.param(
        HEAD + "C: Loss = sum(dropuot(W @ x, 0.5))\n",
        3,
        15,
        ["unknown function 'dropuot'", "dropout"],
        id="typo",
    ),
    pytest.param(
        HEAD + "C: Loss = sum(W @ x) + dropout\n",
        3,
        24,
        ["'dropout' is a function"],
        id="not-called",
    ),
    pytest.param(
        "def f(u):\n    return dropout(u, 0.5)\n" + HEAD + "C: Loss = sum(f(W @ x))\n",
        2,
        12,
        ["dropout"],
        id="in-def",
    ),
]


@pytest.mark.parametrize("source, line, col, words", DROPOUT)
def test_dropout_errors(source, line, col, words):
    check(source, line, col, words)


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_dropout_with_names_of_the_generated_code(backend):
    """Params named like the key and the helpers of dropout keep their meaning."""
    source = (
        "key: Input[3]\n_key: Param[3] = ones\nsymbp_dropout_: Param[3] = ones\n"
        "RANDOM: Param[3] = ones\nuint64_t = dropout(_key * key, 0.5) + symbp_dropout_\n"
        "C: Loss = sum(dropout(uint64_t * RANDOM, 0.25) ** 2)\n"
    )
    graph = symbp.parse_text(source, filename="t.sbp")
    module = symbp.compile(graph, backend=backend)
    assert module.RANDOM is True and list(module.PARAMS) == ["_key", "symbp_dropout_", "RANDOM"]
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=s) for k, s in module.PARAMS.items()}
    inputs = {"key": rng.normal(size=(4, 3))}
    value, _ = module.loss_and_grads(params, 5, **inputs)
    assert math.isfinite(value) and value != module.loss(params, **inputs)
    assert symbp.check_grads(graph, backend=backend).ok


# -------------------------------------------------------------------------- indexing

SEQ = "x: Input[5, 16]\np: Param[4] = zeros\ns: Param = 1\n"  # lines 1-3 of the cases below

INDEXING = [
    pytest.param("b = x[5]", 5, ["index 5 is out of range", "axis 0", "(5, 16)"], id="int-high"),
    pytest.param("b = x[0, -17]", 5, ["index -17", "axis 1", "(5, 16)"], id="int-low"),
    pytest.param("b = x[0, 1, 2]", 5, ["too many indices (3)", "(5, 16)"], id="too-many"),
    pytest.param("b = x[1.5]", 7, ["`1.5` is not an integer"], id="float"),
    pytest.param("b = x[2.0]", 7, ["`2.0` is not an integer"], id="float-integral"),
    pytest.param("b = x[6 / 3]", 7, ["not an integer"], id="true-division"),
    pytest.param("b = x[1.0:3]", 7, ["`1.0` is not an integer"], id="float-bound"),
    pytest.param("b = x[:, s]", 10, ["indexing with a tensor", "x[:, s]"], id="tensor"),
    pytest.param("b = x[p]", 7, ["float value", "integer ids"], id="tensor-vector"),
    pytest.param("b = x[...]", 7, ["Ellipsis", "x[:, 3]"], id="ellipsis"),
    pytest.param("b = x[None]", 7, ["np.newaxis", "reshape"], id="newaxis"),
    pytest.param("b = x[0, x[0] > 0]", 10, ["boolean masks", "where("], id="mask"),
    pytest.param("b = x[True]", 7, ["boolean masks"], id="bool"),
    pytest.param("b = x[3:1]", 5, ["`x[3:1]`", "3:1 selects no element", "(5, 16)"], id="empty"),
    pytest.param("b = x[::0]", 5, ["step cannot be zero"], id="step-zero"),
    pytest.param("b = s[0]", 5, ["cannot index a scalar", "`s`"], id="scalar"),
    pytest.param("b = (2 * 3)[0]", 5, ["cannot index a scalar"], id="number"),
    pytest.param("b = x[0][0][0]", 5, ["cannot index a scalar", "`x[0][0]`"], id="too-deep"),
    pytest.param(
        "b = concatenate([x, p], axis=0)",
        5,
        ["ranks differ", "(5, 16), (4,)"],
        id="concatenate-ranks",
    ),
    pytest.param(
        "b = concatenate([x[0], p], axis=1)", 5, ["axis 1 is out of range"], id="concatenate-axis"
    ),
    pytest.param(
        "b = concatenate([x, x[:, 1:]], axis=0)",
        5,
        ["along axis 0", "(5, 16), (5, 15)"],
        id="concatenate-shapes",
    ),
    pytest.param("b = concatenate([s, s])", 5, ["rank 1 or more", "scalars"], id="concat-scalars"),
    pytest.param("b = concatenate(x, p)", 17, ["a list of tensors"], id="concatenate-no-list"),
    pytest.param("b = concatenate([])", 17, ["a list of tensors"], id="concatenate-empty"),
    pytest.param("b = concatenate([p], dim=0)", 22, ["keyword argument 'dim'"], id="keyword"),
    pytest.param("b = concatenate([p], axis=(0, 1))", 27, ["one axis"], id="axis-tuple"),
    pytest.param(
        "b = stack([p, x[0]], axis=0)", 5, ["one shape", "(4,), (16,)"], id="stack-shapes"
    ),
    pytest.param("b = stack([p, p], axis=2)", 5, ["axis 2 is out of range"], id="stack-axis"),
    pytest.param(
        "b = reshape(x, (4, 21))",
        5,
        ["cannot reshape (5, 16) (80 elements) to (4, 21) (84)"],
        id="reshape-size",
    ),
    pytest.param("b = x.reshape(3, -1)", 5, ["(5, 16) (80 elements) to (3, -1)"], id="minus-one"),
    pytest.param("b = reshape(x, (-1, -1))", 5, ["only one size may be -1"], id="two-minus-one"),
    pytest.param("b = reshape(x, (0, 80))", 5, ["positive integers"], id="reshape-zero"),
    pytest.param("b = reshape(x, (2.5, 32))", 17, ["not an integer"], id="reshape-float"),
    pytest.param("b = reshape(x, p)", 16, ["`p` is a tensor"], id="reshape-tensor"),
    pytest.param("b = reshape(x)", 5, ["the new shape"], id="reshape-no-shape"),
    pytest.param("b = flatten(x, 80)", 16, ["flatten() takes no size"], id="flatten-size"),
    pytest.param("b = flatten()", 5, ["flatten(x)"], id="flatten-nothing"),
    pytest.param("b = x.flatten(order=1)", 15, ["no keyword arguments"], id="method-keyword"),
]


@pytest.mark.parametrize("line, col, words", INDEXING)
def test_indexing_errors(line, col, words):
    """Every misuse of indexing, joins and reshapes: located, quoting the shapes."""
    check(SEQ + line + "\nC: Loss = sum(b)\n", 4, col, words)


def test_indexing_functions_cannot_be_redefined():
    for name in ("concatenate", "stack", "reshape", "flatten"):
        check(f"def {name}(u):\n    return u\nx: Input\nC: Loss = x\n", 1, 1, ["built-in"])


def test_python_indexing_errors():
    x = symbp.input("x", 5, 16)
    with pytest.raises(ValueError, match=r"index 5 is out of range for axis 0 of shape \(5, 16\)"):
        x[5]
    with pytest.raises(ValueError, match="cannot reshape"):
        symbp.reshape(x, 3, -1)
    with pytest.raises(ValueError, match="stack needs tensors of one shape"):
        symbp.stack([x, x[0]])
    with pytest.raises(TypeError):
        list(x)  # a node is no sequence


# ------------------------------------------------------------------------------ loops

L = "a: Param = 1\n"  # then a loop at line 2
LOOPS = [
    pytest.param(
        L + "for t in a:\n    b = t\nC: Loss = a\n",
        2,
        1,
        ["range(...) only", "`a`"],
        id="not-range",
    ),
    pytest.param(
        L + "for t in range(n):\n    b = t\nC: Loss = a\n",
        2,
        16,
        ["unknown name 'n'"],
        id="unknown-bound",
    ),
    pytest.param(
        L + "for t in range(a):\n    b = t\nC: Loss = a\n",
        2,
        16,
        ["must be an integer constant", "got `a`"],
        id="value-bound",
    ),
    pytest.param(
        L + "for t in range(2.0):\n    b = t\nC: Loss = a\n",
        2,
        16,
        ["must be an integer", "float 2.0"],
        id="float-bound",
    ),
    pytest.param(
        L + "for t in range(6 / 2):\n    b = t\nC: Loss = a\n",
        2,
        16,
        ["`/` divides into a float"],
        id="divided-bound",
    ),
    pytest.param(
        L + "for t in range(0):\n    b = t\nC: Loss = a\n", 2, 10, ["range(0) is empty"], id="empty"
    ),
    pytest.param(
        L + "for t in range(5, -5):\n    b = t\nC: Loss = a\n",
        2,
        10,
        ["range(5, -5) is empty"],
        id="empty-backwards",
    ),
    pytest.param(
        L + "for t in range(0, 4, 0):\n    b = t\nC: Loss = a\n",
        2,
        22,
        ["step of range() must not be zero"],
        id="zero-step",
    ),
    pytest.param(
        L + "for t in range(10 ** 9):\n    b = t\nC: Loss = a\n",
        2,
        10,
        ["1000000000 iterations", "unrolled at compile time", "20000"],
        id="huge",
    ),
    pytest.param(
        L + "for t in range(1000):\n    for u in range(1000):\n        b = a\nC: Loss = a\n",
        2,
        1,
        ["more than 20000 statements"],
        id="huge-nested",
    ),
    pytest.param(
        L + "for t in range(stop=3):\n    b = t\nC: Loss = a\n",
        2,
        10,
        ["range() takes one to three integers"],
        id="range-keyword",
    ),
    pytest.param(
        L + "for t, u in range(3):\n    b = t\nC: Loss = a\n",
        2,
        5,
        ["one plain name"],
        id="tuple-target",
    ),
    pytest.param(
        L + "for a in range(3):\n    b = a\nC: Loss = a\n",
        2,
        5,
        ["'a' is already bound at line 1", "a loop variable is a new name"],
        id="bound-loop-variable",
    ),
    pytest.param(
        L + "for t in range(3):\n    for t in range(2):\n        b = a\nC: Loss = a\n",
        3,
        9,
        ["'t' is already bound", "(in iteration t = 0)"],
        id="same-variable-nested",
    ),
    pytest.param(
        L + "for t in range(3):\n    b = a\nelse:\n    b = a\nC: Loss = a\n",
        5,
        5,
        ["`else:` on a for loop"],
        id="else",
    ),
    pytest.param(
        L + "for t in range(3):\n    break\nC: Loss = a\n",
        3,
        5,
        ["`break` is not supported", "in iteration t = 0"],
        id="break",
    ),
    pytest.param(
        L + "for t in range(3):\n    continue\nC: Loss = a\n",
        3,
        5,
        ["`continue` is not supported"],
        id="continue",
    ),
    pytest.param(
        L + "while a:\n    b = a\nC: Loss = a\n",
        2,
        1,
        ["a while loop", "for t in range(N)"],
        id="while",
    ),
    pytest.param(
        L + "for t in range(3):\n    C: Loss = a * t\n",
        3,
        5,
        ["a Loss cannot be declared in a loop", "after the loop"],
        id="loss-in-loop",
    ),
    pytest.param(
        L + "for t in range(3):\n    o: Output = a * t\nC: Loss = a\n",
        3,
        5,
        ["an Output", "in a loop"],
        id="output-in-loop",
    ),
    pytest.param(
        L + "for t in range(3):\n    w: Param = 1\nC: Loss = a\n",
        3,
        5,
        ["declaration (Param)", "before the loop"],
        id="param-in-loop",
    ),
    pytest.param(
        L + "for t in range(3):\n    x: Input\nC: Loss = a\n",
        3,
        5,
        ["declaration (Input)"],
        id="input-in-loop",
    ),
    pytest.param(
        L + "for t in range(3):\n    def f(u):\n        return u\nC: Loss = a\n",
        3,
        5,
        ["define functions at the top"],
        id="def-in-loop",
    ),
    pytest.param(
        L + "for t in range(3):\n    a = a * 2\nC: Loss = a\n",
        3,
        5,
        ["'a' is declared at line 1", "in iteration t = 0"],
        id="rebind-param",
    ),
    pytest.param(
        L + "for t in range(3):\n    t = a\nC: Loss = a\n",
        3,
        5,
        ["'t' is a loop variable"],
        id="rebind-loop-variable",
    ),
    pytest.param(
        L + "C: Loss = a * 2\nfor t in range(3):\n    C = C + t\n",
        4,
        5,
        ["'C' is the Loss"],
        id="rebind-loss",
    ),
    pytest.param(
        L + "b = a\nb = 2 * b\nC: Loss = b\n",
        3,
        1,
        ["'b' is already bound at line 2", "each name is bound once"],
        id="rebind-outside-a-loop",
    ),
    pytest.param(
        L + "for t in range(3):\n    h = tanh(h + a)\nC: Loss = a\n",
        3,
        14,
        ["'h' is read before the loop body binds it", "bind it before the loop"],
        id="carried-without-start",
    ),
    pytest.param(
        L + "for t in range(3):\n    z = a * t\nC: Loss = z\n",
        4,
        11,
        ["'z' is local to the body of the loop at line 2", "unbound after it"],
        id="local-after-loop",
    ),
    pytest.param(
        L + "for t in range(2):\n    for u in range(2):\n        z = a * u\n    y = a * u\n"
        "C: Loss = a\n",
        5,
        13,
        ["'u' is the variable of the loop at line 3", "in iteration t = 0"],
        id="inner-loop-variable-after-its-loop",
    ),
    pytest.param(
        L + "for t in range(3):\n    z = a * t\nC: Loss = a * t\n",
        4,
        15,
        ["'t' is the variable of the loop at line 2"],
        id="loop-variable-after-loop",
    ),
    pytest.param(
        "W: Param[2, 3] = glorot\nh = ones(3)\nfor t in range(3):\n    h = W @ h\n"
        "C: Loss = sum(h)\n",
        4,
        9,
        ["(2, 3)", "(2,)", "in iteration t = 1"],
        id="shape-error-names-the-iteration",
    ),
    pytest.param(
        L + "s = a\nfor i in range(2):\n    for j in range(i, 3):\n        s = s + q\n"
        "C: Loss = s\n",
        5,
        17,
        ["unknown name 'q'", "in iteration i = 0, j = 0"],
        id="nested-iteration",
    ),
    pytest.param(
        L + "s = a\nfor t in range(3):\n    s += t / (t - 2)\nC: Loss = s\n",
        4,
        10,
        ["division by zero", "in iteration t = 2"],
        id="augmented-division",
    ),
    pytest.param(
        L + "for t in range(3):\n    s += a\nC: Loss = a\n", 3, 5, ["'s'"], id="augmented-unbound"
    ),
    pytest.param(
        L + "b = a\nb += 1\nC: Loss = b\n",
        3,
        1,
        ["augmented assignment"],
        id="augmented-outside-a-loop",
    ),
    # tensors of a literal shape
    pytest.param(
        L + "C: Loss = sum(zeros(a))\n",
        2,
        21,
        ["a dimension of zeros()", "`a`"],
        id="zeros-of-a-value",
    ),
    pytest.param(
        L + "C: Loss = sum(ones((3, 0)))\n", 2, 24, ["dimensions of 1 or more"], id="ones-empty"
    ),
    pytest.param(
        L + "C: Loss = sum(zeros(3, 4))\n",
        2,
        15,
        ["zeros(shape)", "a tuple"],
        id="zeros-two-arguments",
    ),
    pytest.param(
        L + "C: Loss = sum(full(3, a))\n",
        2,
        23,
        ["fills with a number", "ones(3)"],
        id="full-of-a-value",
    ),
    pytest.param(
        L + "C: Loss = sum(zeros((2 ** 20, 2 ** 20)))\n",
        2,
        15,
        ["more than 2147483647 elements"],
        id="zeros-too-large",
    ),
    pytest.param(
        "a: Param[3] = zeros(3)\nC: Loss = sum(a)\n",
        1,
        15,
        ["bad initializer", "`= zeros`"],
        id="zeros-called-as-initializer",
    ),
    pytest.param(
        L + "C: Loss = a * zeros\n", 2, 15, ["initializer", "zeros(shape)"], id="zeros-as-a-value"
    ),
]


@pytest.mark.parametrize("source, line, col, words", LOOPS)
def test_loop_errors(source, line, col, words):
    check(source, line, col, words)


# ---------------------------------------------------------------------- errors that teach

TEACH = [
    pytest.param(
        L + "C: Loss = relu6(a)\n",
        ["unknown function 'relu6'; did you mean relu, or clip(x, 0, 6)?"],
        id="relu6",
    ),
    pytest.param(L + "C: Loss = Tanh(a)\n", ["did you mean tanh?"], id="case"),
    pytest.param(L + "C: Loss = np.exp(a)\n", ["write exp(a)"], id="numpy-function"),
    pytest.param(L + "C: Loss = torch.sigmoid(2 * a)\n", ["write sigmoid(2 * a)"], id="torch"),
    pytest.param(L + "C: Loss = np.dot(a, a)\n", ["write a @ b"], id="numpy-dot"),
    pytest.param("a: Param[3] = ones\nC: Loss = a.sum()\n", ["write sum(a)"], id="method-sum"),
    pytest.param(
        "a: Param[3, 2] = ones\nC: Loss = sum((a * 2).mean(axis=0))\n",
        ["write mean((a * 2), axis=0)"],
        id="method-with-axis",
    ),
    pytest.param("a: Param[3] = ones\nC: Loss = a.dot(a)\n", ["write a @ a"], id="method-dot"),
    pytest.param(
        "a: Param[3, 3] = ones\nC: Loss = sum(a.transpose())\n",
        ["write a.T"],
        id="method-transpose",
    ),
    pytest.param(L + "C: Loss = log1p(a)\n", ["did you mean log, or log(1 + x)?"], id="log1p"),
    pytest.param(L + "C: Loss = leaky(a)\n", ["unknown function 'leaky'"], id="no-hint"),
    pytest.param(L + "C: Loss = range(3)\n", ["range(...) makes loops only"], id="range"),
    pytest.param(L + "C: Loss = leaky_relu(a)\n", ["relu(x) - 0.01 * relu(-x)"], id="leaky"),
    pytest.param(
        L + "def swish(u):\n    return u * sigmoid(u)\nC: Loss = swissh(a)\n",
        ["did you mean swish?"],
        id="user-function",
    ),
    pytest.param(
        L + "C: Loss = (lambda u: u)(a)\n", ["only functions called by name"], id="lambda-call"
    ),
    pytest.param(
        L + "C: Loss = [a for t in range(3)]\n",
        ["a comprehension", "for t in range(N)"],
        id="comprehension",
    ),
    pytest.param(
        "import numpy as np\n" + L + "C: Loss = a\n", ["import", "are built in"], id="import"
    ),
]


@pytest.mark.parametrize("source, words", TEACH)
def test_errors_that_teach(source, words):
    err = parse_error(source)
    located(err, err.line, err.col, words, source)


def test_hints_need_their_built_ins():
    """A hint that names a built-in shows only once that built-in exists."""
    from symbp.frontend import hints

    assert hints.did_you_mean("relu6", ["relu", "tanh"]) == "; did you mean relu?"
    assert hints.did_you_mean("relu6", ["relu", "clip"]) == "; did you mean relu, or clip(x, 0, 6)?"
    assert hints.did_you_mean("amax", ["sum"]) == ""
    assert hints.did_you_mean("amax", ["max", "sum"]) == "; did you mean max, or max(x, axis=k)?"
    assert hints.did_you_mean("qqq", ["sum"]) == ""
    known = ["where"]
    assert "where(condition, a, b)" in hints.construct_hint(ast.If(), known)
    assert hints.construct_hint(ast.If(), []) == ""


def test_every_hint_is_written_in_the_language():
    """Each suggestion, its placeholder names declared, parses when its built-ins exist."""
    from symbp.frontend import hints
    from symbp.frontend.parser import _Parser

    known = set(_Parser("", "t.sbp", "t").known_functions())
    decls = "x: Param[3] = ones\ny: Param[3] = ones\na: Param[3] = ones\nb: Param[3] = ones\n"
    decls += "z: Param[3] = ones\nlogits: Param[3] = ones\ntarget: Param[3] = ones\n"
    for text, needs in hints.INSTEAD.values():
        if not set(needs) <= known:
            continue
        expr = re.sub(r"\bshape\b", "3", text.split(" (")[0].replace("axis=k", "axis=0"))
        symbp.parse_text(decls + f"C: Loss = sum({expr.replace('c)', '2)')})\n")


# ------------------------------------------------------------- gather: E[ids] (SPEC.md §5)

IDS = "E: Param[5, 2] = zeros\nids: Input[3]\nx: Input[3]\n"

GATHER = [
    pytest.param(
        IDS + "C: Loss = sum(E[ids]) + sum(ids * x)\n",
        4,
        29,
        ["'ids' is an integer Input", "index at line 4", "only be used as an index"],
        id="ids-in-arithmetic",
    ),
    pytest.param(
        IDS + "C: Loss = sum(ids)\nv = E[ids]\n",
        4,
        15,
        ["'ids' is an integer Input", "index at line 5"],
        id="ids-used-before-it-indexes",
    ),
    pytest.param(
        IDS + "p: Output = ids\nC: Loss = sum(E[ids])\n",
        4,
        13,
        ["integer Input", "only be used as an index"],
        id="ids-as-output",
    ),
    pytest.param(
        IDS + "h = x * 2\nC: Loss = sum(E[h])\n",
        5,
        17,
        ["index 'h' is a float value of shape (3,)", "integer ids"],
        id="float-index",
    ),
    pytest.param(
        IDS + "C: Loss = sum(E[x]) + sum(x)\n",
        4,
        27,
        ["'x' is an integer Input"],
        id="input-index-used-as-value",
    ),
    pytest.param(
        "s: Param = 1\n" + IDS + "C: Loss = sum(s[ids])\n",
        5,
        15,
        ["`s` is a scalar", "rank 1 or more"],
        id="scalar-table",
    ),
    pytest.param(
        IDS + "C: Loss = sum((2 * 3)[ids])\n", 4, 16, ["`2 * 3` is a scalar"], id="number-table"
    ),
    pytest.param(
        IDS + "C: Loss = sum(ids[ids])\n", 4, 15, ["'ids' is an integer Input"], id="ids-table"
    ),
    pytest.param(
        IDS + "C: Loss = sum(E[ids] @ x)\n",
        4,
        15,
        ["(3, 2) @ (3,)"],
        id="gathered-shape-quoted",
    ),
]


@pytest.mark.parametrize("source, line, col, words", GATHER)
def test_gather_errors(source, line, col, words):
    check(source, line, col, words)


# ------------------------------------------- maximum, minimum, clip, where, comparisons

X34 = "x: Input[3]\ny: Input[4]\n"
EXTREMA = [
    pytest.param(
        X34 + "C: Loss = sum(maximum(x))\n", 3, 15, ["maximum() takes 2 arguments, got 1"]
    ),
    pytest.param(X34 + "C: Loss = sum(clip(x, 1))\n", 3, 15, ["clip() takes 3 arguments"]),
    pytest.param(
        X34 + "C: Loss = sum(maximum(x, y))\n", 3, 15, ["(3,)", "(4,)", "maximum"], id="shapes"
    ),
    pytest.param(
        X34 + "C: Loss = sum(where(x > 0, y, 0))\n", 3, 15, ["(3,)", "(4,)", "where"], id="where"
    ),
    pytest.param(
        X34 + "C: Loss = sum(x < y)\n", 3, 15, ["(3,)", "(4,)", "`x < y`"], id="compare-shapes"
    ),
    pytest.param(
        X34 + "C: Loss = sum(x < 0 < x)\n",
        3,
        15,
        ["chained comparison", "write one comparison at a time", "(x < 0) * (0 < x)"],
        id="chain",
    ),
    pytest.param(
        X34 + "C: Loss = sum(0 < x <= 1 < 2)\n", 3, 15, ["(0 < x) * (x <= 1) * ..."], id="chain3"
    ),
    pytest.param(X34 + "C: Loss = sum(x in x)\n", 3, 15, ["unsupported comparison", "<="]),
    pytest.param(X34 + "C: Loss = sum(x is not x)\n", 3, 15, ["unsupported comparison"]),
    pytest.param(
        X34 + "C: Loss = max(x, x)\n",
        3,
        11,
        ["max() takes 1 argument, got 2", "axis=k", "maximum(a, b)"],
        id="max-of-two",
    ),
    pytest.param(X34 + "C: Loss = sum(min(x, axis=1))\n", 3, 15, ["min", "axis 1", "out of range"]),
    pytest.param(X34 + "C: Loss = max(x, dim=0)\n", 3, 18, ["no keyword argument 'dim'"]),
    pytest.param(X34 + "C: Loss = max(x, axis=(0, 0))\n", 3, 11, ["repeated axis"]),
    pytest.param(
        X34 + "C: Loss = sum(maximum(x, axis=0))\n", 3, 26, ["no keyword argument 'axis'"]
    ),
    pytest.param(
        "def f(u):\n    return max(u)\n", 2, 12, ["elementwise", "'max' reduces"], id="max-in-def"
    ),
    pytest.param(
        "def where(u):\n    return u\n", 1, 1, ["cannot redefine", "'where'"], id="redefine"
    ),
    pytest.param(X34 + "C: Loss = sum(lt(x, 0))\n", 3, 15, ["unknown function 'lt'"]),
]


@pytest.mark.parametrize("source, line, col, words", EXTREMA)
def test_extrema_and_comparison_errors(source, line, col, words):
    check(source, line, col, words)


def test_comparisons_and_extrema_of_constants_fold():
    """Comparisons, maximum and the rest of numbers are numbers, as arithmetic is."""
    graph = symbp.parse_text("a: Param = 2\nC: Loss = a * ((1 < 2) + maximum(3, 4) + (2 == 3))\n")
    assert symbp.compile(graph).loss({"a": np.array(1.0)}) == 5.0
