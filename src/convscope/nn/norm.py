"""Batch normalisation layers: the running statistics and the parameters of each channel.

The math is :mod:`convscope.functional.norm` (``batch_norm`` and ``batch_norm_backward``);
the layer keeps the learnable ``weight`` and ``bias``, the running statistics, and what its
backward needs from its forward.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..functional.windows import check_allocation
from ..shapes import format_shape, normalize_int
from . import init
from .conv import _check_bool, channel_mismatch
from .module import Module
from .parameter import Parameter
from .spec import register

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    """Shared logic of BatchNorm1d/2d (see :class:`BatchNorm2d`)."""

    layer_kind = "batch_norm"
    _allowed_ndims: tuple[int, ...] = ()
    _layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, *,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        op = type(self).__name__
        self.num_features = normalize_int(num_features, "num_features", op, minimum=1)
        if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real) or eps <= 0:
            raise ConfigError(f"{op}: eps must be a positive number; got {eps!r}.")
        self.eps = float(eps)
        if momentum is not None:
            if isinstance(momentum, (bool, np.bool_)) or not isinstance(momentum, numbers.Real):
                raise ArgumentTypeError(f"{op}: momentum must be a float or None; got {momentum!r}.")
            if not 0.0 <= float(momentum) <= 1.0:
                raise ConfigError(
                    f"{op}: momentum must be between 0 and 1 (the weight of the newest batch in "
                    f"the running statistics), or None for a cumulative average; got {momentum}."
                )
            momentum = float(momentum)
        self.momentum = momentum
        self.affine = _check_bool(affine, "affine", op)
        self.track_running_stats = _check_bool(track_running_stats, "track_running_stats", op)
        self.dtype = init.check_dtype(dtype, op)
        c = self.num_features
        check_allocation((c,), self.dtype, "per-channel weight (num_features,)", op)
        self.weight = Parameter(init.ones((c,), self.dtype)) if self.affine else None
        self.bias = Parameter(init.zeros((c,), self.dtype)) if self.affine else None
        tracked = self.track_running_stats
        self.register_buffer("running_mean", init.zeros((c,), self.dtype) if tracked else None)
        self.register_buffer("running_var", init.ones((c,), self.dtype) if tracked else None)
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64) if tracked else None)

    @property
    def input_rank(self) -> int | None:
        """2 for BatchNorm2d; None for BatchNorm1d, which takes (N, C) and (N, C, L)."""
        return self._allowed_ndims[0] - 2 if len(self._allowed_ndims) == 1 else None

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        op = type(self).__name__
        if len(shape) not in self._allowed_ndims:
            raise ShapeError(
                f"{op} expects x of shape {self._layout}; got shape {format_shape(shape)} with "
                f"{len(shape)} axes."
            )
        if shape[1] != self.num_features:
            raise channel_mismatch(op, self.num_features, shape, 1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Normalise with batch statistics (training) or running statistics (eval)."""
        return self._normalise(x, F.batch_norm)

    def forward_relu(self, x: np.ndarray) -> np.ndarray:
        """``relu(self.forward(x))`` in one pass over the data (:func:`~convscope.functional.
        batch_norm_relu`), for :class:`~convscope.nn.Sequential`'s BatchNorm -> ReLU step.

        This layer's state (running statistics, what its backward needs) is exactly that of
        :meth:`forward`, so :meth:`backward` is unchanged; the ReLU that follows takes the
        result with :meth:`ReLU.adopt_output <convscope.nn.ReLU.adopt_output>`.
        """
        return self._normalise(x, F.batch_norm_relu)

    def _normalise(self, x: np.ndarray, op) -> np.ndarray:
        name = type(self).__name__
        x = self._check_input(x)
        self._check_shape(x.shape)
        batch_stats = self.training or not self.track_running_stats
        if batch_stats and x.size // x.shape[1] < 2:
            raise ShapeError(
                f"{name}: training needs more than one value per channel to estimate a "
                f"variance; got x of shape {format_shape(x.shape)}. Use a larger batch or "
                f"call model.eval()."
            )
        update = self.training and self.track_running_stats
        # Running statistics: updated in training, used in eval (when they are tracked).
        running = (self.running_mean, self.running_var) if update or not batch_stats else (None, None)
        momentum = 0.1 if self.momentum is None else self.momentum
        if update and self.momentum is None:  # a cumulative average over the batches so far
            momentum = 1.0 / float(self.num_batches_tracked + 1)
        gamma = self.weight.data if self.affine else None
        beta = self.bias.data if self.affine else None
        y, mean, invstd = op(x, gamma, beta, *running, training=batch_stats, momentum=momentum,
                             eps=self.eps, return_stats=True)
        if update:
            self.num_batches_tracked += 1
        self._save(x=x, mean=mean, invstd=invstd, gamma=gamma, batch_stats=batch_stats)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dLoss/dx (through the batch statistics in training mode); adds weight/bias grads."""
        saved = self._pop_saved()
        x = saved["x"]
        dy = self._check_dy(dy, x.shape, x.dtype)
        dx, dgamma, dbeta = F.batch_norm_backward(
            dy, x, saved["gamma"], training=saved["batch_stats"], eps=self.eps,
            stats=(saved["mean"], saved["invstd"]),
        )
        if self.affine:
            self.weight.accumulate(dgamma, "weight")
            self.bias.accumulate(dbeta, "bias")
        return dx

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(v) for v in input_shape)
        self._check_shape(shape)
        return shape

    def extra_repr(self) -> str:
        parts = [str(self.num_features)]
        if self.eps != 1e-5:
            parts.append(f"eps={self.eps}")
        if self.momentum != 0.1:
            parts.append(f"momentum={self.momentum}")
        if not self.affine:
            parts.append("affine=False")
        if not self.track_running_stats:
            parts.append("track_running_stats=False")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype}")
        return ", ".join(parts)

    def config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats,
                "dtype": self.dtype.name}


@register
class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``(N, C)`` features or ``(N, C, L)`` sequences; see BatchNorm2d.

    Example:
        >>> bn = BatchNorm1d(2, dtype=np.float64)
        >>> y = bn(np.array([[1.0, 10.0], [3.0, 30.0]]))
        >>> np.round(y, 4)
        array([[-1., -1.],
               [ 1.,  1.]])
        >>> bn.running_mean, bn.running_var
        (array([0.2, 2. ]), array([ 1.1, 20.9]))
    """

    _allowed_ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


