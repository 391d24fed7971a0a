"""The README's samples of ``symbp grad`` are what the command prints today.

Every line of a sample is a line of the real output, its ``# ...`` comment aside; a line
abridged with ``...`` matches the real line's beginning. A sample that drifts from the
compiler fails here, not in a new user's hands.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import symbp
from symbp.explain.equations import backward_equations
from symbp.passes.pipeline import optimize

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
# (spec, the sample's code block): blocks that follow a mention of `symbp grad SPEC`
SAMPLES = [
    ("examples/mlp.sbp", "$ symbp grad examples/mlp.sbp"),
    ("examples/digits/cnn.sbp", "dc1 = conv_transpose2d("),
]


def block(marker: str) -> list[str]:
    """The lines of the README's code block holding ``marker``."""
    for found in re.finditer(r"```[a-z]*\n(.*?)```", README, re.S):
        if marker in found.group(1):
            return found.group(1).splitlines()
    raise AssertionError(f"no code block in README.md holds {marker!r}")


@pytest.mark.parametrize("spec, marker", SAMPLES, ids=[s for s, _ in SAMPLES])
def test_the_readme_grad_samples_are_the_real_output(spec, marker):
    real = backward_equations(optimize(symbp.parse(ROOT / spec))).splitlines()
    equations = [line.split("  #")[0].rstrip() for line in real]
    for line in block(marker):
        if line.startswith("$") or line.strip() in ("", "..."):
            continue
        text = line.split("  #")[0].rstrip()
        if "..." in text:
            head = text.split("...")[0]
            assert any(e.startswith(head) for e in equations), (line, real)
        elif not text.startswith("#"):
            assert text in equations, (line, real)
        else:
            assert line in real, (line, real)
