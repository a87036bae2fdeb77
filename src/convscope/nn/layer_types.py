"""Static types of the layer kinds: what code that dispatches on ``Module.layer_kind`` reads.

The layer protocol (:attr:`Module.layer_kind`) says what a layer computes without testing
its class, so summary, explain, viz and export accept a user's subclass of a convscope
layer. These :class:`typing.Protocol` classes give the type checker the same knowledge: a
function that handles ``layer_kind == "conv"`` takes a :class:`ConvLayer`, the attributes
every convolution layer has. They describe; nothing is checked at run time.

Example:
    >>> from convscope import nn
    >>> def weights(layer: ConvLayer) -> tuple[int, ...]:
    ...     return layer.weight.shape
    >>> weights(nn.Conv2d(1, 2, 3, rng=0))
    (2, 1, 3, 3)
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .module import Module
from .parameter import Parameter

__all__ = [
    "ConvLayer",
    "WindowPoolLayer",
    "BlurPoolLayer",
    "BatchNormLayer",
    "LinearLayer",
    "ResidualLayer",
    "FusableBatchNorm",
    "FusableReLU",
    "RandomLayer",
    "LeakyReLULayer",
    "SoftmaxLayer",
    "FlattenLayer",
    "DropoutLayer",
]


class ConvLayer(Protocol):
    """``layer_kind == "conv"``: :class:`~convscope.nn.Conv2d` and its siblings."""

    ndim: int
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Any  # ((before, after), ...) per axis, or "same"
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str
    flip: bool
    weight: Parameter
    bias: Parameter | None
    dtype: np.dtype


class WindowPoolLayer(Protocol):
    """``layer_kind`` ``"max_pool"`` or ``"avg_pool"`` (``count_include_pad``: average only)."""

    ndim: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Any
    dilation: tuple[int, ...]
    ceil_mode: bool
    count_include_pad: bool


class BlurPoolLayer(Protocol):
    """``layer_kind == "blur_pool"``: :class:`~convscope.nn.BlurPool2d` and its siblings."""

    ndim: int
    channels: int
    filter_size: int
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    padding_mode: str


class BatchNormLayer(Protocol):
    """``layer_kind == "batch_norm"``: :class:`~convscope.nn.BatchNorm2d` and BatchNorm1d."""

    num_features: int
    eps: float
    momentum: float | None
    affine: bool
    track_running_stats: bool
    weight: Parameter | None
    bias: Parameter | None
    running_mean: np.ndarray | None
    running_var: np.ndarray | None
    num_batches_tracked: np.ndarray | None


class LinearLayer(Protocol):
    """``layer_kind == "linear"``: :class:`~convscope.nn.Linear`."""

    in_features: int
    out_features: int
    weight: Parameter
    bias: Parameter | None
    dtype: np.dtype


class ResidualLayer(Protocol):
    """``layer_kind == "residual"``: ``x + block(x)``."""

    block: Module


class FusableBatchNorm(Protocol):
    """A batch norm that :class:`~convscope.nn.Sequential` runs fused with the ReLU after it."""

    def forward_relu(self, x: np.ndarray) -> np.ndarray: ...


class FusableReLU(Protocol):
    """The ReLU of a fused BatchNorm -> ReLU step: takes the fused pass's output as its own."""

    def adopt_output(self, y: np.ndarray) -> np.ndarray: ...


class RandomLayer(Protocol):
    """A layer that draws random numbers in training (Dropout) from its own generator."""

    generator: np.random.Generator


class LeakyReLULayer(Protocol):
    """``layer_kind == "leaky_relu"``."""

    negative_slope: float


class SoftmaxLayer(Protocol):
    """``layer_kind == "softmax"``: the axis it normalises."""

    dim: int


class FlattenLayer(Protocol):
    """``layer_kind == "flatten"``: every axis from ``start_dim`` on becomes one."""

    start_dim: int


class DropoutLayer(Protocol):
    """``layer_kind == "dropout"``: the probability of zeroing an entry."""

    p: float
