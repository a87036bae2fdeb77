"""Adaptive pooling layers: a fixed output size whatever the input's (global average pooling
is ``AdaptiveAvgPool2d(1)``, the last pool of ResNet, MobileNet and SqueezeNet).

The windows follow PyTorch (see :mod:`convscope.functional.adaptive_pool`): output ``i`` of
an axis of ``n`` inputs averages (or takes the max of) entries ``floor(i*n/out)`` to
``ceil((i+1)*n/out)``.

Example:
    >>> import numpy as np
    >>> AdaptiveAvgPool2d(1)(np.arange(8.0).reshape(1, 2, 2, 2))[..., 0, 0]
    array([[1.5, 5.5]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentTypeError
from ..functional.adaptive_pool import adaptive_output_size
from .module import Module
from .spec import register

__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
           "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d"]


def _output_size(value: Any, nd: int, op: str) -> tuple[int | None, ...]:
    entries = value if isinstance(value, (tuple, list)) else (value,) * nd
    if len(entries) != nd or not all(
            v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= 1)
            for v in entries):
        raise ArgumentTypeError(
            f"{op}: output_size must be a positive int or {nd} entries each a positive int or None; "
            f"got {value!r}.")
    return tuple(None if v is None else int(v) for v in entries)


class _AdaptivePoolNd(Module):
    ndim = 2

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = _output_size(output_size, self.ndim, type(self).__name__)

    @property
    def input_rank(self) -> int:
        return self.ndim

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape, unbatched = self._batched_shape(input_shape, self.ndim)
        out = adaptive_output_size(shape, self.output_size, type(self).__name__)
        full = (*shape[:2], *out)
        return full[1:] if unbatched else full

    def extra_repr(self) -> str:
        size = self.output_size
        return f"output_size={size[0] if len(set(size)) == 1 else size}"

    def config(self) -> dict[str, Any]:
        return {"output_size": list(self.output_size)}


class _AdaptiveAvgPoolNd(_AdaptivePoolNd):
    layer_kind = "adaptive_avg_pool"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x, unbatched = self._batched_input(x, self.ndim)
        return self._save_batched(x, F.adaptive_avg_pool(x, self.output_size), unbatched)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Each dy entry spread evenly over its window."""
        saved, dy = self._pop_saved_dy(dy)
        dx = F.adaptive_avg_pool_backward(dy, saved["x"], self.output_size)
        return dx[0] if saved["unbatched"] else dx


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    layer_kind = "adaptive_max_pool"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x, unbatched = self._batched_input(x, self.ndim)
        y, argmax = F.adaptive_max_pool_with_argmax(x, self.output_size)
        return self._save_batched(x, y, unbatched, argmax=argmax)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Each dy entry routed to its window's arg-max (notes 9.4.6)."""
        saved, dy = self._pop_saved_dy(dy)
        dx = F.adaptive_max_pool_with_argmax_backward(dy, saved["argmax"], saved["x"].shape)
        return dx[0] if saved["unbatched"] else dx


@register
class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """1-D adaptive average pooling to ``output_size`` entries."""

    ndim = 1


@register
class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """2-D adaptive average pooling to ``output_size`` (``1``: global average pooling)."""

    ndim = 2


@register
class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """3-D adaptive average pooling to ``output_size``."""

    ndim = 3


@register
class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """1-D adaptive max pooling to ``output_size`` entries."""

    ndim = 1


@register
class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """2-D adaptive max pooling to ``output_size``."""

    ndim = 2


@register
class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """3-D adaptive max pooling to ``output_size``."""

    ndim = 3
