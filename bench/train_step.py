"""The train step of the C backend beside the NumPy backend and a hand-written NumPy backprop.

    python -m bench.train_step [--quick] [--json FILE]

Workloads: the scalar neuron (batch 1), a 4-16-16-3 MLP (batch 8), a 784-256-128-10 MLP
(batch 64, float32 and float64) and a 1024-1024-1024-10 MLP (batch 256, float32); sigmoid
layers, quadratic cost. Every system runs interleaved in one process after warm-up; the
table gives median microseconds per validated train_step call, the ratio to the fastest,
and for the matrix-heavy workloads the ratio to the BLAS floor: the sum, over the matrix
products one step needs, of numpy's own time for each at its shape and dtype.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

import symbp

NEURON = """x: Input
y: Input
w: Param = 0.5
b: Param = 0.0
z = w * x + b
a = sigmoid(z)
C: Loss = 0.5 * (a - y) ** 2
"""


def mlp_spec(sizes: list[int]) -> str:
    lines = [f"x: Input[{sizes[0]}]", f"y: Input[{sizes[-1]}]"]
    for i, (m, n) in enumerate(zip(sizes[1:], sizes[:-1]), 1):
        lines += [f"W{i}: Param[{m}, {n}] = glorot", f"b{i}: Param[{m}] = zeros"]
    prev = "x"
    for i in range(1, len(sizes)):
        lines += [f"z{i} = W{i} @ {prev} + b{i}", f"a{i} = sigmoid(z{i})"]
        prev = f"a{i}"
    lines.append(f"C: Loss = 0.5 * sum(({prev} - y) ** 2)")
    return "\n".join(lines) + "\n"


def hand_written(sizes: list[int], dtype):
    """The textbook δ recursion in NumPy, written once by hand: the baseline."""
    layers = len(sizes) - 1

    def step(params, lr, x, y):
        a = [x]
        for i in range(1, layers + 1):
            z = a[-1] @ params[f"W{i}"].T + params[f"b{i}"]
            a.append(1 / (1 + np.exp(-z)))
        out = a[-1]
        n = x.shape[0]
        loss = 0.5 * np.sum((out - y) ** 2) / n
        delta = (out - y) * out * (1 - out)
        for i in range(layers, 0, -1):
            dW = delta.T @ a[i - 1] / n
            db = delta.sum(axis=0) / n
            if i > 1:
                delta = (delta @ params[f"W{i}"]) * a[i - 1] * (1 - a[i - 1])
            params[f"W{i}"] -= lr * dW
            params[f"b{i}"] -= lr * db
        return float(loss)

    return step


def blas_floor(sizes: list[int], batch: int, dtype, repeat: int) -> float:
    """Seconds of the matrix products of one step, each timed alone with numpy."""
    rng = np.random.default_rng(0)
    shapes = []
    for i in range(1, len(sizes)):
        n_in, n_out = sizes[i - 1], sizes[i]
        shapes.append(((batch, n_in), (n_in, n_out)))  # forward: A W.T
        shapes.append(((n_out, batch), (batch, n_in)))  # weight gradient: delta.T A
        if i > 1:
            shapes.append(((batch, n_out), (n_out, n_in)))  # delta @ W
    total = 0.0
    for sa, sb in shapes:
        a = rng.standard_normal(sa).astype(dtype)
        b = rng.standard_normal(sb).astype(dtype)
        total += median_time(lambda: a @ b, repeat)
    return total


def median_time(fn, repeat: int, inner: int | None = None) -> float:
    fn()
    if inner is None:  # enough calls per sample to last about 2 ms
        t = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t, 1e-7)
        inner = max(1, int(2e-3 / once))
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
    return statistics.median(samples)


WORKLOADS = [
    # name, spec or sizes, batch, dtype, matrix-heavy
    ("neuron", None, 1, "float64", False),
    ("mlp 4-16-16-3", [4, 16, 16, 3], 8, "float64", False),
    ("mlp 784-256-128-10 f32", [784, 256, 128, 10], 64, "float32", True),
    ("mlp 784-256-128-10 f64", [784, 256, 128, 10], 64, "float64", True),
    ("mlp 1024-1024-1024-10 f32", [1024, 1024, 1024, 10], 256, "float32", True),
]


def run(quick: bool) -> list[dict]:
    repeat = 7 if quick else 21
    rows = []
    for name, sizes, batch, dtype, heavy in WORKLOADS:
        spec = NEURON if sizes is None else mlp_spec(sizes)
        graph = symbp.parse_text(spec, filename=f"{name.split()[0]}.sbp")
        t = time.perf_counter()
        c_mod = symbp.compile(graph, backend="c", dtype=dtype)
        c_compile = time.perf_counter() - t
        np_mod = symbp.compile(graph, backend="numpy", dtype=dtype)
        rng = np.random.default_rng(0)
        inputs = {k: rng.standard_normal((batch, *s)).astype(dtype)
                  for k, s in c_mod.INPUTS.items()}
        systems = {
            "symbp C": (c_mod.train_step, c_mod.init_params(0)),
            "symbp NumPy": (np_mod.train_step, np_mod.init_params(0)),
        }
        if sizes is not None:
            hand = hand_written(sizes, dtype)
            systems["hand NumPy"] = (lambda p, lr, x, y: hand(p, lr, x, y),
                                     np_mod.init_params(0))
        times: dict[str, list[float]] = {k: [] for k in systems}
        for _ in range(3):  # interleaved rounds
            for key, (fn, params) in systems.items():
                if key == "hand NumPy":
                    call = (lambda fn=fn, p=params: fn(p, 1e-3, inputs["x"], inputs["y"]))
                else:
                    call = (lambda fn=fn, p=params: fn(p, 1e-3, **inputs))
                times[key].append(median_time(call, repeat))
        med = {k: statistics.median(v) for k, v in times.items()}
        floor = blas_floor(sizes, batch, dtype, repeat) if heavy else None
        best = min(med.values())
        for key, value in med.items():
            rows.append({
                "workload": name, "system": key, "us": value * 1e6, "vs_fastest": value / best,
                "vs_blas_floor": value / floor if floor else None,
                "compile_s": c_compile if key == "symbp C" else None,
            })
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'workload':<28} {'system':<12} {'us/step':>10} {'x fastest':>10} "
             f"{'x BLAS floor':>12}"]
    for r in rows:
        floor = f"{r['vs_blas_floor']:.2f}" if r["vs_blas_floor"] else "-"
        lines.append(f"{r['workload']:<28} {r['system']:<12} {r['us']:>10.2f} "
                     f"{r['vs_fastest']:>10.2f} {floor:>12}")
    compiles = [f"{r['workload']}: {r['compile_s']:.2f} s" for r in rows if r["compile_s"]]
    lines.append("C compile (first call, cache may be warm): " + "; ".join(compiles))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()
    rows = run(args.quick)
    print(f"{platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
