"""C identifiers for user names, and elementwise expressions printed as C."""

from __future__ import annotations

from fractions import Fraction

from ...codegen.printing import ExprPrinter, Term, exact_decimal, paren
from ...codegen.schedule import Namer
from ...ir.expr import ATOM, Expr

C_RESERVED = {
    # C99 keywords and names the translation unit or its headers use
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "bool",
    "true",
    "false",
    "exp",
    "log",
    "sqrt",
    "tanh",
    "sin",
    "cos",
    "fabs",
    "pow",
    "log1p",
    "fmax",
    "isfinite",
    "INFINITY",
    "NULL",
    "main",
    "errno",
    "real",
    "blasint",
    "sigmoid_",
    "softplus_",
    "relu_",
    "step_",
    "sign_",
    "gemm_",
    "asm",
    "fortran",
    "I",
    "complex",
    "imaginary",
    "isnan",
    "isinf",
    "signbit",
    "fpclassify",
    "isnormal",
    "math_errhandling",
    "memcpy",
    "memset",
    "expf",
    "logf",
    "log1pf",
    "sqrtf",
    "powf",
    "tanhf",
    "sinf",
    "cosf",
    "fabsf",
    "fmaxf",
    # keywords of GNU C and C23 (gcc 15 builds C23 by default), names gnu99 predefines as
    # macros, and the lowercase macros of the headers cffi's build includes (Python.h,
    # <stdio.h>, <sys/stat.h>, openblas_config.h); offsetof also stops cffi's parser
    "typeof",
    "typeof_unqual",
    "alignas",
    "alignof",
    "constexpr",
    "nullptr",
    "static_assert",
    "thread_local",
    "noreturn",
    "linux",
    "unix",
    "i386",
    "offsetof",
    "xdouble",
    "st_atime",
    "st_mtime",
    "st_ctime",
    "sched_priority",
    "stdin",
    "stdout",
    "stderr",
}


MACRO_PREFIXES = (
    "_",
    "scipy_",
    "cblas",
    "Cblas",
    "CBLAS",
    "openblas",
    "OPENBLAS",
    "FP_",
    "M_",
    "LAPACK",
    "__",
    "Py",
    "PRI",
    "SCN",
    "L_",
    "P_",
    "symbp_",
)


def c_identifier(name: str) -> str:
    """An ASCII C identifier for a user name: other characters spelled as uXXXX. Names the
    headers may define as macros (leading underscores, NAN, M_PI, CblasTrans, ...) get a v
    in front: all capitals of three letters or more, and the headers' own prefixes."""
    out = "".join(
        ch if ch.isascii() and (ch.isalnum() or ch == "_") else f"u{ord(ch):04x}" for ch in name
    )
    macro_like = len(out) >= 3 and out.upper() == out and any(ch.isalpha() for ch in out)
    if out.startswith(MACRO_PREFIXES) or macro_like:
        out = "v" + out
    return out


class CNamer(Namer):
    """Hands out valid, unreserved, unique C identifiers."""

    def __call__(self, want: str) -> str:
        return super().__call__(c_identifier(want))


class CExprPrinter(ExprPrinter):
    """Elementwise expressions in C; <tgmath.h> makes exp, log, ... follow ``real``."""

    functions = {
        "exp": "exp",
        "log": "log",
        "tanh": "tanh",
        "sin": "sin",
        "cos": "cos",
        "sign": "sign_",
        "abs": "fabs",
        "sqrt": "sqrt",
        "sigmoid": "sigmoid_",
        "softplus": "softplus_",
        "relu": "relu_",
        "step": "step_",
    }

    def __init__(self, dtype: str) -> None:
        self.suffix = "f" if dtype == "float32" else ""

    def literal(self, value: float) -> str:
        text = repr(float(value))
        if "e" not in text and "." not in text:
            text += ".0"
        return text + self.suffix

    def number(self, value) -> Term:
        exact_ints = (
            max(abs(value.numerator), value.denominator) <= 2**53
            if isinstance(value, Fraction)
            else False
        )
        if isinstance(value, float) or value.denominator == 1 or exact_decimal(value):
            text = self.literal(value)
        elif exact_ints:  # 1/3 as (1.0/3.0): the division rounds it as Python would
            text = f"({self.literal(value.numerator)}/{self.literal(value.denominator)})"
        else:
            text = self.literal(float(value))
        return (f"({text})", ATOM) if text.startswith("-") else (text, ATOM)

    def power(self, base: Term, exponent: Expr, exp_term: Term) -> Term:
        b = paren(base, ATOM)
        k = exponent.value if exponent.op == "num" else None
        if k is not None and k == int(k) and 1 <= abs(int(k)) <= 4:
            prod = "*".join([b] * abs(int(k)))
            return (f"({prod})" if k > 0 else f"(1/({prod}))"), ATOM
        return f"pow({base[0]}, {exp_term[0]})", ATOM
