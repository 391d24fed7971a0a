"""Elementwise expressions: small hash-consed trees over argument placeholders.

An elementwise IR node (``Op.EW``) computes one ``Expr`` of its arguments; ``arg(i)`` (also
written ``X[i]``) stands for the i-th. Building the same expression twice returns the same
object, so equality is identity and hashing is free. The constructors apply the identities
every build gets, as PyTensor's canonicalizer would: numbers fold (exactly where the spec
wrote decimals, see ``symbp.ir.numbers``), x + 0, x + x = 2 x, x * 1, x * 0, x * x = x ** 2,
-(-x), x - x, x / x, x ** 1, log(exp(x)). Everything else is a rewrite rule of
``symbp.passes.rules``.

Functions are the records of ``symbp.ir.functions``, called by name. A constant that is not a
finite real (log(0), sqrt(-1), exp(1000)) becomes an ``undefined`` leaf that says why; the
parser turns it into an error at the spec location.
"""

from __future__ import annotations

import ast
from fractions import Fraction
from functools import cache

from . import numbers
from .functions import FUNCTIONS, OPERATORS
from .interning import Interned
from .notation import ATOM, SPEC_NOTATION, print_expr
from .numbers import NOT_REAL, TOO_LARGE, UNDEFINED, NotAFloat, Number

__all__ = ["NOT_REAL", "TOO_LARGE", "UNDEFINED", "Expr", "X", "arg", "call", "num"]

BINARY = ("add", "sub", "mul", "div", "pow")
AST_OPERATORS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
# the comparisons, the functions of symbp.ir.functions with an infix operator
AST_COMPARISONS = {
    ast.Lt: OPERATORS["<"],
    ast.LtE: OPERATORS["<="],
    ast.Gt: OPERATORS[">"],
    ast.GtE: OPERATORS[">="],
    ast.Eq: OPERATORS["=="],
    ast.NotEq: OPERATORS["!="],
}


class Expr:
    """One node of an elementwise expression; build with the functions of this module."""

    __slots__ = ("op", "args", "value", "size", "bad", "args_used", "_uses", "_ops", "__weakref__")

    op: str  # "arg", "num", "undefined", one of BINARY, "neg", or a function's name
    args: tuple[Expr, ...]
    value: object  # arg: its index; num: the number; undefined: the reason
    size: int  # operations and leaves in the tree
    bad: str | None  # the reason of the first undefined leaf, if any
    args_used: frozenset[int]  # the argument indices the tree reads

    def __new__(cls, op: str, args: tuple[Expr, ...] = (), value: object = None) -> Expr:
        key = (op, args, type(value), value)
        return _TABLE.intern(key, _make)

    def uses(self, i: int) -> int:
        """How many times ``arg(i)`` occurs in the tree."""
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
        if self.bad:
            return f"<a constant that is {self.bad}>"
        names = [(f"x{i}", ATOM) for i in range(max(self.args_used, default=-1) + 1)]
        return print_expr(self, names, SPEC_NOTATION)[0]

    # sugar, for the parser and for tests: Expr op Expr-or-number
    __add__ = lambda self, o: add(self, lift(o))
    __radd__ = lambda self, o: add(lift(o), self)
    __sub__ = lambda self, o: sub(self, lift(o))
    __rsub__ = lambda self, o: sub(lift(o), self)
    __mul__ = lambda self, o: mul(self, lift(o))
    __rmul__ = lambda self, o: mul(lift(o), self)
    __truediv__ = lambda self, o: div(self, lift(o))
    __rtruediv__ = lambda self, o: div(lift(o), self)
    __pow__ = lambda self, o: power(self, lift(o))
    __rpow__ = lambda self, o: power(lift(o), self)
    __neg__ = lambda self: neg(self)
    __pos__ = lambda self: self


_TABLE = Interned()  # (op, args, type of value, value) -> the expression


