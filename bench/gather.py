"""Gather ``E[ids]`` and its scatter-add, side by side in one run (issue #13).

    python -m bench.gather [--quick]

Two tables of seconds per call, interleaved as ``python -m bench`` times (bench/timing.py):

1. the NumPy form of the scatter-add, the embedding gradient of a batch: ``np.add.at`` into
   zeros against one ``np.bincount`` over (row, column) bins, which the NumPy module uses;
2. ``loss_and_grads`` and ``train_step`` of an embedding-bag classifier (vocabulary 10,000,
   rows of 64, 32 ids per example, batch 256, 10 classes), NumPy module against C module.
"""

from __future__ import annotations

import sys

import numpy as np

import symbp

from .timing import measure

SPEC = """
# an embedding bag: mean of 32 rows of 64 out of 10,000, then a linear layer
ids: Input[32]
y: Input[10]
E: Param[10000, 64] = normal(0.1)
W: Param[10, 64] = glorot
b: Param[10] = zeros
h = mean(E[ids], axis=0)
C: Loss = cross_entropy(W @ h + b, y)
"""
ROWS, WIDTH, BATCH, PER = 10_000, 64, 256, 32


def add_at(g: np.ndarray, ids: np.ndarray) -> np.ndarray:
    out = np.zeros((ROWS, WIDTH))
    np.add.at(out, ids.reshape(-1), g.reshape(-1, WIDTH))
    return out


def bincount(g: np.ndarray, ids: np.ndarray) -> np.ndarray:
    bins = (ids.reshape(-1, 1) * WIDTH + np.arange(WIDTH)).reshape(-1)
    return np.bincount(bins, weights=g.reshape(-1), minlength=ROWS * WIDTH).reshape(ROWS, WIDTH)


def report(title: str, stats: dict) -> None:
    base = min(s.median for s in stats.values())
    print(f"\n{title}")
    for key, s in stats.items():
        print(f"  {key:<34} {s.median * 1e3:9.3f} ms   {s.median / base:5.2f} x")


def main(argv: list[str] | None = None) -> None:
    quick = "--quick" in (sys.argv[1:] if argv is None else argv)
    rounds, sample_s, warmup_s = (5, 0.05, 0.1) if quick else (21, 0.2, 0.5)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, ROWS, size=(BATCH, PER))
    g = rng.normal(size=(BATCH, PER, WIDTH))
    assert np.array_equal(add_at(g, ids), bincount(g, ids))  # the same sums, in one order
    calls = {"np.add.at": (lambda: add_at(g, ids), 1), "np.bincount": (lambda: bincount(g, ids), 1)}
    report(
        "scatter-add of a batch's rows (256 x 32 rows of 64 into 10,000)",
        measure(calls, rounds, sample_s, warmup_s),
    )
    net = symbp.parse_text(SPEC, "bag.sbp")
    data = {"ids": ids, "y": np.eye(10)[rng.integers(0, 10, BATCH)]}
    calls = {}
    for backend in ("numpy", "c"):
        module = symbp.compile(net, backend=backend, dtype="float32")
        params = module.init_params(0)
        calls[f"{backend} loss_and_grads"] = (
            lambda m=module, p=params: m.loss_and_grads(p, **data),
            1,
        )
        calls[f"{backend} train_step"] = (
            lambda m=module, p=params: m.train_step(p, 1e-9, **data),
            1,
        )
    report("embedding bag, float32, batch 256", measure(calls, rounds, sample_s, warmup_s))


if __name__ == "__main__":
    main()
