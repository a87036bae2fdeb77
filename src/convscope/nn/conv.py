"""Convolution layers: a filter bank with its offsets, applied to every window of the input.

One private N-D base, :class:`_ConvNd`, holds all logic; ``Conv1d``, ``Conv2d`` and
``Conv3d`` pin the number of spatial axes and :class:`ConvNd` takes it as its first
argument. The math is :func:`convscope.functional.conv` and its backward; argument forms
(int shorthand, padding forms, groups, dilation) are explained once in
:mod:`convscope.shapes`.
"""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentTypeError, ConfigError
from ..files import to_jsonable
from ..settings import check_allocation
from ..shapes import (
    WindowGeometry,
    check_padding_mode,
    conv_geometry,
    normalize_int,
    normalize_padding,
    normalize_tuple,
)
from . import init
from .module import _ParamGradLayer
from .parameter import Parameter
from .spec import register

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvNd"]


def padding_for_display(padding: Any) -> Any:
    """Pairs as PyTorch shows them: one int per axis when symmetric, else the pairs."""
    if isinstance(padding, str):
        return padding
    if all(before == after for before, after in padding):
        return tuple(before for before, _ in padding)
    return tuple(tuple(pair) for pair in padding)


def _check_bool(value: Any, name: str, op: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{op}: {name} must be True or False; got {value!r}.")
    return bool(value)


_MAX_SPATIAL_AXES = 62


class _ConvNd(_ParamGradLayer):
    """The N-D convolution layer behind Conv1d/2d/3d and ConvNd (see :class:`Conv2d`)."""

    layer_kind = "conv"
    ndim: int = 0  # spatial axes: a class attribute of Conv1d/2d/3d, an argument of ConvNd
    dtype: np.dtype
    weight: Parameter
    bias: Parameter | None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        flip: bool = False,
        *,
        rng: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        self.in_channels = normalize_int(in_channels, "in_channels", op, minimum=1)
        self.out_channels = normalize_int(out_channels, "out_channels", op, minimum=1)
        self.kernel_size = normalize_tuple(kernel_size, self.ndim, "kernel_size", op)
        self.stride = normalize_tuple(stride, self.ndim, "stride", op)
        self.padding = normalize_padding(padding, self.ndim, op)
        self.dilation = normalize_tuple(dilation, self.ndim, "dilation", op)
        self.groups = normalize_int(groups, "groups", op, minimum=1)
        for name, channels in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if channels % self.groups:
                raise ConfigError(
                    f"{op}: groups={self.groups} must divide {name}={channels}; {channels} % "
                    f"{self.groups} = {channels % self.groups}. Each group needs whole channels."
                )
        check_padding_mode(padding_mode, op)
        self.padding_mode = padding_mode
        self.flip = _check_bool(flip, "flip", op)
        has_bias = _check_bool(bias, "bias", op)
        self.dtype = init.check_dtype(dtype, op)
        generator = init.as_generator(rng, op)
        c_per_group = self.in_channels // self.groups
        w_shape = (self.out_channels, c_per_group, *self.kernel_size)
        check_allocation(w_shape, self.dtype,
                         "weight (out_channels, in_channels // groups, *kernel_size)", op)
        fan_in = c_per_group * math.prod(self.kernel_size)  # Python ints: no int64 overflow
        # PyTorch's default init (see convscope.nn.init): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        self.weight = Parameter(
            init.fan_in_uniform(
                (self.out_channels, c_per_group, *self.kernel_size), fan_in, generator, self.dtype
            )
        )
        self.bias = (
            Parameter(init.fan_in_uniform((self.out_channels,), fan_in, generator, self.dtype))
            if has_bias
            else None
        )

    @property
    def window(self) -> WindowGeometry:
        """Kernel, stride, dilation, padding (pairs or "same"), padding mode and groups."""
        return WindowGeometry("conv", self.kernel_size, self.stride, self.dilation, self.padding,
                              self.padding_mode, False, self.groups)

    @property
    def input_rank(self) -> int:
        return self.ndim

    def _conv_args(self) -> dict[str, Any]:
        return dict(
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
            flip=self.flip,
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Convolve ``x`` ``(N, C_in, *spatial)`` or one sample ``(C_in, *spatial)``."""
        x, unbatched = self._batched_input(x, self.ndim, self.in_channels)
        w = self.weight.data
        b = self.bias.data if self.bias is not None else None
        return self._save_batched(x, F.conv(x, w, b, **self._conv_args()), unbatched, w=w)

    def _backward(self, dy: np.ndarray, input_grad: bool) -> np.ndarray | None:
        saved, dy = self._pop_saved_dy(dy)
        dx, dw, db = F.conv_backward(dy, saved["x"], saved["w"], **self._conv_args(), input_grad=input_grad)
        self.weight.accumulate(dw, "weight")
        if self.bias is not None:
            self.bias.accumulate(db, "bias")
        if dx is None:
            return None
        return dx[0] if saved["unbatched"] else dx

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape by arithmetic (Key Equation 48 per spatial axis)."""
        batched, unbatched = self._batched_shape(input_shape, self.ndim, self.in_channels)
        geo = conv_geometry(
            batched, self.weight.shape, self.stride, self.padding, self.dilation, self.groups,
            self.padding_mode, type(self).__name__,
        )
        return geo.y_shape[1:] if unbatched else geo.y_shape

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"]
        if self.stride != (1,) * self.ndim:
            parts.append(f"stride={self.stride}")
        shown = padding_for_display(self.padding)
        if shown != (0,) * self.ndim:
            parts.append(f"padding={shown!r}")
        if self.dilation != (1,) * self.ndim:
            parts.append(f"dilation={self.dilation}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode!r}")
        if self.flip:
            parts.append("flip=True")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype}")
        return ", ".join(parts)

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": to_jsonable(padding_for_display(self.padding)),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.bias is not None,
            "padding_mode": self.padding_mode,
            "flip": self.flip,
            "dtype": self.dtype.name,
        }


