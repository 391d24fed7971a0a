"""Elementwise expressions as text: one printer with operator precedences, for every language.

``print_expr`` prints an expression tree given the printed text of each argument and a
printer that spells numbers, powers and function calls. Parentheses appear exactly where
Python's grammar (and C's, for these operators) needs them, and around a right operand of
the same precedence, so that the printed code evaluates in the order the tree says. The
printers of the spec notation (here), NumPy and C extend ``ExprPrinter``.
"""

from __future__ import annotations

import re
from fractions import Fraction

from .functions import FUNCTIONS

# precedences, as Python's grammar has them
ATOM = 1000
POW = 60
MUL = 50
MATMUL = MUL - 1  # parenthesized inside * and /, not inside + and -
ADD = 40  # also a leading minus: -x needs parentheses inside a product or on a right side
COMPARE = 30  # x < y; an operand that is itself a comparison is parenthesized (no chains)

Term = tuple[str, int]  # printed text and the precedence of its top operator

BINARY_SYMBOLS = {"add": (" + ", ADD), "sub": (" - ", ADD), "mul": ("*", MUL), "div": ("/", MUL)}


def exact_decimal(value: Fraction) -> str | None:
    """'0.1' for 1/10: the shortest float text when it is exactly the rational."""
    text = repr(float(value))
    return text if Fraction(text) == value else None


def paren(term: Term, need: int) -> str:
    """The text of ``term``, parenthesized unless its precedence is at least ``need``."""
    return term[0] if term[1] >= need else f"({term[0]})"


class ExprPrinter:
    """Spells numbers, powers and calls; this base class writes the spec's own notation.
    ``used`` collects the names of the functions printed."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        # (expression, the arguments' precedences) -> (text with holes, precedence, calls):
        # an expression prints the same whatever its arguments' texts, and a program prints
        # a few expressions many times
        self.templates: dict[tuple, tuple[str, int, frozenset[str]]] = {}

    def number(self, value: Fraction | float) -> Term:
        if isinstance(value, Fraction):
            if value.denominator == 1:
                text = str(value.numerator)
            else:
                text = exact_decimal(value) or f"{value.numerator}/{value.denominator}"
        else:
            text = repr(float(value))
        if "/" in text:
            return text, MUL
        return text, ADD if text.startswith("-") else ATOM

    def power(self, base: Term, exponent, exp_term: Term) -> Term:
        return f"{paren(base, POW + 1)}**{paren(exp_term, POW)}", POW

    def call(self, name: str, args: list[Term]) -> Term:
        self.used.add(name)
        symbol = FUNCTIONS[name].operator
        if symbol is not None:  # a comparison, written as the spec writes it
            left, right = (paren(a, COMPARE + 1) for a in args)
            return f"{left} {symbol} {right}", COMPARE
        return f"{name}({', '.join(a[0] for a in args)})", ATOM


def print_expr(e, args: list[Term], printer: ExprPrinter) -> Term:
    """``e`` (a ``symbp.ir.expr.Expr``) as code, ``arg(i)`` printed as ``args[i]``."""
    texts, precedences = zip(*args) if args else ((), ())
    done = printer.templates.get((e, precedences))
    if done is None:
        done = printer.templates[e, precedences] = _template(e, precedences, printer)
    template, prec, calls = done
    if calls:
        printer.used |= calls
    return template.format(*texts), prec


def _template(e, precedences: tuple[int, ...], printer: ExprPrinter) -> tuple[str, int, frozenset]:
    """``e`` printed with holes ``{i}`` for its arguments, its precedence and the functions
    it calls."""
    outer, printer.used = printer.used, set()
    try:
        text, prec = _print(e, [(f"\0{i}\1", p) for i, p in enumerate(precedences)], printer)
        calls = frozenset(printer.used)
    finally:
        printer.used = outer
    text = text.replace("{", "{{").replace("}", "}}")
    return re.sub("\0([0-9]+)\1", r"{\1}", text), prec, calls


def _print(e, args: list[Term], printer: ExprPrinter) -> Term:
    memo: dict[object, Term] = {}

    def go(t) -> Term:
        done = memo.get(t)
        if done is not None:
            return done
        op = t.op
        if op == "arg":
            out = args[t.value]
        elif op == "num":
            out = printer.number(t.value)
        elif op == "undefined":
            raise ValueError(f"cannot print an undefined constant ({t.value})")
        elif op == "neg":
            out = "-" + paren(go(t.args[0]), MUL), ADD
        elif op == "pow":
            out = printer.power(go(t.args[0]), t.args[1], go(t.args[1]))
        elif op in BINARY_SYMBOLS:
            symbol, prec = BINARY_SYMBOLS[op]
            left, right = go(t.args[0]), go(t.args[1])
            out = paren(left, prec) + symbol + paren(right, prec + 1), prec
        else:
            out = printer.call(op, [go(a) for a in t.args])
        memo[t] = out
        return out

    return go(e)


SPEC_NOTATION = ExprPrinter()
