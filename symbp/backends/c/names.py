"""C identifiers for user names, and elementwise expressions printed as C.

``SPELLINGS`` extends the usual C spelling of the functions of ``symbp.ir.functions`` (the
C99 function of the same name, under <tgmath.h> for either real type, or a helper computing
the function's formula) with the functions C spells otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ...codegen.schedule import Namer
from ...ir.expr import PARAMETERS, Expr, definition
from ...ir.functions import FUNCTIONS, Function
from ...ir.notation import ATOM, ExprPrinter, Term, exact_decimal, paren, print_expr

# the functions of C99's <math.h> (<tgmath.h> picks the float or double one)
C99_MATH = (
    "acos asin atan atan2 cos sin tan acosh asinh atanh cosh sinh tanh exp exp2 expm1 frexp "
    "ilogb ldexp log log10 log1p log2 logb modf scalbn scalbln cbrt fabs hypot pow sqrt erf "
    "erfc lgamma tgamma ceil floor nearbyint rint lrint llrint round lround llround trunc "
    "fmod remainder remquo copysign nan nextafter nexttoward fdim fmax fmin fma"
).split()

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
    "isfinite",
    "INFINITY",
    "NULL",
    "main",
    "errno",
    "real",
    "blasint",
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


@dataclass(frozen=True)
class Spelling:
    """How C code calls a function: ``name``; and when the name is the file's own, the
    ``helper`` defining it (None: a helper computing the function's formula)."""

    name: str
    helper: str | None = ""


def _usual(f: Function) -> Spelling | None:
    if f.name in C99_MATH:
        return Spelling(f.name)
    return Spelling(f"{f.name}_", None) if f.formula is not None else None


# the functions C has under another name, or that need care with large arguments
SPELLINGS: dict[str, Spelling] = {
    **{name: s for name, s in ((n, _usual(f)) for n, f in FUNCTIONS.items()) if s},
    "abs": Spelling("fabs"),
    "softplus": Spelling(
        "softplus_",
        "static inline real softplus_(real x) { return fmax(x, (real)0) + log1p(exp(-fabs(x))); }",
    ),
    "relu": Spelling("relu_", "static inline real relu_(real x) { return x > 0 ? x : 0; }"),
    "step": Spelling("step_", "static inline real step_(real x) { return x > 0 ? 1 : 0; }"),
    "sign": Spelling(
        "sign_", "static inline real sign_(real x) { return (real)((x > 0) - (x < 0)); }"
    ),
    # maximum and minimum propagate NaN, as NumPy's do (fmax and fmin drop it)
    "maximum": Spelling(
        "maximum_",
        "static inline real maximum_(real x, real y) { return x > y || x != x ? x : y; }",
    ),
    "minimum": Spelling(
        "minimum_",
        "static inline real minimum_(real x, real y) { return x < y || x != x ? x : y; }",
    ),
    "where": Spelling(
        "where_", "static inline real where_(real c, real a, real b) { return c != 0 ? a : b; }"
    ),
    **{
        name: Spelling(
            f"{name}_",
            f"static inline real {name}_(real x, real y) {{ return x {f.operator} y; }}",
        )
        for name, f in FUNCTIONS.items()
        if f.operator
    },
}

# the file's own functions, and the C99 math ones, may not be user names either
C_RESERVED |= {"forward_pass", "gemm_", "gemm_small_"}
C_RESERVED |= {"int64_t", "uint64_t", "int32_t", "intptr_t"}  # indexing: <stdint.h>'s types
C_RESERVED |= set(C99_MATH) | {f + "f" for f in C99_MATH} | {s.name for s in SPELLINGS.values()}
# dropout
C_RESERVED |= {"symbp_mix_", "symbp_dropout_"}


def helpers(used: set[str], dtype: str) -> list[str]:
    """The definitions of the helpers spelling the functions in ``used``, and of those they
    call, in the table's order, each after the helpers it calls (C declares before use)."""
    codes: dict[str, tuple[str, list[str]]] = {}
    todo = [name for name in used if name in SPELLINGS and SPELLINGS[name].helper != ""]
    while todo:
        name = todo.pop()
        if name not in codes:
            code, calls = _definition(name, dtype)
            codes[name] = code, [c for c in SPELLINGS if c in calls and SPELLINGS[c].helper != ""]
            todo += codes[name][1]
    ordered: list[str] = []

    def place(name: str) -> None:
        if name not in ordered:
            for callee in codes[name][1]:
                place(callee)
            ordered.append(name)

    for name in SPELLINGS:
        if name in codes:
            place(name)
    return [codes[name][0] for name in ordered]


def _definition(name: str, dtype: str) -> tuple[str, set[str]]:
    """The helper spelling function ``name``, and the helpers it calls."""
    code = SPELLINGS[name].helper
    if code is not None:
        return code, set()
    f = FUNCTIONS[name]
    params = PARAMETERS[: f.arity]
    printer = CExprPrinter(dtype)
    body = print_expr(definition(name), [(p, ATOM) for p in params], printer)[0]
    signature = ", ".join(f"real {p}" for p in params)
    code = f"/* {name}({', '.join(params)}) = {f.formula} */\n"
    code += f"static inline real {name}_({signature}) {{ return {body}; }}"
    return code, printer.used


class CExprPrinter(ExprPrinter):
    """Elementwise expressions in C; <tgmath.h> makes exp, log, ... follow ``real``."""

    def __init__(self, dtype: str) -> None:
        super().__init__()
        self.suffix = "f" if dtype == "float32" else ""

    def call(self, name: str, args: list[Term]) -> Term:
        self.used.add(name)
        return f"{SPELLINGS[name].name}({', '.join(a[0] for a in args)})", ATOM

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
