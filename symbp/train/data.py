"""Training data from a ``.npz`` file: arrays named after a module's Inputs, checked against
its shapes, and the held-out set (arrays suffixed ``_val``, or a seeded split)."""

from __future__ import annotations

import numpy as np


class DataError(ValueError):
    """The training data does not fit the spec."""


def _check_ids(path: str, name: str, value: np.ndarray, count: int | None) -> None:
    """The array of an Input of integer ids holds integers in 0 <= id < count."""
    if count is None:
        return
    if value.dtype.kind not in "iu":
        raise DataError(
            f"{path}: array {name!r} holds {value.dtype}; Input {name!r} indexes, so it "
            "needs integer ids"
        )
    if value.size and (value.min() < 0 or value.max() >= count):
        where = tuple(int(i) for i in np.argwhere((value < 0) | (value >= count))[0])
        raise DataError(
            f"{path}: array {name!r} holds id {value[where]} at {where}: ids must be in "
            f"0 <= id < {count}"
        )


def load_data(path: str, module, val_split: float, seed: int) -> tuple[dict, dict | None]:
    """Arrays named after the Inputs, and the held-out ones (suffix _val, or a split)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    names = list(module.INPUTS)
    train, val = {}, {}
    for name in names:
        if name not in arrays:
            raise DataError(
                f"{path}: no array {name!r}; the spec's Inputs are "
                f"{', '.join(names)} and the file has {', '.join(arrays) or 'none'}"
            )
        train[name] = arrays[name]
        if f"{name}_val" in arrays:
            val[name] = arrays[f"{name}_val"]
    if val and set(val) != set(names):
        missing = [f"{n}_val" for n in names if n not in val]
        raise DataError(f"{path}: held-out arrays are incomplete: no {', '.join(missing)}")
    for split in (train, val):
        rows = {len(v) if v.ndim else 0 for v in split.values()}
        for name, value in split.items():
            shape = module.INPUTS[name]
            if value.ndim != len(shape) + 1 or value.shape[1:] != shape:
                want = ", ".join(["examples", *map(str, shape)])
                raise DataError(
                    f"{path}: array {name!r} has shape {value.shape}; the spec wants ({want})"
                )
            if value.dtype.kind not in "fiub":
                raise DataError(f"{path}: array {name!r} holds {value.dtype}, not numbers")
            _check_ids(path, name, value, getattr(module, "INT_INPUTS", {}).get(name))
        if len(rows) > 1:
            raise DataError(
                f"{path}: the arrays have different numbers of examples: "
                + ", ".join(f"{k} {len(v)}" for k, v in split.items())
            )
    if not val and val_split > 0:
        rows = len(next(iter(train.values())))
        order = np.random.default_rng(seed).permutation(rows)
        cut = rows - max(1, int(round(rows * val_split)))
        val = {k: v[order[cut:]] for k, v in train.items()}
        train = {k: v[order[:cut]] for k, v in train.items()}
    if not train or len(next(iter(train.values()))) == 0:
        raise DataError(f"{path}: no training examples")
    return train, (val or None)
