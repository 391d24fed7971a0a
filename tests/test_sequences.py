"""The sequence examples, trained from the command line: the character-level RNN of
examples/char_rnn/ (an embedding, a loop over 16 characters, slicing) and the causal
self-attention block of examples/attention.sbp (slicing, reshape, concatenate, where)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symbp
from symbp import cli

ROOT = Path(__file__).resolve().parent.parent
CHAR_RNN = ROOT / "examples" / "char_rnn"
ATTENTION = ROOT / "examples" / "attention.sbp"
VAL_LOSS = re.compile(r"^epoch .*  val loss (\S+)$", re.M)


def train(capsys, *argv) -> str:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in out + err, out + err
    return out


def test_char_rnn_learns_well_below_the_unigram_entropy(tmp_path, capsys):
    made = subprocess.run(
        [sys.executable, CHAR_RNN / "make_data.py", tmp_path / "chars.npz"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    entropy = float(re.search(r"unigram entropy ([\d.]+) nats", made.stdout).group(1))
    assert 3.0 < entropy < 3.6, made.stdout  # lower-case English prose, code and tables
    with np.load(tmp_path / "chars.npz") as f:  # half the windows: a short test
        np.savez(tmp_path / "part.npz", **{k: f[k][: len(f[k]) // 2] for k in f.files})
    out = train(
        capsys,
        "train",
        CHAR_RNN / "char_rnn.sbp",
        "--data",
        tmp_path / "part.npz",
        "--epochs",
        2,
        "--batch-size",
        16,
        "--lr",
        0.003,
        "--dtype",
        "float32",
        "--save",
        tmp_path / "rnn.ckpt.npz",
    )
    val = [float(v) for v in VAL_LOSS.findall(out)]
    assert len(val) == 2 and val[-1] < 0.8 * entropy, out
    # the sampler writes from the checkpoint, a character at a time
    sys.path.insert(0, str(CHAR_RNN))
    try:
        import sample
    finally:
        sys.path.remove(str(CHAR_RNN))
    module = symbp.compile(symbp.parse(CHAR_RNN / "char_rnn.sbp"), dtype="float32")
    params = symbp.Trainer.load(tmp_path / "rnn.ckpt.npz", module).params
    text = sample.sample(module, params, "the gradient of ", 40)
    assert text.startswith("the gradient of ") and len(text) == 16 + 40
    assert set(text) <= set(sample.VOCAB)


def attention_data(n: int, seed: int) -> dict[str, np.ndarray]:
    """Sequences of 8 tokens, and as the target the mean of the tokens up to each: what a
    causal attention of even weights computes."""
    x = np.random.default_rng(seed).normal(size=(n, 8, 16))
    return {"x": x, "y": np.cumsum(x, axis=1) / np.arange(1, 9)[None, :, None]}


def test_attention_block_trains_from_the_command_line(tmp_path, capsys):
    train_set, held_out = attention_data(512, 0), attention_data(128, 1)
    np.savez(tmp_path / "seq.npz", **train_set, **{f"{k}_val": v for k, v in held_out.items()})
    out = train(
        capsys,
        "train",
        ATTENTION,
        "--data",
        tmp_path / "seq.npz",
        "--epochs",
        6,
        "--lr",
        0.01,
        "--save",
        tmp_path / "att.ckpt.npz",
    )
    val = [float(v) for v in VAL_LOSS.findall(out)]
    module = symbp.compile(symbp.parse(ATTENTION))
    start = module.loss(module.init_params(0), **held_out)
    assert len(val) == 6 and val[-1] < 0.1 * start, (start, out)


def test_attention_is_causal_and_the_backends_agree():
    """A token's output does not depend on the tokens after it; C and NumPy agree to
    1e-12 on the loss, every gradient and a step."""
    graph = symbp.parse(ATTENTION)
    numpy_module = symbp.compile(graph)
    params = numpy_module.init_params(3)
    data = attention_data(4, 2)
    params["Wq"] = params["Wq"] * 3  # weights far from even
    changed = {k: v.copy() for k, v in data.items()}
    changed["x"][:, 5:] += 1.0  # tokens 5, 6, 7 only
    loss, grads = numpy_module.loss_and_grads(params, **data)
    _, grads_changed = numpy_module.loss_and_grads(params, **changed)
    assert not np.allclose(grads["Wq"], grads_changed["Wq"])
    early = ATTENTION.read_text().replace("mean((out - y) ** 2)", "mean((out[:5] - y[:5]) ** 2)")
    early = symbp.compile(symbp.parse_text(early))  # the loss of tokens 0 to 4 alone
    assert early.loss(params, **data) == early.loss(params, **changed)
    c_module = symbp.compile(graph, backend="c")
    loss_c, grads_c = c_module.loss_and_grads(params, **data)
    assert loss_c == pytest.approx(loss, rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(grads_c[name], g, rtol=1e-12, atol=1e-14)


def test_symbp_check_passes_on_the_char_rnn():
    """At the check point the 16-step recurrence is not chaotic (weights scaled by their
    fan-in), so finite differences measure the gradient, not noise."""
    report = symbp.check_grads(CHAR_RNN / "char_rnn.sbp", backend="numpy")
    assert report.ok, report.table()