@register
class BatchNorm2d(_BatchNorm):
    """Batch normalisation of feature maps: each channel standardised over ``(N, H, W)``.

    ``y = weight * (x - mean) / sqrt(var + eps) + bias`` per channel. In training mode the
    mean and (biased) variance come from the batch, and the running statistics move towards
    them: ``running = (1 - momentum) * running + momentum * batch``, with the UNBIASED batch
    variance (``m / (m - 1)`` times the biased one, ``m = N*H*W``), exactly as PyTorch. In
    eval mode the running statistics are used. ``momentum=None`` gives a cumulative average.

    Args:
        num_features: channels ``C``.
        eps: added to the variance before the square root (default 1e-5).
        momentum: weight of the newest batch in the running statistics (default 0.1).
        affine: learn ``weight`` (init 1) and ``bias`` (init 0) per channel (default True).
        track_running_stats: keep running statistics (default True); if False, batch
            statistics are used in eval mode too.
        dtype: float32 (default) or float64.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.

    Raises:
        ShapeError: wrong number of axes or channels; a single value per channel in training.

    Notes:
        backward in training mode differentiates through the batch mean and variance
        (every output of a channel depends on every input of that channel); in eval mode the
        layer is a fixed per-channel affine map.

    Example:
        >>> bn = BatchNorm2d(3)
        >>> bn(np.zeros((2, 3, 4, 4), dtype=np.float32)).shape
        (2, 3, 4, 4)
        >>> sorted(bn.state_dict())
        ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _allowed_ndims = (4,)
    _layout = "(N, C, H, W)"
