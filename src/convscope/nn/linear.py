"""Linear: the fully-connected layer (notes 9.0.1) that finishes a CNN (notes 9.3)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ShapeError
from ..functional.windows import check_allocation
from ..shapes import format_shape, normalize_int
from . import init
from .conv import _check_bool
from .module import Module
from .parameter import Parameter
from .spec import register

__all__ = ["Linear"]


@register
class Linear(Module):
    """Fully-connected layer: ``y = x W^T + b``, a weight for every input-output pair.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an offset per output (default True).
        rng: ``numpy.random.Generator`` or int seed for the init (None: the default generator).
        dtype: float32 (default) or float64.

    Attributes:
        weight: Parameter ``(out_features, in_features)`` (PyTorch's layout).
        bias: Parameter ``(out_features,)`` or None.

    Shape:
        ``(*, in_features) -> (*, out_features)``: any leading axes, including none (one
        unbatched sample).

    Raises:
        ShapeError: the last axis of x is not ``in_features``.
        DTypeError: x's dtype differs from the weight's.

    Notes:
        Init as PyTorch: weight and bias ``~ U(-1/sqrt(in_features), 1/sqrt(in_features))``
        (see :mod:`convscope.nn.init`). The notes' 9.1.18 comparison: a 5x5 -> 5x5 map needs
        ``Linear(25, 25)``, 650 parameters, where a 3x3 convolution needs 10.

    Example:
        >>> fc = Linear(25, 25, rng=0)
        >>> fc.num_parameters()
        650
        >>> fc(np.zeros((4, 25), dtype=np.float32)).shape
        (4, 25)
    """

    layer_kind = "linear"

    @property
    def input_rank(self) -> int:
        """0: a vector of ``in_features`` per sample, no spatial axes."""
        return 0

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, rng: Any = None,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        self.in_features = normalize_int(in_features, "in_features", "Linear", minimum=1)
        self.out_features = normalize_int(out_features, "out_features", "Linear", minimum=1)
        has_bias = _check_bool(bias, "bias", "Linear")
        self.dtype = init.check_dtype(dtype, "Linear")
        generator = init.as_generator(rng, "Linear")
        check_allocation((self.out_features, self.in_features), self.dtype,
                         "weight (out_features, in_features)", "Linear")
        self.weight = Parameter(init.fan_in_uniform(
            (self.out_features, self.in_features), self.in_features, generator, self.dtype))
        self.bias = (
            Parameter(init.fan_in_uniform((self.out_features,), self.in_features, generator,
                                          self.dtype))
            if has_bias else None
        )

    def _check_features(self, shape: tuple[int, ...]) -> None:
        if len(shape) == 0 or shape[-1] != self.in_features:
            hint = ""
            if len(shape) > 2:
                hint = " Feature maps must be flattened first: put Flatten() before Linear."
            raise ShapeError(
                f"Linear expected {self.in_features} input features on the last axis but x has "
                f"shape {format_shape(shape)}.{hint}"
            )

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        self._check_features(x.shape)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        w = self.weight.data
        y = F.linear(x2, w, self.bias.data if self.bias is not None else None)
        self._save(x=x2, w=w, lead=lead)
        return y.reshape(*lead, self.out_features)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._backward(dy, True)

    def backward_params(self, dy: np.ndarray) -> None:
        """Adds dLoss/dweight and dLoss/dbias without computing dLoss/dx."""
        self._backward(dy, False)

    def _backward(self, dy: np.ndarray, input_grad: bool) -> np.ndarray | None:
        saved = self._pop_saved()
        x2, lead = saved["x"], saved["lead"]
        dy = self._check_dy(dy, (*lead, self.out_features), x2.dtype)
        dy2 = dy.reshape(-1, self.out_features)
        if input_grad:
            dx, dw, db = F.linear_backward(dy2, x2, saved["w"])
        else:  # dw = dy^T x and db = sum of dy, as linear_backward (notes 9.4.4)
            dx, dw, db = None, dy2.T @ x2, dy2.sum(axis=0)
        self.weight.accumulate(dw, "weight")
        if self.bias is not None:
            self.bias.accumulate(db, "bias")
        return None if dx is None else dx.reshape(*lead, self.in_features)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(v) for v in input_shape)
        self._check_features(shape)
        return shape[:-1] + (self.out_features,)

    def extra_repr(self) -> str:
        parts = [f"in_features={self.in_features}", f"out_features={self.out_features}"]
        if self.bias is None:
            parts.append("bias=False")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype}")
        return ", ".join(parts)

    def config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "dtype": self.dtype.name}
