"""Activation functions and their derivatives: relu, leaky_relu, sigmoid, tanh, softmax,
and the mobile/transformer-era ones: relu6, hardsigmoid, hardswish, silu, gelu.

Each activation is a pair ``op(x)`` / ``op_backward(dy, x)``. Elementwise activations act
on every entry on its own, so their Jacobian is diagonal (notes 9.4.4, Concept 65): the
backward is ``dx = dy * f'(x)`` entry by entry. :func:`relu_jacobian` builds that diagonal
matrix explicitly for a 1-D input, as the notes draw it (Key Equation 66, example 9.26).
Softmax and log-softmax mix the entries along one axis, so their backward is the full
vector-Jacobian product along that axis.

All functions accept float32 or float64 arrays of any shape, keep the input dtype (no
float64 upcast of float32 input), never modify their arguments, and let NaN and Inf
propagate as NumPy does. Bad input raises a :mod:`convscope.errors` error.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .. import parallel
from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..shapes import as_float_array, format_shape
from .windows import check_allocation, check_dy

__all__ = [
    "relu",
    "relu_backward",
    "relu_jacobian",
    "leaky_relu",
    "leaky_relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
    "softmax",
    "softmax_backward",
    "log_softmax",
    "log_softmax_backward",
    "relu6",
    "relu6_backward",
    "hardsigmoid",
    "hardsigmoid_backward",
    "hardswish",
    "hardswish_backward",
    "silu",
    "silu_backward",
    "gelu",
    "gelu_backward",
    "erf",
]


# ----------------------------------------------------------------------------------------
# Shared validation
# ----------------------------------------------------------------------------------------
def _float_input(x: Any, name: str, op: str) -> np.ndarray:
    """``x`` as a float array whose same-sized result fits the array limit.

    A zero-stride view (``np.broadcast_to``) can describe trillions of entries without
    memory; refusing it here, with the arithmetic, beats a raw MemoryError or minutes of
    looping.
    """
    x = as_float_array(x, name, op)
    check_allocation(x.shape, x.dtype, f"output (the shape of {name})", op)
    return x


def _grad_pair(dy: Any, x: Any, op: str) -> tuple[np.ndarray, np.ndarray]:
    """``dy`` and ``x`` as float arrays of one dtype and one shape (what every backward needs)."""
    x = _float_input(x, "x", op)
    dy = check_dy(dy, x, x.shape, op, f"the shape of x, {format_shape(x.shape)} (the gradient of the "
                  "loss with respect to the output, which has the input's shape)", got="dy of shape ")
    return dy, x


def _slope(negative_slope: Any, op: str) -> float:
    if isinstance(negative_slope, (bool, np.bool_)) or not isinstance(negative_slope, numbers.Real):
        raise ArgumentTypeError(
            f"{op}: negative_slope must be a real number (the slope used for x <= 0); got "
            f"{negative_slope!r} of type {type(negative_slope).__name__}."
        )
    return float(negative_slope)


def _axis(axis: Any, x: np.ndarray, op: str) -> int:
    """``axis`` as an index in ``[0, x.ndim)``; negative values count from the end."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise ArgumentTypeError(
            f"{op}: axis must be an int; got {axis!r} of type {type(axis).__name__}."
        )
    if x.ndim == 0:
        raise ShapeError(
            f"{op}: x must have at least one axis to normalise over; got a 0-d array. "
            f"Wrap a single value as a 1-D array, e.g. np.atleast_1d(x)."
        )
    axis = int(axis)
    if not -x.ndim <= axis < x.ndim:
        raise ConfigError(
            f"{op}: axis must be in [{-x.ndim}, {x.ndim - 1}] for x of shape "
            f"{format_shape(x.shape)}; got axis={axis}."
        )
    return axis % x.ndim


