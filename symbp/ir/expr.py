"""Elementwise expressions: small hash-consed trees over argument placeholders.

An elementwise IR node (``Op.EW``) computes one ``Expr`` of its arguments; ``arg(i)`` stands
for the i-th. Building the same expression twice returns the same object, so equality is
identity and hashing is free, which keeps graphs of 1e5 nodes fast (sympy took ~0.5 ms per
node). The constructors apply the identities every build gets, the way PyTensor's
canonicalizer would: numbers fold (exactly, as ``Fraction``, where the spec wrote decimals),
x + 0, x + x = 2 x, x * 1, x * 0, x * x = x ** 2, -(-x), x - x, x / x, x ** 1,
log(exp(x)). Nothing else is rewritten here; the rule sets in ``symbp.rules`` do the rest,
by name.

A constant that is not a finite real (log(0), sqrt(-1), exp(1000)) becomes an ``undefined``
leaf that says why; the parser turns it into an error at the spec location.
"""

from __future__ import annotations

import math
import sys
import threading
import weakref
from _weakref import _remove_dead_weakref
from collections.abc import Callable
from fractions import Fraction

Number = Fraction | float

# one-argument functions, by their spec names (plus step and sign, the derivatives of relu
# and abs)
FUNCTIONS = (
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
    "step",
    "sign",
)
BINARY = ("add", "sub", "mul", "div", "pow")

# reasons a constant is not a float, as the parser reports them
TOO_LARGE = "too large for a float"
NOT_REAL = "not a real number"
UNDEFINED = "infinite or undefined"

MAX_FLOAT = Fraction(1.7976931348623157e308)
MAX_EXACT_BITS = 4096  # exact powers beyond this many bits are computed in floating point


class _Entry(weakref.ref):
    """The table's weak reference to an expression, knowing its key: an expression no
    graph, rule or cache holds any more is forgotten, so a long-lived process compiling
    many networks does not accumulate them."""

    __slots__ = ("key",)


def _forget(entry: _Entry) -> None:
    _remove_dead_weakref(_TABLE, entry.key)  # only if dead, in one step (see ir._forget)


# (op, args, value) -> entry; a plain dict of weak references rather than a
# WeakValueDictionary, whose methods are Python code on the hottest path of a compile
_TABLE: dict[tuple, _Entry] = {}


