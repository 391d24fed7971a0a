"""The printed tables and the targets, from the rows of a run."""

from __future__ import annotations

FIRST_CALLS = ("symbp C", "symbp NumPy", "torch.compile", "jax.jit", "PyTensor")


def _num(value, fmt: str, width: int) -> str:
    return f"{value:{width}{fmt}}" if value is not None else f"{'-':>{width}}"


def step_table(rows: list[dict]) -> str:
    lines = [
        f"{'workload':<33} {'system':<19} {'us/step':>10} {'IQR %':>6} {'min':>10} "
        f"{'x fastest':>9} {'x floor':>8}  note"
    ]
    previous = None
    for r in rows:
        if previous is not None and r["workload"] != previous:
            lines.append("")
        previous = r["workload"]
        head = f"{r['workload']:<33} {r['system']:<19}"
        if r["status"] != "ok" or "us" not in r:
            lines.append(f"{head} {r['status']}")
            continue
        spread = 100 * (r["q3_us"] - r["q1_us"]) / r["us"]
        note = r.get("note") or ""
        if r.get("steps_per_call", 1) > 1:
            note = f"{r['steps_per_call']} steps per call; {note}".rstrip("; ")
        lines.append(
            f"{head} {r['us']:>10.2f} {spread:>6.1f} {r['min_us']:>10.2f} "
            f"{_num(r['vs_fastest'], '.2f', 9)} {_num(r['vs_floor'], '.2f', 8)}  {note}"
        )
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def first_call_cell(result: dict, key: str, system: str) -> str:
    """ "cold / cached" from the child processes, else this process's first call with *."""
    runs = result["first_calls"].get(key, {}).get(system)
    if runs:
        cells = [
            _seconds(runs[k]["first_s"]) if "first_s" in runs[k] else "failed"
            for k in ("cold", "cached")
        ]
        return " / ".join(cells)
    row = next((r for r in result["rows"] if r["key"] == key and r["system"] == system), None)
    if row is None:
        return "-"
    return f"{_seconds(row['first_call_s'])}*" if "first_call_s" in row else "failed"


def compile_table(result: dict) -> str:
    rows = result["rows"]
    present = [s for s in FIRST_CALLS if any(r["system"] == s for r in rows)]
    keys = list(dict.fromkeys(r["key"] for r in rows))
    names = {r["key"]: r["workload"] for r in rows}
    lines = [f"{'workload':<33}" + "".join(f" {s:>15}" for s in present)]
    for key in keys:
        lines.append(
            f"{names[key]:<33}"
            + "".join(f" {first_call_cell(result, key, s):>15}" for s in present)
        )
    errors = [
        f"{key}, {system}, {kind}: {run['error']}"
        for key, systems in result["first_calls"].items()
        for system, runs in systems.items()
        for kind, run in runs.items()
        if "error" in run
    ]
    return "\n".join(lines + errors)


def _row(rows, key, system):
    return next((r for r in rows if r["key"] == key and r["system"] == system and "us" in r), None)


def targets(result: dict) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met."""
    rows, first_calls = result["rows"], result["first_calls"]
    out = []

    def add(what, value, limit, unit):
        if value is not None:
            out.append(
                {
                    "target": what,
                    "value": value,
                    "limit": limit,
                    "unit": unit,
                    "met": value <= limit,
                }
            )

    for key, limit in (("neuron", 1.5), ("mlp-small", 4.0)):
        r = _row(rows, key, "symbp C")
        add(f"{key}: symbp C train_step", r and r["us"], limit, "us")
    for key in ("neuron", "mlp-small"):
        epoch = _row(rows, key, "symbp C epoch")
        competitors = [
            r for r in rows if r["key"] == key and r["family"] == "competitor" and "us" in r
        ]
        per_call = [r for r in competitors if r.get("steps_per_call", 1) == 1]
        for label, pool in (("best competitor", competitors), ("best per-call", per_call)):
            best = min(pool, key=lambda r: r["us"], default=None)
            if epoch and best:
                add(
                    f"{key}: symbp C epoch per step / {label} ({best['system']})",
                    epoch["us"] / best["us"],
                    0.5,
                    "x",
                )
    for key, limit in (("mnist-f32", 1.10), ("wide-f32", 1.05)):
        r = _row(rows, key, "symbp C")
        add(f"{key}: symbp C / BLAS floor", r and r["vs_floor"], limit, "x")
    runs = first_calls.get("mnist-f32", {})
    c, numpy = runs.get("symbp C", {}), runs.get("symbp NumPy", {})
    add("mnist-f32: symbp C first call, cold cache", c.get("cold", {}).get("first_s"), 1.5, "s")
    add(
        "mnist-f32: symbp C first call, from the cache",
        c.get("cached", {}).get("first_s"),
        0.020,
        "s",
    )
    add("mnist-f32: symbp NumPy first call", numpy.get("cold", {}).get("first_s"), 0.2, "s")
    c = _row(rows, "char-rnn", "symbp C")
    for other in ("torch eager", "torch.compile"):
        r = _row(rows, "char-rnn", other)
        add(f"char-rnn: symbp C train_step / {other}", c and r and c["us"] / r["us"], 1.0, "x")
    runs = first_calls.get("char-rnn", {}).get("symbp C", {})
    add("char-rnn: symbp C first call, cold cache", runs.get("cold", {}).get("first_s"), 2.0, "s")
    lenet_targets(rows, add)
    return out


def lenet_targets(rows: list[dict], add) -> None:
    """LeNet-5's: symbp C's step against the fastest framework, and against the floor."""
    c = _row(rows, "lenet", "symbp C")
    rivals = [_row(rows, "lenet", s) for s in ("torch eager", "torch.compile", "jax.jit")]
    best = min((r for r in rivals if r), key=lambda r: r["us"], default=None)
    if best:
        what = f"lenet: symbp C train_step / fastest framework ({best['system']})"
        add(what, c and c["us"] / best["us"], 1.0, "x")
    add("lenet: symbp C / BLAS floor", c and c["vs_floor"], 1.3, "x")


def target_lines(items: list[dict]) -> str:
    lines = []
    for t in items:
        verdict = "met" if t["met"] else f"missed by {t['value'] / t['limit'] - 1:.0%}"
        lines.append(
            f"{t['target']:<66} {t['value']:>9.3f} {t['unit']:<2} "
            f"(target <= {t['limit']:g}) {verdict}"
        )
    return "\n".join(lines)
