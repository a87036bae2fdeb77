"""Parameter: a trainable array and the gradient that backward accumulates into it.

A :class:`Parameter` is what an optimizer updates: ``data`` holds the weights (a filter
bank, a bias, a batch-norm scale) and ``grad`` holds dLoss/d(data) with the same shape and
dtype. Modules ADD to ``grad`` in backward (weight sharing, notes 9.1.18: one weight used
in many dot products receives the sum of their derivatives), so call ``zero_grad()`` before
each step.

Example:
    >>> import numpy as np
    >>> p = Parameter(np.ones((2, 3), dtype=np.float32))
    >>> p
    Parameter(shape=(2, 3), dtype=float32)
    >>> p.grad += 1.5
    >>> float(p.grad.sum())
    9.0
    >>> p.zero_grad()
    >>> float(p.grad.sum())
    0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..settings import check_allocation
from ..shapes import as_float_array, format_shape
from .init import planned

__all__ = ["Parameter"]


class Parameter:
    """A trainable float array ``data`` with its gradient ``grad`` (same shape and dtype).

    Args:
        data: the initial values, a float32 or float64 array. It is used as is (not
            copied), so the module and the caller share it.

    Attributes:
        data: the values an optimizer updates in place.
        grad: dLoss/d(data), accumulated by every ``backward`` since the last ``zero_grad``.

    Raises:
        DTypeError: ``data`` is not float32/float64.
    """

    __slots__ = ("data", "grad")

    def __init__(self, data: Any) -> None:
        self.data = as_float_array(data, "data", "Parameter")
        check_allocation(self.data.shape, self.data.dtype, "gradient (the shape of data)", "Parameter")
        placeholder = planned(self.data.shape, self.data.dtype, "gradient")  # in init.dry_run
        self.grad = np.zeros_like(self.data) if placeholder is None else placeholder

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data`` (and of ``grad``)."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        """dtype of ``data`` (and of ``grad``)."""
        return self.data.dtype

    @property
    def size(self) -> int:
        """Number of scalar weights."""
        return int(self.data.size)

    def zero_grad(self) -> None:
        """Set every gradient entry to zero (in place, so views held elsewhere stay valid)."""
        if self.grad.shape != self.data.shape or self.grad.dtype != self.data.dtype:
            self.grad = np.zeros_like(self.data)
        else:
            self.grad.fill(0)

    def accumulate(self, g: np.ndarray, name: str = "parameter") -> None:
        """Add ``g`` to ``grad``; the shapes must agree (a mismatch is a bug, said clearly)."""
        if g.shape != self.data.shape:
            raise ShapeError(
                f"gradient for {name} must have shape {format_shape(self.data.shape)} like its "
                f"data; got {format_shape(g.shape)}."
            )
        if self.grad.shape != self.data.shape or self.grad.dtype != self.data.dtype:
            self.grad = np.zeros_like(self.data)
        self.grad += g

    def __repr__(self) -> str:
        return f"Parameter(shape={format_shape(self.data.shape)}, dtype={self.data.dtype})"
