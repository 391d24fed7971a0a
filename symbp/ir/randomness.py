"""Randomness: the counter-based generator behind ``dropout``, alike in NumPy and in C.

A training step draws from a KEY, a uint64 the caller passes (``loss_and_grads(params, key,
/, **inputs)``); nothing else is random, so the same key gives the same masks on either
backend, in either dtype. The bits of one element are a pure function of four integers:

    stream = mix(key + G * (site + 1))           one per dropout site and key
    bits   = mix(stream + G * (index + 1))       index: the element's flat index in the
                                                 value's runtime array (row-major, batch first)
    keep   = (bits >> 11) >= threshold           threshold = ceil(p * 2**53)

all in arithmetic modulo 2**64. ``mix`` is the finalizer of splitmix64 (Steele, Lea and
Flood, "Fast splittable pseudorandom number generators", 2014, with Stafford's Mix13
constants) and G = 0x9E3779B97F4A7C15 its golden-ratio increment: ``bits`` is output
``index`` of a splitmix64 generator seeded with ``stream``. ``bits >> 11`` is a uniform
integer below 2**53, so keep is "u >= p" for u uniform in [0, 1) on the grid of 2**-53, and
comparing integers makes it exact on both backends. A kept element is scaled by
1 / (1 - p) (inverted dropout), a dropped one is 0.

The SITE of a dropout is its place in the spec: the calls are numbered 0, 1, ... in the
order the parser meets them (an unrolled loop meets its body's calls once per iteration),
so two dropouts of one value draw independent masks. The batch row is part of the index, so
each example of a mini-batch gets its own mask.

Keys of a run: step s of a run seeded with ``seed`` uses ``step_key(seed, s)`` =
mix(seed + G) + s. Consecutive steps have consecutive keys, so ``train_epoch(..., key)``
gives its j-th step the key key + j: a run cut into calls anywhere, or resumed from a
checkpoint that records the steps done, draws exactly what the uninterrupted run draws.

The DROPOUT node's constructor lives here too, with its attribute ``Dropout``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .node import Node, Op

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def mix(z: int) -> int:
    """splitmix64's finalizer of a Python integer, modulo 2**64."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def stream(key: int, site: int) -> int:
    """The stream of dropout ``site`` under ``key``."""
    return mix(key + GOLDEN * (site + 1))


def threshold(p: float) -> int:
    """The smallest 53-bit integer u with u / 2**53 >= p: keep iff (bits >> 11) >= it."""
    return math.ceil(p * 2**53)  # p * 2**53 is exact: a power-of-two scaling of a float


def scale(p: float) -> float:
    """The factor of a kept element, 1 / (1 - p), as a float64."""
    return 1.0 / (1.0 - p)


def step_key(seed: int, step: int) -> int:
    """The key of step ``step`` (0, 1, ...) of a training run seeded with ``seed``."""
    return (mix(seed + GOLDEN) + step) & MASK64


def keep_mask(key: int, site: int, p: float, shape: tuple[int, ...]) -> np.ndarray:
    """The reference mask: True where an element of a runtime array of ``shape`` is kept."""
    index = np.arange(1, math.prod(shape) + 1, dtype=np.uint64)
    z = np.uint64(stream(key, site)) + np.uint64(GOLDEN) * index
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)) >= np.uint64(threshold(p))).reshape(shape)


# ------------------------------------------------------------------------ the DROPOUT node


class Dropout(NamedTuple):
    """A dropout's attr: drop probability ``p`` in [0, 1), the ``site`` whose mask it draws,
    and whether that mask is per example (``batched``)."""

    p: float
    site: int
    batched: bool

    def __str__(self) -> str:
        return f"p={self.p} site={self.site}" + (" per example" if self.batched else "")


def dropout(x: Node, p: float, site: int, batched: bool | None = None) -> Node:
    """Inverted dropout of ``x`` with the mask of ``site``: each element kept with probability
    1 - p and scaled by 1 / (1 - p). Linear in ``x``: its adjoint is the dropout of the adjoint
    with the same mask, which ``batched`` (default: as ``x``) keeps per example even where that
    adjoint is one value for the whole batch. ``p = 0`` is ``x`` itself. A ValueError (the
    parser checks p itself, and locates it) for a bad p or site."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p < 1:
        raise ValueError(f"dropout: p must be a number in [0, 1), got {p!r}")
    if type(site) is not int or site < 0:
        raise ValueError(f"dropout: site must be a non-negative integer, got {site!r}")
    batched = x.batched if batched is None else bool(batched)
    if x.batched and not batched:
        raise ValueError("dropout: a batched value needs a mask per example")
    if p == 0:
        return x
    return Node(Op.DROPOUT, (x,), Dropout(float(p), site, batched), x.shape, batched)
