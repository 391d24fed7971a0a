"""symbp against the field: every workload, every system, in one process.

    python -m bench [--quick] [--json FILE] [--threads N] [--workloads K,..] [--systems S,..]

Workloads: the sigmoid MLPs and the softmax classifier of bench/workloads.py, the char-RNN of
examples/char_rnn (issue #13: embedding, tanh cell unrolled over 16 characters) and LeNet-5
(bench/lenet.py: two convolutions, max-pooling, three dense layers). Systems: symbp's C backend
(train_step per call; on the small workloads also train_epoch, reported per step), symbp's NumPy
backend, a hand-written NumPy backprop (layered workloads only), PyTorch eager, torch.compile,
jax.jit of the whole step (and a lax.scan epoch on the small workloads) and PyTensor (layered
workloads only); a framework that does not import is skipped with a note (pip install -e
".[bench]"). Every system starts from the same parameters; its first step's loss and update are
checked against a float64 reference before it is timed. Then all of a workload's systems run
interleaved, after warm-up: the table gives the median time per step, the ratio to the fastest,
and for the matrix-heavy workloads the ratio to the BLAS floor (the step's matrix products
alone, timed with numpy at their shapes; LeNet's convolutions as im2col products). First calls
(build + first step) are reported apart, each measured in a fresh process (imports done) with
empty compile caches (SYMBP_CACHE_DIR, inductor's, PyTensor's, JAX's persistent cache), then
again from the caches that run filled; --quick measures only symbp's, on mnist-f32.

Every thread pool (the BLAS libraries, OpenMP, XLA) gets --threads threads, 1 by default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

from . import caches, threads

WORKLOAD_KEYS = (
    "neuron",
    "mlp-small",
    "classifier",
    "mnist-f32",
    "mnist-f64",
    "wide-f32",
    "char-rnn",
    "lenet",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        epilog="Workloads: " + ", ".join(WORKLOAD_KEYS),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer, shorter samples; symbp compile times of mnist-f32 only",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--threads", type=int, default=1, help="threads of every pool (default 1)")
    parser.add_argument("--workloads", help="comma-separated workload keys (default: all)")
    parser.add_argument("--systems", help="comma-separated system names (default: all)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 21, quick 5)")
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failures")
    return parser.parse_args(argv)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return (
        f"{model}, {os.cpu_count()} CPUs, {platform.system()}, Python {platform.python_version()}"
    )


def versions() -> dict[str, str]:
    out = {}
    for name in ("numpy", "symbp", "torch", "jax", "jaxlib", "pytensor", "numba"):
        mod = sys.modules.get(name)
        if mod is not None:
            out[name] = getattr(mod, "__version__", "?")
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    workloads = args.workloads.split(",") if args.workloads else None
    unknown = [k for k in workloads or () if k not in WORKLOAD_KEYS]
    if unknown:
        sys.exit(f"unknown workload {unknown[0]!r}; expected one of {', '.join(WORKLOAD_KEYS)}")
    systems = [s.strip().lower() for s in args.systems.split(",")] if args.systems else None
    env = threads.configure(args.threads)
    caches_root = tempfile.mkdtemp(prefix="symbp-bench-")  # every compile cache starts empty
    os.environ.update(caches.env(caches_root))

    from . import report  # numpy and the frameworks are imported from here on
    from .run import Settings, run
    from .systems import SYSTEMS

    if systems is not None:
        known = {s.name.lower() for s in SYSTEMS}
        if not set(systems) <= known:
            bad = sorted(set(systems) - known)[0]
            sys.exit(f"unknown system {bad!r}; expected some of {', '.join(sorted(known))}")

    def log(text: str, verbose: bool = False) -> None:
        if args.verbose or not verbose:
            print(text, file=sys.stderr, flush=True)

    load = os.getloadavg()
    began = time.perf_counter()
    try:
        result = run(workloads, systems, Settings.of(args.quick, args.rounds), args.quick, log)
    finally:
        shutil.rmtree(caches_root, ignore_errors=True)
    result.update(
        machine=machine(),
        versions=versions(),
        threads=args.threads,
        thread_env=env,
        pools=threads.pools(),
        quick=args.quick,
        seconds=time.perf_counter() - began,
        loadavg_before=load,
        loadavg_after=os.getloadavg(),
        openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
    )
    result["targets"] = report.targets(result)
    print(f"{result['machine']}; " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()))
    print(
        f"threads: {args.threads} per pool ("
        + ", ".join(f"{k}={v}" for k, v in env.items() if k != "BENCH_THREADS")
        + ")"
    )
    print("pools: " + "; ".join(result["pools"]))
    if result["openblas_coretype"]:
        print(f"note: OPENBLAS_CORETYPE={result['openblas_coretype']} is set; it slows numpy")
    print(
        f"load average before {load[0]:.2f}, after {result['loadavg_after'][0]:.2f}; "
        f"{result['seconds']:.0f} s"
    )
    for name, why in result["skipped"].items():
        print(f"skipped {name}: {why}")
    print()
    print(report.step_table(result["rows"]))
    print()
    print(
        "First call (build + first step), seconds, cold / from the caches: a fresh process "
        "each, imports done, compile caches empty, then filled by the cold run. "
        "* in this process (caches as earlier workloads left them)."
    )
    print(report.compile_table(result))
    print()
    print("Targets:")
    print(report.target_lines(result["targets"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=float)


if __name__ == "__main__":
    main()