class Expr:
    """One node of an elementwise expression; build with the functions of this module."""

    __slots__ = ("op", "args", "value", "size", "bad", "args_used", "_uses", "_ops", "__weakref__")

    op: str  # "arg", "num", "undefined", one of BINARY, "neg", or one of FUNCTIONS
    args: tuple[Expr, ...]
    value: object  # arg: its index; num: the number; undefined: the reason
    size: int  # operations and leaves in the tree
    bad: str | None  # the reason of the first undefined leaf, if any
    args_used: frozenset[int]  # the argument indices the tree reads

    def __new__(cls, op: str, args: tuple[Expr, ...] = (), value: object = None) -> Expr:
        key = (op, args, (type(value), value))
        entry = _TABLE.get(key)
        if entry is not None:
            e = entry()
            if e is not None:
                return e
        with _LOCK:  # two threads building the same tree must get one object
            entry = _TABLE.get(key)
            e = entry() if entry is not None else None
            if e is None:
                e = cls._make(op, args, value)
                entry = _Entry(e, _forget)
                entry.key = key
                _TABLE[key] = entry
        return e

    @classmethod
    def _make(cls, op: str, args: tuple[Expr, ...], value: object) -> Expr:
        e = object.__new__(cls)
        e.op, e.args, e.value = op, args, value
        e.size = 1 + sum(a.size for a in args)
        e.bad = value if op == "undefined" else next((a.bad for a in args if a.bad), None)
        if op == "arg":
            e.args_used = frozenset((value,))
        else:
            e.args_used = frozenset().union(*(a.args_used for a in args))
        e._uses = e._ops = None
        return e

    def uses(self, i: int) -> int:
        """How many times ``arg(i)`` occurs in the tree (cached)."""
        if self._uses is None:
            counts: dict[int, int] = {}
            stack = [self]
            while stack:
                t = stack.pop()
                if t.op == "arg":
                    counts[t.value] = counts.get(t.value, 0) + 1
                else:
                    stack.extend(t.args)
            self._uses = counts
        return self._uses.get(i, 0)

    def __reduce__(self):
        return (Expr, (self.op, self.args, self.value))

    # equality is identity (hash-consed); comparing with a plain number asks for that number
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Expr):
            return self is other
        if isinstance(other, int | float | Fraction) and not isinstance(other, bool):
            return self.op == "num" and self.value == other
        return NotImplemented

    __hash__ = object.__hash__

    @property
    def is_number(self) -> bool:
        return self.op in ("num", "undefined")

    def __repr__(self) -> str:
        from ..codegen.printing import SPEC_PRINTER, print_expr

        if self.bad:
            return f"<a constant that is {self.bad}>"
        return print_expr(
            self,
            [(f"x{i}", ATOM) for i in range(max(self.args_used, default=-1) + 1)],
            SPEC_PRINTER,
        )[0]

    # sugar, for the parser and for tests: Expr op Expr-or-number
    def __add__(self, o):
        return add(self, lift(o))  # noqa: E704

    def __radd__(self, o):
        return add(lift(o), self)  # noqa: E704

    def __sub__(self, o):
        return sub(self, lift(o))  # noqa: E704

    def __rsub__(self, o):
        return sub(lift(o), self)  # noqa: E704

    def __mul__(self, o):
        return mul(self, lift(o))  # noqa: E704

    def __rmul__(self, o):
        return mul(lift(o), self)  # noqa: E704

    def __truediv__(self, o):
        return div(self, lift(o))  # noqa: E704

    def __rtruediv__(self, o):
        return div(lift(o), self)  # noqa: E704

    def __pow__(self, o):
        return power(self, lift(o))  # noqa: E704

    def __rpow__(self, o):
        return power(lift(o), self)  # noqa: E704

    def __neg__(self):
        return neg(self)  # noqa: E704

    def __pos__(self):
        return self  # noqa: E704

    def xreplace(self, mapping: dict[Expr, Expr]) -> Expr:
        """The tree with every subtree that is a key of ``mapping`` replaced (outermost
        first), rebuilt through the simplifying constructors."""
        return replace(self, mapping)


_LOCK = threading.RLock()  # guards the table's misses; hits need no lock

CACHE_LIMIT = 100_000  # entries of each memo cache of expressions before it starts afresh


