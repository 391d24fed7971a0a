"""Write windows of characters of symbp's own docs to an .npz for `symbp train`.

    python examples/char_rnn/make_data.py [chars.npz]

The text is the project's documentation (README.md, BENCHMARKS.md, RELIABILITY.md), folded to
lower case over a vocabulary of 64 symbols (``VOCAB``; anything else is the last one, ``~``).
Each example is a window of ``T`` = 16 characters: ``ids`` their ids (integers), ``y`` the
character after each, one-hot. Windows start every 4 characters; the last tenth of the text
is held out (``ids_val``, ``y_val``). Also prints the unigram entropy of the text, the loss
per character of a model that knows only the characters' frequencies.
"""

import sys
from pathlib import Path

import numpy as np

T = 16
STRIDE = 4
VOCAB = " \netaoinshrdlcumwfgypbvkjxqz0123456789.,;:?'\"()[]{}<>-_/*`#=+|%~"
assert len(VOCAB) == 64 and len(set(VOCAB)) == 64
ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "BENCHMARKS.md", "RELIABILITY.md")


def encode(text: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(VOCAB)}
    return np.array([index.get(c, len(VOCAB) - 1) for c in text.lower()], dtype=np.int64)


def decode(ids) -> str:
    return "".join(VOCAB[i] for i in ids)


def windows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, len(codes) - T - 1, STRIDE)
    ids = codes[starts[:, None] + np.arange(T)]
    after = codes[starts[:, None] + np.arange(1, T + 1)]
    return ids, np.eye(len(VOCAB), dtype=np.float32)[after]


def unigram_entropy(codes: np.ndarray) -> float:
    p = np.bincount(codes, minlength=len(VOCAB)) / len(codes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def main(path: str = "chars.npz") -> None:
    text = "\n".join((ROOT / name).read_text(encoding="utf-8") for name in DOCS)
    codes = encode(text)
    cut = len(codes) * 9 // 10
    ids, y = windows(codes[:cut])
    ids_val, y_val = windows(codes[cut:])
    np.savez_compressed(path, ids=ids, y=y, ids_val=ids_val, y_val=y_val)
    print(
        f"wrote {path}: {len(ids)} training and {len(ids_val)} held-out windows of {T} "
        f"characters; unigram entropy {unigram_entropy(codes):.3f} nats per character"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
