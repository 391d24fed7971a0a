"""symbp: a symbolic graph compiler for training neural networks.

    spec text --parse--> Graph --grad--> Graph --passes--> Program --schedule/render--> module

A network is declared as one example's equations (a ``.sbp`` spec, or built in Python with
``symbp.input``, ``symbp.param`` and operators), differentiated in reverse by graph
rewriting, optimized, and emitted as a readable NumPy module.
"""

__version__ = "0.1.0"

from .errors import SpecError  # noqa: E402
from .ir import Graph, Node  # noqa: E402
from .parse import parse, parse_text  # noqa: E402
from .compiler import compile, generate  # noqa: E402
from .check import check_grads  # noqa: E402
from .train import Trainer, TrainingError  # noqa: E402
from .hessian import hvp  # noqa: E402
from .build import (  # noqa: E402
    input, param, network, sigmoid, tanh, relu, softplus, exp, log, sqrt, sin, cos,
    abs, sum, mean, logsumexp, softmax, log_softmax, cross_entropy, grad,
)

__all__ = [
    "SpecError", "Graph", "Node", "parse", "parse_text", "compile", "generate", "check_grads",
    "Trainer", "TrainingError", "hvp",
    "input", "param", "network", "sigmoid", "tanh", "relu", "softplus", "exp", "log", "sqrt",
    "sin", "cos", "abs", "sum", "mean", "logsumexp", "softmax", "log_softmax",
    "cross_entropy", "grad",
]
