"""The C statements of the convolution ops: PATCHES (im2col) and FOLD (col2im), loop nests
over the windows; the products with the kernel around them are GEMMs (``emit``).

Both walk the patches in their own order (Ho, Wo, C, kh, kw), one example after another, so
that PATCHES writes and FOLD reads them contiguously. A tap in the zero padding reads 0
(PATCHES) or adds nothing (FOLD); without padding there is no test at all.
"""

from __future__ import annotations

from ...ir.node import Node
from .layout import N, index, product, strides


def patches(writer, node: Node) -> list[str]:
    """dst[b, oh, ow, c, i, j] = x[b, c, oh * sh - ph + i * dh, ow * sw - pw + j * dw]."""
    (x,) = node.args
    idx, checks = _taps(node.attr, x.shape, x.batched)
    value = writer.element(x, x, [*idx[: x.batched], "_c", "_y", "_x"])
    if checks:
        value = f"({' && '.join(checks)}) ? {value} : 0"
    at = index(idx, strides([N] * node.batched + list(node.shape)))
    return _nest(node, node.shape, [f"{writer.pointer[node]}[{at}] = {value};"])


def fold(writer, node: Node) -> list[str]:
    """Zeros, then dst[b, c, y, x] += g[b, oh, ow, c, i, j] at every tap inside the image."""
    (g,) = node.args
    window, image = node.attr
    idx, checks = _taps(window, image, node.batched)
    dims = [N] * node.batched + list(image)
    at = index([*idx[: node.batched], "_c", "_y", "_x"], strides(dims))
    add = f"{writer.pointer[node]}[{at}] += {writer.element(g, g, idx)};"
    body = [f"if ({' && '.join(checks)}) {add}" if checks else add]
    zero = f"for (long _i = 0; _i < {product(dims)}; _i++) {writer.pointer[node]}[_i] = 0;"
    return [zero, *_nest(node, g.shape, body)]


def _taps(window, image, batched: bool) -> tuple[list[str], list[str]]:
    """The loop indices over the patches (the batch's ``_b`` first if ``batched``) and the
    tests that the tap (``_y``, ``_x``) lies inside the image (none without padding)."""
    (_, h, w), (ph, pw) = image, window.padding
    checks = [f"_y >= 0 && _y < {h}"] if ph else []
    checks += [f"_x >= 0 && _x < {w}"] if pw else []
    return ["_b"] * batched + ["_oh", "_ow", "_c", "_i", "_j"], checks


def _nest(node: Node, cols, body: list[str]) -> list[str]:
    """The loops over the patches ``cols`` (Ho, Wo, C, kh, kw), with the tap's place in the
    image, ``_y`` and ``_x``, computed where its loop index changes, around ``body``."""
    window = node.attr if hasattr(node.attr, "kernel") else node.attr.window
    (sh, sw), (ph, pw), (dh, dw) = window.stride, window.padding, window.dilation
    ho, wo, c, kh, kw = cols
    heads = [f"for (long _b = 0; _b < {N}; _b++)"] * node.batched + [
        f"for (long _oh = 0; _oh < {ho}; _oh++)",
        f"for (long _ow = 0; _ow < {wo}; _ow++)",
        f"for (long _c = 0; _c < {c}; _c++)",
        f"for (long _i = 0; _i < {kh}; _i++) {{",
    ]
    lines = ["  " * k + head for k, head in enumerate(heads)]
    pad = "  " * len(heads)
    lines += [
        f"{pad}const long _y = {_tap('_oh', sh, ph, '_i', dh)};",
        f"{pad}for (long _j = 0; _j < {kw}; _j++) {{",
        f"{pad}  const long _x = {_tap('_ow', sw, pw, '_j', dw)};",
        *(f"{pad}  {line}" for line in body),
        f"{pad}}}",
        "  " * (len(heads) - 1) + "}",
    ]
    return lines


def _tap(out: str, stride: int, padding: int, k: str, dilation: int) -> str:
    """C text of out * stride - padding + k * dilation, without the factors of 1."""
    text = f"{out}*{stride}" if stride != 1 else out
    text += f" - {padding}" if padding else ""
    return text + (f" + {k}*{dilation}" if dilation != 1 else f" + {k}")
