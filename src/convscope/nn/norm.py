"""Batch normalisation: standardise each channel over the batch, then scale and shift.

The math is written here as a forward/backward pair of private functions (the functional
core has no batch-norm op); the module keeps the running statistics.
"""

from __future__ import annotations

import numbers
from functools import partial
from typing import Any

import numpy as np

from .. import parallel
from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..functional.windows import check_allocation
from ..shapes import format_shape, normalize_int
from . import init
from .conv import _check_bool, channel_mismatch
from .module import Module
from .parameter import Parameter
from .spec import register

__all__ = ["BatchNorm1d", "BatchNorm2d"]


def _channel_sum(a: np.ndarray) -> np.ndarray:
    """Per-channel sum over every axis but axis 1 (pairwise along the contiguous run)."""
    flat = a.reshape(a.shape[0], a.shape[1], -1)
    return flat.sum(axis=2).sum(axis=0)


# Per-sample chunks of about this many bytes keep the temporaries of the fused passes below
# in the caches (measured, fwd+bwd CPU time, 128x32x32x32: 22-28 ms with 0.5-4 MiB chunks,
# 32 ms with 128 KiB (more, smaller NumPy calls), 30 ms as whole-batch passes).
_CHUNK_BYTES = 1 << 20


def _chunks(x: np.ndarray):
    """Slices of the batch axis, each about ``_CHUNK_BYTES`` of ``x``."""
    per_sample = max(1, x[:1].nbytes)
    step = max(1, _CHUNK_BYTES // per_sample)
    for start in range(0, x.shape[0], step):
        yield slice(start, start + step)


def _over_chunks(fn, x: np.ndarray) -> list:
    """``fn(chunks)`` for runs of :func:`_chunks` ``(x)``: one run per thread when
    :func:`convscope.set_num_threads` is above 1 and ``x`` is worth splitting, else one run."""
    chunks = list(_chunks(x))
    runs = parallel.split_evenly(chunks, parallel.threads_for(x))
    return parallel.run_parallel([partial(fn, run) for run in runs])


def _per_channel(v, x: np.ndarray) -> np.ndarray:
    """A per-channel vector shaped to broadcast against ``x`` ``(N, C, ...)``."""
    return np.asarray(v, dtype=x.dtype).reshape((1, -1) + (1,) * (x.ndim - 2))


def _batch_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance, the variance from the centred values
    (two passes, the second through cache-sized chunks: no full-size temporary)."""
    m = x.size // x.shape[1]
    mean = sum(_over_chunks(lambda run: sum(_channel_sum(x[ch]) for ch in run), x)) / m
    mean_b = _per_channel(mean, x)

    def squares(run):
        sq = np.zeros(x.shape[1], dtype=x.dtype)
        for ch in run:
            centred = np.subtract(x[ch], mean_b)
            centred *= centred
            sq += _channel_sum(centred)
        return sq

    return mean, sum(_over_chunks(squares, x)) / m


def _batch_norm(x, mean, var, gamma, beta, eps, relu=False):
    """``y = gamma * (x - mean) / sqrt(var + eps) + beta`` with per-channel statistics,
    as ``y = x * a + c`` (``a = gamma * invstd``, ``c = beta - mean * a``: the form PyTorch's
    CPU kernel uses), one pass per cache-sized chunk. ``relu``: ``max(y, 0)`` applied to each
    chunk while it is in cache (for a following ReLU layer). Returns ``(y, invstd)``."""
    invstd = (1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + eps))
    scale = invstd if gamma is None else invstd * gamma
    shift = -np.asarray(mean, dtype=np.float64) * scale
    if beta is not None:
        shift = shift + beta
    a, c = _per_channel(scale, x), _per_channel(shift, x)
    y = np.empty_like(x)

    zero = x.dtype.type(0)

    def affine(run):
        for ch in run:
            np.multiply(x[ch], a, out=y[ch])
            y[ch] += c
            if relu:
                np.maximum(y[ch], zero, out=y[ch])

    _over_chunks(affine, x)
    return y, invstd.astype(x.dtype)


def _batch_norm_backward(dy, x, mean, invstd, gamma, batch_stats):
    """(dx, dgamma, dbeta). With batch statistics the mean and variance depend on x too.

    Chain rule through xhat = (x - mean(x)) / sqrt(var(x) + eps) over the m entries of a
    channel: dx = invstd / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)), with
    dxhat = gamma * dy, so sum(dxhat) = gamma * dbeta and sum(dxhat * xhat) = gamma * dgamma:
    dx = gamma * invstd * (dy - dbeta / m - xhat * dgamma / m).

    ``xhat`` is not stored: each cache-sized chunk recomputes ``x - mean`` where it is needed
    (fewer full-size passes than keeping it).
    """
    mean_b = _per_channel(mean, x)

    def sums(run):  # sum(dy) and sum(dy * (x - mean)) per channel
        total = np.zeros(x.shape[1], dtype=x.dtype)
        dot = np.zeros(x.shape[1], dtype=x.dtype)
        for ch in run:
            total += _channel_sum(dy[ch])
            t = np.subtract(x[ch], mean_b)
            t *= dy[ch]
            dot += _channel_sum(t)
        return total, dot

    parts = _over_chunks(sums, x)
    dbeta = sum(p[0] for p in parts)
    dgamma = sum(p[1] for p in parts) * invstd
    scale = invstd if gamma is None else invstd * gamma
    scale_b = _per_channel(scale, x)
    if not batch_stats:  # running statistics are constants: a per-channel affine map
        return dy * scale_b, dgamma, dbeta
    m = x.size // x.shape[1]
    k = _per_channel(dgamma * invstd / m, x)  # xhat * dgamma / m = (x - mean) * k
    off = _per_channel(dbeta / m, x)
    dx = np.empty_like(x)

    def grad(run):
        for ch in run:
            t = np.subtract(x[ch], mean_b)
            t *= k
            np.subtract(dy[ch], t, out=t)
            t -= off
            np.multiply(t, scale_b, out=dx[ch])

    _over_chunks(grad, x)
    return dx, dgamma, dbeta


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
        return self._forward(x, relu=False)

    def _forward_then_relu(self, x: np.ndarray) -> np.ndarray:
        """``relu(forward(x))`` in one pass (for :class:`Sequential` when a ReLU follows:
        the ReLU adopts the result, see ``ReLU._adopt_output``); the saved state and the
        backward are those of :meth:`forward`."""
        return self._forward(x, relu=True)

    def _forward(self, x: np.ndarray, relu: bool) -> np.ndarray:
        op = type(self).__name__
        x = self._check_input(x)
        self._check_shape(x.shape)
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            m = x.size // x.shape[1]
            if m < 2:
                raise ShapeError(
                    f"{op}: training needs more than one value per channel to estimate a "
                    f"variance; got x of shape {format_shape(x.shape)}. Use a larger batch or "
                    f"call model.eval()."
                )
            # biased variance: the normalisation uses the batch's own spread
            mean, var = _batch_stats(x)
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
                # the running variance is the unbiased estimate, as PyTorch
                self.running_mean *= 1.0 - factor
                self.running_mean += factor * mean
                self.running_var *= 1.0 - factor
                self.running_var += factor * var * (m / (m - 1))
        else:
            mean, var = self.running_mean, self.running_var
        gamma = self.weight.data if self.affine else None
        beta = self.bias.data if self.affine else None
        y, invstd = _batch_norm(x, mean, var, gamma, beta, self.eps, relu)
        self._save(x=x, mean=np.asarray(mean, dtype=x.dtype), invstd=invstd, gamma=gamma,
                   batch_stats=batch_stats)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dLoss/dx (through the batch statistics in training mode); adds weight/bias grads."""
        saved = self._pop_saved()
        x = saved["x"]
        dy = self._check_dy(dy, x.shape, x.dtype)
        dx, dgamma, dbeta = _batch_norm_backward(
            dy, x, saved["mean"], saved["invstd"], saved["gamma"], saved["batch_stats"]
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
