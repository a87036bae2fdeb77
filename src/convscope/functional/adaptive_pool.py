"""Adaptive average and max pooling: a fixed output size whatever the input size.

Where ordinary pooling fixes the window and lets the output size follow (Key Equation 48),
adaptive pooling fixes the output size ``out`` per spatial axis and derives each output's
window from the input size ``n``, as PyTorch: output ``i`` covers input entries
``start = floor(i * n / out)`` to ``end = ceil((i + 1) * n / out)`` (exclusive). The windows
cover the input; they overlap by one entry where ``out`` does not divide ``n``, and
repeat entries where ``out > n``. With ``n % out == 0`` they are the ordinary windows of
size and stride ``n / out``; with ``out == 1`` the one window is the whole axis (global
pooling, the last pool of ResNet, MobileNet, SqueezeNet).

Derivatives: the average spreads each ``dy`` entry evenly over its window (``dy / size``);
the max routes it to its window's arg-max (notes 9.4.6, Key Equation 69). Both add up
where windows overlap.

How it is computed: the mean over a box is the mean over each axis in turn, so the average
pool is one small ``(out, n)`` averaging matrix per axis (a reshape-mean when ``out``
divides ``n``, a plain mean when ``out == 1``). The max over a box is likewise the max over
each axis in turn; taking the last axis first and NumPy's first-occurrence ``argmax`` at
each step picks the first maximum in row-major window order, PyTorch's tie rule (NaN wins,
as in PyTorch). The arg-max is a flat index into each ``(n, c)`` plane, PyTorch's
``return_indices`` convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..shapes import as_float_array, format_shape
from .windows import check_allocation, check_dy

__all__ = [
    "adaptive_windows",
    "adaptive_output_size",
    "adaptive_avg_pool",
    "adaptive_avg_pool_backward",
    "adaptive_max_pool",
    "adaptive_max_pool_backward",
    "adaptive_max_pool_with_argmax",
    "adaptive_max_pool_with_argmax_backward",
]


def adaptive_windows(n: int, out: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each of the ``out`` windows over an axis of ``n`` entries.

    Example:
        >>> adaptive_windows(5, 3)
        [(0, 2), (1, 4), (3, 5)]
        >>> adaptive_windows(2, 4)
        [(0, 1), (0, 1), (1, 2), (1, 2)]
    """
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


def adaptive_output_size(x_shape: Sequence[int], output_size: Any, op: str) -> tuple[int, ...]:
    """The spatial output size: ``output_size`` (an int, or a tuple of ints or None, one
    per spatial axis of the ``(N, C, *spatial)`` shape ``x_shape``; None keeps that axis's
    input size), checked.

    Example:
        >>> adaptive_output_size((2, 3, 7, 9), (None, 4), "adaptive_avg_pool")
        (7, 4)
    """
    x_shape = tuple(int(v) for v in x_shape)
    if len(x_shape) < 3:
        raise ShapeError(
            f"{op}: x must be (N, C, *spatial) with at least one spatial axis; got shape "
            f"{format_shape(x_shape)}."
        )
    spatial = x_shape[2:]
    nd = len(spatial)
    entries = (output_size,) * nd if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(entries) != nd:
        raise ConfigError(
            f"{op}: output_size must have one entry per spatial axis ({nd} for x of shape "
            f"{format_shape(x_shape)}); got {output_size!r}."
        )
    sizes = []
    for entry, n in zip(entries, spatial):
        if entry is None:
            sizes.append(n)
            continue
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, (int, np.integer)):
            raise ArgumentTypeError(
                f"{op}: output_size entries must be positive ints or None (keep the input "
                f"size); got {output_size!r}."
            )
        if entry < 1:
            raise ConfigError(f"{op}: output_size entries must be >= 1; got {output_size!r}.")
        sizes.append(int(entry))
    if any(n < 1 for n in spatial):
        raise ShapeError(
            f"{op}: every spatial axis of x must have at least one entry (an empty window has "
            f"no mean or max); got shape {format_shape(x_shape)}."
        )
    return tuple(sizes)


