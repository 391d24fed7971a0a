"""The spec language's convolution and pooling: ``conv2d(x, K, stride=1, padding=0,
dilation=1, groups=1)``, ``max_pool2d(x, k, stride=k)`` and ``avg_pool2d(x, k, stride=k)``.

A part of the expression reader (``symbp.frontend.expressions`` inherits it). Sizes are
integer constants or pairs of them (along H, along W), by keyword as in PyTorch; shape
errors quote the shapes and the output size rule (``symbp.ir.convolution``).
"""

from __future__ import annotations

import ast

from ..ir import convolution
from ..ir.node import Node
from .source import SpecSource

# name -> (the tensors it takes, its size arguments by keyword and their defaults)
WINDOW_FUNCTIONS: dict[str, tuple[tuple[str, ...], dict[str, int | None]]] = {
    "conv2d": (("x", "K"), {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}),
    "max_pool2d": (("x",), {"k": None, "stride": None}),
    "avg_pool2d": (("x",), {"k": None, "stride": None}),
}
USAGE = {
    "conv2d": "conv2d(x, K, stride=1, padding=0), x (C, H, W) and K (O, C, kh, kw)",
    "max_pool2d": "max_pool2d(x, 2) or max_pool2d(x, 3, stride=2)",
    "avg_pool2d": "avg_pool2d(x, 2) or avg_pool2d(x, 3, stride=2)",
}


class WindowCalls(SpecSource):
    """Calls of ``WINDOW_FUNCTIONS``; ``expr``, ``as_node`` and ``index_integer`` are the
    expression reader's."""

    def window_call(self, e: ast.Call, name: str) -> Node:
        tensors, sizes = WINDOW_FUNCTIONS[name]
        positional = [*tensors, *(["k"] if "k" in sizes else [])]
        if len(e.args) > len(positional):
            raise self.error(
                e.args[len(positional)],
                f"{name}() takes {', '.join(positional)} as arguments and the rest by "
                f"keyword: {USAGE[name]}",
            )
        given: dict[str, ast.expr] = dict(zip(positional, e.args))
        for k in e.keywords:
            if k.arg not in sizes or k.arg in given:
                known = ", ".join(f"{s}=" for s in sizes if s not in positional)
                why = "repeated" if k.arg in given else "unknown"
                raise self.error(
                    k, f"{name}(): {why} keyword '{k.arg}'; it takes {known}: {USAGE[name]}"
                )
            given[k.arg] = k.value
        missing = [p for p in positional if p not in given]
        if missing:
            raise self.error(e, f"{name}() needs {', '.join(missing)}: {USAGE[name]}")
        args = [self.as_node(self.expr(given[t])) for t in tensors]
        values = {s: self.size(given[s], name, s) for s in sizes if s in given}
        if name == "conv2d":
            groups = values.pop("groups", 1)
            if isinstance(groups, tuple):
                raise self.error(given["groups"], "conv2d(): groups is one integer")
            w = convolution.window(1, **values)  # the kernel size is the kernel's
            return convolution.conv2d(*args, w, groups)
        pool = convolution.max_pool2d if name == "max_pool2d" else convolution.avg_pool2d
        return pool(args[0], values["k"], values.get("stride"))

    def size(self, e: ast.expr, name: str, what: str) -> int | tuple[int, int]:
        """An integer constant, or a pair of them, for the size argument ``what``."""
        if isinstance(e, ast.Constant) and isinstance(e.value, str):
            hint = (
                "; for 'same' with an odd kernel size k write padding=k // 2"
                if what == "padding"
                else ""
            )
            raise self.error(e, f"{name}(): {what} must be an integer or a pair of them{hint}")
        if isinstance(e, ast.Tuple | ast.List):
            if len(e.elts) != 2:
                raise self.error(e, f"{name}(): {what} is an integer or a pair (along H, W)")
            return self.index_integer(e.elts[0]), self.index_integer(e.elts[1])
        return self.index_integer(e)
