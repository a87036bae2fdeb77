"""Dropout: randomly silence activations while training (inverted dropout)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError
from . import init
from .module import Module
from .spec import register

__all__ = ["Dropout"]


@register
class Dropout(Module):
    """Zero each entry with probability ``p`` in training; scale the rest by ``1 / (1 - p)``.

    Inverted dropout (as PyTorch): the scaling happens while training, so in eval mode the
    layer is the identity and the expected activation is the same in both modes.

    Args:
        p: probability of zeroing an entry, ``0 <= p <= 1`` (default 0.5).
        rng: ``numpy.random.Generator`` or int seed for the masks. None draws a generator
            from the default one (:func:`convscope.nn.init.manual_seed` makes it repeatable).

    Attributes:
        generator: the Generator the masks come from (its state can be saved for resume).

    Shape:
        Any shape; the output has the input's shape.

    Example:
        >>> drop = Dropout(0.5, rng=0)
        >>> y = drop(np.ones((2, 4)))
        >>> sorted(set(y.ravel().tolist()))          # kept entries are scaled by 1/(1-p)
        [0.0, 2.0]
        >>> np.array_equal(drop.backward(np.ones((2, 4))), y)   # same mask in backward
        True
        >>> drop.eval()(np.ones(3))
        array([1., 1., 1.])
    """

    layer_kind = "dropout"

    def __init__(self, p: float = 0.5, *, rng: Any = None) -> None:
        super().__init__()
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
            raise ArgumentTypeError(f"Dropout: p must be a probability (a float); got {p!r}.")
        if not 0.0 <= float(p) <= 1.0:
            raise ConfigError(f"Dropout: p must be between 0 and 1; got {p}.")
        self.p = float(p)
        if rng is None:
            # an independent stream drawn from the default generator, so manual_seed covers it
            rng = np.random.default_rng(init.default_generator().integers(2**63))
        self.generator = init.as_generator(rng, "Dropout")

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        if not self.training or self.p == 0.0:
            self._save(mask=None, shape=x.shape, dtype=x.dtype)
            return x.copy()
        if self.p == 1.0:
            mask = np.zeros(x.shape, dtype=x.dtype)
        else:
            keep = self.generator.random(x.shape) >= self.p
            mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        self._save(mask=mask, shape=x.shape, dtype=x.dtype)
        return x * mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        saved = self._pop_saved()
        dy = self._check_dy(dy, saved["shape"], saved["dtype"])
        return dy.copy() if saved["mask"] is None else dy * saved["mask"]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(v) for v in input_shape)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def config(self) -> dict[str, Any]:
        return {"p": self.p}
