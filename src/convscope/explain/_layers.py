"""How ``explain`` reads a model: its layers in order, each with its window geometry.

One walk over a :class:`convscope.nn.Module` (Sequential and Residual unfolded) that gives,
for every layer, its input and output shapes and what it does to positions: a window layer
(convolution, max/avg/blur pooling) with ``k, s, d, p`` per spatial axis, a position-wise
layer (activations, dropout, batch norm, channel softmax), or a layer after which every
output depends on the whole input (Flatten, Linear, spatial softmax). Used by
:func:`convscope.explain.explain_model_shapes` and :func:`convscope.explain.receptive_field`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import ArgumentTypeError, ConvscopeError
from ..nn import Module
from ..nn.activation import Softmax, _Elementwise
from ..nn.container import Residual, Sequential
from ..nn.conv import _ConvNd
from ..nn.dropout import Dropout
from ..nn.flatten import Flatten
from ..nn.linear import Linear
from ..nn.norm import BatchNorm2d, _BatchNorm
from ..nn.pool import _BlurPoolNd, _WindowPoolNd
from ..shapes import normalize_padding, same_padding

__all__ = ["Layer", "walk_layers", "batched_input_shape", "one_line"]


@dataclass
class Layer:
    """One layer of a walked model.

    Attributes:
        index: 1-based position in the walk (the numbering of ``convscope.summary``).
        name: dotted path (``"features.0"``).
        module: the module itself.
        kind: "window", "pointwise", "global", "residual" or "unknown".
        in_shape, out_shape: batched shapes (``out_shape`` None when the layer does not fit).
        error: why it does not fit (None when it does).
        k, s, d: per spatial axis (window layers).  p: ``(before, after)`` per axis.
        padding_mode: how the padding is filled ("zeros" for max pooling's -inf too).
        op: "conv" or "pool" (window layers).  ceil_mode: pooling's rounding rule.
        block: the layers of a Residual's block.
    """

    index: int
    name: str
    module: Module
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...] | None = None
    error: str | None = None
    k: tuple[int, ...] = ()
    s: tuple[int, ...] = ()
    d: tuple[int, ...] = ()
    p: tuple[tuple[int, int], ...] = ()
    padding_mode: str = "zeros"
    op: str = ""
    ceil_mode: bool = False
    block: list["Layer"] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``3 (MaxPool2d(kernel_size=(2, 2)))``: how messages name the layer."""
        return f"{self.index} ({one_line(self.module)})"


def one_line(module: Module) -> str:
    """The module's repr on one line (containers shortened to ``Name(...)``).

    >>> from convscope import nn
    >>> one_line(nn.Sequential(nn.ReLU())), one_line(nn.ReLU())
    ('Sequential(...)', 'ReLU()')
    """
    text = repr(module)
    return text if "\n" not in text else f"{type(module).__name__}(...)"


def _pairs(padding: Any, n: Sequence[int], k, s, d, op: str) -> tuple[tuple[int, int], ...]:
    pairs = normalize_padding(padding, len(k), op)
    if pairs == "same":
        pairs = tuple(same_padding(a, b, c, e) for a, b, c, e in zip(n, k, s, d))
    return tuple(pairs)


def _describe(layer: Layer) -> None:
    """Fill in the geometry of ``layer`` from its module."""
    m = layer.module
    n = layer.in_shape[2:]
    if isinstance(m, _ConvNd):
        layer.kind, layer.op = "window", "conv"
        layer.k, layer.s, layer.d = m.kernel_size, m.stride, m.dilation
        layer.p = _pairs(m.padding, n, m.kernel_size, m.stride, m.dilation, type(m).__name__)
        layer.padding_mode = m.padding_mode
    elif isinstance(m, _WindowPoolNd):
        layer.kind, layer.op = "window", "pool"
        layer.k, layer.s, layer.d = m.kernel_size, m.stride, m.dilation
        layer.p = _pairs(m.padding, n, m.kernel_size, m.stride, m.dilation, type(m).__name__)
        layer.ceil_mode = m.ceil_mode
    elif isinstance(m, _BlurPoolNd):
        layer.kind, layer.op = "window", "pool"
        layer.k = (m.filter_size,) * m.ndim
        layer.s, layer.d, layer.p = m.stride, (1,) * m.ndim, m.padding
        layer.padding_mode = m.padding_mode
    elif isinstance(m, Softmax):
        spatial = len(layer.in_shape) > 2 and (m.dim % len(layer.in_shape)) >= 2
        layer.kind = "global" if spatial else "pointwise"
    elif isinstance(m, (_Elementwise, Dropout, _BatchNorm)):
        layer.kind = "pointwise"
    elif isinstance(m, (Flatten, Linear)):
        layer.kind = "global"
    else:
        layer.kind = "unknown"


def walk_layers(model: Module, shape: tuple[int, ...]) -> list[Layer]:
    """The layers of ``model`` for a batched input of ``shape``, in order.

    A layer that does not fit gets ``error`` set (its ``output_shape`` message) and ends
    the walk.

    >>> from convscope import nn
    >>> layers = walk_layers(nn.Sequential(nn.Conv1d(1, 2, 3, rng=0), nn.ReLU()), (1, 1, 8))
    >>> [(lay.index, lay.kind, lay.k, lay.out_shape) for lay in layers]
    [(1, 'window', (3,), (1, 2, 6)), (2, 'pointwise', (), (1, 2, 6))]
    """
    layers: list[Layer] = []
    counter = [0]

    def visit(module: Module, name: str, shape: tuple[int, ...], into: list[Layer]):
        if isinstance(module, Sequential):
            for child_name, child in module.named_children():
                shape = visit(child, f"{name}.{child_name}" if name else child_name, shape, into)
                if shape is None:
                    return None
            return shape
        if isinstance(module, Residual):
            inner: list[Layer] = []
            out = visit(module.block, f"{name}.block" if name else "block", shape, inner)
            into.extend(inner)
            if out is None:
                return None
            counter[0] += 1
            layer = Layer(counter[0], name or "(model)", module, "residual", shape, block=inner)
            into.append(layer)
            return _fit(layer)
        counter[0] += 1
        layer = Layer(counter[0], name or "(model)", module, "unknown", shape)
        into.append(layer)
        out = _fit(layer)
        if out is not None:
            _describe(layer)
        return out

    def _fit(layer: Layer):
        try:
            layer.out_shape = tuple(int(v) for v in layer.module.output_shape(layer.in_shape))
        except ConvscopeError as exc:
            layer.error = str(exc)
            return None
        return layer.out_shape

    visit(model, "", tuple(shape), layers)
    return layers


def _first_rank(model: Module) -> int | None:
    for module in model.modules():
        if isinstance(module, (_ConvNd, _WindowPoolNd, _BlurPoolNd)):
            return module.ndim + 2
        if isinstance(module, BatchNorm2d):
            return 4
        if isinstance(module, Linear):
            return 2
        if isinstance(module, (_BatchNorm, Flatten)):
            return None
    return None


def batched_input_shape(model: Any, input_shape: Any, op: str) -> tuple[tuple[int, ...], bool]:
    """``input_shape`` with a batch axis (added when the first shape-fixing layer needs one more).

    Same rule as :func:`convscope.summary`.

    >>> from convscope import nn
    >>> batched_input_shape(nn.Conv2d(1, 2, 3, rng=0), (1, 28, 28), "demo")
    ((1, 1, 28, 28), True)
    """
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"{op}: model must be a convscope Module; got {type(model).__name__}.")
    try:
        shape = tuple(int(v) for v in input_shape)
        ok = len(shape) >= 1 and all(int(v) == v and v >= 1 for v in input_shape)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ArgumentTypeError(
            f"{op}: input_shape must be a tuple of positive ints such as (1, 28, 28); got "
            f"{input_shape!r}."
        )
    rank = _first_rank(model)
    if rank is not None and len(shape) == rank - 1:
        return (1, *shape), True
    return shape, False
