"""generated/ holds the committed NumPy modules of examples/ and their C translation units;
they must match the compiler.

Regenerate after a change with:

    for f in examples/*.sbp; do symbp compile $f -o generated/; done
    python -c "import pathlib, symbp; [pathlib.Path('generated', p.stem + '.c').write_text(
        symbp.generate(p, backend='c')) for p in pathlib.Path('examples').glob('*.sbp')]"
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symbp

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "examples").glob("*.sbp"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_generated_module_is_current(spec):
    committed = ROOT / "generated" / f"{spec.stem}.py"
    assert committed.exists(), f"generated/{spec.stem}.py is missing: run symbp compile"
    fresh = symbp.generate(symbp.parse(spec))
    assert committed.read_text(encoding="utf-8") == fresh, (
        f"generated/{spec.stem}.py is stale: symbp compile {spec.relative_to(ROOT)} -o generated/"
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_generated_c_source_is_current(spec):
    committed = ROOT / "generated" / f"{spec.stem}.c"
    assert committed.exists(), f"generated/{spec.stem}.c is missing (see this file's docstring)"
    fresh = symbp.generate(symbp.parse(spec), backend="c")
    assert committed.read_text(encoding="utf-8") == fresh, f"generated/{spec.stem}.c is stale"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_generation_is_deterministic_across_processes(spec):
    code = "import sys, symbp; sys.stdout.write(symbp.generate(symbp.parse(sys.argv[1])))"
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(spec)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1] == symbp.generate(symbp.parse(spec))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_examples_pass_the_gradient_check(spec):
    report = symbp.check_grads(spec)
    assert report.ok, report.table()
    assert len(report.params) == len(symbp.compile(spec).PARAMS)


def test_generated_code_keeps_no_machine_paths():
    for path in [*(ROOT / "generated").glob("*.py"), *(ROOT / "generated").glob("*.c")]:
        text = path.read_text(encoding="utf-8")
        assert str(ROOT) not in text and "/home/" not in text and "/root/" not in text


def test_standalone_module_imports_without_symbp(tmp_path):
    """The committed module runs in an isolated interpreter that cannot see symbp."""
    module = tmp_path / "mlp_mod.py"
    module.write_text((ROOT / "generated" / "mlp.py").read_text(encoding="utf-8"))
    script = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import mlp_mod as m\n"
        "p = m.init_params(0)\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.normal(size=(5, 784)); y = rng.uniform(size=(5, 10))\n"
        "before = m.loss(p, x=x, y=y)\n"
        "for _ in range(3): m.train_step(p, 0.5, x=x, y=y)\n"
        "assert m.loss(p, x=x, y=y) < before\n"
        "assert 'symbp' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_branch_example_is_the_lecture_value():
    """f = (a + b)(b + c) at a = 1, b = 1, c = 6: df/db = y + x = 7 + 2 = 9."""
    m = symbp.compile(ROOT / "examples" / "branch.sbp")
    value, grads = m.loss_and_grads(m.init_params())
    assert value == 14.0
    assert grads == {"a": 7.0, "b": 9.0, "c": 2.0}
    for g in grads.values():
        assert isinstance(g, np.ndarray) and g.dtype == np.float64
