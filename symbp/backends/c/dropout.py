"""The C statement of dropout: the helper ``symbp_dropout_`` draws each mask from the key of
the training step with symbp.ir.randomness's generator, alike in the NumPy module."""

from __future__ import annotations

from ...ir import randomness
from ...ir.node import Node
from .layout import dims, product


def dropout(writer, node: Node) -> list[str]:
    """Inverted dropout by the helper ``symbp_dropout_`` (DROPOUT_HELPERS), keyed by the
    function's ``_key``: of the argument's elements, or of its one row (one value) that
    every example (element) shares."""
    x, (p, site, _) = node.args[0], node.attr
    count = product(dims(node))
    source, lines = writer.buffer(x), []
    if source is None:  # a constant
        lines.append(f"const {writer.real} _x = {writer.element(x, x, ['0'] * len(dims(x)))};")
        source, period = "&_x", "1"
    else:
        period = product(dims(x))
    stream = f"symbp_mix_(_key + {randomness.GOLDEN:#x}ULL * {site + 1}u)"
    call = (
        f"symbp_dropout_({writer.pointer[node]}, {source}, {period}, {count}, {stream}, "
        f"{randomness.threshold(p)}ULL, ({writer.real}){randomness.scale(p)!r});"
    )
    return ["{", *("  " + line for line in lines), f"  {call}", "}"] if lines else [call]


# The C helpers of dropout: symbp.ir.randomness's generator over uint64_t, which wraps. Each
# loop is one flat loop: gcc 12 at -O3 -march=native (AVX-512) miscompiles the vectorized
# generator in a nest of two loops (it drops elements the generator keeps).
DROPOUT_HELPERS = f"""/* splitmix64's finalizer (symbp.ir.randomness) */
static inline uint64_t symbp_mix_(uint64_t z) {{
  z = (z ^ (z >> 30)) * {randomness.MIX1:#x}ULL;
  z = (z ^ (z >> 27)) * {randomness.MIX2:#x}ULL;
  return z ^ (z >> 31);
}}

/* Inverted dropout of count elements: dst[i] = x[i % period] * scale where the mask of stream
 * s keeps element i (the top 53 bits of splitmix64's output i + 1 are at least threshold =
 * ceil(p * 2^53)), else 0. period is count, or the size of a row (a value) shared. */
static __attribute__((noinline)) void symbp_dropout_(real *dst, const real *x, long period,
                                                     long count, uint64_t s,
                                                     uint64_t threshold, real scale) {{
  if (period == count) {{
    for (long i = 0; i < count; i++) {{
      const uint64_t bits = symbp_mix_(s + {randomness.GOLDEN:#x}ULL * (uint64_t)(i + 1)) >> 11;
      dst[i] = bits >= threshold ? x[i] * scale : 0;
    }}
  }} else {{
    for (long i = 0; i < count; i++) {{
      const uint64_t bits = symbp_mix_(s + {randomness.GOLDEN:#x}ULL * (uint64_t)(i + 1)) >> 11;
      dst[i] = bits >= threshold ? x[i % period] * scale : 0;
    }}
  }}
}}"""
