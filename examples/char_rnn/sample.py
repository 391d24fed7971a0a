"""Let a trained char_rnn.sbp write: each next character drawn from its ``next_char`` output.

    python examples/char_rnn/sample.py char_rnn.ckpt.npz ["the prompt"] [--chars 200]

Compiles the spec beside this script (with C by default, from symbp's cache after the first
time), loads the checkpoint of ``symbp train``, and slides a window of
the last 16 characters along what it writes, starting from the prompt.
"""

import argparse
from pathlib import Path

import numpy as np
from make_data import VOCAB, T, decode, encode

import symbp

HERE = Path(__file__).resolve().parent


def sample(module, params, prompt: str, chars: int, seed: int = 0, temperature: float = 0.8):
    """``prompt`` and ``chars`` characters drawn after it, each from the network's
    ``next_char`` over the 16 characters before it (blanks before the prompt's start)."""
    rng = np.random.default_rng(seed)
    codes = list(encode(prompt.rjust(T)))
    start = len(codes)
    for _ in range(chars):
        window = np.array(codes[-T:], dtype=np.int64)[None]
        out = module.forward(params, ids=window, y=np.zeros((1, T, len(VOCAB))))
        logits = np.log(np.maximum(out["next_char"][0], 1e-30)) / temperature
        p = np.exp(logits - logits.max())
        codes.append(int(rng.choice(len(VOCAB), p=p / p.sum())))
    return prompt + decode(codes[start:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("prompt", nargs="?", default="the gradient of ")
    parser.add_argument("--chars", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("numpy", "c"), default="c")
    args = parser.parse_args()
    module = symbp.compile(symbp.parse(HERE / "char_rnn.sbp"), backend=args.backend)
    params = symbp.Trainer.load(args.checkpoint, module).params
    print(sample(module, params, args.prompt, args.chars, args.seed))


if __name__ == "__main__":
    main()
