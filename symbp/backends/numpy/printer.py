"""IR nodes as NumPy expressions over a mini-batch, and the NumPy spelling of each function.

``SPELLINGS`` extends the usual spelling of the functions of ``symbp.ir.functions`` (a NumPy
ufunc of the same name, or a helper computing the function's formula) with the functions
NumPy spells otherwise. ``PRINT`` holds the printing of every op; a batched array has the
batch as its axis 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...codegen.matmul import stacked_matmul_form
from ...ir.expr import PARAMETERS, definition
from ...ir.functions import FUNCTIONS, Function
from ...ir.indexing import index_text
from ...ir.node import Node, Op
from ...ir.notation import ATOM, MATMUL, MUL, ExprPrinter, Term, print_expr
from ...ir.ops import runtime_subscripts


@dataclass(frozen=True)
class Spelling:
    """How generated code calls a function: ``name``; and when the name is the module's own,
    the ``helper`` defining it (None: a helper computing the function's formula)."""

    name: str
    helper: str | None = ""


def _usual(f: Function) -> Spelling | None:
    if isinstance(getattr(np, f.name, None), np.ufunc):
        return Spelling(f"np.{f.name}")
    return Spelling(f"_{f.name}", None) if f.formula is not None else None


def helpers(used: set[str]) -> list[str]:
    """The definitions of the helpers spelling the functions in ``used``, and of those they
    call, in the table's order."""
    codes: dict[str, str] = {}
    todo = [name for name in used if name in SPELLINGS and SPELLINGS[name].helper != ""]
    while todo:
        name = todo.pop()
        if name not in codes:
            codes[name], calls = _definition(name)
            todo += [c for c in calls if SPELLINGS[c].helper != ""]
    return [codes[name] for name in SPELLINGS if name in codes]


def _definition(name: str) -> tuple[str, set[str]]:
    """The helper spelling function ``name``, and the helpers it calls."""
    code = SPELLINGS[name].helper
    if code is not None:
        return code, set()
    f = FUNCTIONS[name]
    params = PARAMETERS[: f.arity]
    printer = NumpyExprPrinter()
    body = print_expr(definition(name), [(p, ATOM) for p in params], printer)[0]
    if f.arity > 1:  # numbers among the arguments would make NumPy compute in int64 or float64
        body = f"np.asarray({body}, dtype=DTYPE)"
    signature = ", ".join(params)
    doc = f"{name}({signature}) = {f.formula}"
    return f'def _{name}({signature}):\n    """{doc}"""\n    return {body}', printer.used


class NumpyExprPrinter(ExprPrinter):
    """Elementwise expressions in NumPy."""

    def call(self, name: str, args: list[Term]) -> Term:
        self.used.add(name)
        return f"{SPELLINGS[name].name}({', '.join(a[0] for a in args)})", ATOM


# the functions NumPy has under another name, or that need care with large arguments
SPELLINGS: dict[str, Spelling] = {
    **{name: s for name, s in ((n, _usual(f)) for n, f in FUNCTIONS.items()) if s},
    "sigmoid": Spelling(
        "_sigmoid",
        '''def _sigmoid(x):
    """1 / (1 + exp(-x)), as exp(x) / (1 + exp(x)) for x < 0: never exp of a large x."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)''',
    ),
    "softplus": Spelling(
        "_softplus",
        '''def _softplus(x):
    """log(1 + exp(x)), as max(x, 0) + log(1 + exp(-|x|)): never exp of a large x."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))''',
    ),
    "relu": Spelling("_relu", "def _relu(x):\n    return np.maximum(x, 0.0)"),
    "step": Spelling(
        "_step",
        '''def _step(x):
    """relu'(x): 1 where x > 0, else 0."""
    return np.heaviside(x, 0.0)''',
    ),
    # where and the comparisons: masks of 0 and 1 in the module's dtype (not NumPy's bools)
    "where": Spelling(
        "_where",
        '''def _where(c, a, b):
    """a where c is not 0, else b."""
    return np.asarray(np.where(c != 0, a, b), dtype=DTYPE)''',
    ),
    **{
        name: Spelling(
            f"_{name}",
            f'''def _{name}(x, y):
    """x {f.operator} y: 1 where it holds, else 0."""
    return np.asarray(x {f.operator} y, dtype=DTYPE)''',
        )
        for name, f in FUNCTIONS.items()
        if f.operator
    },
}


def _atom(text: str, prec: int) -> str:
    return text if prec >= ATOM else f"({text})"


def _axis(node: Node) -> str:
    """A reduction's axes in the runtime array (after the batch axis, if any)."""
    shifted = tuple(a + node.args[0].batched for a in node.attr)
    return str(shifted[0]) if len(shifted) == 1 else str(shifted)


def shape_text(shape: tuple, batched: bool = False, n: str = "n") -> str:
    """Python text of a runtime shape: ``(n, 3)`` for a batched (3,)."""
    dims = ([n] if batched else []) + [str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


class NumpyPrinter:
    """Prints nodes as NumPy expressions over a mini-batch; ``names`` are the variables.
    A node without a name is printed where it is used."""

    def __init__(self, names: dict[Node, str], batch_name: str = "n") -> None:
        self.names = names
        self.n = batch_name
        self.exprs = NumpyExprPrinter()
        self.helpers: set[str] = set()  # helpers of the runtime the printed code calls
        self.inlined: dict[Node, Term] = {}

    def __call__(self, node: Node) -> str:
        """The right-hand side computing ``node`` (never just its own variable name)."""
        return PRINT[node.op](self, node)[0]

    def term(self, node: Node) -> Term:
        name = self.names.get(node)
        if name is not None:
            return name, ATOM
        done = self.inlined.get(node)
        if done is None:
            done = self.inlined[node] = PRINT[node.op](self, node)
        return done

    def aligned(self, node: Node, arg: Node) -> Term:
        """``arg`` ready to broadcast against ``node``: a batched argument of lower rank gets
        size-1 axes after its batch axis (NumPy would align it with the wrong axes)."""
        text, prec = self.term(arg)
        extra = len(node.shape) - len(arg.shape)
        if not (arg.batched and node.batched) or extra <= 0:
            return text, prec
        return _atom(text, prec) + "[:, " + ", ".join(["None"] * extra) + "]", ATOM

    def elementwise(self, node: Node) -> Term:
        ndim = len(node.shape)
        args = []
        for a in node.args:
            if a.batched and len(a.shape) < ndim:
                args.append(self.aligned(node, a))
            else:  # (the usual case: a variable, printed as its name)
                name = self.names.get(a)
                args.append(self.term(a) if name is None else (name, ATOM))
        return print_expr(node.attr, args, self.exprs)

    def dot(self, node: Node) -> Term:
        (ta, pa), (tb, pb) = self.term(node.args[0]), self.term(node.args[1])
        template, prec = _contraction(*runtime_subscripts(node), pa, pb)
        return template.format(ta, tb), prec

    def logsumexp(self, node: Node) -> Term:
        self.helpers.add("_logsumexp")
        return f"_logsumexp({self.term(node.args[0])[0]}, axis={_axis(node)})", ATOM

    def dropout(self, node: Node) -> Term:
        """The runtime helper drawing the mask from ``key``, the argument of the function."""
        self.helpers.add("_dropout")
        a, (p, site, _) = node.args[0], node.attr
        shape = shape_text(node.shape, node.batched, self.n)
        return f"_dropout({self.aligned(node, a)[0]}, key, {site}, {p!r}, {shape})", ATOM

    def transpose(self, node: Node) -> Term:
        (a,) = node.args
        if not a.batched and node.attr == (1, 0):
            return _atom(*self.term(a)) + ".T", ATOM
        perm = ((0,) + tuple(p + 1 for p in node.attr)) if a.batched else node.attr
        return f"np.transpose({self.term(a)[0]}, {perm})", ATOM

    def broadcast(self, node: Node) -> Term:
        shape = shape_text(node.shape, node.batched, self.n)
        (a,) = node.args
        if a.ndim == 0 and not node.batched:  # a Python number: float64
            return f"np.full({shape}, {self.term(a)[0]}, dtype=DTYPE)", ATOM
        return f"np.broadcast_to({self.aligned(node, a)[0]}, {shape})", ATOM

    # indexing

    def slice(self, node: Node) -> Term:
        (x,) = node.args
        return _atom(*self.term(x)) + f"[{index_text(node.attr, x.shape, x.batched)}]", ATOM

    def unslice(self, node: Node) -> Term:
        self.helpers.add("_unslice")
        index, shape = node.attr
        where = index_text(index, shape, node.batched)
        shape = shape_text(shape, node.batched, self.n)
        return f"_unslice({self.term(node.args[0])[0]}, {shape}, np.s_[{where}])", ATOM

    def concat(self, node: Node) -> Term:
        parts = []
        for p in node.args:
            if p.op is Op.CONST:
                shape = shape_text(p.shape, node.batched, self.n)
                parts.append(f"np.full({shape}, {self.term(p)[0]}, dtype=DTYPE)")
            elif node.batched and not p.batched:  # the same for every example
                shape = shape_text(p.shape, True, self.n)
                parts.append(f"np.broadcast_to({self.term(p)[0]}, {shape})")
            else:
                parts.append(self.term(p)[0])
        join = "np.stack" if node.attr.new else "np.concatenate"
        return f"{join}([{', '.join(parts)}], axis={node.attr.axis + node.batched})", ATOM

    def gather(self, node: Node) -> Term:
        table, ids = node.args
        if not table.batched:  # NumPy's own fancy indexing
            return f"{_atom(*self.term(table))}[{self.term(ids)[0]}]", ATOM
        self.helpers.add("_gather")
        return f"_gather({self.term(table)[0]}, {self.term(ids)[0]})", ATOM

    def scatter_add(self, node: Node) -> Term:
        g, ids = node.args
        self.helpers.add("_scatter_add")
        shape = shape_text(node.shape)
        summed = node.attr.sum_batch or not node.batched
        return f"_scatter_add({self.term(g)[0]}, {self.term(ids)[0]}, {shape}, {summed})", ATOM

    # convolution

    def patches(self, node: Node) -> Term:
        self.helpers.add("_patches")
        return f"_patches({self.term(node.args[0])[0]}, {_window_text(node.attr)})", ATOM

    def fold(self, node: Node) -> Term:
        self.helpers.add("_fold")
        shape = shape_text(node.shape, node.batched, self.n)
        g = self.term(node.args[0])[0]
        return f"_fold({g}, {shape}, {_window_text(node.attr.window)})", ATOM


def _window_text(w) -> str:
    """The arguments kernel, stride, padding, dilation of the window helpers."""
    return f"{w.kernel}, stride={w.stride}, padding={w.padding}, dilation={w.dilation}"


@lru_cache(maxsize=4096)  # a program has a handful of contractions, printed many times
def _contraction(sa: str, sb: str, so: str, pa: int, pb: int) -> Term:
    """How NumPy writes einsum(sa, sb -> so) of two operands of precedences pa and pb: a
    ``str.format`` template ({0} and {1} the operands' texts) and its precedence."""
    form = stacked_matmul_form(sa, sb, so)
    if form is None:
        return f'np.einsum("{sa},{sb}->{so}", {{0}}, {{1}})', ATOM
    _, swap, ta, tb = form
    (left, ls), (right, rs) = (
        ((("{1}", pb), sb), (("{0}", pa), sa))
        if swap
        else (
            (("{0}", pa), sa),
            (("{1}", pb), sb),
        )
    )

    def transposed(term: Term, letters: str) -> str:
        if len(letters) == 2:
            return _atom(*term) + ".T"
        return f"np.swapaxes({term[0]}, -1, -2)"

    # a @ b is left-associative at the level of *: the left side needs no parentheses for
    # another product, the right side needs them for anything looser than **
    lt = transposed(left, ls) if ta else (left[0] if left[1] >= MATMUL else _atom(*left))
    rt = transposed(right, rs) if tb else (right[0] if right[1] > MUL else _atom(*right))
    return f"{lt} @ {rt}", MATMUL


def _leaf(printer: NumpyPrinter, node: Node) -> Term:
    return printer.names[node], ATOM


# op -> how a node prints, given the printer (its arguments print through printer.term)
PRINT: dict[Op, Callable[[NumpyPrinter, Node], Term]] = {
    Op.INPUT: _leaf,
    Op.PARAM: _leaf,
    Op.BATCH_SIZE: _leaf,
    Op.CONST: lambda p, node: print_expr(node.attr, [], p.exprs),
    Op.EW: NumpyPrinter.elementwise,
    Op.DOT: NumpyPrinter.dot,
    Op.SUM: lambda p, node: (f"np.sum({p.term(node.args[0])[0]}, axis={_axis(node)})", ATOM),
    Op.BATCH_SUM: lambda p, node: (f"np.sum({p.term(node.args[0])[0]}, axis=0)", ATOM),
    Op.LOGSUMEXP: NumpyPrinter.logsumexp,
    Op.TRANSPOSE: NumpyPrinter.transpose,
    Op.RESHAPE: lambda p, node: (
        f"np.reshape({p.term(node.args[0])[0]}, {shape_text(node.shape, node.batched, p.n)})",
        ATOM,
    ),
    Op.BROADCAST: NumpyPrinter.broadcast,
    # consts
    Op.FROZEN: _leaf,
    # dropout
    Op.DROPOUT: NumpyPrinter.dropout,
    # indexing
    Op.SLICE: NumpyPrinter.slice,
    Op.UNSLICE: NumpyPrinter.unslice,
    Op.CONCAT: NumpyPrinter.concat,
    # indexing (gather)
    Op.GATHER: NumpyPrinter.gather,
    Op.SCATTER_ADD: NumpyPrinter.scatter_add,
    # max and min
    Op.MAX: lambda p, node: (f"np.max({p.term(node.args[0])[0]}, axis={_axis(node)})", ATOM),
    Op.MIN: lambda p, node: (f"np.min({p.term(node.args[0])[0]}, axis={_axis(node)})", ATOM),
    # convolution
    Op.PATCHES: NumpyPrinter.patches,
    Op.FOLD: NumpyPrinter.fold,
}
