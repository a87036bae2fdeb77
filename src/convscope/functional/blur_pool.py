"""Anti-aliased downsampling (blur pooling): low-pass filter each channel, then subsample.

The fix for the shift sensitivity of strided pooling that notes 9.2.6 point at (Zhang 2019,
"Making Convolutional Networks Shift-Invariant Again", arXiv 1904.11486): a fixed binomial
filter (a row of Pascal's triangle per axis) applied to every channel separately, then every
s-th entry kept. The filter is separable, so the op is one 1-D filter pass per spatial axis;
its backward is the adjoint of each pass, in reverse order. Small planes run each pass as a
matrix product (padding, filter and subsampling of one axis form one matrix), larger ones as
one strided slice pass per filter tap.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .. import settings
from ..errors import ConfigError, ShapeError
from ..shapes import PADDING_MODES, as_float_array, format_shape, normalize_int, normalize_tuple
from . import windows

__all__ = ["blur_pool", "blur_pool_backward", "binomial_filter"]

# Padded input entries per block of the tap passes (measured: 2**16 .. 2**20 within 30%, the
# whole batch at once 2-3x slower on (64, 32, 32, 32)).
_BLUR_BLOCK_ELEMENTS = 1 << 18

_CACHE = settings.cache("blur_pool", 1024)


def binomial_filter(filter_size: int, ndim: int) -> np.ndarray:
    """The binomial low-pass filter of blur pooling: a row of Pascal's triangle per axis.

    The 1-D filter of size ``f`` is row ``f - 1`` of Pascal's triangle, ``C(f-1, i)``; the
    ``ndim``-D filter is the outer product of ``ndim`` copies, normalised to sum 1.

    Args:
        filter_size: 1 to 7.
        ndim: number of spatial axes (>= 1).

    Returns:
        float64 array of shape ``(filter_size,) * ndim``.

    Example:
        >>> binomial_filter(3, 1) * 4
        array([1., 2., 1.])
        >>> binomial_filter(4, 1) * 8
        array([1., 3., 3., 1.])
        >>> binomial_filter(3, 2) * 16
        array([[1., 2., 1.],
               [2., 4., 2.],
               [1., 2., 1.]])
    """
    op = "binomial_filter"
    f = _check_filter_size(filter_size, op)
    ndim = normalize_int(ndim, "ndim", op, minimum=1)
    if ndim > _MAX_SPATIAL_AXES:
        raise ConfigError(
            f"{op}: ndim must be between 1 and {_MAX_SPATIAL_AXES} (a NumPy array has at most "
            f"64 axes, two of them batch and channels); got {ndim}."
        )
    windows.check_allocation((f,) * ndim, np.float64, f"{ndim}-D filter", op)
    row = _binomial_row(f)
    w = row
    for _ in range(ndim - 1):
        w = np.multiply.outer(w, row)
    return w


_MAX_SPATIAL_AXES = 62


def _binomial_row(f: int) -> np.ndarray:
    row = np.array([math.comb(f - 1, i) for i in range(f)], dtype=np.float64)
    return row / row.sum()


def _check_filter_size(filter_size: Any, op: str) -> int:
    f = normalize_int(filter_size, "filter_size", op, minimum=1)
    if f > 7:
        raise ConfigError(
            f"{op}: filter_size must be between 1 and 7 (rows of Pascal's triangle used as "
            f"low-pass filters); got {f}."
        )
    return f


def _blur_geometry(x: np.ndarray, filter_size, stride, padding_mode, op):
    if x.ndim < 3:
        raise ShapeError(
            f"{op}: x must have at least 3 axes (N, C, *spatial); got shape "
            f"{format_shape(x.shape)} with {x.ndim} axes."
        )
    ndim = x.ndim - 2
    if any(v < 1 for v in x.shape[1:]):
        raise ShapeError(
            f"{op}: x must have at least one entry on every axis after the batch axis; got "
            f"shape {format_shape(x.shape)}."
        )
    f = _check_filter_size(filter_size, op)
    s = normalize_tuple(stride, ndim, "stride", op)
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ConfigError(
            f"{op}: padding_mode must be one of {', '.join(PADDING_MODES)}; got {padding_mode!r}."
        )
    before, after = (f - 1) // 2, f - 1 - (f - 1) // 2
    n = x.shape[2:]
    for axis, size in enumerate(n):
        if padding_mode == "reflect" and after >= size:
            raise ShapeError(
                f"{op}: reflect padding of ({before}, {after}) for filter_size {f} needs a "
                f"spatial size of at least {after + 1}; got x of shape {format_shape(x.shape)} "
                f"(size {size} along spatial axis {axis}). Reflection cannot mirror more "
                f"entries than the input has: use padding_mode='replicate' or 'zeros', a "
                f"smaller filter_size, or a larger input."
            )
        if padding_mode == "circular" and after > size:
            raise ShapeError(
                f"{op}: circular padding of ({before}, {after}) for filter_size {f} needs a "
                f"spatial size of at least {after}; got x of shape {format_shape(x.shape)} "
                f"(size {size} along spatial axis {axis}). Use padding_mode='replicate' or "
                f"'zeros', or a smaller filter_size."
            )
    out = tuple((size - 1) // si + 1 for size, si in zip(n, s))
    windows.check_allocation(x.shape[:2] + out, x.dtype, "output", op)
    windows.check_allocation(x.shape[:2] + tuple(v + f - 1 for v in n), x.dtype, "padded input", op)
    # A stride beyond the padded size keeps one window per axis, exactly as the padded size
    # itself does; clamping it keeps the residue split (one row per residue mod s) small.
    s = tuple(min(si, size + f - 1) for size, si in zip(n, s))
    return f, s, ((before, after),) * ndim, out


def _axis_index(ndim_total: int, axis: int, sl: slice) -> tuple[slice, ...]:
    index = [slice(None)] * ndim_total
    index[axis] = sl
    return tuple(index)


def blur_pool(
    x: np.ndarray, filter_size: int = 4, stride: Any = 2, padding_mode: str = "reflect"
) -> np.ndarray:
    """Anti-aliased downsampling: low-pass filter each channel, then keep every s-th entry.

    The fix for the shift sensitivity of strided pooling cited in notes 9.2.6 (Zhang 2019,
    "Making Convolutional Networks Shift-Invariant Again", arXiv 1904.11486), written from
    its description: a fixed binomial filter (:func:`binomial_filter`) is applied to every
    channel separately, with ``floor((f-1)/2)`` entries of padding before and
    ``ceil((f-1)/2)`` after on each spatial axis, and the result is subsampled by the
    stride. Place it after a stride-1 max pool (or ReLU) in place of a strided one.

    Args:
        x: ``(N, C, *spatial)`` float32 or float64 array; every axis after the first two is
            spatial.
        filter_size: 1 to 7 (1: plain subsampling, 2: box, 3: [1 2 1]/4, 4: [1 3 3 1]/8 ...).
        stride: subsampling step, int or one int per spatial axis.
        padding_mode: "reflect" (default), "replicate", "zeros" or "circular".

    Returns:
        ``y`` of shape ``(N, C, *out)`` with ``out = ceil(n / s)`` per axis, dtype of ``x``.

    Raises:
        ShapeError: ``x`` with fewer than 3 axes, or too small for reflect (circular)
            padding: each spatial size must exceed (be at least) ``ceil((f-1)/2)``.
        ConfigError: filter_size outside 1..7, stride < 1, unknown padding_mode.

    Example:
        A one-entry spike, filter [1 2 1]/4, stride 2: the spike is spread over two outputs
        instead of being kept or dropped depending on its position.

        >>> x = np.array([[[0., 0., 0., 4., 0., 0., 0., 0.]]])
        >>> blur_pool(x, filter_size=3)[0, 0]
        array([0., 1., 1., 0.])

    Notes:
        Computed separably, one spatial axis at a time: per axis, the sum over the filter's
        taps of weight times a strided slice of the padded input, so a ``f**r`` filter
        costs ``f*r`` slice passes.
    """
    op = "blur_pool"
    x = as_float_array(x, "x", op)
    f, s, pairs, out = _blur_geometry(x, filter_size, stride, padding_mode, op)
    # Small planes: one matrix product per axis. Its zeros would turn a NaN or Inf into NaN
    # in every output of the row (0 * NaN = NaN), so non-finite inputs take the tap loop,
    # where a NaN reaches exactly the outputs whose windows hold it.
    if _use_matrices(x):
        mats = [_blur_matrix(n, f, si, padding_mode, x.dtype) for n, si in zip(x.shape[2:], s)]
        return _separable(x, mats).reshape(x.shape[:2] + out)
    w = _binomial_row(f).astype(x.dtype)  # dyadic weights: exact in float32 too
    ndim = x.ndim - 2
    xr = x.reshape((-1, 1) + x.shape[2:])
    y = np.empty((xr.shape[0], 1) + out, dtype=x.dtype)
    for rows in _blur_blocks(xr.shape[0], x.shape[2:], f):
        a = windows.pad(xr[rows], pairs, padding_mode)
        for axis in range(ndim):  # separable: one 1-D filter pass per axis
            taps = _blur_axis_taps(a, axis, f, s[axis], out[axis])
            acc = np.multiply(taps(0), w[0])
            tmp = np.empty_like(acc)
            for j in range(1, f):
                np.multiply(taps(j), w[j], out=tmp)
                acc += tmp
            a = acc
        y[rows] = a
    return y.reshape(x.shape[:2] + out)


# Planes up to this size per axis are blurred by matrix products: the padding, the filter
# and the subsampling of one axis form one (n, out) matrix (mostly zeros, but BLAS runs it
# far faster than NumPy runs the filter's taps: (64, 32, 32, 32), f=4: 3.3 ms against
# 10.9 ms forward). Its cost grows with n per output, so larger planes use the tap passes.
_BLUR_MATRIX_MAX = 64


def _use_matrices(x: np.ndarray, values: np.ndarray | None = None) -> bool:
    """The matrix products for planes up to ``_BLUR_MATRIX_MAX`` per axis (or as
    :func:`convscope.settings.force_path` says), and only for finite ``values`` (default
    ``x``): a matrix's zeros would turn a NaN or Inf into NaN in every output of its row."""
    wanted = settings.forced("blur_matrix")
    if wanted is None:
        wanted = max(x.shape[2:]) <= _BLUR_MATRIX_MAX
    return bool(wanted) and bool(np.isfinite(x if values is None else values).all())


