"""Pooling layers: max, average and anti-aliased (blur) pooling, each channel on its own.

One private N-D base per kind (:class:`_MaxPoolNd`, :class:`_AvgPoolNd`,
:class:`_BlurPoolNd`) holds all logic; the ``1d/2d/3d`` classes pin the number of spatial
axes. Arguments follow PyTorch; the stride defaults to the kernel size (notes 9.2.3). The
math is :mod:`convscope.functional`'s ``max_pool``, ``avg_pool`` and ``blur_pool``.

Padding values: max pooling pads with minus infinity (padding never wins the max), average
pooling with zeros (``count_include_pad`` decides whether padded cells count in the mean,
as in PyTorch). As in PyTorch, padding may be at most half the window on each side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ConfigError
from ..files import to_jsonable
from ..shapes import (
    PADDING_MODES,
    WindowGeometry,
    blur_padding,
    conv_geometry,
    normalize_int,
    normalize_padding,
    normalize_tuple,
    pool_geometry,
)
from .conv import _check_bool, channel_mismatch, padding_for_display
from .module import Module, add_batch_axis
from .spec import register

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d",
    "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "BlurPool1d", "BlurPool2d", "BlurPool3d",
]


class _WindowPoolNd(Module):
    """Shared by max and average pooling: window arguments, saving, shapes and repr."""

    ndim: int = 0
    _max_padding = "half_kernel"  # as functional.max_pool and PyTorch 2.13

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        op = type(self).__name__
        self.kernel_size = normalize_tuple(kernel_size, self.ndim, "kernel_size", op)
        self.stride = (
            self.kernel_size if stride is None else normalize_tuple(stride, self.ndim, "stride", op)
        )
        self.padding = normalize_padding(padding, self.ndim, op)
        self.dilation = normalize_tuple(dilation, self.ndim, "dilation", op)
        self.ceil_mode = _check_bool(ceil_mode, "ceil_mode", op)

    @property
    def window(self) -> WindowGeometry:
        """Kernel, stride, dilation, padding pairs and ceil_mode of the pooling window."""
        fill = "-inf" if self.layer_kind == "max_pool" else "zeros"
        return WindowGeometry(self.layer_kind[:3], self.kernel_size, self.stride, self.dilation,
                              self.padding, fill, self.ceil_mode)

    @property
    def input_rank(self) -> int:
        return self.ndim

    def _batched(self, x: Any) -> tuple[np.ndarray, bool]:
        x = self._check_input(x)
        return add_batch_axis(x, self.ndim, type(self).__name__)

    def _finish(self, x: np.ndarray, y: np.ndarray, unbatched: bool) -> np.ndarray:
        self._save(x=x, unbatched=unbatched, y_shape=y.shape)
        return y[0] if unbatched else y

    def _dy(self, dy: Any) -> tuple[dict[str, Any], np.ndarray]:
        saved = self._pop_saved()
        y_shape = saved["y_shape"][1:] if saved["unbatched"] else saved["y_shape"]
        dy = self._check_dy(dy, y_shape, saved["x"].dtype)
        return saved, (dy[None] if saved["unbatched"] else dy)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape by arithmetic (the pooling form of Key Equation 48)."""
        shape = tuple(int(v) for v in input_shape)
        unbatched = len(shape) == self.ndim + 1
        geo = pool_geometry(
            (1, *shape) if unbatched else shape, self.kernel_size, self.stride, self.padding,
            self.dilation, self.ceil_mode, type(self).__name__, self._max_padding,
        )
        return geo.y_shape[1:] if unbatched else geo.y_shape

    def _repr_parts(self) -> list[str]:
        parts = [f"kernel_size={self.kernel_size}"]
        if self.stride != self.kernel_size:
            parts.append(f"stride={self.stride}")
        shown = padding_for_display(self.padding)
        if shown != (0,) * self.ndim:
            parts.append(f"padding={shown!r}")
        return parts

    def _config(self) -> dict[str, Any]:
        return {
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": to_jsonable(padding_for_display(self.padding)),
            "ceil_mode": self.ceil_mode,
        }


