"""Tools to check an op the way convscope checks its own: tolerances, closeness, gradients.

Public so that a user who writes a new op can test its backward exactly as we do
(PyTorch's ``torch.autograd.gradcheck`` and JAX's ``check_grads`` play the same role).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((3, 4))
    >>> dy = rng.standard_normal((3, 4))
    >>> err = gradcheck(lambda a: np.tanh(a), lambda g, a: g * (1 - np.tanh(a) ** 2), [x], dy)
    >>> err < 1e-8
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["TOLERANCES", "tolerance", "assert_close", "numerical_vjp", "gradcheck", "max_relative_error"]

#: One table of tolerances for every comparison in the test-suite: (rtol, atol) per dtype
#: and kind of comparison. float32 sums of many products drift, hence the looser entries.
TOLERANCES: dict[tuple[str, str], tuple[float, float]] = {
    ("float64", "forward"): (1e-10, 1e-10),
    ("float64", "backward"): (1e-9, 1e-9),
    ("float32", "forward"): (1e-4, 1e-5),
    ("float32", "backward"): (1e-3, 1e-4),
    ("float64", "gradcheck"): (1e-6, 1e-7),
}


def tolerance(dtype, kind: str = "forward") -> tuple[float, float]:
    """``(rtol, atol)`` for comparing arrays of ``dtype`` in a ``kind`` comparison."""
    return TOLERANCES[(np.dtype(dtype).name, kind)]


def assert_close(actual, expected, dtype=None, kind: str = "forward", context: str = "") -> None:
    """Assert two arrays agree within the table's tolerance for their dtype.

    On failure the message shows the context, the shapes, and the largest differing entry
    (its index, both values and the difference), never the whole array.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{context}: shape {actual.shape} != expected {expected.shape}")
    rtol, atol = tolerance(dtype if dtype is not None else actual.dtype, kind)
    a64 = actual.astype(np.float64)
    e64 = expected.astype(np.float64)
    diff = np.abs(a64 - e64)
    bound = atol + rtol * np.abs(e64)
    both_nan = np.isnan(a64) & np.isnan(e64)
    same_inf = np.isinf(a64) & (a64 == e64)
    bad = ~((diff <= bound) | both_nan | same_inf)
    if bad.any():
        excess = np.where(bad, np.nan_to_num(diff - bound, nan=np.inf), -np.inf)
        idx = np.unravel_index(int(np.argmax(excess)), diff.shape)
        raise AssertionError(
            f"{context}: {int(bad.sum())} of {bad.size} entries differ beyond rtol={rtol}, "
            f"atol={atol}; largest at index {tuple(int(i) for i in idx)}: actual "
            f"{a64[idx]!r}, expected {e64[idx]!r} (|diff| {diff[idx]:.3g})"
        )


def numerical_vjp(
    f: Callable[..., np.ndarray], inputs: Sequence[np.ndarray], dy: np.ndarray, eps: float = 1e-6
) -> list[np.ndarray]:
    """Central-difference vector-Jacobian products ``dy . df/d(input)`` for every input.

    ``f(*inputs)`` must return an array shaped like ``dy``. Inputs should be float64.
    """
    grads = []
    base = [np.array(a, dtype=np.float64, copy=True) for a in inputs]
    for _i, a in enumerate(base):
        g = np.zeros_like(a)
        flat = a.reshape(-1)
        gflat = g.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            plus = np.sum(f(*base) * dy)
            flat[j] = old - eps
            minus = np.sum(f(*base) * dy)
            flat[j] = old
            gflat[j] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def max_relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b| / max(1, |a|, |b|)``: a relative error that tolerates zeros."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    scale = np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))
    return float(np.max(np.abs(a - b) / scale))


def gradcheck(
    f: Callable[..., np.ndarray],
    backward: Callable[..., Sequence[np.ndarray] | np.ndarray],
    inputs: Sequence[np.ndarray],
    dy: np.ndarray,
    eps: float = 1e-6,
) -> float:
    """Compare an analytic backward with central differences; return the max relative error.

    ``backward(dy, *inputs)`` returns the gradient of ``sum(f(*inputs) * dy)`` with respect to
    each input (a single array when there is one input). Use float64 inputs and a random
    ``dy`` so the whole vector-Jacobian product is checked.
    """
    analytic = backward(dy, *inputs)
    if isinstance(analytic, np.ndarray):
        analytic = [analytic]
    numeric = numerical_vjp(f, inputs, dy, eps)
    if len(analytic) < len(numeric):
        raise AssertionError(f"backward returned {len(analytic)} gradients for {len(numeric)} inputs")
    return max(max_relative_error(a, n) for a, n in zip(analytic, numeric))
