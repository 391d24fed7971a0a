"""symbp: a symbolic graph compiler for training neural networks.

    spec text --parse--> Graph --grad--> Graph --passes--> Program --schedule/render--> module

A network is declared as one example's equations (a ``.sbp`` spec, or built in Python with
``symbp.input``, ``symbp.param``, operators and the functions ``symbp.sigmoid``, ...),
differentiated in reverse by graph rewriting, optimized, and emitted as a readable NumPy
module or C compiled through cffi.
"""

__version__ = "0.1.0"

from .check.gradients import check_grads  # noqa: E402
from .compiler import compile, generate, grad  # noqa: E402
from .errors import SpecError  # noqa: E402
from .frontend.builder import (  # noqa: E402
    COMPARISONS,
    FUNCTIONS,
    concatenate,
    const,
    cross_entropy,
    dropout,
    flatten,
    full,
    input,
    log_softmax,
    logsumexp,
    max,
    mean,
    min,
    network,
    ones,
    param,
    reshape,
    softmax,
    stack,
    sum,
    zeros,
)
from .frontend.parser import parse, parse_text  # noqa: E402
from .hessian import hvp  # noqa: E402
from .ir.graph import Graph  # noqa: E402
from .ir.node import Node  # noqa: E402
from .ir.randomness import step_key  # noqa: E402
from .train.trainer import Trainer, TrainingError  # noqa: E402


def __getattr__(name: str):
    """``symbp.sigmoid``, ``symbp.exp``, ...: the elementwise functions of the spec language,
    one for each row of ``symbp.ir.functions``; ``symbp.less``, ...: its comparisons."""
    try:
        return FUNCTIONS[name] if name in FUNCTIONS else COMPARISONS[name]
    except KeyError:
        raise AttributeError(f"module 'symbp' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted([*globals(), *FUNCTIONS, *COMPARISONS])


__all__ = [
    "SpecError",
    "Graph",
    "Node",
    "parse",
    "parse_text",
    "compile",
    "generate",
    "check_grads",
    "Trainer",
    "TrainingError",
    "hvp",
    "input",
    "param",
    "const",
    "network",
    *FUNCTIONS,
    "sum",
    "mean",
    "logsumexp",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "grad",
    # dropout
    "dropout",
    "step_key",
    # indexing
    "concatenate",
    "stack",
    "reshape",
    "flatten",
    # literal-shape tensors
    "zeros",
    "ones",
    "full",
    "max",
    "min",
    *COMPARISONS,
]