def remember(cache: dict, key, value):
    """``cache[key] = value`` for the compiler's memo caches of expressions (canonical
    forms, derivatives, normal forms): a full cache is emptied first, so a process compiling
    network after network holds a bounded number of expressions. Returns ``value``."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


# precedences, as Python's grammar has them (the C printer parenthesizes the same way)
ATOM = 1000
POW = 60
MUL = 50
ADD = 40  # also a leading minus: -x needs parentheses inside a product or on a right side


# ------------------------------------------------------------------------ leaves


def lift(v: Expr | int | float | Fraction) -> Expr:
    if isinstance(v, Expr):
        return v
    if isinstance(v, bool) or not isinstance(v, int | float | Fraction):
        raise TypeError(f"not a number: {v!r}")
    return decimal(v) if isinstance(v, float) else num(v)  # 0.1 as written: 1/10


def num(v: int | float | Fraction) -> Expr:
    """A number: ints and small Fractions stay exact, floats stay floats (an integral float
    becomes its integer: cos(0) is the same number as 1). A Fraction whose numerator or
    denominator outgrows 64 bits is rounded to the nearest float: 0.1 ** 400 is no
    decimal a printer can write exactly, and its exact digits would mean nothing."""
    if isinstance(v, float):
        if math.isnan(v):
            return undefined(UNDEFINED)
        if math.isinf(v):
            return undefined(TOO_LARGE)
        if v.is_integer() and abs(v) < 2**53:
            return Expr("num", (), Fraction(int(v)))
        return Expr("num", (), v + 0.0)  # no -0.0
    v = Fraction(v)
    if abs(v) > MAX_FLOAT:
        return undefined(TOO_LARGE)
    if v.numerator.bit_length() > 64 or v.denominator.bit_length() > 64:
        return num(float(v))
    return Expr("num", (), v)


def decimal(v: int | float) -> Expr:
    """A spec literal, exact as the user wrote it: 0.1 is 1/10."""
    if isinstance(v, int):
        return num(v)
    if not math.isfinite(v):
        return num(v)
    return num(Fraction(repr(v)))


def undefined(reason: str) -> Expr:
    return Expr("undefined", (), reason)


_ARGS: list[Expr] = []


def arg(i: int) -> Expr:
    """The placeholder of the i-th argument."""
    try:
        return _ARGS[i]
    except IndexError:
        with _LOCK:
            while len(_ARGS) <= i:
                _ARGS.append(Expr("arg", (), len(_ARGS)))
        return _ARGS[i]


class _Args:
    """``X[i]`` is ``arg(i)``."""

    def __getitem__(self, i: int) -> Expr:
        return arg(i)


X = _Args()


ZERO, ONE, TWO = num(0), num(1), num(2)


def _number(e: Expr) -> Number | None:
    return e.value if e.op == "num" else None


# ----------------------------------------------------------------- arithmetic


def _fold(op: str, x: Number, y: Number) -> Expr:
    try:
        if op == "add":
            return num(x + y)
        if op == "sub":
            return num(x - y)
        if op == "mul":
            return num(x * y)
        if op == "div":
            if y == 0:
                return undefined(UNDEFINED)
            return num(x / y)
        return _fold_power(x, y)
    except OverflowError:
        return undefined(TOO_LARGE)


def _fold_power(x: Number, y: Number) -> Expr:
    if x == 0 and y < 0:
        return undefined(UNDEFINED)
    if y == 0:
        return ONE
    exact = isinstance(x, Fraction) and isinstance(y, Fraction) and y.denominator == 1
    if exact:
        bits = max(x.numerator.bit_length(), x.denominator.bit_length()) * abs(y.numerator)
        if bits <= MAX_EXACT_BITS:
            return num(x ** int(y))
    if x < 0 and not (isinstance(y, Fraction) and y.denominator == 1) and float(y) != int(y):
        return undefined(NOT_REAL)
    if x != 0:  # decide overflow from the magnitude before computing it
        magnitude = float(y) * _log10(abs(x))
        if magnitude > 308.2:
            return undefined(TOO_LARGE)
        if magnitude < -330:
            return num(0.0)
    value = float(x) ** float(y)
    if isinstance(value, complex):
        return undefined(NOT_REAL)
    return num(value)


def _log10(x: Number) -> float:
    """log10 of a positive number, exact Fractions beyond float range included."""
    if isinstance(x, Fraction):
        return math.log10(x.numerator) - math.log10(x.denominator)
    return math.log10(x)


def _settled(op: str, a: Expr, b: Expr) -> tuple[Expr | None, Number | None, Number | None]:
    """What every binary constructor does first: two numbers fold, an undefined operand is
    the result; else None, with the operands' numbers (None where not a number)."""
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return _fold(op, x, y), x, y
    if a.bad or b.bad:
        return (a if a.bad else b), x, y
    return None, x, y


def add(a: Expr, b: Expr) -> Expr:
    done, x, y = _settled("add", a, b)
    if done is not None:
        return done
    if x == 0:
        return b
    if y == 0:
        return a
    if b.op == "neg":
        return sub(a, b.args[0])
    if y is not None and y < 0:
        return sub(a, num(-y))
    if a.op == "neg":
        return sub(b, a.args[0])
    if a is b:  # x + x = 2 * x, as x * x = x ** 2 below
        return mul(TWO, a)
    return Expr("add", (a, b))


def sub(a: Expr, b: Expr) -> Expr:
    done, x, y = _settled("sub", a, b)
    if done is not None:
        return done
    if a is b:
        return ZERO
    if y == 0:
        return a
    if x == 0:
        return neg(b)
    if b.op == "neg":
        return add(a, b.args[0])
    if y is not None and y < 0:
        return add(a, num(-y))
    return Expr("sub", (a, b))


