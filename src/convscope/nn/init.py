"""Weight initialisation and the random generators modules draw from.

Default scheme (Conv*, Linear): PyTorch's default, ``kaiming_uniform`` with ``a = sqrt(5)``,
which works out to ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for the weight, and the same
bound for the bias. ``fan_in`` is the number of inputs one output sums over: for a filter
bank ``(C_out, C_in/groups, *kernel)`` it is ``C_in/groups * prod(kernel)`` (the size of one
tensor filter, notes 9.1.12); for a Linear layer it is ``in_features``.

Why this scheme: users who compare a convscope model with the same PyTorch model (or port
a recipe) get the same distribution of initial weights, so training curves agree in
distribution. It keeps the variance of each output near ``1/3`` of the input variance, which
is a conservative, stable start for the conv-relu-pool stacks of the notes' section 9.3.
:func:`kaiming_normal` (He et al.) is available for deeper ReLU networks.

Memory: the draws are made in chunks of at most :data:`DRAW_CHUNK` values written into
the result, so initialising a float32 weight never holds a float64 copy of it (the values
are those of one draw of the whole array: a generator's stream does not depend on how it
is split). Inside :func:`dry_run` nothing is drawn or allocated at all: every function
returns a zero-stride placeholder and adds its bytes to the plan, which refuses a total
above the array limit (:func:`convscope.functional.windows.get_array_limit`) before any
memory is taken. :func:`convscope.nn.from_spec` builds a model that way first.

Randomness: every function takes ``rng``, a ``numpy.random.Generator`` or an int seed. With
``rng=None`` the module-wide default generator is used; :func:`manual_seed` reseeds it, so
one call makes model construction (and dropout masks drawn afterwards) repeat exactly.

Example:
    >>> w = fan_in_uniform((8, 1, 5, 5), fan_in=25, rng=0)
    >>> w.shape, w.dtype, bool(np.abs(w).max() <= 1 / 5)
    ((8, 1, 5, 5), dtype('float32'), True)
    >>> np.array_equal(fan_in_uniform((3,), 4, rng=7), fan_in_uniform((3,), 4, rng=7))
    True
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, DTypeError, ResourceError
from ..settings import ALLOCATION_PLAN, get_array_limit
from ..shapes import FLOAT_DTYPES

__all__ = [
    "as_generator",
    "check_dtype",
    "default_generator",
    "manual_seed",
    "fan_in_uniform",
    "kaiming_uniform",
    "kaiming_normal",
    "zeros",
    "ones",
    "DRAW_CHUNK",
    "AllocationPlan",
    "dry_run",
    "planned",
]

#: Values drawn per call of the generator while initialising (512 KiB of float64).
DRAW_CHUNK = 1 << 16

_default: np.random.Generator | None = None


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator used when a module gets ``rng=None``; returns it.

    >>> a = manual_seed(0).random()
    >>> b = manual_seed(0).random()
    >>> a == b
    True
    """
    global _default
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ArgumentTypeError(f"manual_seed: seed must be an int; got {seed!r}.")
    _default = np.random.default_rng(int(seed))
    return _default


def default_generator() -> np.random.Generator:
    """The module-wide generator (freshly seeded from the OS until :func:`manual_seed`)."""
    global _default
    if _default is None:
        _default = np.random.default_rng()
    return _default


def as_generator(rng: Any, op: str = "init") -> np.random.Generator:
    """A ``numpy.random.Generator`` from ``rng`` (a Generator, an int seed, or None).

    ``None`` returns the default generator (see :func:`manual_seed`).

    >>> bool(as_generator(3).integers(10) == as_generator(3).integers(10))
    True
    """
    if rng is None:
        return default_generator()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ConfigError(f"{op}: rng seed must be a non-negative int; got {rng}.")
        return np.random.default_rng(int(rng))
    raise ArgumentTypeError(
        f"{op}: rng must be a numpy.random.Generator, an int seed or None; got "
        f"{type(rng).__name__}. Create one with np.random.default_rng(seed)."
    )