def _blur_matrix(n: int, f: int, s: int, padding_mode: str, dtype) -> np.ndarray:
    """``M`` of shape ``(n, out)`` with ``x @ M`` = pad, filter (binomial, size ``f``) and
    subsample by ``s`` along one axis of length ``n``; its transpose is the adjoint.

    >>> _blur_matrix(4, 3, 2, "zeros", np.float64) * 4   # [1 2 1]/4, padding (1, 1)
    array([[2., 0.],
           [1., 1.],
           [0., 2.],
           [0., 1.]])
    """

    def make():
        before, after = (f - 1) // 2, f - 1 - (f - 1) // 2
        out = (n - 1) // s + 1
        # Padding is linear: padding the identity gives x_padded = x @ P.
        padding = windows.pad(np.eye(n)[None, None], [(0, 0), (before, after)], padding_mode)[0, 0]
        filt = np.zeros((n + f - 1, out))
        row = _binomial_row(f)
        for q in range(out):
            filt[q * s : q * s + f, q] = row
        m = (padding @ filt).astype(dtype)  # sums of dyadic weights: exact in float32
        m.flags.writeable = False
        return m

    key = (n, f, s, padding_mode, np.dtype(dtype).str)
    m = _CACHE.get(key)
    return m if m is not None else _CACHE.put(key, make())