# ----------------------------------------------------------------------------------------
# ReLU (notes 9.4.4)
# ----------------------------------------------------------------------------------------
def relu(x: np.ndarray) -> np.ndarray:
    """Rectified linear unit, ``max(x, 0)`` entry by entry (notes 9.25).

    Args:
        x: float32 or float64 array of any shape (the pre-activation Z).

    Returns:
        A new array A = ReLU(Z) of x's shape and dtype.

    Raises:
        DTypeError: x is not float32 / float64.

    Example:
        >>> import numpy as np
        >>> relu(np.array([-2.0, -0.5, 0.0, 1.5, 3.0]))
        array([0. , 0. , 0. , 1.5, 3. ])
    """
    x = _float_input(x, "x", "relu")
    # np.maximum propagates NaN (NaN stays NaN), as PyTorch's relu does.
    y = np.empty(x.shape, dtype=x.dtype)
    zero = x.dtype.type(0)

    def part(s):  # a slice of the batch (the whole array unless threads are on)
        np.maximum(x[s], zero, out=y[s])

    parallel.over_batch(part, x)
    return y


def relu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu`: ``dx = dy`` where ``x > 0``, else ``0``.

    Args:
        dy: gradient of the loss with respect to relu(x); same shape and dtype as x.
        x: the input that was given to :func:`relu`.

    Returns:
        A new array dx, the gradient of the loss with respect to x.

    Raises:
        ShapeError: dy and x have different shapes.
        DTypeError: a non-float array, or dy and x of different dtypes.

    Notes:
        Implements the notes' Key Equation 66: the Jacobian dA/dZ is diagonal with entries
        1 where Z_i > 0 and 0 otherwise, so multiplying by it keeps or zeroes each entry of
        dy. At the kink x == 0 the derivative is taken as 0 (the notes' "otherwise", and
        PyTorch's choice). Like PyTorch, a NaN in x passes its gradient through.

    Example:
        >>> import numpy as np
        >>> relu_backward(np.array([5.0, 6.0, 7.0, 8.0]), np.array([1.0, 2.0, -3.0, 0.0]))
        array([5., 6., 0., 0.])
    """
    dy, x = _grad_pair(dy, x, "relu_backward")
    dx = np.empty(dy.shape, dtype=dy.dtype)

    def part(s):  # a slice of the batch (the whole array unless threads are on)
        # Key Eq. 66: diag(1 if Z_i > 0 else 0) applied to dy; "not x <= 0" (rather than
        # "x > 0") keeps PyTorch's behaviour for NaN inputs. A product with the 0/1 mask is
        # branch-free (np.where measured 5x slower on a random sign pattern).
        keep = np.asarray(np.less_equal(x[s], 0))  # (a 0-d x gives a scalar)
        np.logical_not(keep, out=keep)
        with np.errstate(invalid="ignore"):
            np.multiply(dy[s], keep, out=dx[s])
        return np.add.reduce(dx[s], axis=None)

    sums = parallel.over_batch(part, x)
    # inf * 0 at a zeroed entry must give 0, as the Jacobian says; a NaN anywhere makes the
    # sum NaN (one cheap pass), and then the exact, slower selection runs.
    if any(np.isnan(total) for total in sums):
        return np.where(x <= 0, dy.dtype.type(0), dy)
    return dx


def relu_jacobian(z: np.ndarray) -> np.ndarray:
    """The (m x m) Jacobian dA/dZ of ReLU for a length-m vector Z (notes Key Equation 66).

    Args:
        z: 1-D float32 or float64 array, the pre-activation Z of length m.

    Returns:
        The diagonal matrix with ``1`` at (i, i) where ``z[i] > 0`` and ``0`` everywhere
        else, in z's dtype. Multiplying it by an upstream gradient gives
        :func:`relu_backward` (which never builds the matrix).

    Raises:
        ShapeError: z is not 1-D.
        DTypeError: z is not float32 / float64.

    Example:
        The notes' example 9.26, where only Z_3 is negative:

        >>> import numpy as np
        >>> relu_jacobian(np.array([0.5, 2.0, -1.0, 3.0]))
        array([[1., 0., 0., 0.],
               [0., 1., 0., 0.],
               [0., 0., 0., 0.],
               [0., 0., 0., 1.]])
    """
    z = as_float_array(z, "z", "relu_jacobian")
    if z.ndim != 1:
        raise ShapeError(
            f"relu_jacobian: z must be a 1-D vector of length m (the Jacobian is m x m); got "
            f"shape {format_shape(z.shape)}. Flatten it first, e.g. z.reshape(-1)."
        )
    check_allocation((z.shape[0], z.shape[0]), z.dtype, "m x m Jacobian of z", "relu_jacobian")
    return np.diag((z > 0).astype(z.dtype))


# ----------------------------------------------------------------------------------------
# Leaky ReLU
# ----------------------------------------------------------------------------------------
def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """Leaky ReLU: ``x`` where ``x > 0``, else ``negative_slope * x``.

    Args:
        x: float32 or float64 array of any shape.
        negative_slope: slope for x <= 0 (default 0.01, as PyTorch).

    Returns:
        A new array of x's shape and dtype.

    Raises:
        DTypeError: x is not float32 / float64.
        ArgumentTypeError: negative_slope is not a real number.

    Example:
        >>> import numpy as np
        >>> leaky_relu(np.array([-2.0, 0.0, 3.0]), negative_slope=0.5)
        array([-1.,  0.,  3.])
    """
    x = _float_input(x, "x", "leaky_relu")
    slope = x.dtype.type(_slope(negative_slope, "leaky_relu"))
    return np.where(x > 0, x, x * slope)


def leaky_relu_backward(dy: np.ndarray, x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """Gradient of :func:`leaky_relu`: ``dx = dy`` where ``x > 0``, else ``negative_slope * dy``.

    Args:
        dy: gradient of the loss with respect to leaky_relu(x); x's shape and dtype.
        x: the input that was given to :func:`leaky_relu`.
        negative_slope: the same slope as in the forward (default 0.01).

    Returns:
        A new array dx. At the kink x == 0 the slope of the left piece is used (as PyTorch).

    Raises:
        ShapeError: dy and x have different shapes.
        DTypeError: a non-float array, or dy and x of different dtypes.
        ArgumentTypeError: negative_slope is not a real number.

    Example:
        >>> import numpy as np
        >>> leaky_relu_backward(np.array([4.0, 4.0, 4.0]), np.array([-2.0, 0.0, 3.0]), 0.5)
        array([2., 2., 4.])
    """
    dy, x = _grad_pair(dy, x, "leaky_relu_backward")
    slope = x.dtype.type(_slope(negative_slope, "leaky_relu_backward"))
    # Diagonal Jacobian as in Key Eq. 66, with negative_slope instead of 0 on the left piece.
    return np.where(x > 0, dy, dy * slope)


# ----------------------------------------------------------------------------------------
# Sigmoid and tanh
# ----------------------------------------------------------------------------------------
def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed without overflow.

    Args:
        x: float32 or float64 array of any shape.

    Returns:
        A new array of values in [0, 1], x's shape and dtype.

    Raises:
        DTypeError: x is not float32 / float64.

    Notes:
        With ``e = exp(-|x|)`` (always in (0, 1], so it never overflows) the value is
        ``1 / (1 + e)`` for x >= 0 and ``e / (1 + e)`` for x < 0. The naive formula
        overflows in exp(-x) for large negative x; this form also keeps full relative
        precision of tiny results (sigmoid(-40) is about 4.2e-18, not 0).

    Example:
        >>> import numpy as np
        >>> sigmoid(np.array([0.0, np.log(3.0), -np.log(3.0)]))
        array([0.5 , 0.75, 0.25])
        >>> float(sigmoid(np.array([-1000.0]))[0]), float(sigmoid(np.array([1000.0]))[0])
        (0.0, 1.0)
    """
    x = _float_input(x, "x", "sigmoid")
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e))


def sigmoid_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`sigmoid`: ``dx = dy * s * (1 - s)`` with ``s = sigmoid(x)``.

    Args:
        dy: gradient of the loss with respect to sigmoid(x); x's shape and dtype.
        x: the input that was given to :func:`sigmoid`.

    Returns:
        A new array dx.

    Raises:
        ShapeError: dy and x have different shapes.
        DTypeError: a non-float array, or dy and x of different dtypes.

    Notes:
        ``s * (1 - s)`` is evaluated as ``e / (1 + e)**2`` with ``e = exp(-|x|)``: the same
        value, but for large x it does not cancel to 0 in ``1 - s``.

    Example:
        >>> import numpy as np
        >>> sigmoid_backward(np.array([1.0, 1.0]), np.array([0.0, np.log(3.0)]))
        array([0.25  , 0.1875])
    """
    dy, x = _grad_pair(dy, x, "sigmoid_backward")
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    # Diagonal Jacobian (notes 9.24) with f'(x) = s(1 - s) = e / (1 + e)^2.
    return dy * (e / ((one + e) * (one + e)))


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent entry by entry (values in [-1, 1]).

    Args:
        x: float32 or float64 array of any shape.

    Returns:
        A new array of x's shape and dtype.

    Raises:
        DTypeError: x is not float32 / float64.

    Example:
        >>> import numpy as np
        >>> tanh(np.array([0.0, np.log(3.0), -1000.0]))
        array([ 0. ,  0.8, -1. ])
    """
    x = _float_input(x, "x", "tanh")
    return np.tanh(x)


def tanh_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`tanh`: ``dx = dy * (1 - tanh(x)**2)``.

    Arguments (``dy`` being the gradient with respect to tanh(x)), result and errors as
    :func:`sigmoid_backward`.

    Notes:
        ``1 - tanh(x)**2 = 1 / cosh(x)**2`` is evaluated as ``4e / (1 + e)**2`` with
        ``e = exp(-2|x|)``, which neither overflows nor cancels to 0 for large |x|.

    Example:
        >>> import numpy as np
        >>> tanh_backward(np.array([1.0, 2.0]), np.array([0.0, np.log(3.0)]))
        array([1.  , 0.72])
    """
    dy, x = _grad_pair(dy, x, "tanh_backward")
    e = np.exp(-2 * np.abs(x))
    one = x.dtype.type(1)
    # Diagonal Jacobian (notes 9.24) with f'(x) = sech(x)^2.
    return dy * ((4 * e) / ((one + e) * (one + e)))


# ----------------------------------------------------------------------------------------
# Softmax and log-softmax (along one axis)
# ----------------------------------------------------------------------------------------
def _shifted(x: np.ndarray, axis: int) -> np.ndarray:
    """``x - max(x, axis)``: the same softmax, but exp() of it never overflows."""
    return x - np.max(x, axis=axis, keepdims=True)


def _softmax_of(x: np.ndarray, axis: int) -> np.ndarray:
    """softmax of a checked ``x`` along ``axis``, from the shifted exponentials."""
    if x.size == 0:  # no maximum to shift by
        return np.empty_like(x)
    e = np.exp(_shifted(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def _softmax_grad_args(dy: Any, x: Any, axis: Any, op: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The checked ``dy``, ``x`` and ``axis`` of a softmax-family backward (see :func:`_grad_pair`)."""
    dy, x = _grad_pair(dy, x, op)
    return dy, x, _axis(axis, x, op)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``: ``exp(x_i) / sum_j exp(x_j)``, so each slice sums to 1.

    Args:
        x: float32 or float64 array with at least one axis, e.g. logits (N, C).
        axis: the axis to normalise over (default -1, the last).

    Returns:
        A new array of x's shape and dtype with entries in [0, 1].

    Raises:
        DTypeError: x is not float32 / float64.
        ShapeError: x is 0-d.
        ConfigError: axis is out of range.  ArgumentTypeError: axis is not an int.

    Notes:
        The maximum of each slice is subtracted before exp(), which changes nothing
        mathematically (the factor exp(-max) cancels) but keeps exp() from overflowing.
        A slice containing +Inf or NaN gives NaN, as in PyTorch.

    Example:
        >>> import numpy as np
        >>> softmax(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]]))
        array([[0.25, 0.75],
               [0.5 , 0.5 ]])
    """
    x = _float_input(x, "x", "softmax")
    return _softmax_of(x, _axis(axis, x, "softmax"))


def softmax_backward(dy: np.ndarray, x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient of :func:`softmax`: ``dx = y * (dy - sum(dy * y, axis))`` with ``y = softmax(x)``.

    Args:
        dy: gradient of the loss with respect to softmax(x); x's shape and dtype.
        x: the input that was given to :func:`softmax`.
        axis: the same axis as in the forward (default -1).

    Returns:
        A new array dx.

    Raises:
        ShapeError: dy and x have different shapes, or x is 0-d.
        DTypeError: a non-float array, or dy and x of different dtypes.
        ConfigError: axis is out of range.

    Notes:
        The Jacobian of one slice is ``diag(y) - y y^T`` (not diagonal: every output
        depends on every input of its slice); the formula above is its product with dy.

    Example:
        With y = softmax(x) = [0.25, 0.75] and dy = [1, 0]: sum(dy * y) = 0.25, so
        dx = [0.25 * 0.75, 0.75 * -0.25]. A constant dy gives dx = 0, because the outputs
        always sum to 1:

        >>> import numpy as np
        >>> x = np.array([0.0, np.log(3.0)])
        >>> softmax_backward(np.array([1.0, 0.0]), x)
        array([ 0.1875, -0.1875])
        >>> softmax_backward(np.array([2.0, 2.0]), x)
        array([0., 0.])
    """
    dy, x, axis = _softmax_grad_args(dy, x, axis, "softmax_backward")
    y = _softmax_of(x, axis)
    return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Logarithm of :func:`softmax`: ``x_i - log(sum_j exp(x_j))``, computed stably.

    Args:
        x: float32 or float64 array with at least one axis, e.g. logits (N, C).
        axis: the axis to normalise over (default -1, the last).

    Returns:
        A new array of x's shape and dtype (all entries <= 0).

    Raises:
        DTypeError: x is not float32 / float64.
        ShapeError: x is 0-d.
        ConfigError: axis is out of range.  ArgumentTypeError: axis is not an int.

    Notes:
        Uses the log-sum-exp trick: with ``m = max(x)``,
        ``log(sum exp(x_j)) = m + log(sum exp(x_j - m))``. This stays finite for logits
        like 1000 (where exp overflows) and keeps tiny probabilities as large negative
        numbers instead of log(0) = -inf.

    Example:
        >>> import numpy as np
        >>> np.exp(log_softmax(np.array([0.0, np.log(3.0)])))
        array([0.25, 0.75])
        >>> log_softmax(np.array([1000.0, 0.0]))
        array([    0., -1000.])
    """
    x = _float_input(x, "x", "log_softmax")
    axis = _axis(axis, x, "log_softmax")
    if x.size == 0:
        return np.empty_like(x)
    z = _shifted(x, axis)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def log_softmax_backward(dy: np.ndarray, x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient of :func:`log_softmax`: ``dx = dy - softmax(x) * sum(dy, axis)``.

    Arguments (``dy`` being the gradient with respect to log_softmax(x)), result and errors
    as :func:`softmax_backward`.

    Notes:
        The Jacobian of one slice is ``I - 1 y^T`` with ``y = softmax(x)``; with a one-hot
        ``-dy`` this gives the familiar cross-entropy gradient ``softmax - onehot``.

    Example:
        >>> import numpy as np
        >>> log_softmax_backward(np.array([-1.0, 0.0]), np.array([0.0, np.log(3.0)]))
        array([-0.75,  0.75])
    """
    dy, x, axis = _softmax_grad_args(dy, x, axis, "log_softmax_backward")
    y = _softmax_of(x, axis)
    return dy - y * np.sum(dy, axis=axis, keepdims=True)


# ----------------------------------------------------------------------------------------
# ReLU6, hard sigmoid, hard swish (MobileNetV2/V3), SiLU and GELU
# ----------------------------------------------------------------------------------------
def _inside(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """1 where ``low < x < high`` (open interval: 0 at both kinks, as PyTorch), else 0."""
    return ((x > low) & (x < high)).astype(x.dtype)


def relu6(x: np.ndarray) -> np.ndarray:
    """ReLU capped at 6: ``min(max(x, 0), 6)`` entry by entry (MobileNetV2).

    Args:
        x: float32 or float64 array of any shape.

    Returns:
        A new array of x's shape and dtype, values in [0, 6]. NaN stays NaN.

    Raises:
        DTypeError: x is not float32 / float64.

    Example:
        >>> import numpy as np
        >>> relu6(np.array([-1.0, 0.5, 6.0, 9.0]))
        array([0. , 0.5, 6. , 6. ])
    """
    x = _float_input(x, "x", "relu6")
    return np.minimum(np.maximum(x, x.dtype.type(0)), x.dtype.type(6))


def relu6_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu6`: ``dx = dy`` where ``0 < x < 6``, else ``0``.

    Arguments, result and errors as :func:`relu_backward`.

    Notes:
        The derivative is 1 on the open interval (0, 6) and 0 outside; at both kinks
        (x == 0 and x == 6) it is taken as 0, as PyTorch (relu6 is its hardtanh(0, 6)).

    Example:
        >>> import numpy as np
        >>> relu6_backward(np.ones(4), np.array([0.0, 3.0, 6.0, 7.0]))
        array([0., 1., 0., 0.])
    """
    dy, x = _grad_pair(dy, x, "relu6_backward")
    return dy * _inside(x, 0.0, 6.0)


def hardsigmoid(x: np.ndarray) -> np.ndarray:
    """Piecewise-linear sigmoid ``relu6(x + 3) / 6``: 0 below -3, 1 above 3 (MobileNetV3).

    Args:
        x: float32 or float64 array of any shape.

    Returns:
        A new array of x's shape and dtype, values in [0, 1].

    Raises:
        DTypeError: x is not float32 / float64.

    Example:
        >>> import numpy as np
        >>> hardsigmoid(np.array([-4.0, 0.0, 1.5, 3.0]))
        array([0.  , 0.5 , 0.75, 1.  ])
    """
    x = _float_input(x, "x", "hardsigmoid")
    return _hardsigmoid_of(x)


def _hardsigmoid_of(x: np.ndarray) -> np.ndarray:
    t = x.dtype.type
    return np.minimum(np.maximum(x + t(3), t(0)), t(6)) / t(6)


def hardsigmoid_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`hardsigmoid`: ``dx = dy / 6`` where ``-3 < x < 3``, else ``0``.

    Arguments, result and errors as :func:`relu_backward`; at the kinks x == -3 and x == 3
    the derivative is 0, as PyTorch.

    Example:
        >>> import numpy as np
        >>> hardsigmoid_backward(np.full(3, 6.0), np.array([-3.0, 0.0, 3.0]))
        array([0., 1., 0.])
    """
    dy, x = _grad_pair(dy, x, "hardsigmoid_backward")
    return dy * _inside(x, -3.0, 3.0) / x.dtype.type(6)


