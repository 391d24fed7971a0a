"""The command line (SPEC.md §2): verbs, outputs, exit codes, and errors without tracebacks.

Most cases call ``symbp.cli.main`` in-process (fast, output through capsys); a few run
``python -m symbp`` in a subprocess to see exactly what a user's terminal shows, and the
generated module is imported by a fresh, isolated interpreter that cannot import symbp.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symbp
from symbp import cli
from symbp.backends.c.toolchain import BuildError

REPO = Path(__file__).resolve().parents[1]
MLP = REPO / "examples" / "mlp.sbp"

NEURON = """\
# one sigmoid neuron with a quadratic cost
x: Input[3]
y: Input
w: Param[3] = normal(0.5)
b: Param = 0.1
a = sigmoid(w @ x + b)
C: Loss = 0.5 * (a - y) ** 2
p: Output = a
"""

BROKEN = {  # file contents -> (line, col, words)
    "syntax": ("x: Input[3\n", 1, 9, "never closed"),
    "unknown-name": ("x: Input[3]\nC: Loss = sum(x * w)\n", 2, 19, "unknown name 'w'"),
    "shapes": (
        "x: Input[3]\nW: Param[2, 4] = glorot\nC: Loss = sum(W @ x)\n",
        3,
        15,
        "(2, 4) @ (3,)",
    ),
    "no-loss": ("x: Input[3]\ny = x * 2\n", 2, 1, "no Loss"),
    "non-scalar-loss": ("x: Input[3]\nC: Loss = x\n", 2, 11, "scalar"),
    "unsupported": ("x: Input[3]\nfor i in x:\n    pass\n", 2, 1, "for loop"),
    "initializer": ("w: Param[3] = normal()\nC: Loss = sum(w)\n", 1, 15, "normal(std)"),
    "huge-number": ("w: Param = 1\nC: Loss = w * 10**400\n", 2, 15, "too large"),
}


def write(tmp_path: Path, text: str | bytes, name: str = "net.sbp") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def run_main(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def run_python(*argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *map(str, argv)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


# The child imports a generated module by path with symbp made unimportable, runs it and
# reports what it saw as JSON. -I keeps the repository and user site off sys.path.
STANDALONE = textwrap.dedent("""\
    import importlib.abc, importlib.util, json, sys
    import numpy as np

    class NoSymbp(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "symbp":
                raise ImportError("generated code must not import symbp")

    sys.meta_path.insert(0, NoSymbp())

    def blocked():  # the blocker works, so the module above really ran without symbp
        try:
            import symbp  # noqa: F401
        except ImportError:
            return True
        return False
    path, package, repo = sys.argv[1], sys.argv[2] == "package", sys.argv[3]
    location = path + "/__init__.py" if package else path
    spec = importlib.util.spec_from_file_location(
        "net", location, submodule_search_locations=[path] if package else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["net"] = module
    spec.loader.exec_module(module)
    params = module.init_params(0)
    rng = np.random.default_rng(0)
    inputs = {k: rng.normal(size=(4, *s)) for k, s in module.INPUTS.items()}
    loss, grads = module.loss_and_grads(params, **inputs)
    print(json.dumps({
        "loss": loss, "params": {k: list(v) for k, v in module.PARAMS.items()},
        "outputs": list(module.OUTPUTS), "dtype": module.DTYPE,
        "grads": sorted(grads), "symbp_loaded": any(m.split(".")[0] == "symbp"
                                                   for m in sys.modules),
        "path_has_repo": any(p.startswith(repo) for p in sys.path),
        "blocked": blocked(),
    }))
""")


def run_standalone(path: Path, kind: str = "module") -> dict:
    script = path.parent / "run_standalone.py"
    script.write_text(STANDALONE)
    proc = run_python("-I", script, path, kind, REPO, cwd=path.parent)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------- compile


def test_compile_writes_a_standalone_module(tmp_path, capsys):
    spec = write(tmp_path, NEURON)
    out = tmp_path / "build" / "neuron.py"
    out.parent.mkdir()
    code, stdout, stderr = run_main(capsys, "compile", spec, "-o", out)
    assert (code, stdout, stderr) == (0, f"wrote {out}\n", "")
    isolated = tmp_path / "elsewhere"
    isolated.mkdir()
    copy = isolated / "neuron.py"
    shutil.copyfile(out, copy)
    seen = run_standalone(copy)
    assert seen["symbp_loaded"] is False and seen["path_has_repo"] is False
    assert seen["blocked"] is True
    assert seen["params"] == {"w": [3], "b": []}
    assert seen["outputs"] == ["p", "C"] and seen["dtype"] == "float64"
    assert seen["grads"] == ["b", "w"]
    module = symbp.compile(symbp.parse(spec))  # the same numbers as the in-process module
    rng = np.random.default_rng(0)
    inputs = {k: rng.normal(size=(4, *s)) for k, s in module.INPUTS.items()}
    assert seen["loss"] == pytest.approx(module.loss(module.init_params(0), **inputs), rel=1e-12)


def test_compile_output_defaults_and_folders(tmp_path, capsys, monkeypatch):
    spec = write(tmp_path, NEURON, "neuron.sbp")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert run_main(capsys, "compile", spec) == (0, "wrote neuron.py\n", "")
    assert (work / "neuron.py").read_text().startswith('"""')
    folder = tmp_path / "out"
    folder.mkdir()
    assert run_main(capsys, "compile", spec, "-o", folder)[:2] == (
        0,
        f"wrote {folder / 'neuron.py'}\n",
    )
    assert (folder / "neuron.py").read_bytes() == (work / "neuron.py").read_bytes()


def test_compile_is_deterministic_and_honours_dtype(tmp_path, capsys):
    spec = write(tmp_path, NEURON)
    first, second, single = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "f32.py"
    run_main(capsys, "compile", spec, "-o", first)
    run_main(capsys, "compile", spec, "-o", second)
    assert first.read_bytes() == second.read_bytes()
    assert run_main(capsys, "compile", spec, "--dtype", "float32", "-o", single)[0] == 0
    assert 'DTYPE = "float32"' in single.read_text()
    assert 'DTYPE = "float64"' in first.read_text()
    assert "symbp" not in "".join(
        line for line in first.read_text().splitlines() if line.startswith(("import", "from"))
    )


def test_compile_the_example(tmp_path, capsys):
    out = tmp_path / "mlp.py"
    assert run_main(capsys, "compile", MLP, "-o", out)[0] == 0
    seen = run_standalone(out)
    assert list(seen["params"]) == ["W1", "b1", "W2", "b2"]
    assert seen["symbp_loaded"] is False and seen["loss"] > 0


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
def test_compile_c_writes_a_package_folder(tmp_path, capsys):
    spec = write(tmp_path, NEURON)
    out = tmp_path / "neuron_c"
    code, stdout, stderr = run_main(capsys, "compile", spec, "--backend", "c", "-o", out)
    assert (code, stdout, stderr) == (0, f"wrote {out}\n", "")
    names = sorted(p.name for p in out.iterdir())
    assert "__init__.py" in names and "manifest.json" not in names
    assert any(n.endswith(".c") for n in names) and any(n.endswith((".so", ".pyd")) for n in names)
    seen = run_standalone(out, "package")
    assert seen["symbp_loaded"] is False
    assert seen["params"] == {"w": [3], "b": []} and seen["outputs"] == ["p", "C"]
    file_in_the_way = tmp_path / "taken"
    file_in_the_way.write_text("")
    code, _, stderr = run_main(capsys, "compile", spec, "--backend", "c", "-o", file_in_the_way)
    assert code == 2 and stderr.startswith(f"symbp: error: {file_in_the_way}: ")
    assert "not a folder" in stderr


# ----------------------------------------------------------------------- check, grad


def test_check_prints_a_table(tmp_path, capsys):
    spec = write(tmp_path, NEURON)
    code, out, err = run_main(capsys, "check", spec, "--seed", "3", "--batch", "2")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("backend numpy: loss ")
    assert "at the check point (random parameters and inputs" in lines[0]  # not the spec's
    assert lines[1].split() == ["param", "shape", "checked", "max", "rel", "error", "status"]
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert set(rows) == {"w", "b"} and all(row.endswith(" ok") for row in rows.values())
    assert lines[-1] == "tolerance 1e-06: all gradients agree"


def test_check_exits_1_when_gradients_are_off(tmp_path, capsys, monkeypatch):
    from symbp.check import gradients as check

    spec = write(tmp_path, NEURON)
    real = check.check_module

    def off_by_a_lot(module, **kwargs):
        report = real(module, **kwargs)
        report.params[0].max_error = 0.5
        return report

    monkeypatch.setattr(check, "check_module", off_by_a_lot)
    code, out, err = run_main(capsys, "check", spec)
    assert (code, err) == (1, "")
    assert "OFF (fd" in out and out.rstrip().endswith("GRADIENTS ARE OFF")


def test_check_all_backends_compares_them(tmp_path, capsys):
    spec = write(tmp_path, NEURON)
    code, out, err = run_main(capsys, "check", spec, "--backend", "all")
    assert (code, err) == (0, "")
    assert "backend numpy: loss" in out and "backend c: loss" in out
    assert "numpy against c: max relative difference (tolerance 1e-12)" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert {r[0] for r in rows} == {"loss", "w", "b"}
    assert all(float(r[1]) <= 1e-12 and r[2] == "ok" for r in rows)
    assert out.rstrip().endswith("backends agree")


def test_cache_info_and_clear(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYMBP_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = run_main(capsys, "cache", "info")
    assert (code, err) == (0, "")
    assert out == f"cache {tmp_path / 'cache'}: 0 entries, 0.0 MB\n"
    symbp.compile(symbp.parse_text(NEURON), backend="c")
    code, out, _ = run_main(capsys, "cache", "info")
    assert code == 0 and ": 1 entries, " in out
    code, out, _ = run_main(capsys, "cache", "clear")
    assert (code, out) == (0, f"removed 1 entries from {tmp_path / 'cache'}\n")
    assert run_main(capsys, "cache", "info")[1].endswith(": 0 entries, 0.0 MB\n")
    assert run_main(capsys, "cache", "prune")[0] == 2


def test_grad_prints_the_backward_equations(capsys):
    code, out, err = run_main(capsys, "grad", MLP)
    assert (code, err) == (0, "")
    assert out.startswith("# backward pass of mlp.sbp")
    targets = [
        line.split(" = ")[0]
        for line in out.splitlines()
        if " = " in line and not line.startswith("#")
    ]
    assert {"dW1", "db1", "dW2", "db2", "dz1", "dz2"} <= set(targets)
    assert "# line 12: a2 = sigmoid(z2)" in out or "a2 = sigmoid(z2)" in out
    code, passes, _ = run_main(capsys, "grad", MLP, "--passes")
    assert code == 0 and passes.startswith(out) and "rules fired" in passes


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("verb", ["compile", "check", "grad"])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_specs_exit_2_with_a_located_error(tmp_path, capsys, monkeypatch, verb, case):
    text, line, col, words = BROKEN[case]
    spec = write(tmp_path, text, "broken.sbp")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, verb, spec)
    assert code == 2 and out == ""
    first, shown, caret = err.rstrip("\n").split("\n")
    assert first.startswith(f"{spec}:{line}:{col}: error: ") and words in first
    assert shown == "    " + text.splitlines()[line - 1]
    assert caret == " " * (4 + col - 1) + "^"
    assert not (tmp_path / "broken.py").exists()


@pytest.mark.parametrize(
    "data, line, col, words",
    [
        (b"x: Input[3]\nC: Loss = sum(x) \xff\n", 2, 18, "not valid UTF-8"),
        (b"x: Input[3]\nC: Loss = sum(x)\x00\n", 2, 17, "NUL byte"),
    ],
)
def test_bad_bytes_exit_2(tmp_path, capsys, data, line, col, words):
    spec = write(tmp_path, data)
    code, out, err = run_main(capsys, "compile", spec, "-o", tmp_path / "x.py")
    assert (code, out) == (2, "")
    assert err.startswith(f"{spec}:{line}:{col}: error: ") and words in err
    assert "\x00" not in err


def test_python_m_symbp_shows_no_traceback(tmp_path):
    """What a terminal shows, end to end: one located error, exit status 2."""
    spec = write(tmp_path, BROKEN["shapes"][0], "broken.sbp")
    proc = run_python("-m", "symbp", "compile", spec, "-o", tmp_path / "x.py")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        f"{spec}:3:15: error: matmul shapes (2, 4) @ (3,) do not align: 4 "
        "(last axis of the left) != 3 (first matrix axis of the right)\n"
        "    C: Loss = sum(W @ x)\n"
        "                  ^\n"
    )
    proc = run_python("-m", "symbp", "check", tmp_path / "missing.sbp")
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr == (
        f"{tmp_path / 'missing.sbp'}: error: cannot read spec: No such file or directory\n"
    )


@pytest.mark.parametrize("verb", ["compile", "check", "grad"])
def test_missing_or_unreadable_spec_exits_2(tmp_path, capsys, verb):
    missing = tmp_path / "nope.sbp"
    code, out, err = run_main(capsys, verb, missing)
    assert (code, out) == (2, "")
    assert err == f"{missing}: error: cannot read spec: No such file or directory\n"
    code, out, err = run_main(capsys, verb, tmp_path)
    assert code == 2 and err.startswith(f"{tmp_path}: error: cannot read spec: ")


def test_unwritable_output_exits_2(tmp_path, capsys):
    spec = write(tmp_path, NEURON)
    target = tmp_path / "no" / "such" / "folder" / "x.py"
    code, out, err = run_main(capsys, "compile", spec, "-o", target)
    assert (code, out) == (2, "")
    assert err == f"symbp: error: {target}: No such file or directory\n"


BAD_ARGUMENTS = [
    pytest.param([], "the following arguments are required: verb", id="no-verb"),
    pytest.param(["frobnicate", "x.sbp"], "invalid choice: 'frobnicate'", id="unknown-verb"),
    pytest.param(["compile"], "the following arguments are required: spec", id="no-spec"),
    pytest.param(
        ["compile", "{spec}", "--backend", "cuda"], "invalid choice: 'cuda'", id="bad-backend"
    ),
    pytest.param(
        ["check", "{spec}", "--backend", "cuda"], "invalid choice: 'cuda'", id="bad-check-backend"
    ),
    pytest.param(
        ["compile", "{spec}", "--dtype", "float16"], "invalid choice: 'float16'", id="bad-dtype"
    ),
    pytest.param(
        ["check", "{spec}", "--batch", "0"], "--batch: must be at least 1, got 0", id="batch-0"
    ),
    pytest.param(
        ["check", "{spec}", "--batch", "-5"],
        "--batch: must be at least 1, got -5",
        id="batch-negative",
    ),
    pytest.param(
        ["check", "{spec}", "--batch", "two"],
        "--batch: expected an integer, got 'two'",
        id="batch-not-a-number",
    ),
    pytest.param(
        ["check", "{spec}", "--seed", "-1"],
        "--seed: must be at least 0, got -1",
        id="negative-seed",
    ),
    pytest.param(
        ["grad", "{spec}", "--dtype", "float32"],
        "unrecognized arguments: --dtype",
        id="option-of-another-verb",
    ),
    pytest.param(["compile", "{spec}", "{spec}"], "unrecognized arguments", id="two-specs"),
    pytest.param(
        ["grad", "{spec}", "-o", "x.py"],
        "unrecognized arguments: -o x.py",
        id="option-of-compile-on-grad",
    ),
]


@pytest.mark.parametrize("argv, message", BAD_ARGUMENTS)
def test_bad_arguments_exit_2(tmp_path, capsys, argv, message):
    spec = write(tmp_path, NEURON)
    code, out, err = run_main(capsys, *(a.format(spec=spec) for a in argv))
    assert (code, out) == (2, "")
    verb = argv[0] if argv and argv[0] in ("compile", "check", "grad") else ""
    assert err.startswith(f"usage: symbp {verb}".rstrip() + " ["), err
    assert "symbp: error: " in err and message in err, err


@pytest.mark.parametrize(
    "verb, options",
    [
        (None, ["compile", "check", "grad", "cache", "--version"]),
        ("compile", ["--backend", "--dtype", "--output"]),
        ("check", ["--backend", "--seed", "--batch"]),
        ("grad", ["--passes"]),
        ("cache", ["info", "clear"]),
    ],
)
def test_help_on_every_verb(capsys, verb, options):
    code, out, err = run_main(capsys, *([verb] if verb else []), "--help")
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: symbp {verb or ''}".rstrip())
    for option in options:
        assert option in out


def test_help_and_version_through_python_m():
    proc = run_python("-m", "symbp", "--version")
    assert (proc.returncode, proc.stdout) == (0, f"symbp {symbp.__version__}\n")
    proc = run_python("-m", "symbp", "check", "-h")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: symbp check")


@pytest.mark.parametrize(
    "failure, message",
    [
        (RecursionError, "symbp: error: the network is too large or too deeply nested to compile"),
        (MemoryError, "symbp: error: the network is too large or too deeply nested to compile"),
        (
            BuildError("cc not found; install a C compiler"),
            "symbp: error: cc not found; install a C compiler",
        ),
        (
            PermissionError(13, "Permission denied", "out.py"),
            "symbp: error: out.py: Permission denied",
        ),
    ],
)
def test_failures_behind_the_spec_exit_2_without_traceback(
    tmp_path, capsys, monkeypatch, failure, message
):
    spec = write(tmp_path, NEURON)

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(cli, "generate", fail)
    code, out, err = run_main(capsys, "compile", spec, "-o", tmp_path / "x.py")
    assert (code, out, err) == (2, "", message + "\n")


def test_interrupt_exits_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "generate", interrupted)
    code, out, err = run_main(capsys, "compile", write(tmp_path, NEURON))
    assert (code, out, err) == (130, "", "symbp: interrupted\n")
