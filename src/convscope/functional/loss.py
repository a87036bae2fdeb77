"""Losses with their gradients: squared loss (notes 9.17) and softmax cross-entropy.

Each loss is a pair ``loss(prediction, target) -> scalar`` and
``loss_backward(prediction, target) -> d loss / d prediction``. Losses average over the
batch (axis 0), so the gradient carries a factor ``1 / N``. A loss is returned as a NumPy
scalar of the prediction's dtype (float32 stays float32). NaN and Inf propagate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DTypeError, ShapeError
from ..shapes import as_float_array, check_same_dtype, format_shape, to_ndarray
from .windows import check_allocation

__all__ = ["squared_loss", "squared_loss_backward", "cross_entropy", "cross_entropy_backward"]


# ----------------------------------------------------------------------------------------
# Squared loss (notes 9.17 / 9.21)
# ----------------------------------------------------------------------------------------
def _check_regression(y_pred: Any, y: Any, op: str) -> tuple[np.ndarray, np.ndarray]:
    y_pred = as_float_array(y_pred, "y_pred", op)
    y = as_float_array(y, "y", op)
    check_same_dtype(op, y_pred=y_pred, y=y)
    # y_pred - y is materialised; zero-stride views may describe more than memory holds.
    check_allocation(y_pred.shape, y_pred.dtype, "difference y_pred - y", op)
    if y_pred.ndim == 0:
        raise ShapeError(
            f"{op}: y_pred must have a batch axis, shape (N, ...); got a 0-d array. For one "
            f"scalar prediction use shape (1,) or (1, 1)."
        )
    if y_pred.shape != y.shape:
        hint = ""
        if y_pred.size == y.size:
            hint = (
                f" They hold the same number of values: reshape the target, e.g. "
                f"y.reshape{format_shape(y_pred.shape)}, so that (N,) and (N, 1) are not "
                f"broadcast into an (N, N) table of differences."
            )
        raise ShapeError(
            f"{op}: y must have the shape of y_pred, {format_shape(y_pred.shape)}; got y of shape "
            f"{format_shape(y.shape)}.{hint}"
        )
    if y_pred.shape[0] == 0:
        raise ShapeError(
            f"{op}: the batch is empty (y_pred has shape {format_shape(y_pred.shape)}); the mean "
            f"over 0 samples is undefined. Pass at least one sample."
        )
    return y_pred, y


def squared_loss(y_pred: np.ndarray, y: np.ndarray) -> np.floating:
    """Squared loss ``(A^2 - y)^2`` (notes 9.17), summed per sample and averaged over the batch.

    Args:
        y_pred: predictions of shape (N, ...), float32 or float64 (the notes' A^2).
        y: targets of the same shape and dtype.

    Returns:
        ``sum((y_pred - y)**2) / N`` as a NumPy scalar of y_pred's dtype. For one scalar
        output per sample (shape (N,) or (N, 1)) this is the mean of the notes'
        ``(A^2 - y)^2``; with N = 1 it is exactly that formula.

    Raises:
        ShapeError: shapes differ (no broadcasting: (N,) against (N, 1) would silently form
            an N x N table), y_pred is 0-d, or the batch is empty.
        DTypeError: a non-float array, or arrays of different dtypes.

    Notes:
        PyTorch's ``F.mse_loss`` averages over every entry instead; the two agree up to the
        factor ``prod(y_pred.shape[1:])``: squared_loss = mse_loss * (entries per sample).

    Example:
        >>> import numpy as np
        >>> print(squared_loss(np.array([[3.0]]), np.array([[1.0]])))   # (3 - 1)^2
        4.0
        >>> print(squared_loss(np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 1.0]])))
        3.0
    """
    y_pred, y = _check_regression(y_pred, y, "squared_loss")
    diff = y_pred - y
    return np.sum(diff * diff) / y_pred.shape[0]


def squared_loss_backward(y_pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of :func:`squared_loss` with respect to y_pred: ``2 (y_pred - y) / N``.

    Args:
        y_pred: predictions of shape (N, ...), float32 or float64.
        y: targets of the same shape and dtype.

    Returns:
        A new array of y_pred's shape and dtype. (The gradient with respect to y is its
        negative.)

    Raises:
        ShapeError, DTypeError: as :func:`squared_loss`.

    Notes:
        The notes' 9.21, ``dL/dA^2 = 2 (A^2 - y)``, divided by N for the batch mean.

    Example:
        >>> import numpy as np
        >>> squared_loss_backward(np.array([[3.0]]), np.array([[1.0]]))   # 2 (3 - 1)
        array([[4.]])
    """
    y_pred, y = _check_regression(y_pred, y, "squared_loss_backward")
    # Notes 9.21: dL/dA^2 = 2 (A^2 - y), averaged over the batch.
    return (2 * (y_pred - y)) / y_pred.shape[0]