def check_dtype(dtype: Any, op: str) -> np.dtype:
    """``dtype`` as a NumPy dtype, float32 or float64 only."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"{op}: dtype must be float32 or float64; got {dtype!r}.") from None
    if dt not in FLOAT_DTYPES:
        raise DTypeError(
            f"{op}: dtype must be float32 or float64; got {dt}. Parameters are floats; "
            f"float32 is the default, float64 is for gradient checks."
        )
    return dt


def fan_in_uniform(
    shape: Sequence[int], fan_in: int, rng: Any = None, dtype: Any = np.float32
) -> np.ndarray:
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` samples: PyTorch's default weight AND bias init."""
    dt = check_dtype(dtype, "fan_in_uniform")
    if fan_in < 1:
        raise ConfigError(f"fan_in_uniform: fan_in must be >= 1; got {fan_in}.")
    bound = 1.0 / math.sqrt(fan_in)
    return _draw(shape, dt, rng, lambda gen, n: gen.uniform(-bound, bound, size=n))


def _fan_in(shape: Sequence[int]) -> int:
    # (C_out, C_in/groups, *kernel) or (out_features, in_features): inputs per output
    return int(np.prod(shape[1:])) if len(shape) >= 2 else int(shape[0])


def kaiming_uniform(
    shape: Sequence[int], a: float = math.sqrt(5), rng: Any = None, dtype: Any = np.float32
) -> np.ndarray:
    """He-uniform: ``U(-bound, bound)``, ``bound = sqrt(6 / ((1 + a^2) * fan_in))``.

    With the default ``a = sqrt(5)`` the bound is ``1/sqrt(fan_in)`` (PyTorch's default).

    >>> w = kaiming_uniform((4, 9), rng=0)
    >>> bool(np.abs(w).max() <= 1 / 3)
    True
    """
    dt = check_dtype(dtype, "kaiming_uniform")
    bound = math.sqrt(6.0 / ((1.0 + a * a) * _fan_in(shape)))
    return _draw(shape, dt, rng, lambda gen, n: gen.uniform(-bound, bound, size=n))


def kaiming_normal(shape: Sequence[int], rng: Any = None, dtype: Any = np.float32) -> np.ndarray:
    """He-normal for ReLU networks: ``N(0, 2 / fan_in)``."""
    dt = check_dtype(dtype, "kaiming_normal")
    std = math.sqrt(2.0 / _fan_in(shape))
    return _draw(shape, dt, rng, lambda gen, n: gen.standard_normal(n) * std)


def zeros(shape: Sequence[int], dtype: Any = np.float32) -> np.ndarray:
    """All zeros (batch-norm shift, running mean)."""
    dt = check_dtype(dtype, "zeros")
    placeholder = planned(shape, dt, "array of zeros")
    return np.zeros(tuple(shape), dtype=dt) if placeholder is None else placeholder


def ones(shape: Sequence[int], dtype: Any = np.float32) -> np.ndarray:
    """All ones (batch-norm scale, running variance)."""
    dt = check_dtype(dtype, "ones")
    placeholder = planned(shape, dt, "array of ones")
    return np.ones(tuple(shape), dtype=dt) if placeholder is None else placeholder


def _draw(shape: Sequence[int], dt: np.dtype, rng: Any, sample: Any) -> np.ndarray:
    """``sample(generator, n)`` (float64 values) written chunk by chunk into a ``dt`` array."""
    shape = tuple(int(v) for v in shape)
    gen = as_generator(rng)
    placeholder = planned(shape, dt, "initial weights")
    if placeholder is not None:
        return placeholder
    out = np.empty(shape, dtype=dt)
    flat = out.reshape(-1)
    for start in range(0, flat.size, DRAW_CHUNK):
        stop = min(start + DRAW_CHUNK, flat.size)
        flat[start:stop] = sample(gen, stop - start)
    return out


