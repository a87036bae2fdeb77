"""Normalize: the input standardisation as the first layer of a model.

A network trained on standardised pixels ``(x - mean[c]) / std[c]`` gives wrong answers
when it is fed raw pixels. Keeping the per-channel statistics inside the model, as a
layer with no trainable parameters, makes the saved model the whole pipeline: whoever
loads, evaluates, predicts with or exports it feeds the raw ``[0, 1]`` pixels and the
model standardises them itself, the same way in convscope, ONNX and PyTorch. It is
Keras's ``Normalization`` layer; ``convscope train`` puts one first in every model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..shapes import format_shape
from . import init
from .module import Module
from .spec import register

__all__ = ["Normalize", "input_normalization", "with_input_normalization"]


def _values(value: Any, name: str) -> np.ndarray:
    try:
        array = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise ArgumentTypeError(
            f"Normalize: {name} must be a number or a 1-D sequence of numbers (one per channel); "
            f"got {value!r}."
        ) from None
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(
            f"Normalize: {name} must be a number or a 1-D sequence with one value per channel; "
            f"got shape {format_shape(np.shape(value))}."
        )
    return array


@register
class Normalize(Module):
    """Per channel ``y = (x - mean[c]) / std[c]``, with ``mean`` and ``std`` kept as buffers.

    The backward pass is ``dx = dy / std[c]`` (no parameters to train). ``mean`` and
    ``std`` are saved with the model (``state_dict``), exported to ONNX as ``Sub`` and
    ``Div`` nodes and to PyTorch as ``convscope.export.torch_layers.Normalize``.

    Args:
        mean: one value per channel, or one for all channels.
        std: positive values, as many as ``mean`` (or one for all channels).
        dtype: float32 (default) or float64, the dtype of the buffers and of the input.

    Shape:
        ``(N, C, *spatial)``, the channels on axis 1 (``C`` the number of values, any ``C``
        when both have one value); the output has the input's shape.

    Raises:
        ConfigError: ``std`` not positive and finite, ``mean`` not finite, or different
            counts of values.

    Example:
        >>> norm = Normalize([0.5], [0.25])
        >>> norm(np.ones((1, 1, 2, 2), np.float32))[0, 0]
        array([[2., 2.],
               [2., 2.]], dtype=float32)
        >>> norm.backward(np.ones((1, 1, 2, 2), np.float32))[0, 0, 0]
        array([4., 4.], dtype=float32)
    """

    layer_kind = "normalize"
    mean: np.ndarray
    std: np.ndarray

    def __init__(self, mean: Any, std: Any, *, dtype: Any = np.float32) -> None:
        super().__init__()
        mean_v, std_v = _values(mean, "mean"), _values(std, "std")
        if not np.all(np.isfinite(mean_v)) or not np.all(np.isfinite(std_v)) or not np.all(std_v > 0):
            raise ConfigError(
                f"Normalize: mean must be finite and std positive and finite (it divides); got "
                f"mean={mean_v.tolist()}, std={std_v.tolist()}."
            )
        if mean_v.size != std_v.size:
            if 1 not in (mean_v.size, std_v.size):
                raise ConfigError(
                    f"Normalize: mean and std need one value per channel, the same count; got "
                    f"{mean_v.size} and {std_v.size}."
                )
            size = max(mean_v.size, std_v.size)
            mean_v, std_v = np.resize(mean_v, size), np.resize(std_v, size)
        self.dtype = init.check_dtype(dtype, "Normalize")
        self.register_buffer("mean", mean_v.astype(self.dtype))
        self.register_buffer("std", std_v.astype(self.dtype))

    @property
    def num_features(self) -> int:
        """The number of values per statistic (the channel count, or 1 for all channels)."""
        return int(self.mean.size)

    def _per_channel(self, shape: tuple[int, ...], op: str) -> tuple[int, ...]:
        if len(shape) < 2:
            raise ShapeError(
                f"{op} expects x of shape (N, C, ...) with the channels on axis 1; got shape "
                f"{format_shape(shape)}."
            )
        c = self.num_features
        if c not in (1, shape[1]):
            raise ShapeError(
                f"{op} normalises {c} channels (one mean and std each) but x of shape "
                f"{format_shape(shape)} has {shape[1]} channels on axis 1."
            )
        return (1, -1) + (1,) * (len(shape) - 2)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        per_channel = self._per_channel(x.shape, "Normalize")
        std = self.std.reshape(per_channel)
        y = (x - self.mean.reshape(per_channel)) / std
        self._save(std=std, shape=y.shape, dtype=x.dtype)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        saved = self._pop_saved()
        dy = self._check_dy(dy, saved["shape"], saved["dtype"])
        return dy / saved["std"]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(v) for v in input_shape)
        self._per_channel(shape, "Normalize")
        return shape

    def extra_repr(self) -> str:
        def show(a: np.ndarray) -> str:
            return "[" + ", ".join(f"{float(v):.4g}" for v in a) + "]"

        return f"mean={show(self.mean)}, std={show(self.std)}"

    def config(self) -> dict[str, Any]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "dtype": np.dtype(self.dtype).name}


def input_normalization(model: Module) -> Normalize | None:
    """The model's input standardisation: its first layer when that is a ``"normalize"``
    layer (:class:`Normalize` or a subclass), else None.

    >>> from convscope import nn
    >>> input_normalization(nn.Sequential(nn.Normalize(0.5, 0.25), nn.ReLU()))
    Normalize(mean=[0.5], std=[0.25])
    >>> input_normalization(nn.Sequential(nn.ReLU())) is None
    True
    """
    from .walk import walk

    for record in walk(model):
        return record.module if record.kind == "normalize" else None  # type: ignore[return-value]
    return None


def with_input_normalization(model: Module, mean: Any, std: Any) -> Module:
    """``model`` with a :class:`Normalize` layer ``(mean, std)`` put first.

    A :class:`~convscope.nn.Sequential` gets the layer as its new first child (the other
    layers move one place on: ``"0"`` becomes ``"1"``); any other module becomes
    ``Sequential(Normalize, model)``. The layers are the same objects, not copies. The
    layer takes the dtype of the model's parameters.

    Raises:
        ConfigError: the model already starts with a ``"normalize"`` layer.

    >>> from convscope import nn
    >>> with_input_normalization(nn.Sequential(nn.Flatten()), [0.1], [0.3])
    Sequential(
      (0): Normalize(mean=[0.1], std=[0.3])
      (1): Flatten()
    )
    """
    from .container import Sequential

    if input_normalization(model) is not None:
        raise ConfigError(
            "with_input_normalization: the model already starts with a Normalize layer; a second "
            "one would standardise the inputs twice."
        )
    dtype = next((p.data.dtype for p in model.parameters()), np.dtype(np.float32))
    layer = Normalize(mean, std, dtype=dtype)
    if model.layer_kind == "sequential" and type(model) is Sequential:
        return Sequential(layer, *model)
    return Sequential(layer, model)
