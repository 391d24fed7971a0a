"""Mini-batch training of a generated module: ``Trainer``, and checkpoints that resume exactly.

A ``Trainer`` holds the params, the optimizer state and the shuffling generator. Each epoch
draws a permutation of the examples and hands it to the module's ``train_epoch`` in a few
chunks (one compiled call each on the C backend; the chunks are only there to report
progress). A checkpoint holds everything the next step depends on, including the epoch's
order and how far into it training got, so a resumed run is the same run, bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import threading
import time
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..ir.randomness import step_key

CHECKPOINT_VERSION = 1


class TrainingError(RuntimeError):
    """Training cannot go on: the loss stopped being finite."""


@dataclass
class EpochStats:
    epoch: int
    loss: float  # mean training loss over the epoch's examples
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float = 0.0
    examples: int = 0

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds else math.inf


@dataclass
class _Position:
    """Where training stands inside the current epoch."""

    order: np.ndarray | None = None  # this epoch's permutation, None between epochs
    step: int = 0  # steps of it done
    loss_sum: float = 0.0
    examples: int = 0
    seconds: float = 0.0


class _deferred_interrupt:
    """Hold Ctrl-C while a compiled call runs and its progress is booked, so that a saved
    checkpoint never misses steps that were already applied. Truthy if one came."""

    def __enter__(self) -> _deferred_interrupt:
        self.hit = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame) -> None:
        self.hit = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def __bool__(self) -> bool:
        return self.hit


def _snapshot(params: dict, state: dict) -> tuple[dict, dict]:
    return ({k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in state.items()})


def _restore(snapshot: tuple[dict, dict], params: dict, state: dict) -> None:
    for saved, live in zip(snapshot, (params, state)):
        for key, value in saved.items():
            live[key][...] = value


def _save_error(e: OSError, path: Path) -> OSError:
    """The error of a checkpoint that could not be written (the disk is full, say), naming
    the file and what is there now; the same OSError subclass and errno as ``e``."""
    kept = (
        "the previous checkpoint there is unchanged"
        if path.exists()
        else "no checkpoint was written"
    )
    reason = e.strerror or str(e) or type(e).__name__
    return OSError(e.errno, f"cannot write the checkpoint: {reason}; {kept}", str(path))


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the system lets a folder be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _rows(data: dict) -> int:
    for name, value in data.items():
        if np.ndim(value) == 0:
            raise ValueError(
                f"data[{name!r}]: expected an array with the examples on axis 0, got a single value"
            )
    lengths = {len(np.asarray(v)) for v in data.values()}
    if len(lengths) != 1:
        raise ValueError(f"data: every array needs the same number of examples, got {lengths}")
    return lengths.pop()


def one_hot_targets(module: types.ModuleType, data: dict) -> list[str]:
    """Inputs whose rows are one-hot vectors: targets whose accuracy can be measured."""
    names = []
    ids = getattr(module, "INT_INPUTS", {})  # token ids are never targets
    for name, shape in module.INPUTS.items():
        values = np.asarray(data.get(name, np.zeros(0)))
        if len(shape) != 1 or shape[0] < 2 or values.size == 0 or name in ids:
            continue
        rows = values.reshape(len(values), -1)
        if np.isin(rows, (0, 1)).all() and (rows.sum(axis=1) == 1).all():
            names.append(name)
    return names


def accuracy_pair(module: types.ModuleType, outputs: dict, targets: list[str]):
    """(Output, target): the first Output with a one-hot target's shape, its argmax the guess."""
    for target in targets:
        shape = module.INPUTS[target]
        for name in module.OUTPUTS[:-1]:
            if outputs[name].shape[1:] == shape:
                return name, target
    return None


def _saved_consts(path, meta: dict, arrays: dict, module: types.ModuleType) -> dict:
    """The Consts a checkpoint holds, as the module's dtype; ValueError naming the file and
    the Const if one is missing, has another shape, or the network has no such Const."""
    want = dict(getattr(module, "CONSTS", {}))
    saved = {k: tuple(v) for k, v in meta.get("consts", {}).items()}
    extra = [k for k in saved if k not in want]
    if extra:
        raise ValueError(f"{path}: it holds a Const {extra[0]!r}, which this network lacks")
    out = {}
    for name, shape in want.items():
        value = arrays.get(f"const/{name}")
        if name not in saved or value is None:
            raise ValueError(f"{path}: it holds no value of the Const {name!r}")
        if saved[name] != shape or value.shape != shape:
            raise ValueError(
                f"{path}: its Const {name!r} has shape {value.shape}, not this network's {shape}"
            )
        out[name] = np.array(value, dtype=module.DTYPE, order="C")
    return out


