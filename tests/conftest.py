"""Shared test setup: the IR verifier runs after every pass of every compile in the suite,
and the default backend is NumPy.

The helpers below are the gradient tests' own reference: random values kept away from kinks,
and central finite differences of a generated module's ``loss``, written independently of
``symbp.check``.
"""

import os
import signal
import threading
from contextlib import contextmanager

import numpy as np

os.environ["SYMBP_VERIFY"] = "1"
# "auto" (symbp.compile's and symbp train's default backend) means NumPy in the suite: a test
# that wants C says so, and tests/test_backend_auto.py clears this to test auto itself
os.environ["SYMBP_BACKEND"] = "numpy"

BATCH = 5  # not one of the tests' dimensions, so a misplaced batch axis cannot hide
LONG = 10  # how much bigger the campaigns are under --long
_long = False


def pytest_addoption(parser):
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help=f"run the reliability campaigns (fuzzing, differential, boundary, concurrency, "
        f"sanitizer) {LONG} times longer than CI does",
    )


def pytest_configure(config):
    global _long
    _long = bool(config.getoption("--long", default=False))


def scale(n: int, factor: int = LONG) -> int:
    """A campaign's size: ``n`` by default, ``factor`` times more under ``--long``.

    Test modules are imported after ``pytest_configure``, so a decorator such as
    ``@settings(max_examples=scale(200))`` sees the option.
    """
    return n * factor if _long else n


def is_long() -> bool:
    return _long


def away_from_zero(rng: np.random.Generator, shape) -> np.ndarray:
    """Values in ±[0.4, 1.4]: no kink of relu or abs, no pole of 1/x within FD reach."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.4, 1.4, size=shape)


def random_params(module, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The Params, then the Consts, at random (a module without Consts draws as before)."""
    shapes = {**module.PARAMS, **getattr(module, "CONSTS", {})}
    return {name: away_from_zero(rng, shape) for name, shape in shapes.items()}


def random_inputs(module, rng: np.random.Generator, batch: int = BATCH) -> dict:
    """Values away from zero; valid ids, drawn uniformly, for the Inputs of integer ids."""
    ids = getattr(module, "INT_INPUTS", {})
    return {
        name: rng.integers(0, ids[name], size=(batch, *shape))
        if name in ids
        else away_from_zero(rng, (batch, *shape))
        for name, shape in module.INPUTS.items()
    }


def derivative(f, h: float):
    """f'(0) by the five-point central stencil: error O(h**4), so a fairly large step keeps
    round-off small as well. ``f`` may return an array."""
    return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)


def finite_differences(f, params: dict, step: float = 1e-4, wrt=None) -> dict[str, np.ndarray]:
    """d f(params) / d params[name], element by element, for every name (or those of
    ``wrt``: a module's PARAMS leaves out its Consts)."""
    grads = {}
    for name, value in params.items():
        if wrt is not None and name not in wrt:
            continue
        value = np.asarray(value, dtype=np.float64)
        g = np.zeros(value.shape)
        for index in np.ndindex(value.shape):
            unit = np.zeros(value.shape)
            unit[index] = 1.0

            def along(t, name=name, value=value, unit=unit):
                return f({**params, name: value + t * unit})

            g[index] = derivative(along, step * max(1.0, abs(float(value[index]))))
        grads[name] = g
    return grads


def assert_grads_match(actual: dict, expected: dict, loss: float, rtol: float = 1e-6) -> None:
    """Same names, same shapes, and values within rtol of the larger magnitude, with an
    absolute floor scaled to the loss (finite differences of a big loss lose digits)."""
    assert set(actual) == set(expected)
    floor = 1e-9 * max(1.0, abs(loss))
    for name, want in expected.items():
        got = np.asarray(actual[name], dtype=np.float64)
        assert got.shape == want.shape, f"d{name}: shape {got.shape}, expected {want.shape}"
        assert np.all(np.isfinite(got)), f"d{name} is not finite: {got}"
        scale = np.maximum(np.abs(got), np.abs(want))
        bad = np.abs(got - want) > rtol * scale + floor
        assert not bad.any(), (
            f"d{name} is off at {np.argwhere(bad).tolist()}:\n"
            f"reverse mode {got[bad]}\nfinite diffs {want[bad]}"
        )


@contextmanager
def time_limit(seconds: float, error: type[BaseException] = AssertionError):
    """Raise ``error`` in this thread after ``seconds`` instead of hanging (SIGALRM: on POSIX,
    in the main thread; elsewhere no limit)."""
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def expired(*_):
        raise error(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# indexing: NumPy basic indices as a spec writes them, for test_slicing and the random graphs


def basic_index(draw, shape: tuple[int, ...]) -> tuple[str, tuple]:
    """A random basic index of some leading axes of ``shape`` (ints, negative ones too, and
    non-empty slices with any bounds and steps): its spec text and the NumPy key."""
    from hypothesis import strategies as st

    texts, key = [], []
    for d in shape[: draw(st.integers(1, len(shape)))]:
        if draw(st.booleans()):
            i = draw(st.integers(-d, d - 1))
            texts.append(str(i))
            key.append(i)
            continue
        bound = st.none() | st.integers(-d - 2, d + 2)
        s = slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3, -1, -2])))
        if not range(*s.indices(d)):
            s = slice(None, None, s.step)  # an empty axis is an error: take the whole one
        parts = ["" if p is None else str(p) for p in (s.start, s.stop, s.step)]
        texts.append(":".join(parts if s.step is not None else parts[:2]))
        key.append(s)
    return ", ".join(texts), tuple(key)