@register
class ConvNd(_ConvNd):
    """Convolution with any number of spatial axes ``ndim`` (first argument).

    Same arguments and behaviour as :class:`Conv2d` otherwise.

    Example:
        >>> conv = ConvNd(4, 1, 2, kernel_size=2, rng=0)
        >>> conv(np.zeros((1, 1, 3, 3, 3, 3), dtype=np.float32)).shape
        (1, 2, 2, 2, 2, 2)
    """

    def __init__(self, ndim: int, in_channels: int, out_channels: int, kernel_size: Any,
                 *args: Any, **kwargs: Any) -> None:
        op = type(self).__name__
        self.ndim = normalize_int(ndim, "ndim", op, minimum=1)
        if self.ndim > _MAX_SPATIAL_AXES:
            raise ConfigError(
                f"{op}: ndim must be between 1 and {_MAX_SPATIAL_AXES} (a NumPy array has at most "
                f"64 axes, two of them batch and channels); got {self.ndim}."
            )
        super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)

    def config(self) -> dict[str, Any]:
        return {"ndim": self.ndim, **super().config()}


def _init_named(name: str) -> Any:
    """``_ConvNd.__init__`` under the public class's name, so a wrong call reads
    ``Conv2d.__init__() missing 1 required positional argument: 'kernel_size'``."""
    f = _ConvNd.__init__
    code = f.__code__
    if hasattr(code, "co_qualname"):  # Python 3.11+: the name TypeError messages use
        # mypy checks against Python 3.10, whose CodeType.replace has no co_qualname
        code = code.replace(co_qualname=f"{name}.__init__")  # type: ignore[call-arg]
    g = types.FunctionType(code, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    g.__kwdefaults__ = f.__kwdefaults__
    g.__qualname__ = f"{name}.__init__"
    g.__doc__ = f.__doc__
    return g


@register
class Conv1d(_ConvNd):
    """1-D convolution over ``(N, C_in, L)`` (sound, time series); see :class:`Conv2d`.

    Example:
        The notes' 1-D example (9.1.4): the filter ``[1, -1, 1]`` finds the "bright spots".

        >>> conv = Conv1d(1, 1, 3, bias=False, dtype=np.float64)
        >>> conv.weight.data[...] = [[[1, -1, 1]]]
        >>> conv(np.array([[[1., 1, -1, -1, -1, 1, -1, 1, 1, 1]]]))[0, 0]
        array([-1.,  1., -1.,  1., -3.,  3., -1.,  1.])
    """

    ndim = 1
    __init__ = _init_named("Conv1d")


@register
class Conv2d(_ConvNd):
    """2-D convolution: a filter bank of ``out_channels`` tensor filters slid over the image.

    Each output channel ``j`` is one filter (notes 9.1.11-9.1.13) dotted with every window
    ``v_i`` of the padded input, plus its offset: ``y[n, j, i] = weight[j] . v_i + bias[j]``
    (Key Equation 15; cross-correlation unless ``flip=True``).

    Args:
        in_channels: channels of the input (``C_in``, the notes' ``m^(l-1)``).
        out_channels: number of filters (``C_out``, the notes' ``m^l``).
        kernel_size: int or ``(kH, kW)``; an int ``k`` means ``(k, k)``.
        stride: int or ``(sH, sW)`` (default 1).
        padding: int, ``(pH, pW)``, ``((top, bottom), (left, right))``, ``"valid"`` or
            ``"same"`` (default 0); forms in :mod:`convscope.shapes`.
        dilation: int or ``(dH, dW)``, spacing of the kernel taps (default 1 = no gaps).
        groups: split the channels into independent groups (default 1).
        bias: learn one offset per filter (default True).
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        flip: compute the true convolution (filter reversed) instead of cross-correlation.
        rng: ``numpy.random.Generator`` or int seed for the init (None: the default
            generator, see :func:`convscope.nn.init.manual_seed`).
        dtype: float32 (default) or float64.

    Attributes:
        weight: Parameter ``(C_out, C_in // groups, kH, kW)``.
        bias: Parameter ``(C_out,)`` or None.

    Shape:
        - Input ``(N, C_in, H, W)`` or one sample ``(C_in, H, W)``.
        - Output ``(N, C_out, H_out, W_out)`` (or ``(C_out, H_out, W_out)``), per axis
          ``out = floor((n + p_before + p_after - d*(k-1) - 1) / s) + 1``; for ``d = 1`` and
          symmetric padding this is the notes' Key Equation 48.

    Raises:
        ConfigError / ArgumentTypeError: invalid arguments (naming the argument).
        ShapeError: wrong number of axes or channels (with a channels-last hint), a kernel
            that does not fit the padded input.
        DTypeError: input dtype differs from the weight's.

    Notes:
        **Filter bank layout.** The notes write a filter bank of ``m`` filters of size
        ``k x k`` as a ``(k x k x m)`` tensor (Definition 27), and a tensor filter for an input
        with ``c`` channels as ``(k x k x c)`` (Concept 31). convscope stores channels first,
        as PyTorch and ONNX do: ``weight[j]`` is the ``j``-th tensor filter with shape
        ``(c, k, k)``, and the notes' entry ``f_j[a, b, c]`` is ``weight[j, c, a, b]``.
        ``np.moveaxis(weight, 1, -1)`` gives the notes' ``(m, k, k, c)`` order.

        **Init.** PyTorch's default: weight and bias ``~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
        with ``fan_in = C_in/groups * kH * kW``, so models compared with PyTorch start from
        the same distribution (see :mod:`convscope.nn.init`).

        **Saved state.** forward keeps the input for backward; a second forward replaces it.

    Example:
        A vertical-edge filter fires on a step and stays silent on the transposed step:

        >>> conv = Conv2d(1, 1, kernel_size=(1, 2), bias=False, rng=0)
        >>> conv.weight.data[...] = [[[[-1.0, 1.0]]]]
        >>> step = np.array([[[[0, 0, 1, 1]] * 2]], dtype=np.float32)  # (1, 1, 2, 4)
        >>> conv(step)[0, 0]
        array([[0., 1., 0.],
               [0., 1., 0.]], dtype=float32)
        >>> conv(step.transpose(0, 1, 3, 2)).max()      # horizontal step: silent
        np.float32(0.0)
        >>> Conv2d(1, 8, 5, rng=0).weight.shape            # 8 filters of 1x5x5
        (8, 1, 5, 5)
    """

    ndim = 2
    __init__ = _init_named("Conv2d")


@register
class Conv3d(_ConvNd):
    """3-D convolution over ``(N, C_in, D, H, W)`` (volumes, video); see :class:`Conv2d`.

    Example:
        >>> Conv3d(2, 4, 3, padding=1, rng=0).output_shape((5, 2, 8, 8, 8))
        (5, 4, 8, 8, 8)
    """

    ndim = 3
    __init__ = _init_named("Conv3d")
