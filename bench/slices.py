"""What slicing costs: a network that reads its T x H value row by row, x[0], ..., x[T-1],
against the same network reading it whole, side by side in one run.

    python -m bench.slices [--steps 200] [--batch 32]

Both compute the same loss, sum over t of sum(xs[t] ** 2) against sum(xs ** 2), for
xs = tanh(x * W); the gradient of the first adds T adjoints of slices (which the rewrite
``sum_of_unslices`` joins into one write). The table gives the median time of
``loss_and_grads`` per backend and the ratio of the sliced network to the whole one: near 1
when a slice and its adjoint cost O(their size).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import symbp


def spec(t: int, h: int, sliced: bool) -> str:
    head = f"x: Input[{t}, {h}]\nW: Param[{t}, {h}] = glorot\nxs = tanh(x * W)\n"
    if not sliced:
        return head + "C: Loss = sum(xs ** 2)\n"
    return head + "C: Loss = " + " + ".join(f"sum(xs[{i}] ** 2)" for i in range(t)) + "\n"


def median_time(module, params, x, steps: int) -> float:
    module.loss_and_grads(params, x=x)  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        module.loss_and_grads(params, x=x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    print(f"{'T x H':>9}  {'backend':>7}  {'whole ms':>9}  {'sliced ms':>9}  ratio")
    for t, h in ((16, 64), (64, 64), (128, 32)):
        x = np.random.default_rng(0).normal(size=(args.batch, t, h))
        for backend in ("numpy", "c"):
            times = []
            for sliced in (False, True):
                module = symbp.compile(symbp.parse_text(spec(t, h, sliced)), backend=backend)
                params = module.init_params(0)
                times.append(median_time(module, params, x, args.steps))
            whole, cut = (1e3 * s for s in times)
            print(f"{t:>4} x {h:<3}  {backend:>7}  {whole:9.3f}  {cut:9.3f}  {cut / whole:5.2f}")


if __name__ == "__main__":
    main()
