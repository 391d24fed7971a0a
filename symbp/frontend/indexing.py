"""The spec language's indexing and reshaping: ``x[-1, 2:10]``, ``concatenate``, ``stack``,
``reshape``, ``flatten`` (and the methods ``x.reshape(...)``, ``x.flatten()``).

A part of the expression reader (``symbp.frontend.expressions`` inherits it). Indices and
sizes are any expression that folds to an integer constant (a literal, ``-1``, ``T - 1``,
a loop's ``t``); a tensor index is a gather, for ``gather``. Every misuse is a located
``SpecError``; shape errors quote the shapes.
"""

from __future__ import annotations

import ast

from ..ir import ops
from ..ir.expr import Expr
from ..ir.indexing import target_shape
from ..ir.node import Node, Op
from .source import SpecSource
from .tensors import float_part

JOINS = ("concatenate", "stack")
RESHAPES = ("reshape", "flatten")
INDEXING_FUNCTIONS = (*JOINS, *RESHAPES)


class IndexingExpressions(SpecSource):
    """Subscripts, joins and reshapes; ``expr``, ``as_node`` and ``axis`` are the
    expression reader's."""

    def subscript(self, e: ast.Subscript) -> Node:
        """``x[key]``: NumPy's basic indexing of the per-example axes."""
        x = self.expr(e.value)
        if not isinstance(x, Node) or x.ndim == 0:
            raise self.error(e, f"cannot index a scalar: `{self.segment(e.value)}` has no axes")
        items = e.slice.elts if isinstance(e.slice, ast.Tuple) else [e.slice]
        for item in items:
            self.refuse_index(item)
        values = [None if isinstance(item, ast.Slice) else self.expr(item) for item in items]
        if any(_is_tensor(v) for v in values):
            return self.tensor_index(e, x)
        key = []
        for item, v in zip(items, values):
            if isinstance(item, ast.Slice):
                parts = (item.lower, item.upper, item.step)
                key.append(slice(*(None if p is None else self.index_integer(p) for p in parts)))
            else:
                key.append(self.index_integer(item, v))
        try:
            return ops.getitem(x, tuple(key))
        except ops.GraphError as err:
            raise self.error(e, f"`{self.segment(e)}`: {err}") from None

    def refuse_index(self, item: ast.expr) -> None:
        """A located error for the indices NumPy has and symbp does not."""
        if isinstance(item, ast.Constant) and item.value is Ellipsis:
            raise self.error(item, "'...' (Ellipsis) is not supported: write the axes out, x[:, 3]")
        if isinstance(item, ast.Constant) and item.value is None:
            raise self.error(
                item, "None (np.newaxis) is not supported in an index: use reshape(x, (...))"
            )
        if isinstance(item, ast.Compare) or (
            isinstance(item, ast.Constant) and isinstance(item.value, bool)
        ):
            raise self.error(
                item,
                "boolean masks are not supported as indices: use where(mask, x, 0) to "
                "select elementwise",
            )

    def tensor_index(self, e: ast.Subscript, x: Node) -> Node:
        """``x[...]`` with a tensor among the indices that is no integer Input by itself (that
        is a gather, ``E[ids]``, read before this): refused, located at the tensor."""
        items = e.slice.elts if isinstance(e.slice, ast.Tuple) else [e.slice]
        tensor = next(i for i in items if not isinstance(i, ast.Slice) and _is_tensor(self.expr(i)))
        raise self.error(
            tensor,
            f"indexing with a tensor in `{self.segment(e)}` is not supported: indices must "
            "be integer constants (a literal, -1, T - 1, a loop's t) or slices",
        )

    def index_integer(self, e: ast.expr, value: Node | Expr | None = None) -> int:
        """The integer constant that ``e`` (already read: ``value``) folds to."""
        v = self.expr(e) if value is None else value
        if isinstance(v, Node):
            if v.op is not Op.CONST:
                raise self.error(e, f"`{self.segment(e)}` is a tensor, not an integer constant")
            v = v.attr
        number = v.value if v.op == "num" else None
        if float_part(e) is not None or number is None or int(number) != number:
            raise self.error(e, f"`{self.segment(e)}` is not an integer: indices are integers")
        if abs(int(number)) > 2**62:
            raise self.error(e, f"`{self.segment(e)}` is out of range")
        return int(number)

    # ----------------------------------------------------------------- calls

    def join(self, e: ast.Call, name: str, axis_kw: list[ast.keyword]) -> Node:
        """``concatenate([a, b, ...], axis=k)`` and ``stack([...], axis=k)``: axis 0 unless
        given (by keyword, or as the second argument)."""
        example = f"{name}([a, b], axis=0)"
        if not e.args or len(e.args) > 2 or (axis_kw and len(e.args) > 1):
            raise self.error(e, f"{name}() takes a list of tensors and an axis: {example}")
        listed = e.args[0]
        if not isinstance(listed, ast.List | ast.Tuple) or not listed.elts:
            raise self.error(listed, f"{name}() takes a list of tensors, e.g. {example}")
        axis_e = axis_kw[0].value if axis_kw else (e.args[1] if len(e.args) > 1 else None)
        axis = 0 if axis_e is None else self.axis(axis_e)
        if isinstance(axis, tuple):
            raise self.error(axis_e, f"{name}() joins along one axis, not {axis}")
        parts = [self.as_node(self.expr(p)) for p in listed.elts]
        return ops.concat(parts, axis, new=name == "stack")

    def reshape_call(self, e: ast.Call, x_e: ast.expr, sizes: list[ast.expr], name: str) -> Node:
        """``reshape(x, (4, 20))``, ``x.reshape(4, 20)``, ``flatten(x)``, ``x.flatten()``."""
        x = self.as_node(self.expr(x_e))
        if name == "flatten":
            if sizes:
                raise self.error(sizes[0], "flatten() takes no size: it flattens every axis")
            return ops.reshape(x, (x.size,))
        if len(sizes) == 1 and isinstance(sizes[0], ast.Tuple | ast.List):
            sizes = sizes[0].elts
        if not sizes:
            raise self.error(e, "reshape() needs the new shape: reshape(x, (4, 20))")
        shape = target_shape(x.shape, [self.index_integer(s) for s in sizes])
        return ops.reshape(x, shape)

    def indexing_call(self, e: ast.Call, name: str, axis_kw: list[ast.keyword]) -> Node:
        """A call of one of ``INDEXING_FUNCTIONS``."""
        if name in JOINS:
            return self.join(e, name, axis_kw)
        if not e.args:
            raise self.error(e, f"{name}() needs the tensor to {name}: {name}(x)")
        return self.reshape_call(e, e.args[0], list(e.args[1:]), name)

    def method_call(self, e: ast.Call) -> Node:
        """``x.reshape(...)`` or ``x.flatten()``, the methods a spec may call."""
        assert isinstance(e.func, ast.Attribute)
        if e.keywords:
            raise self.error(e.keywords[0], f"{e.func.attr}() takes no keyword arguments")
        return self.reshape_call(e, e.func.value, list(e.args), e.func.attr)


def _is_tensor(v: Node | Expr | None) -> bool:
    return isinstance(v, Node) and v.op is not Op.CONST
