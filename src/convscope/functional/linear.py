"""The affine map of a fully connected layer, ``y = x w^T + b``, and its backward.

The notes' FC layer (9.16) is written for one column vector, ``A^2 = (W^2)^T A^1``, with
W^2 of shape (in x out). convscope stores the weight as PyTorch does, ``w`` of shape
(out, in), i.e. ``w = (W^2)^T``, and processes a batch of row vectors at once: row i of
``y`` is ``w @ x[i] + b``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..shapes import as_float_array, check_same_dtype, float_inputs, format_shape
from .windows import check_allocation

__all__ = ["linear", "linear_backward"]


def _check_x_w(x: np.ndarray, w: np.ndarray, op: str) -> None:
    if w.ndim != 2:
        raise ShapeError(
            f"{op}: w must be 2-D with shape (out_features, in_features); got shape "
            f"{format_shape(w.shape)}."
        )
    in_features = w.shape[1]
    if x.ndim != 2:
        hint = ""
        if x.ndim > 2:
            flat = int(np.prod(x.shape[1:]))
            hint = (
                f" To feed feature maps to a fully connected layer, flatten them first: "
                f"flatten(x) gives shape ({x.shape[0]}, {flat})"
                + (", which matches w." if flat == in_features else f" (w expects {in_features}).")
            )
        elif x.ndim == 1:
            hint = " For a single sample, add the batch axis: x[None, :] (shape (1, in_features))."
        raise ShapeError(
            f"{op}: x must be 2-D with shape (N, in_features) = (N, {in_features}); got shape "
            f"{format_shape(x.shape)}.{hint}"
        )
    if x.shape[1] != in_features:
        hint = ""
        if x.shape[0] == in_features:
            hint = " The first axis of x matches: if samples are columns, pass x.T."
        raise ShapeError(
            f"{op}: in_features mismatch: x has shape {format_shape(x.shape)} with "
            f"{x.shape[1]} features on axis 1, but w has shape {format_shape(w.shape)} and "
            f"expects {in_features} (w is (out_features, in_features)).{hint}"
        )


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Fully connected layer: ``y = x @ w.T + b`` (notes 9.16, batched).

    Args:
        x: input of shape (N, in_features), float32 or float64.
        w: weight of shape (out_features, in_features), same dtype as x (PyTorch's layout;
            the notes' W^2 is ``w.T``).
        b: optional bias of shape (out_features,), same dtype.

    Returns:
        y of shape (N, out_features), x's dtype.

    Shape:
        x (N, in), w (out, in), b (out,) -> y (N, out).

    Raises:
        ShapeError: x or w is not 2-D, the feature counts differ, or b is not (out,).
            Feature maps (N, C, H, W) must be flattened first (see ``flatten``).
        DTypeError: a non-float array, or arrays of different dtypes.

    Example:
        >>> import numpy as np
        >>> x = np.array([[1.0, 2.0, 3.0]])
        >>> w = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
        >>> linear(x, w, np.array([10.0, 0.0]))
        array([[8., 3.]])
    """
    op = "linear"
    x, w, b = float_inputs(op, x, w, b)
    _check_x_w(x, w, op)
    if b is not None and b.shape != (w.shape[0],):
        raise ShapeError(
            f"{op}: b must have shape (out_features,) = {format_shape(w.shape[:1])} to match w of shape "
            f"{format_shape(w.shape)}; got shape {format_shape(b.shape)}."
        )
    check_allocation((x.shape[0], w.shape[0]), x.dtype, "output y (N, out_features)", op)
    y = x @ w.T
    if b is not None:
        y += b
    return y


def linear_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`linear`: ``dx = dy @ w``, ``dw = dy.T @ x``, ``db = sum(dy, 0)``.

    Args:
        dy: gradient of the loss with respect to y, shape (N, out_features).
        x: the input given to :func:`linear`, shape (N, in_features).
        w: the weight given to :func:`linear`, shape (out_features, in_features).

    Returns:
        ``(dx, dw, db)`` with the shapes of x, w and (out_features,). db is returned
        whether or not the forward used a bias (it does not depend on b).

    Raises:
        ShapeError: the shapes do not fit together (messages as in :func:`linear`, and dy
            must be (N, out_features)).
        DTypeError: a non-float array, or arrays of different dtypes.

    Notes:
        dx is the notes' 9.22, dA^2/dA^1 = W^2, applied to dy: for one sample and one
        output, ``dx = dy * w`` (w's row is the notes' column W^2). dw sums the outer
        products ``dy_i x_i^T`` over the batch.

    Example:
        >>> import numpy as np
        >>> x = np.array([[1.0, 2.0, 3.0]])
        >>> w = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
        >>> dx, dw, db = linear_backward(np.array([[1.0, 2.0]]), x, w)
        >>> dx
        array([[2., 1., 0.]])
        >>> dw
        array([[1., 2., 3.],
               [2., 4., 6.]])
        >>> db
        array([1., 2.])
    """
    op = "linear_backward"
    dy = as_float_array(dy, "dy", op)
    x = as_float_array(x, "x", op)
    w = as_float_array(w, "w", op)
    check_same_dtype(op, dy=dy, x=x, w=w)
    _check_x_w(x, w, op)
    expected = (x.shape[0], w.shape[0])
    if dy.shape != expected:
        raise ShapeError(
            f"{op}: dy must have the shape of the output y, (N, out_features) = "
            f"{format_shape(expected)} for x of shape {format_shape(x.shape)} and w of shape "
            f"{format_shape(w.shape)}; got dy of shape {format_shape(dy.shape)}."
        )
    # dy has the shape of y, which linear refuses over the limit; a zero-stride dy that
    # large would mean trillions of multiply-adds.
    check_allocation(dy.shape, dy.dtype, "output gradient dy (N, out_features)", op)
    check_allocation(x.shape, x.dtype, "gradient dx (the shape of x)", op)
    check_allocation(w.shape, w.dtype, "gradient dw (the shape of w)", op)
    dx = dy @ w
    dw = dy.T @ x
    db = np.sum(dy, axis=0)
    return dx, dw, db
