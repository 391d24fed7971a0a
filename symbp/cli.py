"""The command line: ``symbp compile | check | grad | graph | train | cache`` (SPEC.md §2).

Whatever a user gets wrong -- a bad spec, a missing or unwritable file, a bad option, a
missing C compiler -- prints ``file:line:col: error: ...`` (or ``symbp: error: ...``) on
stderr and exits 2, never with a Python traceback; a failed gradient check exits 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import __version__
from .backends.c.toolchain import BuildError
from .compiler import BACKENDS, CHOICES, DTYPES, c_package, generate
from .errors import SpecError
from .frontend.parser import parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code is 2 as well
        self.print_usage(sys.stderr)
        self.exit(2, f"symbp: error: {message}\n")


def _count(least: int):
    """An argparse type: an integer of at least ``least``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    convert.__name__ = "integer"
    return convert


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="symbp", description="Compile neural-network specs to gradient code.")
    p.add_argument("--version", action="version", version=f"symbp {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    # each verb's parser, to report stray arguments with the verb's own usage
    p.verbs = {
        "compile": _compile_verb(sub),
        "check": _check_verb(sub),
        "grad": _grad_verb(sub),
        "graph": _graph_verb(sub),
        "train": _train_verb(sub),
        "cache": _cache_verb(sub),
    }
    return p


def _compile_verb(sub) -> argparse.ArgumentParser:
    """symbp compile SPEC"""
    c = sub.add_parser(
        "compile",
        help="write the generated module for a spec",
        description="Write the generated module of SPEC: one .py file for "
        "--backend numpy, a package folder for --backend c.",
    )
    c.add_argument("spec", help="the .sbp file")
    c.add_argument(
        "--backend",
        choices=BACKENDS,
        default="numpy",
        help="numpy (one .py file) or c (a cffi package folder); default numpy",
    )
    c.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float64",
        help="floating-point type of the generated code (default float64)",
    )
    c.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="where to write the module (default: SPEC's name, here, with .py for "
        "numpy; a folder for c)",
    )
    return c


def _check_verb(sub) -> argparse.ArgumentParser:
    """symbp check SPEC"""
    k = sub.add_parser(
        "check",
        help="check reverse-mode gradients by finite differences",
        description="Compare reverse-mode gradients with central finite "
        "differences in float64; exit 1 if they disagree.",
    )
    k.add_argument("spec", help="the .sbp file")
    k.add_argument(
        "--backend",
        choices=BACKENDS + ("all",),
        default="numpy",
        help="the backend to check, or all of them (default numpy)",
    )
    k.add_argument("--seed", type=_count(0), default=0, help="random seed (default 0)")
    k.add_argument("--batch", type=_count(1), default=3, help="examples per check (default 3)")
    return k


def _grad_verb(sub) -> argparse.ArgumentParser:
    """symbp grad SPEC"""
    g = sub.add_parser(
        "grad",
        help="print the backward equations in spec notation",
        description="Print the backward pass of SPEC as equations in spec "
        "notation, with the spec line each one comes from.",
    )
    g.add_argument("spec", help="the .sbp file")
    g.add_argument(
        "--passes",
        action="store_true",
        help="also print the passes that ran, rules fired and node counts",
    )
    return g


def _graph_verb(sub) -> argparse.ArgumentParser:
    """symbp graph SPEC -o FILE"""
    d = sub.add_parser(
        "graph",
        help="draw the computation graph (DOT, SVG or PNG)",
        description="Write the computation graph of SPEC as Graphviz DOT, or "
        "as SVG or PNG through Graphviz's dot, by the output's extension.",
    )
    d.add_argument("spec", help="the .sbp file")
    d.add_argument("--grad", action="store_true", help="also draw the backward pass")
    d.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="FILE.dot, FILE.svg or FILE.png"
    )
    return d