# ----------------------------------------------------------------------------------------
# Dry runs: what building modules would allocate, without allocating it
# ----------------------------------------------------------------------------------------
class AllocationPlan:
    """The arrays a dry run would have allocated: their count and total bytes.

    Attributes:
        op: the operation named in errors (``"from_spec"``).
        limit: the most bytes the arrays may take together.
        nbytes: bytes counted so far; ``arrays``: how many arrays.
    """

    def __init__(self, op: str, limit: int) -> None:
        self.op, self.limit = op, int(limit)
        self.nbytes = 0
        self.arrays = 0

    def add(self, shape: Sequence[int], dtype: Any, what: str) -> np.ndarray:
        """Count an array of ``shape`` and ``dtype``; return a placeholder of no memory.

        Raises:
            ResourceError: the total would exceed :attr:`limit`.
        """
        shape = tuple(int(v) for v in shape)
        dt = np.dtype(dtype)
        nbytes = math.prod(shape) * dt.itemsize
        self.nbytes += nbytes
        self.arrays += 1
        if self.nbytes > self.limit:
            raise ResourceError(
                f"{self.op + ': ' if self.op else ''}the model's parameters, their gradients "
                f"and its buffers would take "
                f"{self.nbytes / 2**30:.2f} GiB in all (this {what}: "
                f"{' x '.join(map(str, shape)) or 'scalar'} x {dt.itemsize} bytes), over the "
                f"array limit of {self.limit / 2**30:.2f} GiB; nothing was allocated. If the "
                f"architecture is meant to be this large, raise the limit with "
                f"convscope.settings.set_array_limit(nbytes)."
            )
        return np.broadcast_to(np.zeros((), dtype=dt), shape)


_PLAN = ALLOCATION_PLAN  # shared by every copy of this module (see convscope.settings)


def planned(shape: Sequence[int], dtype: Any, what: str) -> np.ndarray | None:
    """Inside :func:`dry_run`: count the array and return its placeholder; else None."""
    plan = _PLAN.get()
    return None if plan is None else plan.add(shape, dtype, what)


@contextlib.contextmanager
def dry_run(op: str, limit: int | None = None) -> Iterator[AllocationPlan]:
    """Build modules without allocating their arrays, counting what they would take.

    Inside the block every function of this module (and :class:`~convscope.nn.Parameter`
    for its gradient) returns a read-only zero-stride placeholder and adds its bytes to
    the plan; a total over ``limit`` (default: the array limit) raises
    :class:`~convscope.errors.ResourceError` at once. The default generator is put back
    afterwards, so a real build that follows draws exactly what it would have drawn.
    Modules built inside the block are for inspection (names, shapes) only.

    >>> from convscope.nn import Linear
    >>> with dry_run("example") as plan:
    ...     shape = Linear(20000, 20000).weight.shape
    Traceback (most recent call last):
    ...
    convscope.errors.ResourceError: example: the model's parameters, their gradients and its buffers would take 2.98 GiB in all (this gradient: 20000 x 20000 x 4 bytes), over the array limit of 2.00 GiB; nothing was allocated. If the architecture is meant to be this large, raise the limit with convscope.settings.set_array_limit(nbytes).
    >>> with dry_run("example") as plan:
    ...     shape = Linear(300, 200).weight.shape
    >>> shape, plan.nbytes
    ((200, 300), 481600)
    """
    global _default
    saved_default = _default
    saved_state = None if _default is None else _default.bit_generator.state
    token = _PLAN.set(AllocationPlan(op, get_array_limit() if limit is None else limit))
    try:
        yield _PLAN.get()
    finally:
        _PLAN.reset(token)
        if saved_default is None:
            _default = None
        else:
            _default = saved_default
            assert saved_state is not None  # saved together with saved_default
            _default.bit_generator.state = saved_state