class _MaxPoolNd(_WindowPoolNd):
    """N-D max pooling (see :class:`MaxPool2d`)."""

    layer_kind = "max_pool"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Max over every window of every channel."""
        x, unbatched = self._batched(x)
        args = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        if self.training:  # keep each window's argmax: backward need not search again
            y, argmax = F.max_pool_with_argmax(x, *args)
            self._save(x=x, argmax=argmax, unbatched=unbatched, y_shape=y.shape)
            return y[0] if unbatched else y
        y = F.max_pool(x, *args)
        return self._finish(x, y, unbatched)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Route each dy entry to the arg-max of its window (notes 9.2.5)."""
        saved, dy = self._dy(dy)
        if "argmax" in saved:
            dx = F.max_pool_with_argmax_backward(
                dy, saved["argmax"], saved["x"].shape, self.kernel_size, self.stride, self.padding,
                self.dilation, self.ceil_mode,
            )
        else:
            dx = F.max_pool_backward(
                dy, saved["x"], self.kernel_size, self.stride, self.padding, self.dilation,
                self.ceil_mode,
            )
        return dx[0] if saved["unbatched"] else dx

    def extra_repr(self) -> str:
        parts = self._repr_parts()
        if self.dilation != (1,) * self.ndim:
            parts.append(f"dilation={self.dilation}")
        if self.ceil_mode:
            parts.append("ceil_mode=True")
        return ", ".join(parts)

    def config(self) -> dict[str, Any]:
        return {**self._config(), "dilation": list(self.dilation)}


