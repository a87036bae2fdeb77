"""Losses as modules: ``forward(output, target) -> float`` and ``backward() -> dLoss/d(output)``.

A loss ends the chain rule: its backward takes no upstream gradient (dLoss/dLoss = 1; pass
``dy`` to scale it) and returns the gradient that ``model.backward`` starts from::

    loss = criterion(model(x), y)
    model.backward(criterion.backward())
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentTypeError, ShapeError
from ..shapes import as_float_array, check_matches, format_shape
from .module import Module
from .spec import register

__all__ = ["CrossEntropyLoss", "MSELoss"]


class _Loss(Module):
    def _scale(self, dy: Any) -> float:
        if isinstance(dy, (bool, np.bool_)) or not isinstance(dy, numbers.Real):
            raise ArgumentTypeError(
                f"{type(self).__name__}.backward: dy must be a number (dLoss/dLoss, default 1.0); "
                f"got {dy!r}."
            )
        return float(dy)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return ()

    def config(self) -> dict[str, Any]:
        return {}


@register
class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of raw scores (logits), averaged over the batch.

    ``loss = mean_n( -log softmax(output[n])[target[n]] )``; the softmax is fused in and
    computed with log-sum-exp, so large scores do not overflow. The model's last layer
    should give raw scores (no Softmax); its gradient is ``(softmax(output) - onehot) / N``.

    Args (of forward):
        output: scores ``(N, C)``.
        target: class indices ``(N,)`` (ints in ``[0, C)``) or class probabilities ``(N, C)``.

    Returns:
        The loss as a Python float.

    Raises:
        ShapeError / DataError / DTypeError: from :func:`convscope.functional.cross_entropy`
        (wrong shapes, labels out of range, non-float scores).

    Example:
        >>> loss = CrossEntropyLoss()
        >>> round(loss(np.array([[0.0, 0.0]]), np.array([1])), 6)   # log 2
        0.693147
        >>> loss.backward()
        array([[ 0.5, -0.5]])
    """

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        output = as_float_array(output, "output", "CrossEntropyLoss")
        value = F.cross_entropy(output, target)
        self._save(output=output, target=target)
        return float(value)

    # A loss starts the chain rule: its dy is the number dLoss/dLoss, not an array shaped
    # like an output, so the signature narrows Module.backward's on purpose.
    def backward(self, dy: float = 1.0) -> np.ndarray:  # type: ignore[override]
        scale = self._scale(dy)
        saved = self._pop_saved()
        grad = F.cross_entropy_backward(saved["output"], saved["target"])
        return grad if scale == 1.0 else grad * grad.dtype.type(scale)


@register
class MSELoss(_Loss):
    """Mean squared error over ALL entries, as PyTorch: ``mean((output - target)^2)``.

    Note the notes' squared loss (9.17, :func:`convscope.functional.squared_loss`) sums
    over each sample's entries and averages over the batch; MSELoss divides by the number
    of entries instead. Gradient: ``2 (output - target) / output.size``.

    Example:
        >>> mse = MSELoss()
        >>> mse(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
        5.0
        >>> mse.backward()
        array([1., 3.])
    """

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        output = as_float_array(output, "output", "MSELoss")
        target = as_float_array(target, "target", "MSELoss")
        check_matches("MSELoss", target, output, "target",
                      f"the shape of output {format_shape(output.shape)}", f"the dtype of output ({output.dtype})",
                      " (No broadcasting: it usually hides a bug.)",
                      f" Convert it with target.astype(np.{output.dtype}).")
        if output.size == 0:
            raise ShapeError("MSELoss: output is empty; the mean of no entries is undefined.")
        diff = output - target
        self._save(diff=diff)
        return float(np.mean(diff * diff))

    def backward(self, dy: float = 1.0) -> np.ndarray:  # type: ignore[override]
        scale = self._scale(dy)
        diff = self._pop_saved()["diff"]
        return diff * diff.dtype.type(2.0 * scale / diff.size)
