"""Errors that teach: for a name or construct the language lacks, the nearest known names
and the construct to write instead.

The hints are one table each, kept here and nowhere else. A hint that needs a built-in
(``clip(x, 0, 6)`` for ``relu6`` needs ``clip``) is shown only when that built-in is among the
known names the reader passes, which come from the language's own tables: a function added
to them later makes its hints appear without a change here.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable

# a function users write -> (what to write instead, the built-ins that needs)
INSTEAD: dict[str, tuple[str, tuple[str, ...]]] = {
    "relu6": ("clip(x, 0, 6)", ("clip",)),
    "hardtanh": ("clip(x, -1, 1)", ("clip",)),
    "leaky_relu": ("relu(x) - 0.01 * relu(-x)", ()),
    "logistic": ("sigmoid(x)", ()),
    "expit": ("sigmoid(x)", ()),
    "elu": ("where(x > 0, x, exp(x) - 1)", ("where",)),
    "silu": ("x * sigmoid(x)", ()),
    "swish": ("x * sigmoid(x)", ()),
    "logsigmoid": ("-softplus(-x)", ()),
    "log_sigmoid": ("-softplus(-x)", ()),
    "log1p": ("log(1 + x)", ()),
    "expm1": ("exp(x) - 1", ()),
    "square": ("x ** 2", ()),
    "pow": ("x ** y", ()),
    "power": ("x ** y", ()),
    "rsqrt": ("1 / sqrt(x)", ()),
    "reciprocal": ("1 / x", ()),
    "tan": ("sin(x) / cos(x)", ()),
    "ln": ("log(x)", ()),
    "dot": ("a @ b", ()),
    "matmul": ("a @ b", ()),
    "mm": ("a @ b", ()),
    "mv": ("a @ b", ()),
    "transpose": ("x.T", ()),
    "norm": ("sqrt(sum(x ** 2))", ()),
    "var": ("mean((x - mean(x)) ** 2)", ()),
    "mse_loss": ("mean((a - y) ** 2)", ()),
    "nll_loss": ("cross_entropy(logits, target)", ()),
    "binary_cross_entropy": ("softplus(z) - y * z (z the logits)", ()),
    "amax": ("max(x, axis=k)", ("max",)),
    "amin": ("min(x, axis=k)", ("min",)),
    "cat": ("concatenate([a, b], axis=k)", ("concatenate",)),
    "concat": ("concatenate([a, b], axis=k)", ("concatenate",)),
    "hstack": ("concatenate([a, b], axis=-1)", ("concatenate",)),
    "view": ("reshape(x, shape)", ("reshape",)),
    "zeros_like": ("zeros(shape)", ("zeros",)),
    "ones_like": ("ones(shape)", ("ones",)),
    "full_like": ("full(shape, c)", ("full",)),
}
# a function whose whole hint is a sentence of its own
SENTENCES = {
    "range": "range(...) makes loops only: `for t in range(N):`",
}

# a method called on a value -> the spelling, {x} the value and {args} the arguments
METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dot": ("{x} @ {args}", ()),
    "matmul": ("{x} @ {args}", ()),
    "transpose": ("{x}.T", ()),
}
# modules whose functions users call by habit: np.exp(x) is exp(x)
MODULES = ("np", "numpy", "torch", "F", "nn", "jnp", "jax", "math", "tf", "scipy")

# a statement or expression the language leaves out -> (what to write, the built-ins needed)
CONSTRUCTS: dict[type, tuple[str, tuple[str, ...]]] = {
    ast.While: ("a loop unrolled at compile time, `for t in range(N):`", ()),
    ast.If: ("where(condition, a, b) for values that depend on a condition", ("where",)),
    ast.IfExp: ("where(condition, a, b)", ("where",)),
    ast.Lambda: ("a def: `def f(u): return ...`", ()),
    ast.ListComp: ("a loop, `for t in range(N):`", ()),
    ast.GeneratorExp: ("a loop, `for t in range(N):`", ()),
    ast.Import: ("nothing: exp, log, sum, ... are built in", ()),
    ast.ImportFrom: ("nothing: exp, log, sum, ... are built in", ()),
}


def nearest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` known names close to ``name`` (a different case counts as close)."""
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=n, cutoff=0.75)
    folded = [k for k in known if k.lower() == name.lower() and k != name]
    return [*folded, *(c for c in close if c not in folded)][:n]


def _usable(entry: tuple[str, tuple[str, ...]] | None, known: set[str]) -> str | None:
    if entry is None or not set(entry[1]) <= known:
        return None
    return entry[0]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """ "; did you mean relu, or clip(x, 0, 6)?" for ``name``, or "" when nothing is close."""
    if name in SENTENCES:
        return f"; {SENTENCES[name]}"
    known = set(known)
    close = nearest(name, known)
    instead = _usable(INSTEAD.get(name), known)
    if instead is not None:
        close.append(instead)
    if not close:
        return ""
    if len(close) == 1:
        return f"; did you mean {close[0]}?"
    return f"; did you mean {', '.join(close[:-1])}, or {close[-1]}?"


def method_hint(call: ast.Call, segment, known: Iterable[str]) -> str:
    """What to write for ``value.method(args)`` or ``np.function(args)``: "write sum(x)", or
    ""; ``segment`` gives an AST node's source text."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return ""
    known = set(known)
    args = ", ".join(segment(a) for a in [*call.args, *call.keywords])
    owner = func.value
    if isinstance(owner, ast.Name) and owner.id in MODULES:
        if func.attr in known:
            return f"; write {func.attr}({args})"
        instead = _usable(INSTEAD.get(func.attr), known)
        return f"; write {instead}" if instead else ""
    x = segment(owner)
    if not isinstance(owner, ast.Name | ast.Attribute | ast.Call | ast.Subscript):
        x = f"({x})"
    spelling = _usable(METHODS.get(func.attr), known)
    if spelling is not None:
        return f"; write {spelling.format(x=x, args=args)}"
    if func.attr in known:
        return f"; write {func.attr}({', '.join([x, args] if args else [x])})"
    return ""


def construct_hint(node: ast.AST, known: Iterable[str]) -> str:
    """ "; write ..." for a construct the language leaves out, or ""."""
    instead = _usable(CONSTRUCTS.get(type(node)), set(known))
    return f"; write {instead}" if instead else ""
