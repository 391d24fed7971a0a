"""Arithmetic on the spec's constants: exact where it can be, in floating point beyond.

A spec literal is taken as written (0.1 is the Fraction 1/10), sums and products of such
numbers stay exact, and a result that no float can hold raises ``NotAFloat`` with the reason
the parser reports (log(0), sqrt(-1), exp(1000), 10**400).
"""

from __future__ import annotations

import math
from fractions import Fraction

Number = Fraction | float

# why a constant is not a float, as the parser reports it
TOO_LARGE = "too large for a float"
NOT_REAL = "not a real number"
UNDEFINED = "infinite or undefined"

MAX_FLOAT = Fraction(1.7976931348623157e308)
MAX_EXACT_BITS = 4096  # exact powers beyond this many bits are computed in floating point


class NotAFloat(ArithmeticError):
    """A constant that is no finite real float; ``reason`` says which way it is not."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normal(v: int | float | Fraction) -> Number:
    """The canonical form of a number: ints and small Fractions exact, other floats as they
    are (an integral float becomes its integer: cos(0) is the number 1). A Fraction whose
    numerator or denominator outgrows 64 bits is rounded to the nearest float: 0.1 ** 400 is
    no decimal a printer can write exactly, and its exact digits would mean nothing."""
    if isinstance(v, float):
        if math.isnan(v):
            raise NotAFloat(UNDEFINED)
        if math.isinf(v):
            raise NotAFloat(TOO_LARGE)
        if v.is_integer() and abs(v) < 2**53:
            return Fraction(int(v))
        return v + 0.0  # no -0.0
    v = Fraction(v)
    if abs(v) > MAX_FLOAT:
        raise NotAFloat(TOO_LARGE)
    if v.numerator.bit_length() > 64 or v.denominator.bit_length() > 64:
        return normal(float(v))
    return v


def decimal(v: int | float) -> Number:
    """A spec literal, exact as the user wrote it: 0.1 is 1/10."""
    if isinstance(v, float) and math.isfinite(v):
        return normal(Fraction(repr(v)))
    return normal(v)


def fold(op: str, x: Number, y: Number) -> Number:
    """``x op y`` for op one of add, sub, mul, div, pow."""
    try:
        if op == "add":
            return normal(x + y)
        if op == "sub":
            return normal(x - y)
        if op == "mul":
            return normal(x * y)
        if op == "div":
            if y == 0:
                raise NotAFloat(UNDEFINED)
            return normal(x / y)
        return _power(x, y)
    except OverflowError:
        raise NotAFloat(TOO_LARGE) from None


def _power(x: Number, y: Number) -> Number:
    if x == 0 and y < 0:
        raise NotAFloat(UNDEFINED)
    if y == 0:
        return Fraction(1)
    integral = isinstance(y, Fraction) and y.denominator == 1
    if isinstance(x, Fraction) and integral:
        bits = max(x.numerator.bit_length(), x.denominator.bit_length()) * abs(y.numerator)
        if bits <= MAX_EXACT_BITS:
            return normal(x ** int(y))
    if x < 0 and not integral and float(y) != int(y):
        raise NotAFloat(NOT_REAL)
    if x != 0:  # decide overflow from the magnitude before computing it
        magnitude = float(y) * _log10(abs(x))
        if magnitude > 308.2:
            raise NotAFloat(TOO_LARGE)
        if magnitude < -330:
            return Fraction(0)
    value = float(x) ** float(y)
    if isinstance(value, complex):
        raise NotAFloat(NOT_REAL)
    return normal(value)


def _log10(x: Number) -> float:
    """log10 of a positive number, exact Fractions beyond float range included."""
    if isinstance(x, Fraction):
        return math.log10(x.numerator) - math.log10(x.denominator)
    return math.log10(x)


def apply(evaluate, values: list[Number]) -> Number:
    """A function's ``evaluate`` at numbers (see ``symbp.ir.functions``), its failures made
    reasons."""
    try:
        return normal(evaluate(*values))
    except OverflowError:
        raise NotAFloat(TOO_LARGE) from None
    except ZeroDivisionError:
        raise NotAFloat(UNDEFINED) from None
    except ValueError:  # a math domain error
        raise NotAFloat(NOT_REAL) from None
