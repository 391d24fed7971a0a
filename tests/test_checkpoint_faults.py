"""A full disk while saving a checkpoint (issue #7): the previous checkpoint stays whole and
loadable, no temporary file is left behind, the error names the checkpoint and says so, and
once there is room again the same trainer saves and resumes exactly.

The disk fills in every step of a save: creating the temporary file, writing it (at once,
or after some bytes, or for real: the writes go to /dev/full, where the kernel answers
ENOSPC), syncing it (where delayed allocation reports it) and renaming it into place. The
`symbp train` command is run the same way, in-process.
"""

from __future__ import annotations

import errno
import io
import os
import re
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import symbp
from symbp import cli
from symbp.train import trainer as train_module

NET = """\
x: Input[3]
y: Input[2]
W: Param[2, 3] = glorot
b: Param[2] = zeros
p: Output = tanh(W @ x + b)
C: Loss = 0.5 * sum((p - y) ** 2)
"""


def make_data(rows: int = 40) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    return {"x": x, "y": np.tanh(x[:, :2] * [0.5, -0.3])}


@pytest.fixture(scope="module")
def module():
    return symbp.compile(symbp.parse_text(NET, "net.sbp"))


REAL_FDOPEN = os.fdopen  # the tests replace os.fdopen itself


def full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FillingFile(io.RawIOBase):
    """A file that takes ``room`` bytes, then answers every write with ENOSPC."""

    def __init__(self, fd: int, room: int) -> None:
        self.file = REAL_FDOPEN(fd, "wb", buffering=0)
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.file.write(data[: self.room])
            self.room = 0
            full()
        self.room -= len(data)
        return self.file.write(data)

    def fileno(self) -> int:
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()
        super().close()


def dev_full(fd: int, mode: str = "r", *args, **kwargs):
    """The temporary file's descriptor exchanged for /dev/full: real writes, real ENOSPC."""
    os.close(fd)
    return open("/dev/full", mode, *args, **kwargs)


def filling(room: int):
    def fdopen(fd: int, mode: str = "r", *args, **kwargs):
        return io.BufferedWriter(FillingFile(fd, room))

    return fdopen


FAULTS = {
    "creating the file": ("tempfile", "mkstemp", full),
    "the first write": ("os", "fdopen", filling(0)),
    "after 100 bytes": ("os", "fdopen", filling(100)),
    "after 2000 bytes": ("os", "fdopen", filling(2000)),
    "writing to /dev/full": ("os", "fdopen", dev_full),
    "syncing": ("os", "fsync", full),
    "renaming": ("os", "replace", full),
}


def inject(monkeypatch, fault: str) -> None:
    where, name, replacement = FAULTS[fault]
    if fault == "writing to /dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    target = {"os": os, "tempfile": tempfile}[where]
    monkeypatch.setattr(target, name, replacement)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def assert_same_trainer(a: symbp.Trainer, b: symbp.Trainer) -> None:
    assert a.epoch == b.epoch and len(a.history) == len(b.history)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    for k in a.state:
        np.testing.assert_array_equal(a.state[k], b.state[k])
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def assert_disk_full_error(err: OSError, path: Path, kept: bool) -> None:
    assert err.errno == errno.ENOSPC
    assert err.filename == str(path)
    assert "cannot write the checkpoint: No space left on device" in err.strerror
    assert (
        "previous checkpoint there is unchanged" if kept else "no checkpoint was written"
    ) in err.strerror


@pytest.mark.parametrize("fault", list(FAULTS))
def test_disk_full_keeps_the_previous_checkpoint(module, tmp_path, monkeypatch, fault):
    path = tmp_path / "run.ckpt.npz"
    data = make_data()
    trainer = symbp.Trainer(module, optimizer="adam", lr=0.01, batch_size=8, seed=3)
    trainer.fit(data, epochs=1, checkpoint=path)
    before = path.read_bytes()
    after_one = symbp.Trainer.load(path, module)

    with monkeypatch.context() as mp:
        inject(mp, fault)
        with pytest.raises(OSError) as info:
            trainer.fit(data, epochs=1, checkpoint=path)
    assert_disk_full_error(info.value, path, kept=True)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []
    assert_same_trainer(symbp.Trainer.load(path, module), after_one)

    # the trainer itself went on (epoch 2 is done); with room again it saves and resumes
    assert trainer.epoch == 2
    trainer.save(path)
    resumed = symbp.Trainer.load(path, module)
    assert_same_trainer(resumed, trainer)
    resumed.fit(data, epochs=1)
    trainer.fit(data, epochs=1)
    assert_same_trainer(resumed, trainer)


