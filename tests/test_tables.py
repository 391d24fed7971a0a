"""Every primitive has a row in every table, and every function record agrees with itself.

An op of the IR is one row in each table that dispatches on ``Op``; an elementwise function
is one record of ``symbp.ir.functions`` and, where its spelling is not the usual one, a row
in a backend's table of spellings. A missing row fails here, by name, before any network
meets it. Each record's parts (the value at numbers, the value on arrays, the derivatives,
the sympy form, each backend's helper) are checked against each other at sample points.
"""

import math

import numpy as np
import pytest
import sympy

from symbp.autodiff.calculus import partials
from symbp.autodiff.rules import VJP
from symbp.backends.c import emit
from symbp.backends.c import names as c_names
from symbp.backends.numpy import printer as numpy_printer
from symbp.explain import spec_printer
from symbp.ir import build, interpret, verify
from symbp.ir import expr as ex
from symbp.ir.closed_form import to_sympy
from symbp.ir.functions import FUNCTIONS
from symbp.ir.node import LEAVES, Op

ALL = set(Op)
COMPUTED = ALL - set(LEAVES)  # the ops with arguments

DISPATCH = {
    "ir.build.BUILD (constructors, what the passes rebuild with)": (build.BUILD, COMPUTED),
    "ir.verify.SPEC": (verify.SPEC, ALL),
    "ir.interpret.EVALUATE": (interpret.EVALUATE, ALL),
    "autodiff.rules.VJP": (VJP, COMPUTED),
    "backends.numpy.printer.PRINT": (numpy_printer.PRINT, ALL),
    "explain.spec_printer.PRINT": (spec_printer.PRINT, ALL),
    "backends.c.emit.STATEMENT": (emit.STATEMENT, COMPUTED),
}


@pytest.mark.parametrize("where", DISPATCH)
def test_every_op_has_a_row(where):
    table, domain = DISPATCH[where]
    assert set(table) >= domain, f"{where} lacks {sorted(op.name for op in domain - set(table))}"


@pytest.mark.parametrize("where", ["numpy", "c"])
def test_every_function_has_a_spelling(where):
    table = numpy_printer.SPELLINGS if where == "numpy" else c_names.SPELLINGS
    assert set(table) == set(FUNCTIONS), f"no {where} spelling of {set(FUNCTIONS) - set(table)}"


POINTS = [-2.3, -0.7, -0.1, 0.3, 1.1, 2.9]


def points(name: str) -> list[float]:
    """Sample arguments inside the function's domain (log and sqrt take positive ones)."""
    return [abs(p) for p in POINTS] if name in ("log", "sqrt") else POINTS


def arguments(name: str) -> list[tuple[float, ...]]:
    arity = FUNCTIONS[name].arity
    return [tuple(points(name)[(i + k) % len(POINTS)] for k in range(arity)) for i in range(6)]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_value_at_numbers_matches_value_on_arrays(name):
    """The constant folder's value (exact arithmetic, ``evaluate`` or the formula) and the
    interpreter's (NumPy, ``reference`` or the formula) agree."""
    for args in arguments(name):
        folded = ex.call(name, *map(ex.decimal, args))
        assert folded.op == "num", (name, args, folded)
        arrays = [np.array([a]) for a in args]
        assert float(folded.value) == pytest.approx(
            float(interpret.function(name, arrays)[0]), rel=1e-13, abs=1e-15
        )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_derivatives_match_sympy(name):
    """Each partial derivative, as the record gives it (over the arguments and the value),
    against sympy.diff of the function's sympy form."""
    f = FUNCTIONS[name]
    symbols = sympy.symbols(f"x0:{f.arity}", real=True)
    closed = to_sympy(ex.call(name, *(ex.arg(i) for i in range(f.arity))), list(symbols))
    for i, partial in enumerate(partials(name)):
        want = sympy.diff(closed, symbols[i])
        for args in arguments(name):
            if name in ("relu", "abs", "step", "sign") and 0 in args:
                continue  # a kink: no derivative there
            values = [np.array([a]) for a in args]
            value = interpret.function(name, values)
            got = float(np.ravel(interpret.expression(partial, [*values, value]))[0])
            at = {s: a for s, a in zip(symbols, args)}
            assert got == pytest.approx(float(want.subs(at)), rel=1e-12, abs=1e-14), (i, args)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_numpy_spelling_computes_the_function(name):
    """The NumPy spelling (a ufunc, or the helper the module defines) against the reference,
    with large arguments, where a naive formula would overflow."""
    code = "\n\n".join(numpy_printer.helpers({name}))
    env = {"np": np, "DTYPE": "float64"}  # the module's globals the helpers read
    exec(code, env)  # noqa: S102 - symbp's own helper code
    spelled = eval(numpy_printer.SPELLINGS[name].name, env)  # noqa: S307
    for scale in (1, 300):  # argument k is the points turned by k: ties and the two orders
        args = [np.roll(points(name), k) * scale for k in range(FUNCTIONS[name].arity)]
        with np.errstate(all="ignore"):
            got, want = spelled(*args), interpret.function(name, args)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_c_spelling_is_declared(name):
    """A C spelling is a C99 function or a helper the translation unit defines."""
    spelling = c_names.SPELLINGS[name]
    if spelling.helper == "":
        assert spelling.name in c_names.C99_MATH + ["fabs"]
    else:
        (code,) = [h for h in c_names.helpers({name}, "float64") if f" {spelling.name}(" in h]
        assert code.count("{") == code.count("}")
    assert spelling.name in c_names.C_RESERVED  # a user's name can never shadow it


def test_a_function_given_by_its_formula_alone(monkeypatch):
    """A record with only a formula gets its value, derivative, sympy form and both
    spellings from it: what adding such a function takes."""
    from symbp.ir.functions import Function

    monkeypatch.setitem(FUNCTIONS, "softsign", Function("softsign", formula="x / (1 + abs(x))"))
    # the usual spellings, as the backends derive them from the record when they load
    monkeypatch.setitem(
        numpy_printer.SPELLINGS, "softsign", numpy_printer._usual(FUNCTIONS["softsign"])
    )
    monkeypatch.setitem(c_names.SPELLINGS, "softsign", c_names._usual(FUNCTIONS["softsign"]))
    e = ex.call("softsign", ex.arg(0))
    assert ex.call("softsign", ex.decimal(3)).value == pytest.approx(0.75)
    x = sympy.Symbol("x0", real=True)
    assert sympy.simplify(to_sympy(e, [x]) - x / (1 + sympy.Abs(x))) == 0
    (d,) = partials("softsign")
    assert float(interpret.expression(d, [np.array([2.0])])[0]) == pytest.approx(1 / 9)
    assert "def _softsign(x):" in numpy_printer.helpers({"softsign"})[0]
    assert "static inline real softsign_(real x)" in c_names.helpers({"softsign"}, "float64")[0]
    assert math.isclose(ex.call("softsign", ex.decimal(-1)).value, -0.5)
