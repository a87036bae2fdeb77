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

import math
from typing import Any, Sequence

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, DTypeError
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
]

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
    return as_generator(rng).uniform(-bound, bound, size=tuple(shape)).astype(dt)


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
    return as_generator(rng).uniform(-bound, bound, size=tuple(shape)).astype(dt)


def kaiming_normal(shape: Sequence[int], rng: Any = None, dtype: Any = np.float32) -> np.ndarray:
    """He-normal for ReLU networks: ``N(0, 2 / fan_in)``."""
    dt = check_dtype(dtype, "kaiming_normal")
    std = math.sqrt(2.0 / _fan_in(shape))
    return (as_generator(rng).standard_normal(tuple(shape)) * std).astype(dt)


def zeros(shape: Sequence[int], dtype: Any = np.float32) -> np.ndarray:
    """All zeros (batch-norm shift, running mean)."""
    return np.zeros(tuple(shape), dtype=check_dtype(dtype, "zeros"))


def ones(shape: Sequence[int], dtype: Any = np.float32) -> np.ndarray:
    """All ones (batch-norm scale, running variance)."""
    return np.ones(tuple(shape), dtype=check_dtype(dtype, "ones"))
