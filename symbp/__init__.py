"""symbp: a symbolic graph compiler for training neural networks.

    spec text --parse--> Graph --grad--> Graph --passes--> Program --schedule/render--> module

A network is declared as one example's equations (a ``.sbp`` spec, or built in Python with
``symbp.input``, ``symbp.param`` and operators), differentiated in reverse by graph
rewriting, optimized, and emitted as a readable NumPy module.
"""

__version__ = "0.1.0"

from .check.gradients import check_grads  # noqa: E402
from .compiler import compile, generate  # noqa: E402
from .errors import SpecError  # noqa: E402
from .frontend.builder import (  # noqa: E402
    abs,
    cos,
    cross_entropy,
    exp,
    grad,
    input,
    log,
    log_softmax,
    logsumexp,
    mean,
    network,
    param,
    relu,
    sigmoid,
    sin,
    softmax,
    softplus,
    sqrt,
    sum,
    tanh,
)
from .frontend.parser import parse, parse_text  # noqa: E402
from .hessian import hvp  # noqa: E402
from .ir.graph import Graph  # noqa: E402
from .ir.node import Node  # noqa: E402
from .train.trainer import Trainer, TrainingError  # noqa: E402

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
    "network",
    "sigmoid",
    "tanh",
    "relu",
    "softplus",
    "exp",
    "log",
    "sqrt",
    "sin",
    "cos",
    "abs",
    "sum",
    "mean",
    "logsumexp",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "grad",
]
