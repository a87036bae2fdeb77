"""Classification metrics on raw scores: accuracy, top-k accuracy, confusion matrix.

Targets may be class indices ``(N,)`` or class probabilities / one-hot rows ``(N, C)``
(the two forms :class:`~convscope.nn.CrossEntropyLoss` accepts); probabilities count as
the class of their largest entry. Scores are ``(N, C)``: logits or probabilities, only
their order matters.

Example:
    >>> scores = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 2.0, 0.0]])
    >>> accuracy(scores, np.array([0, 2, 0]))
    0.6666666666666666
    >>> correct_count(scores, np.array([0, 2, 0]))
    2
    >>> top_k_accuracy(scores, np.array([0, 2, 0]), k=2)
    1.0
    >>> confusion_matrix(scores, np.array([0, 2, 0]), num_classes=3)
    array([[1, 1, 0],
           [0, 0, 0],
           [0, 0, 1]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..shapes import format_shape

__all__ = ["class_labels", "is_classification", "correct_count", "accuracy", "top_k_accuracy",
           "confusion_matrix"]


def is_classification(scores: Any, target: Any) -> bool:
    """True when ``scores`` (N, C) and ``target`` ((N,) ints or (N, C)) form a classification.

    The training loop reports accuracy only then (a regression with MSELoss has none).

    >>> is_classification(np.zeros((4, 3)), np.array([0, 1, 2, 0]))
    True
    >>> is_classification(np.zeros((4, 1)), np.zeros((4, 1)))
    False
    """
    scores, target = np.asarray(scores), np.asarray(target)
    if scores.ndim != 2 or scores.shape[1] < 2 or target.shape[:1] != scores.shape[:1]:
        return False
    if target.ndim == 1:
        return target.dtype.kind in "iu"
    return target.ndim == 2 and target.shape == scores.shape


def class_labels(target: Any, name: str = "target") -> np.ndarray:
    """Class indices ``(N,)`` from indices or from probability / one-hot rows ``(N, C)``.

    >>> class_labels(np.array([[0.1, 0.9], [1.0, 0.0]]))
    array([1, 0])
    """
    target = np.asarray(target)
    if target.ndim == 1 and target.dtype.kind in "iu":
        return target.astype(np.int64, copy=False)
    if target.ndim == 2 and target.dtype.kind == "f":
        return np.argmax(target, axis=1)
    raise ShapeError(
        f"{name} must be class indices of shape (N,) (integers) or class probabilities of shape "
        f"(N, C) (floats); got {format_shape(target.shape)} of dtype {target.dtype}."
    )


def _check(scores: Any, target: Any, op: str) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ShapeError(
            f"{op}: scores must have shape (N, C), one score per class; got "
            f"{format_shape(scores.shape)}."
        )
    labels = class_labels(target)
    if labels.shape[0] != scores.shape[0]:
        raise ShapeError(
            f"{op}: scores {format_shape(scores.shape)} and target {format_shape(np.shape(target))} "
            f"must have the same number of samples."
        )
    return scores, labels


def correct_count(scores: Any, target: Any) -> int:
    """How many rows' largest score is at the target class (ties: the first maximum)."""
    scores, labels = _check(scores, target, "correct_count")
    return int(np.count_nonzero(np.argmax(scores, axis=1) == labels))


def accuracy(scores: Any, target: Any) -> float:
    """Fraction of rows whose largest score is at the target class.

    Raises:
        ShapeError: scores not (N, C), target of another length or form, or N = 0.
    """
    scores, labels = _check(scores, target, "accuracy")
    if labels.size == 0:
        raise ShapeError("accuracy: no samples; the fraction correct of nothing is undefined.")
    return correct_count(scores, labels) / labels.size


def top_k_accuracy(scores: Any, target: Any, k: int = 5) -> float:
    """Fraction of rows whose target class is among the ``k`` largest scores.

    Ties rank as ``argmax`` does (the lower class index first), so ``k=1`` gives
    :func:`accuracy`.

    Raises:
        ConfigError: ``k`` not in ``1..C``.
    """
    scores, labels = _check(scores, target, "top_k_accuracy")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ArgumentTypeError(f"top_k_accuracy: k must be an int; got {k!r}.")
    if not 1 <= k <= scores.shape[1]:
        raise ConfigError(f"top_k_accuracy: k must lie in 1..{scores.shape[1]} (the classes); got {k}.")
    if labels.size == 0:
        raise ShapeError("top_k_accuracy: no samples.")
    target_score = scores[np.arange(labels.size), labels][:, None]
    # rank = classes ahead of the target: higher scores, and equal scores at a lower index
    # (argmax's tie rule, so top-1 accuracy equals accuracy)
    lower = np.arange(scores.shape[1])[None, :] < labels[:, None]
    rank = np.count_nonzero((scores > target_score) | ((scores == target_score) & lower), axis=1)
    return float(np.mean(rank < k))


def confusion_matrix(scores: Any, target: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts ``m[true, predicted]`` (int64, num_classes x num_classes)."""
    scores, labels = _check(scores, target, "confusion_matrix")
    c = scores.shape[1] if num_classes is None else int(num_classes)
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        raise ConfigError(f"confusion_matrix: labels must lie in 0..{c - 1}; got {labels.min()}..{labels.max()}.")
    predicted = np.argmax(scores, axis=1)
    m = np.zeros((c, c), dtype=np.int64)
    np.add.at(m, (labels, predicted), 1)
    return m
