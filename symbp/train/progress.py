"""What ``symbp train`` prints: a progress bar per epoch, epoch lines, a final summary."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .trainer import EpochStats


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar:
    """One line per epoch, redrawn in place on a terminal; silent until the end elsewhere."""

    def __init__(
        self,
        epochs: int,
        batch_size: int,
        rows: int,
        out: TextIO | None = None,
        log: TextIO | None = None,
        width: int = 24,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.rows = rows
        self.out = out or sys.stderr  # the live bar
        self.log = log or sys.stdout  # a line per epoch
        self.width = width
        self.live = hasattr(self.out, "isatty") and self.out.isatty()
        self.epoch = 0
        self.start = time.perf_counter()

    def begin(self, epoch: int) -> None:
        self.epoch = epoch
        self.start = time.perf_counter()

    def update(self, step: int, steps: int, loss: float) -> None:
        if not self.live:
            return
        elapsed = time.perf_counter() - self.start
        done = step / steps
        filled = int(self.width * done)
        bar = "#" * filled + "." * (self.width - filled)
        rate = min(step * self.batch_size, self.rows) / elapsed if elapsed > 0 else 0.0
        left = elapsed / done - elapsed if done > 0 else 0.0
        self.out.write(
            f"\repoch {self.epoch}/{self.epochs} [{bar}] {done:4.0%} "
            f"loss {loss:.4g}  {rate:,.0f} ex/s  eta {_clock(left)} "
        )
        self.out.flush()

    def end(self, stats: EpochStats) -> None:
        if self.live:
            self.out.write("\r" + " " * 90 + "\r")
            self.out.flush()
        line = (
            f"epoch {stats.epoch}/{self.epochs}  loss {stats.loss:.4g}  "
            f"{stats.examples_per_second:,.0f} ex/s  {stats.seconds:.2f} s"
        )
        if stats.val_loss is not None:
            line += f"  val loss {stats.val_loss:.4g}"
        if stats.val_accuracy is not None:
            line += f"  val accuracy {stats.val_accuracy:.2%}"
        self.log.write(line + "\n")
        self.log.flush()


def summary(history: list[EpochStats], wall: float, checkpoint: str) -> str:
    last = history[-1]
    seconds = sum(h.seconds for h in history)
    examples = sum(h.examples for h in history)
    text = (
        f"trained {len(history)} epochs in {wall:.1f} s ({examples / max(seconds, 1e-9):,.0f} "
        f"examples/s in training steps): loss {last.loss:.4g}"
    )
    if last.val_loss is not None:
        text += f", val loss {last.val_loss:.4g}"
    if last.val_accuracy is not None:
        text += f", val accuracy {last.val_accuracy:.2%}"
    return text + f"\ncheckpoint: {checkpoint}"


def plot(history: list[EpochStats], path: str) -> None:
    """Loss (and accuracy) curves as a PNG; needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h.epoch for h in history]
    accuracy = [h.val_accuracy for h in history]
    fig, axes = plt.subplots(
        1, 2 if any(a is not None for a in accuracy) else 1, figsize=(10, 4), squeeze=False
    )
    ax = axes[0][0]
    ax.plot(epochs, [h.loss for h in history], label="train")
    if any(h.val_loss is not None for h in history):
        ax.plot(epochs, [h.val_loss for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    if axes.shape[1] > 1:
        axes[0][1].plot(epochs, accuracy)
        axes[0][1].set_xlabel("epoch")
        axes[0][1].set_ylabel("validation accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
