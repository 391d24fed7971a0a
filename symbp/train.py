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
import tempfile
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

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


def _rows(data: dict) -> int:
    lengths = {len(np.asarray(v)) for v in data.values()}
    if len(lengths) != 1:
        raise ValueError(f"data: every array needs the same number of examples, got {lengths}")
    return lengths.pop()


def one_hot_pairs(module: types.ModuleType, data: dict) -> list[tuple[str, str]]:
    """(Output, target Input) pairs for accuracy: an Input whose rows are one-hot, and an
    Output of the same per-example shape whose argmax is the prediction."""
    pairs = []
    for name, shape in module.INPUTS.items():
        values = np.asarray(data.get(name, np.zeros(0)))
        if len(shape) != 1 or shape[0] < 2 or values.size == 0:
            continue
        rows = values.reshape(len(values), -1)
        if not (np.isin(rows, (0, 1)).all() and (rows.sum(axis=1) == 1).all()):
            continue
        for out in module.OUTPUTS[:-1]:
            pairs.append((out, name))
            break
    return pairs


class Trainer:
    """Mini-batch training of a generated module (NumPy or C backend).

    >>> trainer = Trainer(module, optimizer="adam", lr=1e-3, batch_size=32, seed=0)
    >>> history = trainer.fit({"x": X, "y": Y}, epochs=10, val={"x": Xv, "y": Yv})
    """

    def __init__(
        self, module: types.ModuleType, params: dict | None = None, optimizer: str = "adam",
        lr: float = 1e-3, batch_size: int = 32, seed: int = 0, **hyper: float,
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
        self.history: list[EpochStats] = []
        self._position = _Position()

    # ---------------------------------------------------------------- training

    def fit(
        self, data: dict, epochs: int = 1, val: dict | None = None,
        progress: Callable[[int, int, float], None] | None = None,
        checkpoint: str | os.PathLike | None = None, chunks: int = 20,
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
                raise ValueError(f"data: {rows} examples, but the run being resumed had "
                                 f"{len(pos.order)}")
            per_chunk = max(1, -(-steps_per_epoch // chunks))
            while pos.step < steps_per_epoch:
                start = time.perf_counter()
                take = min(per_chunk, steps_per_epoch - pos.step)
                lo = pos.step * self.batch_size
                piece = pos.order[lo:lo + take * self.batch_size]
                total, steps = self.module.train_epoch(
                    self.params, self.state, self.hyper, piece, self.batch_size, **data)
                pos.seconds += time.perf_counter() - start
                if steps < take:
                    bad = self.epoch * steps_per_epoch + pos.step + steps + 1
                    pos.step += steps
                    raise TrainingError(
                        f"the loss is not finite at step {bad} (epoch {self.epoch + 1}, "
                        f"batch {pos.step + 1}); try a smaller learning rate")
                pos.step += steps
                pos.loss_sum += total
                pos.examples += min(len(piece), steps * self.batch_size)
                if progress is not None:
                    progress(pos.step, steps_per_epoch, pos.loss_sum / pos.examples)
            stats = EpochStats(self.epoch + 1, pos.loss_sum / pos.examples,
                               seconds=pos.seconds, examples=pos.examples)
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

    def evaluate(self, data: dict, batch_size: int = 4096) -> dict:
        """Mean loss over ``data``, and accuracy when a target Input is one-hot."""
        rows = _rows(data)
        pairs = one_hot_pairs(self.module, data)
        loss_sum, correct = 0.0, 0
        loss_name = self.module.OUTPUTS[-1]
        for lo in range(0, rows, batch_size):
            batch = {k: np.asarray(v)[lo:lo + batch_size] for k, v in data.items()}
            out = self.module.forward(self.params, **batch)
            loss_sum += float(np.sum(out[loss_name]))
            for output, target in pairs[:1]:
                guess = np.argmax(out[output].reshape(len(batch[target]), -1), axis=1)
                truth = np.argmax(np.asarray(batch[target]).reshape(len(guess), -1), axis=1)
                correct += int(np.sum(guess == truth))
        metrics = {"loss": loss_sum / rows}
        if pairs:
            metrics["accuracy"] = correct / rows
        return metrics

    def predict(self, **inputs) -> dict:
        """The module's Outputs; Inputs not given (targets, say) are taken as zeros."""
        rows = _rows(inputs) if inputs else 1
        full = {name: inputs[name] if name in inputs else np.zeros((rows, *shape))
                for name, shape in self.module.INPUTS.items()}
        extra = [k for k in inputs if k not in self.module.INPUTS]
        if extra:
            raise ValueError(f"unexpected input {extra[0]!r}; expected {list(self.module.INPUTS)}")
        out = self.module.forward(self.params, **full)
        out.pop(self.module.OUTPUTS[-1], None)
        return out

    # -------------------------------------------------------------- checkpoints

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint atomically: a temporary file in the same folder, then a rename,
        so a crash leaves the previous checkpoint whole."""
        path = Path(path)
        pos = self._position
        meta = {
            "version": CHECKPOINT_VERSION, "epoch": self.epoch, "hyper": self.hyper,
            "batch_size": self.batch_size, "seed": self.seed,
            "rng": self.rng.bit_generator.state, "params": {k: list(v.shape) for k, v in
                                                              self.params.items()},
            "dtype": self.module.DTYPE, "history": [asdict(h) for h in self.history],
            "position": {"step": pos.step, "loss_sum": pos.loss_sum,
                         "examples": pos.examples, "seconds": pos.seconds},
        }
        arrays = {f"param/{k}": v for k, v in self.params.items()}
        arrays.update({f"state/{k}": v for k, v in self.state.items()})
        if pos.order is not None:
            arrays["order"] = pos.order
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                   dir=path.parent if str(path.parent) else ".")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

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
            raise ValueError(f"{path}: checkpoint version {meta.get('version')} is not "
                             f"{CHECKPOINT_VERSION}")
        shapes = {k: tuple(v) for k, v in meta["params"].items()}
        if shapes != dict(module.PARAMS):
            raise ValueError(f"{path}: its params {shapes} are not this network's "
                             f"{dict(module.PARAMS)}")
        hyper = meta["hyper"]
        trainer = cls(module, params={}, optimizer=hyper["optimizer"], lr=hyper["lr"],
                      batch_size=meta["batch_size"], seed=meta["seed"],
                      **{k: v for k, v in hyper.items() if k not in ("optimizer", "lr")})
        dtype = np.dtype(module.DTYPE)
        trainer.params = {k: np.ascontiguousarray(arrays[f"param/{k}"], dtype=dtype)
                          for k in module.PARAMS}
        for key, fresh in trainer.state.items():
            trainer.state[key] = np.ascontiguousarray(arrays[f"state/{key}"], dtype=fresh.dtype)
        trainer.rng.bit_generator.state = meta["rng"]
        trainer.epoch = meta["epoch"]
        trainer.history = [EpochStats(**h) for h in meta["history"]]
        pos = meta["position"]
        trainer._position = _Position(arrays.get("order"), pos["step"], pos["loss_sum"],
                                      pos["examples"], pos["seconds"])
        return trainer