def hardswish(x: np.ndarray) -> np.ndarray:
    """Hard swish ``x * relu6(x + 3) / 6`` (MobileNetV3): 0 below -3, ``x`` above 3.

    Args:
        x: float32 or float64 array of any shape.

    Returns:
        A new array of x's shape and dtype.

    Raises:
        DTypeError: x is not float32 / float64.

    Example:
        >>> import numpy as np
        >>> hardswish(np.array([-4.0, -1.5, 0.0, 1.5, 4.0]))
        array([-0.   , -0.375,  0.   ,  1.125,  4.   ])
    """
    x = _float_input(x, "x", "hardswish")
    return x * _hardsigmoid_of(x)


def hardswish_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`hardswish`: ``dx = dy * f'(x)`` with ``f'(x) = 0`` for
    ``x <= -3``, ``2x/6 + 1/2`` for ``-3 < x < 3`` and ``1`` for ``x >= 3``.

    Arguments, result and errors as :func:`relu_backward`.

    Notes:
        The middle piece is the derivative of ``x (x + 3) / 6``. At the kinks the outer
        pieces are used, as PyTorch 2.13 does (checked in the tests): ``f'(-3) = 0`` and
        ``f'(3) = 1`` (the one-sided derivatives there are 0 and -0.5, and 1.5 and 1;
        matching PyTorch keeps imported models' gradients equal).

    Example:
        >>> import numpy as np
        >>> hardswish_backward(np.ones(5), np.array([-4.0, -3.0, 0.0, 3.0, 4.0]))
        array([0. , 0. , 0.5, 1. , 1. ])
    """
    dy, x = _grad_pair(dy, x, "hardswish_backward")
    t = x.dtype.type
    slope = np.where(x <= t(-3), t(0), np.where(x < t(3), x / t(3) + t(0.5), t(1)))
    return dy * slope


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU / swish ``x * sigmoid(x)`` (EfficientNet, MobileNetV3's SE-free blocks).

    Args:
        x: float32 or float64 array of any shape.

    Returns:
        A new array of x's shape and dtype.

    Raises:
        DTypeError: x is not float32 / float64.

    Example:
        >>> import numpy as np
        >>> silu(np.array([0.0, np.log(3.0)])) / np.array([1.0, np.log(3.0)])
        array([0.  , 0.75])
    """
    x = _float_input(x, "x", "silu")
    return x * sigmoid(x)