@pytest.mark.parametrize("fault", ["creating the file", "after 100 bytes", "renaming"])
def test_disk_full_before_any_checkpoint(module, tmp_path, monkeypatch, fault):
    path = tmp_path / "first.ckpt.npz"
    trainer = symbp.Trainer(module, optimizer="sgd", lr=0.1, batch_size=8)
    inject(monkeypatch, fault)
    with pytest.raises(OSError) as info:
        trainer.fit(make_data(), epochs=1, checkpoint=path)
    assert_disk_full_error(info.value, path, kept=False)
    assert not path.exists() and leftovers(tmp_path) == []


def test_other_write_errors_keep_their_kind(module, tmp_path, monkeypatch):
    """A quota or an I/O error gets the same treatment, under its own errno."""
    path = tmp_path / "q.ckpt.npz"
    trainer = symbp.Trainer(module, optimizer="sgd", lr=0.1, batch_size=8)
    trainer.save(path)
    before = path.read_bytes()

    def quota(*_args):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(os, "fsync", quota)
    with pytest.raises(OSError) as info:
        trainer.save(path)
    assert info.value.errno == errno.EDQUOT and info.value.filename == str(path)
    assert "previous checkpoint there is unchanged" in info.value.strerror
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_interrupt_while_writing_removes_the_temporary_file(module, tmp_path, monkeypatch):
    """Not an OSError: propagated as it is, and still nothing left behind."""
    path = tmp_path / "i.ckpt.npz"
    trainer = symbp.Trainer(module, optimizer="sgd", lr=0.1, batch_size=8)
    trainer.save(path)
    before = path.read_bytes()

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.save(path)
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("fault", ["after 2000 bytes", "writing to /dev/full", "renaming"])
def test_symbp_train_on_a_full_disk(tmp_path, monkeypatch, fault):
    """The disk fills after the first epoch's checkpoint: `symbp train` stops with a clear
    error and exit status 2, the checkpoint holds epoch 1, and --resume finishes the run
    exactly as a run that never stopped."""
    spec = tmp_path / "net.sbp"
    spec.write_text(NET, encoding="utf-8")
    data = tmp_path / "d.npz"
    np.savez(data, **make_data(60))
    ckpt = tmp_path / "net.ckpt.npz"
    common = ["train", spec, "--data", data, "--batch-size", "8", "--seed", "4"]

    real = os.replace
    saves = []

    def replace_then_fill(src, dst):  # the first save goes through; the disk is full after
        saves.append(dst)
        if len(saves) == 1:
            return real(src, dst)
        where, name, replacement = FAULTS[fault]
        if name == "replace":
            return replacement(src, dst)
        raise AssertionError("unreachable")

    if fault == "renaming":
        monkeypatch.setattr(os, "replace", replace_then_fill)
    else:
        first = {"done": False}

        def fdopen(fd, mode="r", *args, **kwargs):
            if not first["done"] and "w" in mode:
                first["done"] = True
                return REAL_FDOPEN(fd, mode, *args, **kwargs)
            if "w" in mode:
                return FAULTS[fault][2](fd, mode, *args, **kwargs)
            return REAL_FDOPEN(fd, mode, *args, **kwargs)

        if fault == "writing to /dev/full" and not os.path.exists("/dev/full"):
            pytest.skip("no /dev/full on this system")
        monkeypatch.setattr(os, "fdopen", fdopen)
    code, _, err = run_cli(*common, "--epochs", "3", "--save", ckpt)
    monkeypatch.undo()
    assert code == 2, err
    assert re.search(
        rf"symbp: error: {re.escape(str(ckpt))}: cannot write the checkpoint: "
        r"No space left on device; the previous checkpoint there is unchanged",
        err,
    )
    assert "Traceback" not in err and leftovers(tmp_path) == []
    module = symbp.compile(spec)
    assert symbp.Trainer.load(ckpt, module).epoch == 1

    code, _, err = run_cli(*common, "--epochs", "3", "--resume", ckpt, "--save", ckpt)
    assert code == 0, err
    straight = tmp_path / "straight.ckpt.npz"
    code, _, err = run_cli(*common, "--epochs", "3", "--save", straight)
    assert code == 0, err
    assert_same_trainer(symbp.Trainer.load(ckpt, module), symbp.Trainer.load(straight, module))


def test_save_error_when_the_file_vanished(tmp_path):
    """The message tells what is at the path now."""
    path = tmp_path / "gone.npz"
    err = train_module._save_error(OSError(errno.ENOSPC, "No space left on device"), path)
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC
    assert err.strerror.endswith("no checkpoint was written")
    err = train_module._save_error(PermissionError(errno.EACCES, "Permission denied"), path)
    assert isinstance(err, PermissionError)