def _checked(x: Any, output_size: Any, op: str) -> tuple[np.ndarray, tuple[int, ...]]:
    x = as_float_array(x, "x", op)
    out = adaptive_output_size(x.shape, output_size, op)
    # the passes over one axis at a time, the arg-max table and the gradient are up to the
    # input's size, in float64 and int64
    check_allocation(x.shape[:2] + out, x.dtype, f"output (output_size {out})", op,
                     (x.shape, np.float64, "working copies of x"),
                     (x.shape, np.int64, "arg-max tables"))
    return x, out


def _averaging_matrix(n: int, out: int, dtype: Any) -> np.ndarray:
    """The ``(out, n)`` matrix whose row ``i`` averages window ``i``."""
    m = np.zeros((out, n), dtype=dtype)
    for i, (start, end) in enumerate(adaptive_windows(n, out)):
        m[i, start:end] = 1.0 / (end - start)
    return m


def _avg_axis(x: np.ndarray, axis: int, out: int) -> np.ndarray:
    """Adaptive mean along one axis (a plain mean, a reshape-mean, or the matrix)."""
    n = x.shape[axis]
    if out == n:
        return x
    if out == 1:
        return x.mean(axis=axis, keepdims=True)
    if n % out == 0:
        shape = x.shape[:axis] + (out, n // out) + x.shape[axis + 1:]
        return x.reshape(shape).mean(axis=axis + 1)
    m = _averaging_matrix(n, out, x.dtype)
    return np.moveaxis(np.tensordot(m, x, axes=([1], [axis])), 0, axis)


def _avg_axis_backward(dy: np.ndarray, axis: int, n: int) -> np.ndarray:
    """The adjoint of :func:`_avg_axis`: ``dy`` spread back over an axis of ``n`` entries."""
    out = dy.shape[axis]
    if out == n:
        return dy
    if out == 1:
        return np.broadcast_to(dy / dy.dtype.type(n), dy.shape[:axis] + (n,) + dy.shape[axis + 1:])
    if n % out == 0:
        k = n // out
        spread = np.repeat(dy / dy.dtype.type(k), k, axis=axis)
        return spread
    m = _averaging_matrix(n, out, dy.dtype)
    return np.moveaxis(np.tensordot(m.T, dy, axes=([1], [axis])), 0, axis)


def adaptive_avg_pool(x: np.ndarray, output_size: Any) -> np.ndarray:
    """Adaptive average pooling of ``x`` (N, C, *spatial) to ``output_size`` per axis.

    Args:
        x: float32 or float64 array ``(N, C, *spatial)``, any number of spatial axes.
        output_size: an int (every axis) or one int or None per spatial axis (None keeps
            the input size); may exceed the input size.

    Returns:
        A new array ``(N, C, *output_size)`` of x's dtype; entry ``i`` is the mean of the
        window ``floor(i n / out) .. ceil((i+1) n / out)`` of each axis.

    Raises:
        DTypeError: x is not float32 / float64.
        ShapeError: x has no spatial axis, or an empty one.
        ConfigError / ArgumentTypeError: bad output_size.

    Example:
        >>> import numpy as np
        >>> adaptive_avg_pool(np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]]), 3)
        array([[[1.5, 3. , 4.5]]])
        >>> float(adaptive_avg_pool(np.arange(16.0).reshape(1, 1, 4, 4), 1)[0, 0, 0, 0])
        7.5
    """
    x, out = _checked(x, output_size, "adaptive_avg_pool")
    y = x
    for axis, size in enumerate(out, start=2):
        y = _avg_axis(y, axis, size)
    return np.array(y, copy=True) if y is x else np.ascontiguousarray(y)


def adaptive_avg_pool_backward(dy: np.ndarray, x: np.ndarray, output_size: Any) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool` with respect to ``x``.

    Args:
        dy: gradient of the loss with respect to the output ``(N, C, *output_size)``.
        x: the input given to the forward (only its shape and dtype are used).
        output_size: the same output_size as in the forward.

    Returns:
        A new array dx of x's shape: each dy entry divided by its window's size and added
        to every entry of the window (overlapping windows add up).

    Raises:
        ShapeError: dy does not have the forward output's shape.
        DTypeError: a non-float array, or dy and x of different dtypes.

    Example:
        >>> import numpy as np
        >>> x = np.zeros((1, 1, 5))
        >>> adaptive_avg_pool_backward(np.full((1, 1, 3), 6.0), x, 3)  # windows of 2, 3, 2
        array([[[3., 5., 2., 5., 3.]]])
    """
    op = "adaptive_avg_pool_backward"
    x, out = _checked(x, output_size, op)
    dy = check_dy(dy, x, x.shape[:2] + out, op)
    dx = dy
    for axis in range(len(out) + 1, 1, -1):
        dx = _avg_axis_backward(dx, axis, x.shape[axis])
    return np.array(dx, dtype=x.dtype, copy=True, order="C")


def _window_table(n: int, out: int) -> np.ndarray:
    """``(out, kmax)`` input indices of each window, short windows padded with their last
    index (a repeat, after the real entries, never changes a first-occurrence argmax)."""
    wins = adaptive_windows(n, out)
    kmax = max(end - start for start, end in wins)
    table = np.empty((out, kmax), dtype=np.intp)
    for i, (start, end) in enumerate(wins):
        table[i] = np.minimum(np.arange(start, start + kmax), end - 1)
    return table


def adaptive_max_pool_with_argmax(x: np.ndarray, output_size: Any) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive max pooling, and each window's arg-max (for the backward).

    Args:
        x: float32 or float64 array ``(N, C, *spatial)``.
        output_size: as :func:`adaptive_avg_pool`.

    Returns:
        ``(y, argmax)``: y ``(N, C, *output_size)`` in x's dtype, the largest entry of every
        window; argmax (int64, y's shape) the flat index of that entry in its ``(n, c)``
        plane of ``prod(spatial)`` entries (PyTorch's ``return_indices``). Ties: the first
        in row-major order; a NaN wins, as in PyTorch.

    Raises:
        As :func:`adaptive_avg_pool`.

    Example:
        >>> import numpy as np
        >>> y, idx = adaptive_max_pool_with_argmax(np.array([[[1.0, 5.0, 2.0, 5.0, 0.0]]]), 3)
        >>> y, idx
        (array([[[5., 5., 5.]]]), array([[[1, 1, 3]]]))
    """
    x, out = _checked(x, output_size, "adaptive_max_pool")
    spatial = x.shape[2:]
    values = x
    index = np.broadcast_to(np.arange(math.prod(spatial), dtype=np.int64).reshape(spatial), x.shape)
    for axis in range(len(out) + 1, 1, -1):  # the last axis first: row-major tie order
        table = _window_table(spatial[axis - 2], out[axis - 2])
        gathered = np.take(values, table, axis=axis)  # (..., out, kmax, ...)
        pick = np.expand_dims(np.argmax(gathered, axis=axis + 1), axis + 1)
        values = np.take_along_axis(gathered, pick, axis=axis + 1).squeeze(axis + 1)
        index = np.take_along_axis(np.take(index, table, axis=axis), pick, axis=axis + 1).squeeze(axis + 1)
    return np.ascontiguousarray(values, dtype=x.dtype), np.ascontiguousarray(index, dtype=np.int64)


def adaptive_max_pool(x: np.ndarray, output_size: Any) -> np.ndarray:
    """Adaptive max pooling: the largest entry of every window (see
    :func:`adaptive_max_pool_with_argmax`, which also keeps where it was).

    Example:
        >>> import numpy as np
        >>> adaptive_max_pool(np.arange(16.0).reshape(1, 1, 4, 4), (1, 2))
        array([[[[13., 15.]]]])
    """
    return adaptive_max_pool_with_argmax(x, output_size)[0]


def adaptive_max_pool_with_argmax_backward(dy: np.ndarray, argmax: np.ndarray,
                                           x_shape: Sequence[int]) -> np.ndarray:
    """Gradient of adaptive max pooling from the arg-max the forward kept.

    Args:
        dy: gradient of the loss with respect to the output; argmax's shape.
        argmax: the int array :func:`adaptive_max_pool_with_argmax` returned.
        x_shape: the input's shape ``(N, C, *spatial)``.

    Returns:
        dx of shape ``x_shape`` in dy's dtype: each dy entry added at its window's arg-max
        (overlapping windows that share a maximum add up), zero elsewhere.

    Raises:
        ShapeError: dy and argmax differ in shape, or do not fit x_shape.
        ConfigError: an argmax entry outside its plane.

    Example:
        >>> import numpy as np
        >>> adaptive_max_pool_with_argmax_backward(np.ones((1, 1, 3)), np.array([[[1, 1, 3]]]),
        ...                                        (1, 1, 5))
        array([[[0., 2., 0., 1., 0.]]])
    """
    op = "adaptive_max_pool_with_argmax_backward"
    dy = as_float_array(dy, "dy", op)
    try:
        argmax = np.asarray(argmax)
        x_shape = tuple(int(v) for v in x_shape)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{op}: argmax must be an int array and x_shape a tuple of ints; got "
                                f"{type(argmax).__name__} and {x_shape!r}.") from None
    if x_shape and min(x_shape) >= 0:
        check_allocation(x_shape, np.float64, "dx", op, (dy.shape, np.int64, "flat indices of dy"))
    if argmax.shape != dy.shape or argmax.dtype.kind not in "iu" or len(x_shape) != dy.ndim \
            or x_shape[:2] != dy.shape[:2]:
        raise ShapeError(
            f"{op}: dy and argmax must have one shape (N, C, *output_size) matching x_shape "
            f"{format_shape(x_shape)} in N, C and the number of axes, argmax of ints; got dy "
            f"{format_shape(dy.shape)}, argmax {format_shape(argmax.shape)} of {argmax.dtype}."
        )
    plane = math.prod(x_shape[2:])
    if argmax.size and (argmax.min() < 0 or argmax.max() >= plane):
        raise ConfigError(
            f"{op}: argmax entries must index a plane of {plane} entries (0..{plane - 1}); got "
            f"values in {int(argmax.min())}..{int(argmax.max())}. Pass the argmax of the same "
            f"forward."
        )
    rows = math.prod(x_shape[:2])
    if rows == 0 or dy.size == 0:
        return np.zeros(x_shape, dtype=dy.dtype)
    flat = argmax.reshape(rows, -1).astype(np.int64) + (np.arange(rows, dtype=np.int64) * plane)[:, None]
    dx = np.bincount(flat.ravel(), weights=dy.reshape(-1).astype(np.float64), minlength=rows * plane)
    return dx.astype(dy.dtype).reshape(x_shape)


def adaptive_max_pool_backward(dy: np.ndarray, x: np.ndarray, output_size: Any) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool`, finding each window's arg-max again.

    Example:
        >>> import numpy as np
        >>> adaptive_max_pool_backward(np.ones((1, 1, 1)), np.array([[[1.0, 3.0, 2.0]]]), 1)
        array([[[0., 1., 0.]]])
    """
    op = "adaptive_max_pool_backward"
    y, argmax = adaptive_max_pool_with_argmax(x, output_size)
    x = np.asarray(x)
    dy = check_dy(dy, x, y.shape, op)
    return adaptive_max_pool_with_argmax_backward(dy, argmax, x.shape)