def silu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`silu`: ``dx = dy * s * (1 + x * (1 - s))`` with ``s = sigmoid(x)``.

    Arguments, result and errors as :func:`sigmoid_backward`.

    Notes:
        Product rule: ``d/dx [x s(x)] = s + x s (1 - s)``.

    Example:
        >>> import numpy as np
        >>> silu_backward(np.ones(2), np.array([0.0, np.log(3.0)])).round(6)
        array([0.5    , 0.95599])
    """
    dy, x = _grad_pair(dy, x, "silu_backward")
    s = sigmoid(x)
    one = x.dtype.type(1)
    return dy * (s * (one + x * (one - s)))


_GELU_APPROXIMATIONS = ("none", "tanh")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_C = 0.044715
_SERIES_LIMIT = 3.0  # |x| below: the positive power series; above: the continued fraction


def erf(x: np.ndarray) -> np.ndarray:
    """The error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``, entry by entry.

    NumPy has no erf and SciPy is not a dependency, so it is computed here, in float64:

    * ``|x| <= 3``: ``erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))``
      (Abramowitz & Stegun 7.1.6), a series of positive terms, so no cancellation; summed
      until the next term is below float64 resolution.
    * ``3 < |x| < 6``: ``erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))``
      (A&S 7.1.14), evaluated backward with 60 levels; ``erf = 1 - erfc``.
    * ``|x| >= 6``: ``erfc(6) < 2.2e-17``, so ``erf = +-1`` to float64.

    Measured against ``math.erf`` on 200,001 points in [-8, 8] the largest relative
    error is 1.3e-15 (tests/functional/test_new_activations.py pins 4e-15).

    Args:
        x: float32 or float64 array of any shape (computed in float64, returned in x's dtype).

    Returns:
        A new array of x's shape and dtype. NaN stays NaN.

    Example:
        >>> import math
        >>> import numpy as np
        >>> bool(abs(erf(np.array([0.5]))[0] - math.erf(0.5)) < 1e-15)
        True
    """
    x = _float_input(x, "x", "erf")
    z = x.astype(np.float64)
    a = np.abs(z)
    out = np.where(np.isnan(z), np.nan, np.sign(z))
    small = a <= _SERIES_LIMIT
    if small.any():
        v = a[small]
        v2 = v * v
        term = v.copy()
        total = v.copy()
        for n in range(1, 200):
            term = term * (2.0 * v2) / (2 * n + 1)
            total += term
            if not (term > 1e-17 * total).any():
                break
        out[small] = np.copysign(2.0 / math.sqrt(math.pi) * np.exp(-v2) * total, z[small])
    middle = (a > _SERIES_LIMIT) & (a < 6.0)
    if middle.any():
        v = a[middle]
        frac = np.zeros_like(v)
        for k in range(60, 0, -1):
            frac = (k / 2.0) / (v + frac)
        erfc = np.exp(-v * v) / math.sqrt(math.pi) / (v + frac)
        out[middle] = np.copysign(1.0 - erfc, z[middle])
    return out.astype(x.dtype, copy=False)


def _check_approximate(approximate: Any, op: str) -> str:
    if approximate not in _GELU_APPROXIMATIONS:
        raise ConfigError(
            f"{op}: approximate must be 'none' (the exact erf form) or 'tanh' (the tanh "
            f"approximation), as in PyTorch; got {approximate!r}."
        )
    return str(approximate)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """Gaussian error linear unit ``x * Phi(x)``, Phi the standard normal CDF.

    ``approximate="none"``: ``Phi(x) = (1 + erf(x / sqrt(2))) / 2`` exactly (see :func:`erf`);
    ``"tanh"``: ``Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2``, as PyTorch.

    Args:
        x: float32 or float64 array of any shape.
        approximate: "none" (default) or "tanh".

    Returns:
        A new array of x's shape and dtype.

    Raises:
        DTypeError: x is not float32 / float64.
        ConfigError: unknown approximate.

    Example:
        >>> import numpy as np
        >>> gelu(np.array([-10.0, 0.0, 1.0, 10.0])).round(6)
        array([-0.      ,  0.      ,  0.841345, 10.      ])
    """
    x = _float_input(x, "x", "gelu")
    if _check_approximate(approximate, "gelu") == "tanh":
        t = x.dtype.type
        u = t(_SQRT_2_OVER_PI) * (x + t(_GELU_TANH_C) * x * x * x)
        return t(0.5) * x * (t(1) + np.tanh(u))
    return x * _phi(x)


def _phi(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF ``(1 + erf(x / sqrt 2)) / 2`` in x's dtype."""
    t = x.dtype.type
    return (t(0.5) * (1.0 + erf(x.astype(np.float64) / math.sqrt(2.0)))).astype(x.dtype)


def gelu_backward(dy: np.ndarray, x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """Gradient of :func:`gelu`.

    ``"none"``: ``f'(x) = Phi(x) + x * phi(x)`` with ``phi(x) = exp(-x^2/2) / sqrt(2 pi)``
    the normal density. ``"tanh"``: with ``u = sqrt(2/pi) (x + 0.044715 x^3)`` and
    ``T = tanh(u)``, ``f'(x) = (1 + T)/2 + x/2 (1 - T^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)``.

    Arguments, result and errors as :func:`sigmoid_backward`, plus ``approximate`` as in
    the forward.

    Example:
        >>> import numpy as np
        >>> gelu_backward(np.ones(3), np.array([-10.0, 0.0, 10.0])).round(6)
        array([-0. ,  0.5,  1. ])
    """
    dy, x = _grad_pair(dy, x, "gelu_backward")
    t = x.dtype.type
    if _check_approximate(approximate, "gelu_backward") == "tanh":
        u = t(_SQRT_2_OVER_PI) * (x + t(_GELU_TANH_C) * x * x * x)
        tu = np.tanh(u)
        du = t(_SQRT_2_OVER_PI) * (t(1) + t(3 * _GELU_TANH_C) * x * x)
        return dy * (t(0.5) * (t(1) + tu) + t(0.5) * x * (t(1) - tu * tu) * du)
    density = np.exp(t(-0.5) * x * x) / t(math.sqrt(2.0 * math.pi))
    return dy * (_phi(x) + x * density)