def _make(key: tuple) -> Expr:
    op, args, _, value = key
    e = object.__new__(Expr)
    e.op, e.args, e.value = op, args, value
    e.size = 1 + sum(a.size for a in args)
    e.bad = value if op == "undefined" else next((a.bad for a in args if a.bad), None)
    if op == "arg":
        e.args_used = frozenset((value,))
    else:
        e.args_used = frozenset().union(*(a.args_used for a in args))
    e._uses = e._ops = None
    return e


# ------------------------------------------------------------------------ leaves


def lift(v: Expr | int | float | Fraction) -> Expr:
    if isinstance(v, Expr):
        return v
    if isinstance(v, bool) or not isinstance(v, int | float | Fraction):
        raise TypeError(f"not a number: {v!r}")
    return decimal(v) if isinstance(v, float) else num(v)  # 0.1 as written: 1/10


def num(v: int | float | Fraction) -> Expr:
    """A number (see ``numbers.normal``), or the undefined leaf saying why it is none."""
    try:
        return Expr("num", (), numbers.normal(v))
    except NotAFloat as e:
        return undefined(e.reason)


def decimal(v: int | float) -> Expr:
    """A spec literal, exact as the user wrote it: 0.1 is 1/10."""
    try:
        return Expr("num", (), numbers.decimal(v))
    except NotAFloat as e:
        return undefined(e.reason)


def undefined(reason: str) -> Expr:
    return Expr("undefined", (), reason)


_ARGS: list[Expr] = []


def arg(i: int) -> Expr:
    """The placeholder of the i-th argument."""
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


def _folded(op: str, x: Number, y: Number) -> Expr:
    try:
        return Expr("num", (), numbers.fold(op, x, y))
    except NotAFloat as e:
        return undefined(e.reason)


def _settled(op: str, a: Expr, b: Expr) -> tuple[Expr | None, Number | None, Number | None]:
    """What every binary constructor does first: two numbers fold, an undefined operand is
    the result; else None, with the operands' numbers (None where not a number)."""
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return _folded(op, x, y), x, y
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
            return mul(_folded("mul", x, b.args[0].value), b.args[1])
        if b.op == "neg":
            return neg(mul(a, b.args[0]))
        return Expr("mul", (a, b))
    if a.op == "neg" and b.op == "neg":
        return mul(a.args[0], b.args[0])
    if a.op == "neg":
        return neg(mul(a.args[0], b))
    if b.op == "neg":
        return neg(mul(a, b.args[0]))
    if a is b:  # x * x = x ** 2
        return power(a, TWO)
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


def call(name: str, *args: Expr) -> Expr:
    """``name(*args)`` for a function of ``symbp.ir.functions``."""
    f = FUNCTIONS.get(name)
    if f is None or len(args) != f.arity:
        raise ValueError(f"unknown elementwise function {name!r} of {len(args)} arguments")
    for a in args:
        if a.bad:
            return a
    if all(a.op == "num" for a in args):
        return _evaluate(name, [a.value for a in args])
    if name == "log" and args[0].op == "exp":  # real arguments: log(exp(u)) = u
        return args[0].args[0]
    if name in ("step", "sign") and FUNCTIONS.get(args[0].op, f).positive:
        return ONE  # of a positive value
    if f.arity > 1:
        known = _decided(name, args)
        if known is not None:
            return known
    return Expr(name, args)


# a comparison of a value with itself, as x - x = 0 (real values: NaN is not one)
_REFLEXIVE = {"lt": ZERO, "gt": ZERO, "ne": ZERO, "le": ONE, "ge": ONE, "eq": ONE}


