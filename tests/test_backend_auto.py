"""``--backend auto``, the default of ``symbp train`` and ``symbp.compile``: C where a C
compiler builds, else NumPy with a one-line note saying why; ``SYMBP_BACKEND`` chooses.

The rest of the suite runs with ``SYMBP_BACKEND=numpy`` (tests/conftest.py); these tests
clear it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import symbp
from symbp import cli, compiler
from symbp.backends.c import toolchain
from symbp.compiler import resolve

ROOT = Path(__file__).resolve().parent.parent
NEURON = ROOT / "examples" / "neuron.sbp"


@pytest.fixture
def auto(monkeypatch):
    """No SYMBP_BACKEND, and the C probe and the note (once a process) forgotten before and
    after the test."""
    monkeypatch.delenv("SYMBP_BACKEND", raising=False)
    toolchain.unavailable.cache_clear()
    compiler._note_numpy.cache_clear()
    yield monkeypatch
    toolchain.unavailable.cache_clear()
    compiler._note_numpy.cache_clear()


def is_c(module) -> bool:
    return module.__name__.startswith("symbp_c_")


def test_auto_is_c_where_a_compiler_builds(auto):
    assert toolchain.unavailable() is None  # this machine has a C compiler (the C tests need it)
    assert resolve("auto") == "c"
    assert is_c(symbp.compile(NEURON))
    assert not is_c(symbp.compile(NEURON, backend="numpy"))


def test_auto_is_numpy_with_a_note_where_no_compiler_builds(auto, capsys):
    auto.setenv("CC", "no-such-cc-anywhere")
    why = toolchain.unavailable()
    assert why is not None and "no-such-cc-anywhere" in why
    module = symbp.compile(NEURON)
    assert not is_c(module)
    assert module.loss({"w": np.array(0.5), "b": np.array(0.0)}, x=np.ones(2), y=np.ones(2)) > 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "using the NumPy backend" in err and "no-such-cc" in err


def test_a_compiler_that_cannot_build_is_refused(auto, tmp_path):
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    auto.setenv("CC", str(fake))
    why = toolchain.unavailable()
    assert why is not None and "cannot build a small C file" in why
    assert resolve("auto") == "numpy"


def test_symbp_backend_chooses(auto):
    auto.setenv("SYMBP_BACKEND", "numpy")
    assert resolve("auto") == "numpy"
    auto.setenv("SYMBP_BACKEND", "c")
    assert resolve("auto") == "c"
    assert resolve("numpy") == "numpy"  # an explicit choice wins
    auto.setenv("SYMBP_BACKEND", "cuda")
    with pytest.raises(ValueError, match="SYMBP_BACKEND: expected one of numpy, c, got 'cuda'"):
        resolve("auto")


def test_symbp_train_defaults_to_auto(auto, tmp_path, capsys):
    """train --help names auto; without a compiler, a run trains on NumPy after one note."""
    assert cli.main(["train", "--help"]) == 0
    assert "auto (the default)" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")
    auto.setenv("CC", "no-such-cc-anywhere")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=20), y=rng.uniform(size=20))
    save = tmp_path / "n.ckpt.npz"
    args = ["train", str(NEURON), "--data", str(tmp_path / "d.npz"), "--epochs", "1"]
    assert cli.main([*args, "--save", str(save)]) == 0
    err = capsys.readouterr().err
    assert "symbp: using the NumPy backend: " in err
    auto.setenv("SYMBP_BACKEND", "gpu")
    assert cli.main([*args, "--save", str(save)]) == 2
    assert "SYMBP_BACKEND: expected one of numpy, c" in capsys.readouterr().err
