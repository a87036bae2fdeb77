"""The fuzz harness: run one malformed call and judge how it ended.

A case passes when the call either returns (a valid result; callers may check it further)
or raises a :class:`~convscope.errors.ConvscopeError` whose message names the offending
argument. It fails on any other exception (a NumPy ``IndexError``/``ValueError``/
``TypeError`` leaking out, a raw ``MemoryError``, ...), on a call that runs past the time
budget (a SIGALRM interrupts it), and on a call that allocates more than the memory budget
(measured with :mod:`tracemalloc`, which sees NumPy's array buffers).

Every judged call adds one to :data:`CASES`; ``conftest.py`` prints the total.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import resource
import signal
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from convscope.errors import ConvscopeError

#: Cases tried, per fuzz file (keys are short category names).
CASES: collections.Counter = collections.Counter()

#: Seconds one call may take before it counts as a hang (generous: CI machines are slow and
#: busy; a refused pathological request takes microseconds).
TIME_BUDGET_S = 20.0

#: Bytes one call may allocate at its peak. Fuzz inputs are tiny; anything near this is
#: a pathological request that should have been refused.
MEMORY_BUDGET = 256 * 2**20

#: The array limit (convscope.settings.set_array_limit) during the fuzz run.
ARRAY_LIMIT = 64 * 2**20


@contextlib.contextmanager
def address_space_budget(extra: int = 4 * 2**30):
    """Cap the process's address space at its current size plus ``extra`` bytes.

    A huge allocation then fails at once with a MemoryError (which the judge reports as a
    leak) instead of filling the machine's memory until the OOM killer ends the run.
    """
    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * resource.getpagesize()
        old = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        yield
        return
    cap = current + extra
    if old[1] != resource.RLIM_INFINITY:
        cap = min(cap, old[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


class HangError(Exception):
    """A fuzz case ran past :data:`TIME_BUDGET_S`."""


@contextlib.contextmanager
def time_budget(seconds: float = TIME_BUDGET_S):
    """Interrupt the body with :class:`HangError` after ``seconds`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        yield
        return

    def _alarm(signum, frame):
        raise HangError(f"the call ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _word(name: str) -> re.Pattern:
    # "x" must not match inside "max" or "index": letters, digits and "_" may not touch it.
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")


def names_any(message: str, names: Iterable[str]) -> bool:
    """True if ``message`` mentions one of ``names`` as a whole word."""
    return any(_word(n).search(message) for n in names)


class Outcome:
    """How a judged call ended: ``ok`` with ``value``, or not ok with ``error``."""

    def __init__(self, value: Any = None, error: BaseException | None = None, seconds: float = 0.0,
                 peak: int = 0):
        self.value, self.error, self.seconds, self.peak = value, error, seconds, peak

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        if self.ok:
            return f"Outcome(ok, {type(self.value).__name__})"
        return f"Outcome({type(self.error).__name__}: {self.error})"


def judge(
    call: Callable[[], Any],
    names: Iterable[str] = (),
    **options: Any,
) -> Outcome:
    """Run ``call()`` and fail the test unless it ended cleanly (see :func:`_judge`).

    With the environment variable ``CONVSCOPE_FUZZ_COLLECT=1`` a failing case is printed
    (one line, prefixed ``FUZZ-FAIL``) instead of failing the test, so one run lists every
    problem; the suite itself never sets it.
    """
    if not COLLECT:
        return _judge(call, names, **options)
    try:
        outcome = _judge(call, names, **options)
        if outcome.seconds > float(os.environ.get("CONVSCOPE_FUZZ_SLOW", "1.0")):
            print(f"FUZZ-SLOW {outcome.seconds:.1f} s: {options.get('context', '')[:300]}", flush=True)
        return outcome
    except AssertionError as exc:
        print("FUZZ-FAIL", str(exc).replace("\n", " ")[:600], flush=True)
        return Outcome(None, exc)


COLLECT = os.environ.get("CONVSCOPE_FUZZ_COLLECT") == "1"


def _judge(
    call: Callable[[], Any],
    names: Iterable[str] = (),
    *,
    category: str = "misc",
    expect: str = "either",
    errors: tuple[type, ...] = (ConvscopeError,),
    context: str = "",
    trace: bool = True,
) -> Outcome:
    """Run ``call()`` and fail the test unless it ended cleanly.

    Args:
        call: the call under test, with its malformed arguments bound.
        names: words the error message must contain (any one of them, as a whole word):
            the offending argument's name and its aliases. Empty: any message.
        category: the counter the case adds to.
        expect: "either" (a result or a clean error), "error" (must raise), "ok" (must
            return).
        errors: the exception classes a clean error must belong to.
        context: text shown when the case fails (the case's description).
        trace: measure the peak allocation with tracemalloc (several times slower for
            Python-heavy calls such as the CLI); without it the address-space cap still turns
            a huge allocation into a MemoryError, which fails the case as a leak.
    """
    names = tuple(names)
    CASES[category] += 1
    tracing = tracemalloc.is_tracing()
    if trace and not tracing:
        tracemalloc.start()
    if trace:
        tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0] if trace else 0
    start = time.perf_counter()
    value, error = None, None
    try:
        with time_budget(), address_space_budget():
            value = call()
    except HangError as exc:
        raise AssertionError(f"HANG: {context}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - judging every exception is the point
        error = exc
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] - base if trace else 0
    if trace and not tracing:
        tracemalloc.stop()
    if peak > MEMORY_BUDGET:
        raise AssertionError(
            f"HUGE ALLOCATION: {context}: the call allocated {peak / 2**20:.1f} MiB at its peak "
            f"(budget {MEMORY_BUDGET / 2**20:.0f} MiB); outcome {error!r}"
        )
    if error is None:
        if expect == "error":
            raise AssertionError(
                f"NO ERROR: {context}: expected a clean error naming one of {names}; the call "
                f"returned {_describe(value)}"
            )
        return Outcome(value, None, seconds, peak)
    if not isinstance(error, errors):
        raise AssertionError(
            f"LEAKED {type(error).__module__}.{type(error).__name__}: {context}: {error}"
        ) from error
    message = str(error)
    if expect == "ok":
        raise AssertionError(f"UNEXPECTED ERROR: {context}: {type(error).__name__}: {message}") from error
    if names and not names_any(message, names):
        raise AssertionError(
            f"MESSAGE DOES NOT NAME THE ARGUMENT: {context}: expected one of {names} in the "
            f"{type(error).__name__} message: {message!r}"
        ) from error
    if "\n" in message.strip() and len(message) > 2000:
        raise AssertionError(f"MESSAGE TOO LONG: {context}: {len(message)} characters")
    return Outcome(None, error, seconds, peak)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    return repr(value)[:200]


def same_result(a: Any, b: Any, context: str = "") -> None:
    """Assert two results (arrays, scalars or tuples of them) are equal, NaN equal to NaN.

    Used for inputs that differ only in memory layout (non-contiguous, negative strides,
    Fortran order, read-only): the values must not change. A tiny tolerance allows a BLAS
    product to sum in another order for another layout.
    """
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b), context
        for u, v in zip(a, b):
            same_result(u, v, context)
        return
    if a is None or b is None:
        assert a is None and b is None, context
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{context}: shape {a.shape} != {b.shape}"
    assert a.dtype == b.dtype, f"{context}: dtype {a.dtype} != {b.dtype}"
    if a.dtype.kind == "f":
        rtol = 1e-5 if a.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol, equal_nan=True, err_msg=context)
    else:
        np.testing.assert_array_equal(a, b, err_msg=context)


# ----------------------------------------------------------------------------------------
# Malformed values
# ----------------------------------------------------------------------------------------
#: Values that do not belong where an int (or a tuple of ints) belongs, with labels. The
#: ``ok`` flag marks values that ARE acceptable ints (NumPy ints, lists of ints).
def int_malformations(ndim: int) -> list[tuple[str, Any]]:
    """Bad (and some borderline) values for an int-or-tuple argument on ``ndim`` axes."""
    return [
        ("zero", 0),
        ("minus one", -1),
        ("very negative", -(2**40)),
        ("huge", 2**40),
        ("huge numpy", np.int64(2**62)),
        ("float 2.0", 2.0),
        ("float 2.5", 2.5),
        ("nan", float("nan")),
        ("inf", float("inf")),
        ("string '2'", "2"),
        ("None", None),
        ("True", True),
        ("False", False),
        ("complex", 1 + 1j),
        ("empty tuple", ()),
        ("too long tuple", (1,) * (ndim + 1)),
        ("tuple with zero", (0,) * ndim),
        ("tuple with negative", (-1,) * ndim),
        ("tuple with float", (1.5,) * ndim),
        ("tuple with string", ("a",) * ndim),
        ("tuple with None", (None,) * ndim),
        ("nested", ((1, 1),) * ndim),
        ("numpy int", np.int64(1)),
        ("list", [1] * ndim),
        ("numpy float", np.float32(1)),
        ("dict", {"a": 1}),
        ("object", object()),
        ("array 2-d", np.ones((ndim, 2), dtype=np.int64)),
    ]


def scalar_malformations() -> list[tuple[str, Any]]:
    """Bad values for a plain int argument (axis, start_dim, groups, channels, ...)."""
    return [v for v in int_malformations(1) if v[0] not in ("list", "too long tuple")] + [
        ("list", [1]),
    ]


def float_malformations() -> list[tuple[str, Any]]:
    """Bad values for a real-number argument (slopes, probabilities, rates)."""
    return [
        ("string", "0.1"),
        ("None", None),
        ("True", True),
        ("complex", 1j),
        ("nan", float("nan")),
        ("inf", float("inf")),
        ("-inf", float("-inf")),
        ("negative", -1.0),
        ("huge", 1e300),
        ("list", [0.1]),
        ("array", np.array([0.1, 0.2])),
        ("object", object()),
    ]


def bool_malformations() -> list[tuple[str, Any]]:
    """Bad values for a True/False argument."""
    return [("int 1", 1), ("int 2", 2), ("string", "True"), ("None", None), ("float", 1.0),
            ("list", [True]), ("array", np.array([True, False]))]


def string_malformations() -> list[tuple[str, Any]]:
    """Bad values for a mode-string argument."""
    return [("unknown", "bogus"), ("upper", "ZEROS"), ("empty", ""), ("None", None), ("int", 0),
            ("bytes", b"zeros"), ("list", ["zeros"])]


def array_malformations(a: np.ndarray, channel_axis: int | None = 1) -> list[tuple[str, Any, str]]:
    """Malformed versions of the valid array ``a``, as (label, value, kind).

    ``kind`` is "layout" for values equal to ``a`` in a different memory layout (the op
    must give the same result as for ``a``), "values" for NaN/Inf content (the op must
    not raise), and "bad" for everything else (a result or a clean error).
    """
    out: list[tuple[str, Any, str]] = []
    dt = a.dtype
    # Layout: same values, other memory.
    big = np.zeros(tuple(2 * s + 1 for s in a.shape), dtype=dt)
    view = big[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    out.append(("non-contiguous (stride 2)", view, "layout"))
    if a.ndim:
        rev = np.flip(a.copy(), axis=-1)
        out.append(("negative strides", np.flip(rev, axis=-1), "layout"))
    out.append(("Fortran order", np.asfortranarray(a), "layout"))
    ro = a.copy()
    ro.flags.writeable = False
    out.append(("read-only", ro, "layout"))
    if a.size:
        out.append(("broadcast view (zero strides)", np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * a.ndim),
                                                                     a.shape), "bad"))
    # Shapes.
    out.append(("extra leading axis", a[None], "bad"))
    out.append(("extra trailing axis", a[..., None], "bad"))
    if a.ndim:
        out.append(("one axis fewer", a[0], "bad"))
    out.append(("0-d", np.array(1.0, dtype=dt), "bad"))
    for axis in range(a.ndim):
        shape = list(a.shape)
        shape[axis] = 0
        out.append((f"zero-size axis {axis}", np.zeros(shape, dtype=dt), "bad"))
        shape[axis] = a.shape[axis] + 1
        out.append((f"axis {axis} one longer", np.ones(shape, dtype=dt), "bad"))
    if channel_axis is not None and a.ndim >= 3:
        out.append(("channels-last", np.ascontiguousarray(np.moveaxis(a, channel_axis, -1)), "bad"))
    if a.ndim >= 1:
        huge = list(a.shape)
        huge[-1] = 2**31
        out.append(("huge broadcast last axis", np.broadcast_to(np.ones((1,) * a.ndim, dt), huge), "bad"))
        huge = [2 ** max(1, 40 // a.ndim)] * a.ndim      # about 2**40 entries in all
        out.append(("huge broadcast every axis", np.broadcast_to(np.ones((1,) * a.ndim, dt), huge), "bad"))
    # Dtypes.
    for other in (np.int32, np.int64, np.uint8, np.bool_, np.float16, np.complex64, np.complex128):
        out.append((f"dtype {np.dtype(other).name}", a.astype(other), "bad"))
    other_float = np.float64 if dt == np.float32 else np.float32
    out.append((f"dtype {np.dtype(other_float).name}", a.astype(other_float), "bad"))
    out.append(("dtype object", a.astype(object), "bad"))
    out.append(("dtype str", a.astype(str), "bad"))
    out.append(("structured", np.zeros(a.shape, dtype=[("f", dt)]), "bad"))
    # Not arrays.
    out.append(("nested list", a.tolist(), "bad"))
    out.append(("ragged list", [[1.0], [1.0, 2.0]], "bad"))
    out.append(("None", None, "bad"))
    out.append(("string", "x", "bad"))
    out.append(("int", 3, "bad"))
    out.append(("float", 2.5, "bad"))
    out.append(("dict", {"x": a}, "bad"))
    out.append(("object", object(), "bad"))
    out.append(("numpy matrix-like subclass", a.view(np.recarray) if a.ndim else a, "bad"))
    # Values.
    if a.size and dt.kind == "f":
        nan = a.copy()
        nan.reshape(-1)[0] = np.nan
        out.append(("NaN entry", nan, "values"))
        inf = a.copy()
        inf.reshape(-1)[-1] = np.inf
        out.append(("Inf entry", inf, "values"))
    return out