def _train_verb(sub) -> argparse.ArgumentParser:
    """symbp train SPEC --data FILE.npz"""
    t = sub.add_parser(
        "train",
        help="mini-batch training with a progress bar",
        description="Train SPEC on the arrays of FILE.npz, named after its "
        "Inputs (batch on axis 0). Arrays suffixed _val are the held-out set; "
        "else --val-split holds out a fraction. A checkpoint is written after "
        "every epoch and on Ctrl-C; --resume continues a run exactly.",
    )
    t.add_argument("spec", help="the .sbp file")
    t.add_argument("--data", required=True, metavar="FILE.npz", help="the training data")
    t.add_argument(
        "--val-split",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="hold out this fraction of the data for validation (default 0)",
    )
    t.add_argument("--epochs", type=_count(1), default=10, help="epochs in all (default 10)")
    t.add_argument("--batch-size", type=_count(1), default=None, help="default 32")
    t.add_argument(
        "--lr",
        type=_positive,
        default=None,
        help="learning rate (default 0.001 for adam, 0.01 otherwise)",
    )
    t.add_argument(
        "--optimizer", choices=("sgd", "momentum", "adam"), default=None, help="default adam"
    )
    t.add_argument(
        "--seed",
        type=_count(0),
        default=None,
        help="initialization, shuffling and the held-out split (default 0)",
    )
    t.add_argument(
        "--backend",
        choices=CHOICES,
        default="auto",
        help="c (compiled, 2-3x faster), numpy (a generated module), or auto (the default): "
        "c where a C compiler builds, else numpy with a note saying why",
    )
    t.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float64",
        help="floating-point type of the training (default float64; float32 is faster in C)",
    )
    t.add_argument(
        "--save",
        metavar="PATH",
        help="checkpoint file (default: the --resume file, else SPEC.ckpt.npz)",
    )
    t.add_argument("--resume", metavar="PATH", help="continue from this checkpoint")
    t.add_argument("--plot", metavar="FILE.png", help="loss and accuracy curves (matplotlib)")
    return t


def _cache_verb(sub) -> argparse.ArgumentParser:
    """symbp cache info|clear"""
    h = sub.add_parser(
        "cache",
        help="show or clear the C backend's build cache",
        description="The C backend keeps built modules in a cache folder "
        "(SYMBP_CACHE_DIR, else $XDG_CACHE_HOME/symbp or ~/.cache/symbp).",
    )
    h.add_argument(
        "action",
        choices=("info", "clear"),
        help="info: where it is and what it holds; clear: delete every entry",
    )
    return h


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # as parse_args would, but with the verb's usage rather than symbp's
            parser.verbs[args.verb].error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # --help, --version and bad arguments; argparse has printed
        return e.code if isinstance(e.code, int) else 2
    try:
        return VERBS[args.verb](args)
    except SpecError as e:
        print(e, file=sys.stderr)
    except BrokenPipeError:  # `symbp grad spec | head`: the reader left; say nothing more
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"symbp: error: {where}{e.strerror or e}", file=sys.stderr)
    except BuildError as e:
        print(f"symbp: error: {e}", file=sys.stderr)
    except (RecursionError, MemoryError):
        print(
            "symbp: error: the network is too large or too deeply nested to compile",
            file=sys.stderr,
        )
    except KeyboardInterrupt:
        print("symbp: interrupted", file=sys.stderr)
        return 130
    return 2