class _AvgPoolNd(_WindowPoolNd):
    """N-D average pooling (see :class:`AvgPool2d`)."""

    layer_kind = "avg_pool"

    _max_padding = "half_kernel"

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = _check_bool(
            count_include_pad, "count_include_pad", type(self).__name__
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Mean over every window of every channel."""
        x, unbatched = self._batched(x)
        y = F.avg_pool(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                       self.count_include_pad)
        return self._finish(x, y, unbatched)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Spread each dy entry evenly over its window."""
        saved, dy = self._dy(dy)
        dx = F.avg_pool_backward(dy, saved["x"], self.kernel_size, self.stride, self.padding,
                                 self.ceil_mode, self.count_include_pad)
        return dx[0] if saved["unbatched"] else dx

    def extra_repr(self) -> str:
        parts = self._repr_parts()
        if self.ceil_mode:
            parts.append("ceil_mode=True")
        if not self.count_include_pad:
            parts.append("count_include_pad=False")
        return ", ".join(parts)

    def config(self) -> dict[str, Any]:
        return {**self._config(), "count_include_pad": self.count_include_pad}


class _BlurPoolNd(Module):
    """N-D anti-aliased pooling (see :class:`BlurPool2d`)."""

    layer_kind = "blur_pool"
    ndim: int = 0

    def __init__(self, channels: int, filter_size: int = 4, stride: Any = 2,
                 padding_mode: str = "reflect") -> None:
        super().__init__()
        op = type(self).__name__
        self.channels = normalize_int(channels, "channels", op, minimum=1)
        self.filter_size = normalize_int(filter_size, "filter_size", op, minimum=1)
        if self.filter_size > 7:
            raise ConfigError(
                f"{op}: filter_size must be between 1 and 7 (binomial filters [1], [1 1], "
                f"[1 2 1], ... up to 7 taps); got {self.filter_size}."
            )
        self.stride = normalize_tuple(stride, self.ndim, "stride", op)
        if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
            raise ConfigError(
                f"{op}: padding_mode must be one of {', '.join(PADDING_MODES)}; got "
                f"{padding_mode!r}."
            )
        self.padding_mode = padding_mode

    @property
    def padding(self) -> tuple[tuple[int, int], ...]:
        """``(before, after)`` per axis: ``filter_size - 1`` in total, the odd one after."""
        return (blur_padding(self.filter_size),) * self.ndim

    @property
    def window(self) -> WindowGeometry:
        """The binomial filter's window: ``filter_size`` taps per axis, one group per channel."""
        return WindowGeometry("blur", (self.filter_size,) * self.ndim, self.stride,
                              (1,) * self.ndim, self.padding, self.padding_mode, False,
                              self.channels)

    @property
    def input_rank(self) -> int:
        return self.ndim

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Blur every channel with the binomial filter, then keep every ``stride``-th entry."""
        op = type(self).__name__
        x = self._check_input(x)
        original = x.shape
        x, unbatched = add_batch_axis(x, self.ndim, op)
        if x.shape[1] != self.channels:
            raise channel_mismatch(op, self.channels, original, 0 if unbatched else 1)
        y = F.blur_pool(x, self.filter_size, self.stride, self.padding_mode)
        self._save(x=x, unbatched=unbatched, y_shape=y.shape)
        return y[0] if unbatched else y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """The adjoint of blur-then-subsample (a transposed depthwise convolution)."""
        saved = self._pop_saved()
        unbatched = saved["unbatched"]
        y_shape = saved["y_shape"][1:] if unbatched else saved["y_shape"]
        dy = self._check_dy(dy, y_shape, saved["x"].dtype)
        dx = F.blur_pool_backward(dy[None] if unbatched else dy, saved["x"], self.filter_size,
                                  self.stride, self.padding_mode)
        return dx[0] if unbatched else dx

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``ceil(n / stride)`` per spatial axis (the blur keeps the size before subsampling)."""
        op = type(self).__name__
        shape = tuple(int(v) for v in input_shape)
        unbatched = len(shape) == self.ndim + 1
        batched = (1, *shape) if unbatched else shape
        if len(batched) == self.ndim + 2 and batched[1] != self.channels:
            raise channel_mismatch(op, self.channels, shape, 0 if unbatched else 1)
        geo = conv_geometry(
            batched, (self.channels, 1) + (self.filter_size,) * self.ndim, self.stride,
            self.padding, 1, self.channels, self.padding_mode, op,
        )
        return geo.y_shape[1:] if unbatched else geo.y_shape

    def extra_repr(self) -> str:
        parts = [str(self.channels)]
        if self.filter_size != 4:
            parts.append(f"filter_size={self.filter_size}")
        if self.stride != (2,) * self.ndim:
            parts.append(f"stride={self.stride}")
        if self.padding_mode != "reflect":
            parts.append(f"padding_mode={self.padding_mode!r}")
        return ", ".join(parts)

    def config(self) -> dict[str, Any]:
        return {"channels": self.channels, "filter_size": self.filter_size,
                "stride": list(self.stride), "padding_mode": self.padding_mode}


@register
class MaxPool1d(_MaxPoolNd):
    """1-D max pooling over ``(N, C, L)``; see :class:`MaxPool2d`.

    Example:
        >>> MaxPool1d(2)(np.array([[[1., 3, 2, 0, 5, 4]]]))
        array([[[3., 2., 5.]]])
    """

    ndim = 1


@register
class MaxPool2d(_MaxPoolNd):
    """2-D max pooling: the largest value of every window, per channel (notes 9.2).

    Args:
        kernel_size: window size, int or ``(kH, kW)``.
        stride: step between windows; default None = ``kernel_size`` (non-overlapping).
        padding: int, per-axis ints or pairs; padded cells hold minus infinity, so they never
            win the max. At most half the window per side (PyTorch's rule).
        dilation: spacing of the window taps (default 1 = no gaps).
        ceil_mode: round the output size up (a last partial window that starts inside the
            input is kept), as in PyTorch.

    Shape:
        ``(N, C, H, W)`` or ``(C, H, W)`` -> ``(N, C, H_out, W_out)``, per axis
        ``out = floor((n + p_before + p_after - d*(k-1) - 1) / s) + 1`` (ceil with ``ceil_mode``).

    Raises:
        ConfigError: invalid arguments, padding above half the window.
        ShapeError: wrong number of axes, window larger than the padded input.
        StateError: backward before forward.

    Notes:
        Gradient: each ``dy`` entry goes to the position of its window's maximum (notes
        9.2.5, the max is a "selector"); when several entries tie, the first in row-major
        order of the window receives it, as PyTorch. Overlapping windows add up.

    Example:
        >>> x = np.array([[[[1., 2, 0, 1], [3, 4, 1, 0], [0, 1, 5, 6], [2, 2, 7, 8]]]])
        >>> pool = MaxPool2d(2)
        >>> pool(x)[0, 0]
        array([[4., 1.],
               [2., 8.]])
        >>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0]
        array([[0., 0., 0., 1.],
               [0., 1., 0., 0.],
               [0., 0., 0., 0.],
               [1., 0., 0., 1.]])
    """

    ndim = 2


@register
class MaxPool3d(_MaxPoolNd):
    """3-D max pooling over ``(N, C, D, H, W)``; see :class:`MaxPool2d`.

    Example:
        >>> MaxPool3d(2).output_shape((1, 3, 8, 8, 8))
        (1, 3, 4, 4, 4)
    """

    ndim = 3


@register
class AvgPool1d(_AvgPoolNd):
    """1-D average pooling over ``(N, C, L)``; see :class:`AvgPool2d`.

    Example:
        >>> AvgPool1d(2)(np.array([[[1., 3, 2, 0]]]))
        array([[[2., 1.]]])
    """

    ndim = 1


@register
class AvgPool2d(_AvgPoolNd):
    """2-D average pooling: the mean of every window, per channel.

    Args:
        kernel_size: window size, int or ``(kH, kW)``.
        stride: step between windows; default None = ``kernel_size``.
        padding: int, per-axis ints or pairs of zeros; at most half the kernel per side.
        ceil_mode: round the output size up, as in PyTorch.
        count_include_pad: if True (default, as PyTorch) padded zeros count in the divisor;
            if False the mean is over the real input cells of the window only.

    Shape:
        ``(N, C, H, W)`` or ``(C, H, W)`` -> ``(N, C, H_out, W_out)``, per axis
        ``out = floor((n + p_before + p_after - k) / s) + 1`` (ceil with ``ceil_mode``).

    Raises:
        ConfigError: invalid arguments, padding above half the kernel.
        ShapeError: wrong number of axes, window larger than the padded input.

    Example:
        >>> AvgPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
        array([[ 2.5,  4.5],
               [10.5, 12.5]])
    """

    ndim = 2


@register
class AvgPool3d(_AvgPoolNd):
    """3-D average pooling over ``(N, C, D, H, W)``; see :class:`AvgPool2d`.

    Example:
        >>> AvgPool3d(2, stride=1).output_shape((2, 1, 3, 3, 3))
        (2, 1, 2, 2, 2)
    """

    ndim = 3


@register
class BlurPool1d(_BlurPoolNd):
    """1-D anti-aliased pooling over ``(N, C, L)``; see :class:`BlurPool2d`.

    Example:
        >>> BlurPool1d(1).output_shape((1, 1, 9))
        (1, 1, 5)
    """

    ndim = 1


@register
class BlurPool2d(_BlurPoolNd):
    """2-D anti-aliased pooling: blur each channel with a binomial filter, then subsample.

    The notes (9.2.6) point out that strided max pooling is not shift invariant: moving the
    input by one pixel can change the output a lot, because subsampling aliases. Blurring
    before subsampling (Zhang, "Making Convolutional Networks Shift-Invariant Again", 2019)
    restores much of the invariance. Use ``MaxPool2d(2, stride=1)`` followed by
    ``BlurPool2d(C)`` in place of ``MaxPool2d(2)``.

    Args:
        channels: number of channels ``C`` (checked against the input).
        filter_size: taps of the binomial filter per axis (default 4: ``[1, 3, 3, 1] / 8``).
        stride: subsampling step, int or one int per spatial axis (default 2).
        padding_mode: how the input is extended by ``filter_size - 1`` cells per axis
            (``filter_size // 2``-ish before, the odd one after): "reflect" (default),
            "replicate", "zeros" or "circular".

    Shape:
        ``(N, C, H, W)`` or ``(C, H, W)`` -> ``(N, C, ceil(H / sH), ceil(W / sW))``.

    Raises:
        ConfigError: invalid arguments (filter_size outside 1..7, stride < 1, unknown
            padding_mode).
        ShapeError: wrong axes or channel count; an input too small for reflect padding.

    Example:
        >>> BlurPool2d(3).output_shape((8, 3, 32, 32))
        (8, 3, 16, 16)
    """

    ndim = 2


@register
class BlurPool3d(_BlurPoolNd):
    """3-D anti-aliased pooling over ``(N, C, D, H, W)``; see :class:`BlurPool2d`.

    Example:
        >>> BlurPool3d(2, stride=2).output_shape((1, 2, 4, 4, 4))
        (1, 2, 2, 2, 2)
    """

    ndim = 3