def mul(a: Expr, b: Expr) -> Expr:
    done, x, y = _settled("mul", a, b)
    if done is not None:
        return done
    if y is not None:  # numbers go first: 2*x, as one writes it
        a, b, x, y = b, a, y, x
    if x is not None:
        if x == 0:
            return ZERO
        if x == 1:
            return b
        if x == -1:
            return neg(b)
        if x < 0:
            return neg(mul(num(-x), b))
        if b.op == "mul" and _number(b.args[0]) is not None:  # 2*(3*x) = 6*x
            return mul(_fold("mul", x, b.args[0].value), b.args[1])
        if b.op == "neg":
            return neg(mul(a, b.args[0]))
        return Expr("mul", (a, b))
    if a.op == "neg" and b.op == "neg":
        return mul(a.args[0], b.args[0])
    if a.op == "neg":
        return neg(mul(a.args[0], b))
    if b.op == "neg":
        return neg(mul(a, b.args[0]))
    if a is b:  # x * x = x ** 2, in every build: a rewrite after parsing would rebuild
        return power(a, TWO)  # every node above the one it changes
    return Expr("mul", (a, b))


def div(a: Expr, b: Expr) -> Expr:
    done, x, y = _settled("div", a, b)
    if done is not None:
        return done
    if y == 0:
        return undefined(UNDEFINED)
    if y == 1:
        return a
    if y == -1:
        return neg(a)
    if x == 0:
        return ZERO
    if a is b:
        return ONE
    if a.op == "neg":
        return neg(div(a.args[0], b))
    if b.op == "neg":
        return neg(div(a, b.args[0]))
    if y is not None and y < 0:
        return neg(div(a, num(-y)))
    return Expr("div", (a, b))


def power(a: Expr, b: Expr) -> Expr:
    done, x, y = _settled("pow", a, b)
    if done is not None:
        return done
    if y == 0:
        return ONE
    if y == 1:
        return a
    if x == 1:
        return ONE
    if a.op == "pow" and y is not None and _number(a.args[1]) is not None:
        m, k = a.args[1].value, y
        if _is_int(m) and _is_int(k):  # (u**2)**3 = u**6; (u**2)**0.5 is not u
            return power(a.args[0], num(m * k))
    if y == Fraction(1, 2):
        return call("sqrt", a)
    return Expr("pow", (a, b))


def _is_int(v: Number) -> bool:
    return isinstance(v, Fraction) and v.denominator == 1


def neg(a: Expr) -> Expr:
    x = _number(a)
    if x is not None:
        return num(-x)
    if a.bad:
        return a
    if a.op == "neg":
        return a.args[0]
    if a.op == "sub":  # -(u - v) = v - u
        return Expr("sub", (a.args[1], a.args[0]))
    return Expr("neg", (a,))


# ------------------------------------------------------------------ functions


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# the value of each function at a number; a math domain error becomes the reason
EVALUATE: dict[str, Callable[[float], float]] = {
    "exp": math.exp,
    "log": math.log,
    "sqrt": math.sqrt,
    "abs": abs,
    "tanh": math.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda x: max(x, 0.0),
    "softplus": _softplus,
    "sin": math.sin,
    "cos": math.cos,
    "step": lambda x: 1.0 if x > 0 else 0.0,
    "sign": lambda x: (x > 0) - (x < 0),
}


def _evaluate(name: str, x: Number) -> Expr:
    if name == "abs":
        return num(abs(x))
    if name == "sqrt" and isinstance(x, Fraction) and x >= 0:
        p, q = math.isqrt(x.numerator), math.isqrt(x.denominator)
        if p * p == x.numerator and q * q == x.denominator:
            return num(Fraction(p, q))
    if name == "relu":
        return num(max(x, 0))
    if name in ("step", "sign"):
        return num(int(EVALUATE[name](x)))
    if name == "log" and x == 0:
        return undefined(UNDEFINED)
    if name in ("log", "sqrt") and x < 0:
        return undefined(NOT_REAL)
    if name == "exp" and x == 0:
        return ONE
    if name == "log" and isinstance(x, Fraction):
        f = float(x)
        if f >= sys.float_info.min:  # a normal float: log1p near 1 keeps the digits
            return num(math.log1p(float(x - 1)) if 0.5 < f < 2 else math.log(f))
        return num(math.log(x.numerator) - math.log(x.denominator))  # 2**-1075 is no float
    try:
        return num(EVALUATE[name](float(x)))
    except OverflowError:
        return undefined(TOO_LARGE)
    except ValueError:  # a math domain error the checks above did not foresee
        return undefined(NOT_REAL)


