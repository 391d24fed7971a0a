"""Expression printers: IR nodes to Python/NumPy text, and to per-example spec notation.

Elementwise nodes hold ``symbp.expr`` trees, printed by ``print_expr`` with the already
printed text of each argument (and its operator precedence, so parentheses appear exactly
where needed: nowhere Python's grammar does not ask for them, and around a right operand of
the same precedence, so that the printed code evaluates in the order the tree says). Other
ops are printed here, with the batch axis made explicit: a batched array has it as axis 0.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import cache

from ..ir.expr import ADD, ATOM, MUL, POW, Expr
from ..ir.node import Node, Op

MATMUL = MUL - 1  # parenthesized inside * and /, not inside + and -

_HOLE = re.compile("\0([0-9]+)\1")  # argument i in NumpyPrinter.form's patterns

_EW, _DOT = Op.EW, Op.DOT
_ATOMS = [(ATOM,) * n for n in range(8)]  # the precedences of n variables

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
    """Prints an elementwise expression; subclasses name the functions and the numbers."""

    functions: dict[str, str] = {}

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

    def power(self, base: Term, exponent: Expr, exp_term: Term) -> Term:
        return f"{paren(base, POW + 1)}**{paren(exp_term, POW)}", POW

    def call(self, name: str, a: Term) -> Term:
        if name not in self.functions:
            raise NotImplementedError(f"no printing for function {name}")
        return f"{self.functions[name]}({a[0]})", ATOM


def print_expr(e: Expr, args: list[Term], printer: ExprPrinter) -> Term:
    """``e`` as code, ``arg(i)`` printed as ``args[i]``."""
    memo: dict[Expr, Term] = {}

    def go(t: Expr) -> Term:
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
            out = printer.call(op, go(t.args[0]))
        memo[t] = out
        return out

    return go(e)


class NumpyExprPrinter(ExprPrinter):
    functions = {
        "exp": "np.exp",
        "log": "np.log",
        "tanh": "np.tanh",
        "sin": "np.sin",
        "cos": "np.cos",
        "sign": "np.sign",
        "abs": "np.abs",
        "sqrt": "np.sqrt",
        "sigmoid": "_sigmoid",
        "softplus": "_softplus",
        "relu": "_relu",
        "step": "_step",
    }


class SpecExprPrinter(ExprPrinter):
    functions = {name: name for name in NumpyExprPrinter.functions}


SPEC_PRINTER = SpecExprPrinter()


def _atom(text: str, prec: int) -> str:
    return text if prec >= ATOM else f"({text})"


def _axis(axes: tuple[int, ...], batched: bool) -> str:
    shifted = tuple(a + 1 for a in axes) if batched else axes
    return str(shifted[0]) if len(shifted) == 1 else str(shifted)


def _shape(shape: tuple[int, ...], batched: bool, n: str) -> str:
    dims = ([n] if batched else []) + [str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


class NumpyPrinter:
    """Prints nodes as NumPy expressions over a mini-batch; ``names`` are the variables.

    ``forms`` may be shared by printers of one program: the printed shape of each
    elementwise expression, which depends only on the precedences of its arguments."""

    def __init__(
        self,
        names: dict[Node, str],
        batch_name: str = "n",
        forms: dict[tuple, tuple[str, int]] | None = None,
    ) -> None:
        self.names = names
        self.n = batch_name
        self.printer = NumpyExprPrinter()
        self.cache: dict[Node, tuple[str, int]] = {}
        self.forms = {} if forms is None else forms

    def __call__(self, node: Node) -> str:
        """The right-hand side computing ``node`` (never just its own variable name)."""
        return self.expression(node)[0]

    def term(self, node: Node) -> tuple[str, int]:
        name = self.names.get(node)
        if name is not None:
            return name, ATOM
        return self.inline(node)

    def inline(self, node: Node) -> tuple[str, int]:
        """``node``, not a variable, printed where it is used."""
        done = self.cache.get(node)
        if done is None:
            done = self.cache[node] = self.expression(node)
        return done

    def form(self, key: tuple, node: Node, precedences: tuple[int, ...]) -> tuple[str, int]:
        """How ``node`` prints for arguments of these precedences, as a ``str.format``
        pattern (``{i}`` for argument i), remembered under ``key``: elementwise expressions
        and products print the same whatever the arguments' texts."""
        holes = [(f"\0{i}\1", p) for i, p in enumerate(precedences)]
        if node.op is Op.DOT:
            text, prec = self.dot(node, holes)
        else:
            text, prec = print_expr(node.attr, holes, self.printer)
        text = text.replace("{", "{{").replace("}", "}}")
        done = self.forms[key] = _HOLE.sub(r"{\1}", text), prec
        return done

    def expression(self, node: Node) -> tuple[str, int]:
        op = node.op
        if op is _EW or op is _DOT:  # printed from a pattern, the hot path
            args = node.args
            texts = list(map(self.names.get, args))  # None for an argument printed inline
            aligning = False
            if op is _EW and node.batched and node.shape:
                ndim = len(node.shape)
                for a in args:
                    if a.batched and len(a.shape) < ndim:
                        aligning = True
                        break
            if None in texts or aligning or len(args) >= len(_ATOMS):
                precedences = []
                ndim = len(node.shape)
                cache = self.cache
                for i, a in enumerate(args):
                    if texts[i] is None:
                        done = cache.get(a)
                        if done is None:
                            done = cache[a] = self.expression(a)
                        texts[i], prec = done
                    else:
                        prec = ATOM
                    if aligning and a.batched and len(a.shape) < ndim:
                        texts[i], prec = self.aligned(node, a), ATOM
                    precedences.append(prec)
                precedences = tuple(precedences)
            else:
                precedences = _ATOMS[len(args)]
            if op is _EW:
                key = (node.attr, precedences)
            else:
                c, (a, b) = node.attr, args
                key = (c.a, c.b, c.out, a.batched, b.batched, node.batched, precedences)
            pattern, prec = self.forms.get(key) or self.form(key, node, precedences)
            return pattern.format(*texts), prec
        if op is Op.CONST:
            key = (node.attr, ())
            pattern, prec = self.forms.get(key) or self.form(key, node, ())
            return pattern.format(), prec
        x = [self.term(a) for a in node.args]
        if op is Op.SUM:
            return f"np.sum({x[0][0]}, axis={_axis(node.attr, node.batched)})", ATOM
        if op is Op.BATCH_SUM:
            return f"np.sum({x[0][0]}, axis=0)", ATOM
        if op is Op.LOGSUMEXP:
            return f"_logsumexp({x[0][0]}, axis={_axis(node.attr, node.batched)})", ATOM
        if op is Op.TRANSPOSE:
            a = node.args[0]
            if not a.batched and node.attr == (1, 0):
                return _atom(*x[0]) + ".T", ATOM
            perm = ((0,) + tuple(p + 1 for p in node.attr)) if a.batched else node.attr
            return f"np.transpose({x[0][0]}, {perm})", ATOM
        if op is Op.RESHAPE:
            return f"np.reshape({x[0][0]}, {_shape(node.shape, node.batched, self.n)})", ATOM
        if op is Op.BROADCAST:
            shape = _shape(node.shape, node.batched, self.n)
            if node.args[0].ndim == 0 and not node.batched:  # a Python number: float64
                return f"np.full({shape}, {x[0][0]}, dtype=DTYPE)", ATOM
            return f"np.broadcast_to({self.aligned(node, node.args[0])}, {shape})", ATOM
        if op is Op.BATCH_SIZE:
            return self.n, ATOM
        raise AssertionError(f"cannot print {op}")

    def aligned(self, node: Node, arg: Node) -> str:
        """``arg`` ready to broadcast against ``node``: a batched argument of lower rank gets
        size-1 axes after its batch axis (NumPy would align it with the wrong axes)."""
        text, prec = self.term(arg)
        extra = len(node.shape) - len(arg.shape)
        if not arg.batched or extra <= 0:
            return text
        return _atom(text, prec) + "[:, " + ", ".join(["None"] * extra) + "]"

    def dot(self, node: Node, x: list[tuple[str, int]]) -> tuple[str, int]:
        sa, sb, so = runtime_subscripts(node)
        form = stacked_matmul_form(sa, sb, so)
        if form is not None:
            stack, swap, ta, tb = form
            (left, ls), (right, rs) = ((x[1], sb), (x[0], sa)) if swap else ((x[0], sa), (x[1], sb))

            def transposed(term: tuple[str, int], letters: str) -> str:
                if len(letters) == 2:
                    return _atom(*term) + ".T"
                return f"np.swapaxes({term[0]}, -1, -2)"

            # a @ b is left-associative at the level of *: the left side needs no parentheses
            # for another product, the right side needs them for anything looser than **
            lt = transposed(left, ls) if ta else (left[0] if left[1] >= MATMUL else _atom(*left))
            rt = transposed(right, rs) if tb else (right[0] if right[1] > MUL else _atom(*right))
            return f"{lt} @ {rt}", MATMUL
        return f'np.einsum("{sa},{sb}->{so}", {x[0][0]}, {x[1][0]})', ATOM


