"""Flatten: the bridge from feature maps to a fully-connected layer (notes 9.3)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ShapeError
from ..shapes import format_shape, normalize_int
from .module import Module
from .spec import register

__all__ = ["Flatten"]


@register
class Flatten(Module):
    """Merge the axes from ``start_dim`` on into one: ``(N, C, H, W) -> (N, C*H*W)``.

    Args:
        start_dim: first axis to merge (default 1: keep the batch axis).

    Example:
        >>> flat = Flatten()
        >>> flat(np.zeros((2, 3, 4, 5))).shape
        (2, 60)
        >>> flat.backward(np.ones((2, 60))).shape
        (2, 3, 4, 5)
    """

    layer_kind = "flatten"

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = normalize_int(start_dim, "start_dim", "Flatten")

    def _check_axes(self, shape: tuple[int, ...]) -> None:
        if not -len(shape) <= self.start_dim < len(shape):
            raise ShapeError(
                f"Flatten: start_dim={self.start_dim} must index an axis of x; got x of shape "
                f"{format_shape(shape)} with {len(shape)} axes."
            )

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        self._check_axes(x.shape)
        y = F.flatten(x, self.start_dim)
        self._save(x_shape=x.shape, y_shape=y.shape, dtype=x.dtype)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        saved = self._pop_saved()
        dy = self._check_dy(dy, saved["y_shape"], saved["dtype"])
        return F.flatten_backward(dy, saved["x_shape"])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(v) for v in input_shape)
        self._check_axes(shape)
        start = self.start_dim % len(shape)
        return shape[:start] + (int(np.prod(shape[start:])),)

    def extra_repr(self) -> str:
        return "" if self.start_dim == 1 else f"start_dim={self.start_dim}"

    def config(self) -> dict[str, Any]:
        return {"start_dim": self.start_dim}
