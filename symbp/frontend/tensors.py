"""Integer constants and tensors of a literal shape, for the expression reader.

``range(...)`` bounds and the dimensions of ``zeros(shape)``, ``ones(shape)`` and
``full(shape, c)`` fold to integers: literals, and arithmetic of them and of loop variables
(``range(t + 1)``). Such a tensor is a constant broadcast to its shape, unbatched and shared
by all examples, which the rewrite passes fold like any other constant. The names
``zeros`` and ``ones`` are also initializers; a user ``def`` or value of one of these names
hides the tensor function.
"""

from __future__ import annotations

import ast

from ..ir import ops
from ..ir.node import Node
from .source import SpecSource

CONSTRUCTORS = {"zeros": 0, "ones": 1, "full": None}  # name -> the number it fills with


class LiteralShapes(SpecSource):
    """The part of the expression reader (``symbp.frontend.expressions.Expressions``) that
    reads integer constants and tensors of a literal shape."""

    def expr(self, e: ast.expr):
        """The value of ``e``: the expression reader's."""
        raise NotImplementedError

    def constructor(self, e: ast.Call, name: str) -> Node:
        """``zeros(shape)``, ``ones(shape)``, ``full(shape, c)``: a constant broadcast to a
        shape of integer constants, shared by all examples."""
        usage = "full(shape, c)" if name == "full" else f"{name}(shape)"
        if len(e.args) != (2 if name == "full" else 1):
            raise self.error(e, f"{name}() takes {usage}, with shape an integer or a tuple")
        dims = e.args[0].elts if isinstance(e.args[0], ast.Tuple) else [e.args[0]]
        shape = tuple(self.integer(d, f"a dimension of {name}()") for d in dims)
        for d, n in zip(dims, shape):
            if n < 1:
                raise self.error(d, f"{usage} needs dimensions of 1 or more, got {n}")
        size = 1
        for n in shape:
            size *= n
            if size > ops.MAX_ELEMENTS:
                raise self.error(
                    e, f"{usage} of shape {shape} has more than {ops.MAX_ELEMENTS} elements"
                )
        fill = CONSTRUCTORS[name]
        if fill is None:
            fill = self.constant(self.expr(e.args[1]))
            if not fill.is_number:
                raise self.error(
                    e.args[1],
                    "full(shape, c) fills with a number; for a value v write "
                    f"v * ones{dims_text(shape)}",
                )
        return ops.broadcast(ops.const(fill), shape)

    def integer(self, e: ast.expr, what: str) -> int:
        """The integer constant ``e`` folds to (literals, and arithmetic of them and of loop
        variables); an error naming ``what`` otherwise."""
        part = float_part(e)
        if isinstance(part, ast.Constant):
            raise self.error(part, f"{what} must be an integer, got the float {part.value!r}")
        if part is not None:
            raise self.error(part, f"{what} must be an integer: `/` divides into a float")
        value = self.expr(e)
        number = self.constant(value)
        if not number.is_number:
            raise self.error(
                e,
                f"{what} must be an integer constant (literals, and arithmetic of them and "
                f"of loop variables), got `{self.segment(e)}`",
            )
        v = number.value
        if getattr(v, "denominator", None) != 1 or abs(v) > 2**62:
            raise self.error(e, f"{what} must be an integer, got {float(v):g}")
        return int(v)


def float_part(e: ast.expr) -> ast.AST | None:
    """The first float literal or true division (``/``) in ``e``: what an expression that
    must be an integer may not hold, whatever it folds to."""
    for part in ast.walk(e):
        if isinstance(part, ast.Constant) and type(part.value) is float:
            return part
        if isinstance(part, ast.BinOp) and isinstance(part.op, ast.Div):
            return part
    return None


def dims_text(shape: tuple[int, ...]) -> str:
    """A shape as the spec writes it in a call: (32) is written 32."""
    return f"({shape[0]})" if len(shape) == 1 else f"({shape})"
