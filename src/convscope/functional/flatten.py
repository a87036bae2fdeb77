"""Flatten feature maps into vectors for the fully connected layers, and its backward.

The notes flatten after the convolutions are finished, to feed the FC network (section
9.3). Flattening only relabels entries (row-major / C order, as PyTorch), so its backward
is the inverse relabelling: reshape the gradient back to the input's shape.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..shapes import as_float_array, format_shape
from .windows import check_allocation

__all__ = ["flatten", "flatten_backward"]


def _flat_shape(shape: tuple[int, ...], start_dim: int) -> tuple[int, ...]:
    return tuple(shape[:start_dim]) + (int(np.prod(shape[start_dim:], dtype=np.int64)),)


def flatten(x: np.ndarray, start_dim: int = 1) -> np.ndarray:
    """Merge the axes from ``start_dim`` on into one: (N, C, H, W) -> (N, C*H*W).

    Args:
        x: float32 or float64 array with at least one axis.
        start_dim: first axis to merge (default 1, keeping the batch axis); negative values
            count from the end, as in PyTorch.

    Returns:
        A new array (never a view of x) of shape ``x.shape[:start_dim] + (prod of the
        rest,)``, entries in row-major (C) order, x's dtype.

    Raises:
        DTypeError: x is not float32 / float64.
        ShapeError: x is 0-d.
        ConfigError: start_dim is out of range.  ArgumentTypeError: start_dim is not an int.

    Example:
        >>> import numpy as np
        >>> x = np.arange(12.0).reshape(2, 3, 2)
        >>> flatten(x)
        array([[ 0.,  1.,  2.,  3.,  4.,  5.],
               [ 6.,  7.,  8.,  9., 10., 11.]])
        >>> flatten(x, start_dim=0).shape
        (12,)
    """
    x = as_float_array(x, "x", "flatten")
    # The result is a copy of x: a zero-stride view (np.broadcast_to) may not fit in memory.
    check_allocation(x.shape, x.dtype, "flattened copy of x", "flatten")
    if isinstance(start_dim, (bool, np.bool_)) or not isinstance(start_dim, numbers.Integral):
        raise ArgumentTypeError(
            f"flatten: start_dim must be an int; got {start_dim!r} of type {type(start_dim).__name__}."
        )
    if x.ndim == 0:
        raise ShapeError("flatten: x must have at least one axis; got a 0-d array.")
    start_dim = int(start_dim)
    if not -x.ndim <= start_dim < x.ndim:
        raise ConfigError(
            f"flatten: start_dim must be in [{-x.ndim}, {x.ndim - 1}] for x of shape "
            f"{format_shape(x.shape)}; got start_dim={start_dim}."
        )
    # A copy, so that writing into the result (e.g. a later in-place update) never changes x.
    return x.reshape(_flat_shape(x.shape, start_dim % x.ndim)).copy()


def flatten_backward(dy: np.ndarray, x_shape: Any) -> np.ndarray:
    """Gradient of :func:`flatten`: ``dy`` reshaped back to the input's shape.

    Args:
        dy: gradient of the loss with respect to flatten(x).
        x_shape: shape of the x given to :func:`flatten` (a tuple of non-negative ints).

    Returns:
        A new array dx of shape x_shape, dy's dtype.

    Raises:
        ShapeError: dy is not the flattened form of x_shape for any start_dim.
        ArgumentTypeError: x_shape is not a sequence of non-negative ints.
        DTypeError: dy is not float32 / float64.

    Example:
        >>> import numpy as np
        >>> flatten_backward(np.array([[1.0, 2.0, 3.0, 4.0]]), (1, 2, 2))
        array([[[1., 2.],
                [3., 4.]]])
    """
    op = "flatten_backward"
    dy = as_float_array(dy, "dy", op)
    if isinstance(x_shape, (numbers.Integral, np.integer)) and not isinstance(x_shape, bool):
        x_shape = (x_shape,)
    try:
        shape = tuple(x_shape)
    except TypeError:
        shape = None
    if shape is None or not shape or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and int(v) >= 0
        for v in shape
    ):
        raise ArgumentTypeError(
            f"{op}: x_shape must be the shape of flatten's input, a non-empty tuple of "
            f"non-negative ints; got {x_shape!r}."
        )
    shape = tuple(int(v) for v in shape)
    if not any(dy.shape == _flat_shape(shape, start) for start in range(len(shape))):
        example = _flat_shape(shape, min(1, len(shape) - 1))
        raise ShapeError(
            f"{op}: dy of shape {format_shape(dy.shape)} is not the flattened form of "
            f"x_shape {format_shape(shape)}; expected e.g. {format_shape(example)} "
            f"(flatten with start_dim=1). Pass the shape of the array that was flattened."
        )
    check_allocation(dy.shape, dy.dtype, "copy of dy", op)
    return dy.reshape(shape).copy()