def runtime_subscripts(node: Node) -> tuple[str, str, str]:
    """A DOT node's einsum letters over the arrays as they are at run time: "b", the batch
    axis, leads every batched operand and a batched result."""
    a, b = node.args
    c = node.attr
    return tuple(
        ("b" if n.batched else "") + letters for n, letters in ((a, c.a), (b, c.b), (node, c.out))
    )


@cache  # pure, and a network asks about the same few letter patterns again and again
def matmul_form(sa: str, sb: str, so: str) -> tuple[bool, bool, bool] | None:
    """How ``einsum(sa, sb -> so)`` is a ``@`` of 2-D/1-D operands, if it is one.

    Returns (swap, transpose_left, transpose_right) for ``left @ right``, with as few
    transposes as possible; None when the contraction needs more than a matrix product
    (batched vectors, three-axis operands, outer products).
    """
    if len(sa) > 2 or len(sb) > 2 or len(so) > 2:
        return None
    shared = set(sa) & set(sb)
    k = shared - set(so)
    if len(k) != 1 or shared - k or set(so) != (set(sa) | set(sb)) - k:
        return None
    (k,) = k
    options = []
    for swap in (False, True):
        la, lb = (sb, sa) if swap else (sa, sb)
        if len(la) == 1 and len(lb) == 1:
            continue
        # left is (free, k), or (k, free) transposed; right is (k, free), or (free, k) transposed
        ta = len(la) == 2 and la[0] == k
        tb = len(lb) == 2 and lb[1] == k
        if la.replace(k, "") + lb.replace(k, "") == so:
            options.append((ta + tb, swap, ta, tb))
    if not options:
        return None
    _, swap, ta, tb = min(options)
    return swap, ta, tb


@cache
def stacked_matmul_form(sa: str, sb: str, so: str) -> tuple[int, bool, bool, bool] | None:
    """Like ``matmul_form``, also for stacks of matrices (NumPy's @ broadcasts them): returns
    (number of leading stack axes, swap, transpose_left, transpose_right)."""
    for s in range(len(so), -1, -1):
        stack = so[:s]
        cores = []
        for letters in (sa, sb):
            if letters.startswith(stack) and len(letters) - s >= 1:
                cores.append(letters[s:])
            elif not set(stack) & set(letters) and len(letters) >= 1:
                cores.append(letters)
            else:
                break
        else:
            form = matmul_form(cores[0], cores[1], so[s:])
            if form is not None and (s == 0 or all(len(c) == 2 for c in cores)):
                return (s, *form)
    return None