# ----------------------------------------------------------------------------------------
# Cross-entropy on logits (softmax + negative log-likelihood)
# ----------------------------------------------------------------------------------------
def _check_classification(logits: Any, targets: Any, op: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validated ``(logits, targets, is_index)``; is_index tells class indices from probabilities."""
    logits = as_float_array(logits, "logits", op)
    if logits.ndim != 2:
        hint = ""
        if logits.ndim == 1:
            hint = " For one sample, add the batch axis: logits[None, :]."
        elif logits.ndim > 2:
            hint = " Flatten the feature maps and apply a linear layer to get one score per class."
        raise ShapeError(
            f"{op}: logits must be 2-D with shape (N, C), one row of class scores per sample; "
            f"got shape {format_shape(logits.shape)}.{hint}"
        )
    n, c = logits.shape
    # The log-probabilities have the shape of logits (a zero-stride view may not fit).
    check_allocation(logits.shape, logits.dtype, "log-probabilities (the shape of logits)", op)
    if n == 0:
        raise ShapeError(
            f"{op}: the batch is empty (logits has shape {format_shape(logits.shape)}); the mean "
            f"over 0 samples is undefined. Pass at least one sample."
        )
    if c == 0:
        raise ShapeError(
            f"{op}: logits must have at least one class column; got shape {format_shape(logits.shape)}."
        )
    targets = to_ndarray(targets, op, "targets must be an array of class indices (N,) or probabilities (N, C)")
    kind = targets.dtype.kind
    if kind in "iu":
        if targets.shape != (n,):
            hint = ""
            if targets.shape == (n, c):
                hint = (
                    " If these are one-hot rows, pass targets.argmax(axis=1) as class indices, "
                    "or targets.astype(logits.dtype) as probabilities."
                )
            raise ShapeError(
                f"{op}: integer targets are class indices and must have shape (N,) = "
                f"{format_shape((n,))} for logits of shape {format_shape(logits.shape)}; got shape "
                f"{format_shape(targets.shape)}.{hint}"
            )
        if n and (targets.min() < 0 or targets.max() >= c):
            bad = int(np.flatnonzero((targets < 0) | (targets >= c))[0])
            raise ShapeError(
                f"{op}: class indices must be in 0..{c - 1} (logits has {c} classes, shape "
                f"{format_shape(logits.shape)}); got targets[{bad}] = {int(targets[bad])}. Each "
                f"target picks one column of logits."
            )
        return logits, targets, True
    if kind == "f":
        targets = as_float_array(targets, "targets", op)
        check_same_dtype(op, logits=logits, targets=targets)
        if targets.shape != (n, c):
            hint = ""
            if targets.shape == (n,):
                hint = (
                    " Targets of shape (N,) are class indices and need an integer dtype: pass "
                    "targets.astype(np.int64)."
                )
            raise ShapeError(
                f"{op}: float targets are class probabilities and must have the shape of logits, "
                f"{format_shape(logits.shape)}; got shape {format_shape(targets.shape)}.{hint}"
            )
        return logits, targets, False
    raise DTypeError(
        f"{op}: targets must be integer class indices (N,) or float probabilities (N, C); got "
        f"dtype {targets.dtype}. Convert booleans or labels with targets.astype(np.int64)."
    )


def _log_softmax_rows(z: np.ndarray) -> np.ndarray:
    # Log-sum-exp trick: z - m - log(sum exp(z - m)) never overflows.
    z = z - np.max(z, axis=1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))


def cross_entropy(logits: np.ndarray, targets: Any) -> np.floating:
    """Softmax cross-entropy, averaged over the batch: ``mean_i -sum_c t_ic log softmax(z_i)_c``.

    Args:
        logits: unnormalised class scores z of shape (N, C), float32 or float64.
        targets: either integer class indices of shape (N,) with values in 0..C-1 (then
            ``t`` is one-hot and the loss is ``-log softmax(z_i)[targets[i]]``), or class
            probabilities of shape (N, C) in logits' dtype (e.g. smoothed labels; rows are
            not checked to sum to 1, as in PyTorch).

    Returns:
        The loss as a NumPy scalar of logits' dtype.

    Raises:
        ShapeError: logits is not (N, C) with N, C >= 1, targets do not have the shape their
            dtype implies, or a class index is outside 0..C-1.
        DTypeError: non-float logits, boolean/other targets, or float targets of another dtype.

    Notes:
        Computed from log-softmax with the log-sum-exp trick, so logits such as 1000 give
        finite losses. Equals PyTorch's ``F.cross_entropy`` (reduction "mean", no weights).

    Example:
        With logits [0, log 3] the softmax is [0.25, 0.75]:

        >>> import numpy as np
        >>> z = np.array([[0.0, np.log(3.0)]])
        >>> print(round(float(cross_entropy(z, np.array([1]))), 6))   # -log 0.75
        0.287682
        >>> print(round(float(cross_entropy(z, np.array([[0.5, 0.5]]))), 6))   # -(log .25 + log .75)/2
        0.836988
        >>> print(cross_entropy(np.array([[1000.0, 0.0]]), np.array([1])))
        1000.0
    """
    logits, targets, is_index = _check_classification(logits, targets, "cross_entropy")
    n = logits.shape[0]
    log_p = _log_softmax_rows(logits)
    if is_index:
        loss = -np.sum(log_p[np.arange(n), targets]) / n
    else:
        loss = -np.sum(targets * log_p) / n
    return loss + loss.dtype.type(0.0)  # perfect scores give log 1 = 0: +0.0, not -0.0


def cross_entropy_backward(logits: np.ndarray, targets: Any) -> np.ndarray:
    """Gradient of :func:`cross_entropy` with respect to the logits: ``(softmax(z) - t) / N``.

    Args:
        logits: class scores of shape (N, C), as given to :func:`cross_entropy`.
        targets: the same targets (class indices (N,) or probabilities (N, C)).

    Returns:
        A new array of logits' shape and dtype.

    Raises:
        ShapeError, DTypeError: as :func:`cross_entropy`.

    Notes:
        For class indices t is one-hot, so the gradient is softmax(z) minus 1 at the true
        class. For probabilities the exact gradient is ``softmax(z) * sum(t) - t``, which is
        ``softmax(z) - t`` when each row of t sums to 1.

    Example:
        >>> import numpy as np
        >>> cross_entropy_backward(np.array([[0.0, np.log(3.0)]]), np.array([1]))
        array([[ 0.25, -0.25]])
        >>> cross_entropy_backward(np.array([[0.0, np.log(3.0)]]), np.array([[0.5, 0.5]]))
        array([[-0.25,  0.25]])
    """
    logits, targets, is_index = _check_classification(logits, targets, "cross_entropy_backward")
    n = logits.shape[0]
    z = logits - np.max(logits, axis=1, keepdims=True)
    e = np.exp(z)
    p = e / np.sum(e, axis=1, keepdims=True)
    if is_index:
        p[np.arange(n), targets] -= 1
        return p / n
    return (p * np.sum(targets, axis=1, keepdims=True) - targets) / n
