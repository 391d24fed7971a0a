"""Compile time against graph size: random DAGs and deep MLPs of 1e3, 1e4 and 1e5 nodes.

    python -m bench.scale                 # both families at 1e3, 1e4, 1e5 nodes
    python -m bench.scale --sizes 1000,10000 --json out.json

Each spec is compiled to the NumPy backend (no C compiler) in a fresh child process, as
``symbp.generate`` does, and the time of each stage is reported: parse, differentiate
(grad, with the forward stabilize pass), the rewrite passes after it (the NumPy backend's
programs skip the fuse pass, which makes the C backend's loops), and code generation. The
size is the number of IR nodes of the forward graph as parsed. Times are CPU times of the
child process (the machine is shared: other processes inflate wall time, which is reported
as well). The scaling exponent between two sizes is log(t2 / t1) / log(n2 / n1) of the
whole pipeline's CPU time: 1 is linear.

Targets (issue #4): the whole pipeline under 5 s for a 1e5-node graph, exponent at most
1.15 from 1e4 to 1e5, and a 10-layer MLP compiled to NumPy in under 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

OPS = (
    "{a} + {b}",
    "{a} * {b}",
    "sigmoid({a})",
    "tanh({a}) * {b}",
    "{a} - 0.5 * {b}",
    "exp(-{a} * {a})",
    "softplus({a}) / (1 + {b} * {b})",
)


def random_dag(equations: int, seed: int = 0, width: int = 4) -> str:
    """Elementwise equations over vectors, each reading the previous value or a recent one,
    and any earlier one: values branch and rejoin all along."""
    rng = random.Random(seed)
    lines = [
        f"x: Input[{width}]",
        f"y: Input[{width}]",
        f"w: Param[{width}] = normal(0.1)",
        f"v: Param[{width}] = normal(0.1)",
    ]
    names = ["x", "w", "v"]
    for i in range(equations):
        a = names[-1] if rng.random() < 0.5 else rng.choice(names[-20:])
        b = rng.choice(names)
        lines.append(f"h{i} = " + rng.choice(OPS).format(a=a, b=b))
        names.append(f"h{i}")
    lines.append(f"C: Loss = sum(({names[-1]} - y) ** 2)")
    return "\n".join(lines) + "\n"


def deep_mlp(layers: int, width: int = 8) -> str:
    """A sigmoid MLP of ``layers`` layers of ``width`` units, quadratic cost."""
    lines = [f"x: Input[{width}]", f"y: Input[{width}]"]
    prev = "x"
    for k in range(layers):
        lines += [
            f"W{k}: Param[{width}, {width}] = glorot",
            f"b{k}: Param[{width}] = zeros",
            f"a{k} = sigmoid(W{k} @ {prev} + b{k})",
        ]
        prev = f"a{k}"
    lines.append(f"C: Loss = 0.5 * sum(({prev} - y) ** 2)")
    return "\n".join(lines) + "\n"


def spec_for(family: str, nodes: int) -> str:
    """A spec of about ``nodes`` forward nodes (the measured count is reported)."""
    if family == "mlp":
        return deep_mlp(max(1, nodes // 5))  # W, b, W @ a, + b, sigmoid: five per layer
    return random_dag(max(1, round(nodes / 1.09)))  # 1.09 nodes per equation, measured


def child(path: str) -> None:
    """In a fresh process: compile the spec at ``path``, print the stage times as JSON."""
    from symbp.backends.numpy import module as numpy_backend
    from symbp.frontend.parser import parse
    from symbp.ir.node import toposort
    from symbp.passes.pipeline import optimize

    clock = time.process_time  # CPU time: the machine is shared, wall time is in "wall"
    marks: dict[str, float] = {}
    wall = time.perf_counter()
    start = clock()
    graph = parse(path)
    marks["parse"] = clock()
    program = optimize(
        graph, trace=lambda where, o, g: marks.__setitem__(where, clock()), fuse=False
    )  # as symbp.generate does for the NumPy backend
    marks["optimize"] = clock()
    numpy_backend.generate(program, "float64")
    end = clock()
    wall = time.perf_counter() - wall
    forward = len(toposort([graph.loss]))
    total = len(toposort(list(program.outputs.values()) + list(program.grads.values())))
    print(
        json.dumps(
            {
                "nodes": forward,
                "program_nodes": total,
                "parse": marks["parse"] - start,
                "grad": marks["grad"] - marks["parse"],
                "passes": marks["optimize"] - marks["grad"],
                "generate": end - marks["optimize"],
                "total": end - start,
                "wall": wall,
            }
        )
    )


def measure(spec: str, workdir: Path, name: str) -> dict:
    path = workdir / f"{name}.sbp"
    path.write_text(spec)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--child", str(path)],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--families", default="dag,mlp")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child)
        return
    import tempfile

    sizes = [int(float(s)) for s in args.sizes.split(",")]
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="symbp-scale-") as tmp:
        for family in args.families.split(","):
            rows = results[family] = []
            for n in sizes:
                row = measure(spec_for(family, n), Path(tmp), f"{family}{n}")
                rows.append(row)
                _print_row(family, row)
        mlp10 = measure(deep_mlp(10), Path(tmp), "mlp10")
    print(
        f"\n10-layer MLP (8 wide) to NumPy: {mlp10.get('total', float('nan')):.3f} s "
        "(target < 0.2 s)"
    )
    for family, rows in results.items():
        ok = [r for r in rows if "total" in r]
        for r1, r2 in zip(ok, ok[1:]):
            k = math.log(r2["total"] / r1["total"]) / math.log(r2["nodes"] / r1["nodes"])
            print(
                f"{family}: exponent {k:.2f} from {r1['nodes']} to {r2['nodes']} nodes "
                "(target <= 1.15 from 1e4 to 1e5)"
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"families": results, "mlp10": mlp10}, indent=1))


def _print_row(family: str, row: dict) -> None:
    if "error" in row:
        print(f"{family:<4} failed: {row['error']}")
        return
    print(
        f"{family:<4} {row['nodes']:>7} nodes ({row['program_nodes']:>7} in the program): "
        f"parse {row['parse']:.2f} s, grad {row['grad']:.2f} s, passes {row['passes']:.2f} s,"
        f" generate {row['generate']:.2f} s, total {row['total']:.2f} s CPU"
        f" ({row['wall']:.2f} s wall)",
        flush=True,
    )


if __name__ == "__main__":
    main()