def _decided(name: str, args: tuple[Expr, ...]) -> Expr | None:
    """What a function of several arguments is without computing it: maximum(u, u) is u,
    u < u is 0, where(1, a, b) is a, where(c, a, a) is a; and a mask m (values 0 and 1)
    compared with 0: m != 0 is m, m == 0 is 1 - m."""
    if name in _REFLEXIVE and args[0] is args[1]:
        return _REFLEXIVE[name]
    if name in ("maximum", "minimum") and args[0] is args[1]:
        return args[0]
    if name == "where":
        c, a, b = args
        if c.op == "num":
            return a if c.value != 0 else b
        if a is b:
            return a
        if a == 1 and b == 0 and is_mask(c):
            return c
    if name in ("eq", "ne"):
        m = args[0] if args[1] == 0 else args[1] if args[0] == 0 else None
        if m is not None and is_mask(m):
            return m if name == "ne" else sub(ONE, m)
    return None


def is_mask(e: Expr) -> bool:
    """Whether ``e`` computes a mask, a function whose values are 0 and 1 (a comparison)."""
    return e.op in FUNCTIONS and FUNCTIONS[e.op].mask


def _evaluate(name: str, values: list[Number]) -> Expr:
    evaluate = FUNCTIONS[name].evaluate
    if evaluate is None:  # fold the formula
        return substitute(definition(name), {i: num(v) for i, v in enumerate(values)})
    try:
        return Expr("num", (), numbers.apply(evaluate, values))
    except NotAFloat as e:
        return undefined(e.reason)


PARAMETERS = ("x", "y", "z")  # the arguments' names in formulas; "f" is the value


@cache
def definition(name: str) -> Expr | None:
    """The formula of function ``name`` as an expression over its arguments, if it has one."""
    f = FUNCTIONS[name]
    return None if f.formula is None else formula(f.formula, PARAMETERS[: f.arity])


def formula(text: str, names: tuple[str, ...]) -> Expr:
    """Spec notation over ``names`` (the i-th stands for ``arg(i)``) as an expression."""
    env = {name: arg(i) for i, name in enumerate(names)}

    def read(t: ast.expr) -> Expr:
        if isinstance(t, ast.Constant) and type(t.value) in (int, float):
            return decimal(t.value)
        if isinstance(t, ast.Name) and t.id in env:
            return env[t.id]
        if isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.USub):
            return neg(read(t.operand))
        if isinstance(t, ast.BinOp) and type(t.op) in AST_OPERATORS:
            return CONSTRUCTORS[AST_OPERATORS[type(t.op)]](read(t.left), read(t.right))
        if isinstance(t, ast.Call) and isinstance(t.func, ast.Name) and not t.keywords:
            return call(t.func.id, *map(read, t.args))
        if isinstance(t, ast.Compare) and len(t.ops) == 1 and type(t.ops[0]) in AST_COMPARISONS:
            return call(AST_COMPARISONS[type(t.ops[0])], read(t.left), read(t.comparators[0]))
        raise ValueError(f"cannot read {ast.unparse(t)!r} in the formula {text!r}")

    return read(ast.parse(text, mode="eval").body)


# ------------------------------------------------------------- tree utilities


def build(op: str, args: tuple[Expr, ...], value: object = None) -> Expr:
    """The node ``op`` of ``args``, through the simplifying constructors."""
    if op in ("arg", "num", "undefined"):
        return Expr(op, (), value)
    if op == "neg":
        return neg(args[0])
    if op in BINARY:
        return CONSTRUCTORS[op](args[0], args[1])
    return call(op, *args)


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
    seen: set[Expr] = set()
    stack = [e]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        yield t
        stack.extend(reversed(t.args))


def has(e: Expr, *ops: str) -> bool:
    """Whether the tree applies any of ``ops``."""
    if e._ops is None:
        e._ops = frozenset(t.op for t in walk(e))
    return not e._ops.isdisjoint(ops)


@cache
def sum_of(k: int) -> Expr:
    """X[0] + X[1] + ... + X[k-1]: the sum of k arguments (adjoints that meet)."""
    total = X[0]
    for i in range(1, k):
        total = total + X[i]
    return total