class Trainer:
    """Mini-batch training of a generated module (NumPy or C backend).

    >>> trainer = Trainer(module, optimizer="adam", lr=1e-3, batch_size=32, seed=0)
    >>> history = trainer.fit({"x": X, "y": Y}, epochs=10, val={"x": Xv, "y": Yv})
    """

    def __init__(
        self,
        module: types.ModuleType,
        params: dict | None = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        batch_size: int = 32,
        seed: int = 0,
        **hyper: float,
    ) -> None:
        self.module = module
        self.params = module.init_params(seed) if params is None else params
        self.hyper = module._hyper({"optimizer": optimizer, "lr": lr, **hyper})
        if type(batch_size) is not int or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.seed = seed
        self.state = module.init_state(optimizer)
        self.rng = np.random.default_rng(seed)
        self.epoch = 0  # epochs completed
        self.steps = 0  # steps completed: step s draws its dropout masks from step_key(seed, s)
        self.history: list[EpochStats] = []
        self._position = _Position()

    # ---------------------------------------------------------------- training

    def fit(
        self,
        data: dict,
        epochs: int = 1,
        val: dict | None = None,
        progress: Callable[[int, int, float], None] | None = None,
        checkpoint: str | os.PathLike | None = None,
        chunks: int = 20,
    ) -> list[EpochStats]:
        """Train ``epochs`` more epochs on ``data`` (Input name -> array, batch on axis 0).

        ``progress(steps done, steps in the epoch, mean loss so far)`` is called between
        chunks; ``checkpoint`` is written after every epoch. Raises ``TrainingError`` when a
        loss is not finite (the params stay as they were before that step).
        """
        rows = _rows(data)
        if rows == 0:
            raise ValueError("data: there are no examples")
        steps_per_epoch = -(-rows // self.batch_size)
        done: list[EpochStats] = []
        for _ in range(epochs):
            pos = self._position
            if pos.order is None:
                pos.order = self.rng.permutation(rows).astype(np.int64)
            if len(pos.order) != rows:
                raise ValueError(
                    f"data: {rows} examples, but the run being resumed had {len(pos.order)}"
                )
            per_chunk = max(1, -(-steps_per_epoch // chunks))
            while pos.step < steps_per_epoch:
                self._chunk(data, min(per_chunk, steps_per_epoch - pos.step), steps_per_epoch)
                if progress is not None:
                    progress(pos.step, steps_per_epoch, pos.loss_sum / pos.examples)
            stats = EpochStats(
                self.epoch + 1,
                pos.loss_sum / pos.examples,
                seconds=pos.seconds,
                examples=pos.examples,
            )
            if val is not None:
                metrics = self.evaluate(val)
                stats.val_loss, stats.val_accuracy = metrics["loss"], metrics.get("accuracy")
            self.epoch += 1
            self._position = _Position()
            self.history.append(stats)
            done.append(stats)
            if checkpoint is not None:
                self.save(checkpoint)
        return done

    def _chunk(self, data: dict, take: int, steps_per_epoch: int) -> None:
        """``take`` more steps of the current epoch, in one call of the module, booked in
        ``self._position`` as one: a Ctrl-C waits for it, a failure undoes it."""
        pos = self._position
        start = time.perf_counter()
        lo = pos.step * self.batch_size
        piece = pos.order[lo : lo + take * self.batch_size]
        with _deferred_interrupt() as interrupted:
            before = _snapshot(self.params, self.state)
            key = (
                (step_key(self.seed, self.steps),) if getattr(self.module, "RANDOM", False) else ()
            )
            try:
                total, steps = self.module.train_epoch(
                    self.params, self.state, self.hyper, piece, self.batch_size, *key, **data
                )
            except BaseException:  # whatever it applied is undone: nothing is booked
                _restore(before, self.params, self.state)
                raise
            pos.seconds += time.perf_counter() - start  # book what was applied
            pos.step += steps
            self.steps += steps
            pos.loss_sum += total
            pos.examples += min(len(piece), steps * self.batch_size)
        if interrupted:
            raise KeyboardInterrupt
        if steps < take:
            step = self.epoch * steps_per_epoch + pos.step + 1
            raise TrainingError(
                f"the loss is not finite at step {step} (epoch {self.epoch + 1}, batch "
                f"{pos.step + 1}); the params are those before it; try a smaller learning rate"
            )

    def evaluate(self, data: dict, batch_size: int = 4096) -> dict:
        """Mean loss over ``data``, and accuracy when a target Input is one-hot and an Output
        has its shape (the prediction is that Output's argmax)."""
        rows = _rows(data)
        targets = one_hot_targets(self.module, data)
        loss_sum, correct, pair = 0.0, 0, None
        loss_name = self.module.OUTPUTS[-1]
        for lo in range(0, rows, batch_size):
            batch = {k: np.asarray(v)[lo : lo + batch_size] for k, v in data.items()}
            out = self.module.forward(self.params, **batch)
            loss_sum += float(np.sum(out[loss_name]))
            pair = pair or accuracy_pair(self.module, out, targets)
            if pair is not None:
                output, target = pair
                guess = np.argmax(out[output], axis=1)
                correct += int(np.sum(guess == np.argmax(batch[target], axis=1)))
        metrics = {"loss": loss_sum / rows}
        if pair is not None:
            metrics["accuracy"] = correct / rows
        return metrics

    def predict(self, **inputs) -> dict:
        """The module's Outputs; Inputs not given (targets, say) are taken as zeros."""
        rows = _rows(inputs) if inputs else 1
        ids = getattr(self.module, "INT_INPUTS", {})  # (zeros there: id 0)
        full = {
            name: inputs[name]
            if name in inputs
            else np.zeros((rows, *shape), dtype=np.int64 if name in ids else float)
            for name, shape in self.module.INPUTS.items()
        }
        extra = [k for k in inputs if k not in self.module.INPUTS]
        if extra:
            raise ValueError(f"unexpected input {extra[0]!r}; expected {list(self.module.INPUTS)}")
        out = self.module.forward(self.params, **full)
        out.pop(self.module.OUTPUTS[-1], None)
        return out

    # -------------------------------------------------------------- checkpoints

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint atomically: a temporary file in the same folder, then a rename,
        so a crash leaves the previous checkpoint whole. A write that fails (a full disk)
        removes the temporary file and raises OSError naming ``path``, whose previous
        checkpoint is unchanged."""
        path = Path(path)
        pos = self._position
        consts = getattr(self.module, "CONSTS", {})
        params = {k: v for k, v in self.params.items() if k not in consts}
        meta = {
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "steps": self.steps,
            "hyper": self.hyper,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "params": {k: list(v.shape) for k, v in params.items()},
            "consts": {k: list(np.shape(self.params[k])) for k in consts if k in self.params},
            "dtype": self.module.DTYPE,
            "history": [asdict(h) for h in self.history],
            "position": {
                "step": pos.step,
                "loss_sum": pos.loss_sum,
                "examples": pos.examples,
                "seconds": pos.seconds,
            },
        }
        arrays = {f"param/{k}": v for k, v in params.items()}
        arrays.update({f"const/{k}": self.params[k] for k in consts if k in self.params})
        arrays.update({f"state/{k}": v for k, v in self.state.items()})
        if pos.order is not None:
            arrays["order"] = pos.order
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        folder = path.parent if str(path.parent) else Path(".")
        for stale in folder.glob(f".{path.name}.*.tmp"):  # left by a run killed mid-write
            try:
                stale.unlink()
            except OSError:
                pass
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        except OSError as e:
            raise _save_error(e, path) from None
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(e, OSError):  # disk full, quota, I/O error: say which file, and
                raise _save_error(e, path) from e  # that the one before is still there
            raise
        _sync_folder(folder)

    @classmethod
    def load(cls, path: str | os.PathLike, module: types.ModuleType) -> Trainer:
        """A trainer exactly where the checkpoint at ``path`` left off."""
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            meta = json.loads(bytes(arrays.pop("meta")).decode())
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a symbp checkpoint ({e})") from None
        if meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"{path}: checkpoint version {meta.get('version')} is not {CHECKPOINT_VERSION}"
            )
        shapes = {k: tuple(v) for k, v in meta["params"].items()}
        if shapes != dict(module.PARAMS):
            raise ValueError(
                f"{path}: its params {shapes} are not this network's {dict(module.PARAMS)}"
            )
        hyper = meta["hyper"]
        trainer = cls(
            module,
            params={},
            optimizer=hyper["optimizer"],
            lr=hyper["lr"],
            batch_size=meta["batch_size"],
            seed=meta["seed"],
            **{k: v for k, v in hyper.items() if k not in ("optimizer", "lr")},
        )
        dtype = np.dtype(module.DTYPE)
        trainer.params = {
            k: np.array(arrays[f"param/{k}"], dtype=dtype, order="C") for k in module.PARAMS
        }
        trainer.params.update(_saved_consts(path, meta, arrays, module))
        for key, fresh in trainer.state.items():
            trainer.state[key] = np.array(arrays[f"state/{key}"], dtype=fresh.dtype, order="C")
        trainer.rng.bit_generator.state = meta["rng"]
        trainer.epoch = meta["epoch"]
        trainer.steps = meta.get("steps", 0)  # (checkpoints written before dropout lack it)
        trainer.history = [EpochStats(**h) for h in meta["history"]]
        pos = meta["position"]
        trainer._position = _Position(
            arrays.get("order"), pos["step"], pos["loss_sum"], pos["examples"], pos["seconds"]
        )
        return trainer
