"""Activation layers: element-wise non-linearities (and softmax) with their derivatives.

Each is a separate module (no ``activation=`` argument fused into conv, as in the notes'
conv -> ReLU -> pool blocks, Concept 60). Any input shape is accepted; the math is in
:mod:`convscope.functional`.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..shapes import format_shape, normalize_int
from .module import Module
from .spec import register

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "ReLU6", "Hardsigmoid", "Hardswish", "SiLU", "GELU",
           "Identity"]


class _Elementwise(Module):
    """y = f(x) entry by entry; backward uses the saved x."""

    def _f(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _df(self, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        y = self._f(x)
        self._save(x=x)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        saved = self._pop_saved()
        x = saved["x"]
        return self._df(self._check_dy(dy, x.shape, x.dtype), x)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(v) for v in input_shape)

    def config(self) -> dict[str, Any]:
        return {}


@register
class ReLU(_Elementwise):
    """Rectified linear unit: ``y = max(x, 0)``; derivative 1 where ``x > 0``, else 0.

    Example:
        >>> relu = ReLU()
        >>> relu(np.array([-1.0, 0.0, 2.0]))
        array([0., 0., 2.])
        >>> relu.backward(np.array([5.0, 5.0, 5.0]))
        array([0., 0., 5.])
    """

    layer_kind = "relu"

    def _f(self, x):
        return F.relu(x)

    def _df(self, dy, x):
        return F.relu_backward(dy, x)

    def adopt_output(self, y: np.ndarray) -> np.ndarray:
        """Take ``y = relu(x)``, computed by the layer before, as this layer's forward, and
        return it (:class:`~convscope.nn.Sequential`'s BatchNorm -> ReLU step, see
        :func:`~convscope.nn.container.fuses_batch_norm_relu`).

        The backward needs only where ``x > 0``, and ``y > 0`` exactly there (``max(NaN, 0)``
        is NaN, which passes ``dy`` as a NaN ``x`` does), so ``y`` is saved in place of ``x``.
        """
        self._save(x=y)
        return y


@register
class LeakyReLU(_Elementwise):
    """``y = x`` where ``x > 0``, else ``negative_slope * x``.

    Args:
        negative_slope: slope for negative inputs (default 0.01, as PyTorch).

    Example:
        >>> LeakyReLU(0.1)(np.array([-2.0, 3.0]))
        array([-0.2,  3. ])
    """

    layer_kind = "leaky_relu"
    negative_slope: float

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if isinstance(negative_slope, (bool, np.bool_)) or not isinstance(negative_slope, numbers.Real):
            raise ArgumentTypeError(
                f"LeakyReLU: negative_slope must be a real number; got {negative_slope!r}."
            )
        self.negative_slope = float(negative_slope)

    def _f(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def _df(self, dy, x):
        return F.leaky_relu_backward(dy, x, self.negative_slope)

    def extra_repr(self) -> str:
        return "" if self.negative_slope == 0.01 else f"negative_slope={self.negative_slope}"

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


@register
class Sigmoid(_Elementwise):
    """Logistic function ``y = 1 / (1 + exp(-x))``; derivative ``y (1 - y)``.

    Example:
        >>> Sigmoid()(np.array([0.0]))
        array([0.5])
    """

    layer_kind = "sigmoid"

    def _f(self, x):
        return F.sigmoid(x)

    def _df(self, dy, x):
        return F.sigmoid_backward(dy, x)


@register
class Tanh(_Elementwise):
    """Hyperbolic tangent; derivative ``1 - tanh(x)^2``.

    Example:
        >>> Tanh()(np.array([0.0]))
        array([0.])
    """

    layer_kind = "tanh"

    def _f(self, x):
        return F.tanh(x)

    def _df(self, dy, x):
        return F.tanh_backward(dy, x)


@register
class Softmax(_Elementwise):
    """Softmax along ``dim``: ``y_j = exp(x_j) / sum_k exp(x_k)`` (the notes' last layer).

    For training a classifier prefer raw scores with :class:`CrossEntropyLoss`, which fuses
    the softmax in a numerically stable way; use ``Softmax`` to turn scores into
    probabilities for prediction.

    Args:
        dim: the axis that sums to one (default -1).

    Example:
        >>> Softmax()(np.array([[0.0, np.log(3.0)]]))
        array([[0.25, 0.75]])
    """

    layer_kind = "softmax"

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = normalize_int(dim, "dim", "Softmax")

    def _axis(self, x: np.ndarray) -> int:
        if not -x.ndim <= self.dim < x.ndim:
            raise ShapeError(
                f"Softmax: dim={self.dim} must index an axis of x; got x of shape "
                f"{format_shape(x.shape)} with {x.ndim} axes."
            )
        return self.dim

    def _f(self, x):
        return F.softmax(x, axis=self._axis(x))

    def _df(self, dy, x):
        return F.softmax_backward(dy, x, axis=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim}


class _Pointwise(_Elementwise):
    """An elementwise activation given by a functional pair ``(f, f_backward)``."""

    _pair: tuple[Any, Any]

    def _f(self, x):
        return self._pair[0](x)

    def _df(self, dy, x):
        return self._pair[1](dy, x)


@register
class ReLU6(_Pointwise):
    """``y = min(max(x, 0), 6)`` (MobileNetV2); derivative 1 on (0, 6), else 0.

    >>> ReLU6()(np.array([-1.0, 3.0, 9.0]))
    array([0., 3., 6.])
    """

    layer_kind = "relu6"
    _pair = (F.relu6, F.relu6_backward)


@register
class Hardsigmoid(_Pointwise):
    """``y = clip(x / 6 + 1/2, 0, 1)`` (MobileNetV3's gate); derivative 1/6 on (-3, 3)."""

    layer_kind = "hardsigmoid"
    _pair = (F.hardsigmoid, F.hardsigmoid_backward)


@register
class Hardswish(_Pointwise):
    """``y = x * hardsigmoid(x)`` (MobileNetV3); derivative ``x/3 + 1/2`` on (-3, 3)."""

    layer_kind = "hardswish"
    _pair = (F.hardswish, F.hardswish_backward)


@register
class SiLU(_Pointwise):
    """``y = x * sigmoid(x)`` (Swish, EfficientNet); derivative ``s + x s (1 - s)``."""

    layer_kind = "silu"
    _pair = (F.silu, F.silu_backward)


@register
class GELU(_Elementwise):
    """``y = x * Phi(x)`` with ``Phi`` the normal CDF (``approximate="none"``, exact through
    erf) or its tanh approximation (``approximate="tanh"``), as PyTorch.

    >>> GELU()(np.array([0.0, 1.0])).round(6)
    array([0.      , 0.841345])
    """

    layer_kind = "gelu"

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ConfigError(f"GELU: approximate must be 'none' or 'tanh'; got {approximate!r}.")
        self.approximate = approximate

    def _f(self, x):
        return F.gelu(x, self.approximate)

    def _df(self, dy, x):
        return F.gelu_backward(dy, x, self.approximate)

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else f"approximate='{self.approximate}'"

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


@register
class Identity(Module):
    """``y = x`` (a placeholder, e.g. a removed layer); backward passes ``dy`` through."""

    layer_kind = "identity"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        self._save(shape=x.shape, dtype=x.dtype)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        saved = self._pop_saved()
        return self._check_dy(dy, saved["shape"], saved["dtype"])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(v) for v in input_shape)

    def config(self) -> dict[str, Any]:
        return {}