def _separable(x: np.ndarray, mats: Sequence[np.ndarray]) -> np.ndarray:
    """Contract spatial axis ``k`` of ``x`` ``(N, C, *n)`` with ``mats[k]`` ``(n_k, out_k)``,
    for every axis (last first): ``(N*C, *out)``."""
    a = x.reshape((-1,) + x.shape[2:])
    rows = a.shape[0]
    sizes = list(x.shape[2:])
    for k in reversed(range(len(mats))):
        m = mats[k]
        before = rows * math.prod(sizes[:k])
        after = math.prod(sizes[k + 1 :])
        if after == 1:
            a = a.reshape(-1, sizes[k]) @ m
        else:  # (before, n_k, after) -> (before, out_k, after), one small product each
            a = np.matmul(m.T, a.reshape(before, sizes[k], after))
        sizes[k] = m.shape[1]
    return a.reshape((rows,) + tuple(sizes))


def _blur_blocks(rows: int, n: Sequence[int], f: int) -> list[slice]:
    """Row blocks of about ``_BLUR_BLOCK_ELEMENTS`` padded entries (at least one row)."""
    per_row = math.prod(size + f - 1 for size in n)
    step = max(1, _BLUR_BLOCK_ELEMENTS // per_row)
    return [slice(r, min(rows, r + step)) for r in range(0, rows, step)]


def _blur_axis_taps(a: np.ndarray, axis: int, f: int, s: int, out: int):
    """``taps(j)``: the entries tap ``j`` of the filter reads along ``axis`` for every output,
    ``a[..., j : j + (out-1)*s + 1 : s, ...]``. Along the last axis with stride > 1 the
    array is first split by residue mod s (one pass), so each tap is a contiguous slice:
    elementwise NumPy on stride-s rows is several times slower."""
    ax = axis + 2
    if ax == a.ndim - 1 and s > 1:
        split = _deinterleave(a, s)
        return lambda j: split[..., j % s, j // s : j // s + out]
    return lambda j: a[_axis_index(a.ndim, ax, slice(j, j + (out - 1) * s + 1, s))]


def _deinterleave(a: np.ndarray, s: int) -> np.ndarray:
    """``b[..., r, q] = a[..., q*s + r]`` (entries past the end of ``a`` left unset)."""
    length = a.shape[-1]
    b = np.empty(a.shape[:-1] + (s, -(-length // s)), dtype=a.dtype)
    for r in range(min(s, length)):
        part = a[..., r::s]
        b[..., r, : part.shape[-1]] = part
    return b


def _interleave(b: np.ndarray, s: int, length: int) -> np.ndarray:
    """The inverse of :func:`_deinterleave`: ``a[..., q*s + r] = b[..., r, q]``."""
    a = np.empty(b.shape[:-2] + (length,), dtype=b.dtype)
    for r in range(min(s, length)):
        part = a[..., r::s]
        part[...] = b[..., r, : part.shape[-1]]
    return a


def blur_pool_backward(
    dy: np.ndarray,
    x: np.ndarray,
    filter_size: int = 4,
    stride: Any = 2,
    padding_mode: str = "reflect",
) -> np.ndarray:
    """Gradient of :func:`blur_pool` with respect to ``x`` (its adjoint).

    Per axis, in reverse order, every filter tap adds weight times ``dy`` back onto its
    strided slice; then the padding's gradient is folded onto the input entries it copied
    (:func:`convscope.functional.windows.pad_backward`). Arguments as :func:`blur_pool`.

    Example:
        >>> dx = blur_pool_backward(np.array([[[4., 0.]]]), np.zeros((1, 1, 4)), 3, 2, "zeros")
        >>> dx[0, 0]                                  # [1 2 1]/4 around position 0, times 4
        array([2., 1., 0., 0.])
    """
    op = "blur_pool_backward"
    x = as_float_array(x, "x", op)
    f, s, pairs, out = _blur_geometry(x, filter_size, stride, padding_mode, op)
    dy = windows.check_dy(dy, x, x.shape[:2] + out, op)
    if _use_matrices(x, dy):  # the transposed matrices
        mats = [_blur_matrix(n, f, si, padding_mode, x.dtype).T for n, si in zip(x.shape[2:], s)]
        return _separable(dy, mats).reshape(x.shape)
    w = _binomial_row(f).astype(x.dtype)
    ndim = x.ndim - 2
    padded = tuple(n + f - 1 for n in x.shape[2:])
    dyr = dy.reshape((-1, 1) + out)
    dx = np.empty((dyr.shape[0], 1) + x.shape[2:], dtype=x.dtype)
    for rows in _blur_blocks(dyr.shape[0], x.shape[2:], f):
        grad = dyr[rows]
        for axis in reversed(range(ndim)):  # adjoint: the passes in reverse order
            ax = axis + 2
            size, step = padded[axis], s[axis]
            last = ax == grad.ndim - 1 and step > 1
            if last:  # accumulate per residue mod s (contiguous), interleave once at the end
                spread = np.zeros(grad.shape[:-1] + (step, -(-size // step)), dtype=x.dtype)
            else:
                spread = np.zeros(grad.shape[:ax] + (size,) + grad.shape[ax + 1 :], dtype=x.dtype)
            tmp = np.empty_like(grad)
            for j in range(f):
                if last:
                    target = spread[..., j % step, j // step : j // step + out[axis]]
                else:
                    target = spread[_axis_index(spread.ndim, ax, slice(j, j + (out[axis] - 1) * step + 1, step))]
                np.multiply(grad, w[j], out=tmp)
                target += tmp
            grad = _interleave(spread, step, size) if last else spread
        dx[rows] = windows.pad_backward(grad, pairs, padding_mode)
    return dx.reshape(x.shape)

