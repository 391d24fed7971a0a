"""The command line: ``symbp compile | check | grad`` (SPEC.md §2).

Errors in specs or arguments print ``file:line:col: error: ...`` (or ``symbp: error: ...``)
on stderr and exit 2; a failed gradient check exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .compiler import BACKENDS, DTYPES, generate
from .errors import SpecError
from .parse import parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code is 2 as well
        self.print_usage(sys.stderr)
        self.exit(2, f"symbp: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="symbp", description="Compile neural-network specs to gradient code.")
    p.add_argument("--version", action="version", version=f"symbp {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    c = sub.add_parser("compile", help="write the generated module for a spec")
    c.add_argument("spec", help="the .sbp file")
    c.add_argument("--backend", choices=BACKENDS, default="numpy")
    c.add_argument("--dtype", choices=DTYPES, default="float64")
    c.add_argument("-o", "--output", metavar="PATH",
                   help="where to write the module (default: SPEC's name with .py, here)")

    k = sub.add_parser("check", help="check reverse-mode gradients by finite differences")
    k.add_argument("spec")
    k.add_argument("--backend", choices=BACKENDS + ("all",), default="numpy")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--batch", type=int, default=3, help="examples per check (default 3)")

    g = sub.add_parser("grad", help="print the backward equations in spec notation")
    g.add_argument("spec")
    g.add_argument("--passes", action="store_true",
                   help="also print the passes that ran, rules fired and node counts")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return VERBS[args.verb](args)
    except SpecError as e:
        print(e, file=sys.stderr)
        return 2
    except OSError as e:
        print(f"symbp: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 2


def _compile(args) -> int:
    graph = parse(args.spec)
    source = generate(graph, args.backend, args.dtype)
    out = Path(args.output) if args.output else Path(Path(args.spec).stem + ".py")
    if out.is_dir():
        out = out / (Path(args.spec).stem + ".py")
    out.write_text(source, encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _check(args) -> int:
    from .check import check_grads

    if args.batch < 1:
        print("symbp: error: --batch must be at least 1", file=sys.stderr)
        return 2
    graph = parse(args.spec)
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    ok = True
    for backend in backends:
        report = check_grads(graph, backend=backend, seed=args.seed, batch=args.batch)
        print(report.table())
        ok &= report.ok
    return 0 if ok else 1


def _grad(args) -> int:
    from .explain import backward_equations, pass_report
    from .pipeline import optimize

    program = optimize(parse(args.spec))
    print(backward_equations(program), end="")
    if args.passes:
        print()
        print(pass_report(program), end="")
    return 0


VERBS = {"compile": _compile, "check": _check, "grad": _grad}


if __name__ == "__main__":
    sys.exit(main())