def call(name: str, a: Expr) -> Expr:
    """``name(a)`` for one of FUNCTIONS."""
    if name not in FUNCTIONS:
        raise ValueError(f"unknown elementwise function {name!r}")
    x = _number(a)
    if x is not None:
        return _evaluate(name, x)
    if a.bad:
        return a
    if name == "log" and a.op == "exp":  # real arguments: log(exp(u)) = u
        return a.args[0]
    if name in ("step", "sign") and a.op in ("exp", "sigmoid", "softplus"):
        return ONE  # these are positive
    return Expr(name, (a,))


def function(name: str) -> Callable[[Expr], Expr]:
    return lambda a: call(name, lift(a))


# ------------------------------------------------------------- tree utilities


def build(op: str, args: tuple[Expr, ...], value: object = None) -> Expr:
    """The node ``op`` of ``args``, through the simplifying constructors."""
    if op in ("arg", "num", "undefined"):
        return Expr(op, (), value)
    if op == "neg":
        return neg(args[0])
    if op in BINARY:
        return CONSTRUCTORS[op](args[0], args[1])
    return call(op, args[0])


CONSTRUCTORS = {"add": add, "sub": sub, "mul": mul, "div": div, "pow": power}


def replace(e: Expr, mapping: dict[Expr, Expr]) -> Expr:
    """``e`` with every subtree that is a key of ``mapping`` replaced, outermost first."""
    memo: dict[Expr, Expr] = {}

    def walk(t: Expr) -> Expr:
        hit = mapping.get(t)
        if hit is not None:
            return hit
        if not t.args:
            return t
        done = memo.get(t)
        if done is None:
            new = tuple(walk(a) for a in t.args)
            done = t if new == t.args else build(t.op, new, t.value)
            memo[t] = done
        return done

    return walk(e)


def substitute(e: Expr, values: dict[int, Expr]) -> Expr:
    """``e`` with ``arg(i)`` replaced by ``values[i]`` (the others kept)."""
    return replace(e, {arg(i): v for i, v in values.items()})


def walk(e: Expr):
    """Every subtree of ``e``, outermost first (shared ones once)."""
    seen: set[int] = set()
    stack = [e]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        yield t
        stack.extend(reversed(t.args))


def has(e: Expr, *ops: str) -> bool:
    """Whether the tree applies any of ``ops`` (the set of its ops is cached)."""
    if e._ops is None:
        e._ops = frozenset(t.op for t in walk(e))
    return not e._ops.isdisjoint(ops)


# ----------------------------------------------------------------------- sympy


def to_sympy(e: Expr, symbols=None):
    """The sympy form of ``e`` (for tests and closed-form checks; never on a hot path)."""
    import sympy

    if symbols is None:
        symbols = [
            sympy.Symbol(f"x{i}", real=True) for i in range(max(e.args_used, default=-1) + 1)
        ]
    sig = lambda u: 1 / (1 + sympy.exp(-u))  # noqa: E731
    functions = {
        "exp": sympy.exp,
        "log": sympy.log,
        "sqrt": sympy.sqrt,
        "abs": sympy.Abs,
        "tanh": sympy.tanh,
        "sigmoid": sig,
        "relu": lambda u: sympy.Max(u, 0),
        "softplus": lambda u: sympy.log(1 + sympy.exp(u)),
        "sin": sympy.sin,
        "cos": sympy.cos,
        "step": lambda u: sympy.Heaviside(u, 0),
        "sign": sympy.sign,
    }

    def go(t: Expr):
        if t.op == "arg":
            return symbols[t.value]
        if t.op == "num":
            return (
                sympy.Rational(t.value)
                if isinstance(t.value, Fraction)
                else sympy.Float(t.value, 17)
            )
        if t.op == "undefined":
            return sympy.nan
        a = [go(x) for x in t.args]
        if t.op == "neg":
            return -a[0]
        if t.op in BINARY:
            x, y = a
            return {"add": x + y, "sub": x - y, "mul": x * y, "div": x / y, "pow": x**y}[t.op]
        return functions[t.op](a[0])

    return go(e)
