"""symbp's train step beside a hand-written NumPy backprop: ``python -m bench`` restricted to
symbp's systems and the hand-written baseline (no other framework needed).

    python -m bench.train_step [--quick] [--json FILE] [--threads N] [--workloads K,..]

Same method, tables and options as ``python -m bench``; see its docstring.
"""

from __future__ import annotations

import sys

SYSTEMS = "symbp C,symbp C epoch,symbp NumPy,hand NumPy"


def main(argv: list[str] | None = None) -> None:
    from .__main__ import main as bench_main  # imports nothing heavy before the threads are set

    bench_main(["--systems", SYSTEMS, *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
