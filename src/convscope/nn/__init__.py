"""Stateful layers built on :mod:`convscope.functional`: the notes' modules, trainable.

Every layer has ``forward(x) -> y`` (also ``layer(x)``) and ``backward(dy) -> dx``, which
adds the parameter gradients to ``param.grad``; containers chain them (notes 9.3-9.4).
Every layer also describes itself by a small protocol (``layer_kind``, ``window``,
``input_rank``) and :func:`walk` lists a model's layers in forward order, so tools outside
``nn`` never need to know layer classes.

Example:
    The notes' typical architecture (9.3): conv-relu-pool blocks, flatten, fully connected.

    >>> import numpy as np
    >>> from convscope import nn
    >>> model = nn.Sequential(
    ...     nn.Conv2d(1, 6, 5, rng=0), nn.ReLU(), nn.MaxPool2d(2),
    ...     nn.Flatten(), nn.Linear(6 * 12 * 12, 10, rng=1),
    ... )
    >>> x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    >>> loss = nn.CrossEntropyLoss()
    >>> value = loss(model(x), np.array([3, 7]))
    >>> dx = model.backward(loss.backward())
    >>> dx.shape, model[0].weight.grad.shape
    ((2, 1, 28, 28), (6, 1, 5, 5))
"""

from . import init
from .activation import GELU, Hardsigmoid, Hardswish, Identity, LeakyReLU, ReLU, ReLU6, Sigmoid, SiLU, Softmax, Tanh
from .adaptive_pool import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
)
from .container import Residual, Sequential
from .conv import Conv1d, Conv2d, Conv3d, ConvNd
from .dropout import Dropout
from .flatten import Flatten
from .graph import Graph, GraphBuilder, Node
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss
from .merge import Add, ChannelShuffle, Concat, Mul, Permute, Reshape, Split
from .module import LoadResult, Module
from .norm import BatchNorm1d, BatchNorm2d
from .normalize import Normalize, input_normalization, with_input_normalization
from .parameter import Parameter
from .pool import (
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    BlurPool1d,
    BlurPool2d,
    BlurPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from .spec import from_spec, register, state_shapes, to_spec
from .summary import Summary, summary
from .walk import LayerRecord, batched_input_shape, input_channels, input_rank, walk

__all__ = [
    "Parameter", "Module", "LoadResult", "init",
    "Conv1d", "Conv2d", "Conv3d", "ConvNd",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "BlurPool1d", "BlurPool2d", "BlurPool3d",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Flatten", "Linear", "Dropout",
    "BatchNorm1d", "BatchNorm2d", "Normalize", "Sequential", "Residual",
    "CrossEntropyLoss", "MSELoss",
    "ReLU6", "Hardsigmoid", "Hardswish", "SiLU", "GELU", "Identity",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "Graph", "GraphBuilder", "Node", "Add", "Concat", "Mul", "ChannelShuffle", "Split", "Reshape", "Permute",
    "to_spec", "from_spec", "state_shapes", "register", "summary", "Summary",
    "input_normalization", "with_input_normalization",
    "walk", "LayerRecord", "input_rank", "input_channels", "batched_input_shape",
]