def _compile(args) -> int:
    graph = parse(args.spec)
    stem = Path(args.spec).stem
    if args.backend == "c":
        out = Path(args.output) if args.output else Path(stem)
        _copy_package(c_package(graph, args.dtype), out)
    else:
        source = generate(graph, args.backend, args.dtype)
        out = Path(args.output) if args.output else Path(stem + ".py")
        if out.is_dir():
            out = out / (stem + ".py")
        out.write_text(source, encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _copy_package(entry: Path, out: Path) -> None:
    """Copy a built C package out of the cache into the folder ``out``.

    The cache's manifest stays behind: it describes the cache entry, not the package.
    """
    if out.exists() and not out.is_dir():
        raise OSError(
            20, "exists and is not a folder (the C backend writes a package folder)", str(out)
        )
    out.mkdir(exist_ok=True)
    for item in sorted(entry.iterdir()):
        if item.is_file() and item.name != "manifest.json":
            shutil.copyfile(item, out / item.name)


def _check(args) -> int:
    from .check.gradients import check_grads

    graph = parse(args.spec)
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    ok = True
    for backend in backends:
        report = check_grads(graph, backend=backend, seed=args.seed, batch=args.batch)
        print(report.table())
        ok &= report.ok
    if len(backends) > 1:
        from .check.gradients import compare_backends

        agreement = compare_backends(graph, backends, seed=args.seed, batch=args.batch)
        print(agreement.table())
        ok &= agreement.ok
    return 0 if ok else 1


def _graph(args) -> int:
    from .explain.graphviz import GraphvizMissing, render, to_dot
    from .passes.pipeline import optimize

    out = Path(args.output)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("dot", "gv", "svg", "png"):
        return _fail(f"{out}: the output must end in .dot, .svg or .png")
    text = to_dot(optimize(parse(args.spec)), grad=args.grad)
    if fmt in ("dot", "gv"):
        out.write_text(text, encoding="utf-8")
    else:
        try:
            out.write_bytes(render(text, fmt))
        except GraphvizMissing as e:
            return _fail(str(e))
    print(f"wrote {out}")
    return 0


def _train(args) -> int:
    from .compiler import compile, resolve
    from .train.data import DataError, load_data
    from .train.trainer import Trainer, TrainingError

    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _fail("--plot needs matplotlib: pip install 'symbp[plot]'")
    try:
        backend = resolve(args.backend)
    except ValueError as e:  # a bad SYMBP_BACKEND
        return _fail(str(e))
    module = compile(parse(args.spec), backend=backend, dtype=args.dtype)
    if not module.INPUTS:
        return _fail("the spec has no Input: there is nothing to train on")
    # a resumed run goes on in the checkpoint it resumed, unless told otherwise
    save = args.save or args.resume or str(Path(args.spec).with_suffix("").name + ".ckpt.npz")
    try:
        trainer = _trainer(args, module, Trainer)
    except (ValueError, OSError) as e:  # the checkpoint to resume
        return _fail(str(e))
    try:  # the held-out split follows the run's seed, the same when resuming
        train, val = load_data(args.data, module, args.val_split, trainer.seed)
    except DataError as e:
        return _fail(str(e))
    try:
        return _fit(args, trainer, train, val, save)
    except KeyboardInterrupt:
        trainer.save(save)
        print(f"\ninterrupted: checkpoint {save} (resume with --resume {save})", file=sys.stderr)
        return 130
    except TrainingError as e:
        last = (
            f"the last good checkpoint is {save}"
            if Path(save).exists()
            else "no checkpoint was written yet"
        )
        print(f"\nsymbp: error: {e}; {last}", file=sys.stderr)
        return 1


def _fail(message: str) -> int:
    print(f"symbp: error: {message}", file=sys.stderr)
    return 2


def _trainer(args, module, Trainer):
    """A new trainer with the options given, or the one a checkpoint resumes."""
    if args.resume:
        trainer = Trainer.load(args.resume, module)
        given = [
            f"--{k.replace('_', '-')}"
            for k in ("lr", "optimizer", "batch_size", "seed")
            if getattr(args, k) is not None
        ]
        if given:
            print(
                f"note: {', '.join(given)} come from the checkpoint when resuming", file=sys.stderr
            )
        return trainer
    optimizer = args.optimizer or "adam"
    lr = args.lr if args.lr is not None else (1e-3 if optimizer == "adam" else 1e-2)
    return Trainer(
        module, optimizer=optimizer, lr=lr, batch_size=args.batch_size or 32, seed=args.seed or 0
    )


def _fit(args, trainer, train: dict, val: dict | None, save: str) -> int:
    """Train to ``args.epochs`` epochs with a progress bar, a checkpoint after each."""
    from .train.progress import ProgressBar, plot, summary

    rows = len(next(iter(train.values())))
    bar = ProgressBar(args.epochs, trainer.batch_size, rows)
    already = len(trainer.history)
    start = time.perf_counter()
    while trainer.epoch < args.epochs:
        bar.begin(trainer.epoch + 1)
        (stats,) = trainer.fit(train, 1, val, progress=bar.update, checkpoint=save)
        bar.end(stats)
    if len(trainer.history) == already:
        print(f"nothing to do: the checkpoint has {trainer.epoch} epochs already")
        return 0
    print(summary(trainer.history[already:], time.perf_counter() - start, save))
    if args.plot:
        plot(trainer.history, args.plot)
        print(f"plot: {args.plot}")
    return 0


def _cache(args) -> int:
    from .backends.c.cache import cache_clear, cache_info

    if args.action == "clear":
        print(f"removed {cache_clear()} entries from {cache_info()['path']}")
        return 0
    info = cache_info()
    print(f"cache {info['path']}: {info['entries']} entries, {info['bytes'] / 1e6:.1f} MB")
    return 0


def _grad(args) -> int:
    from .explain.equations import backward_equations, pass_report
    from .passes.pipeline import optimize

    program = optimize(parse(args.spec))
    print(backward_equations(program), end="")
    if args.passes:
        print()
        print(pass_report(program), end="")
    return 0


VERBS = {
    "compile": _compile,
    "check": _check,
    "grad": _grad,
    "graph": _graph,
    "train": _train,
    "cache": _cache,
}


if __name__ == "__main__":
    sys.exit(main())
