"""Pooling over any number of spatial axes: max, average and anti-aliased (blur) pooling.

Each op slides a window over every channel separately (notes, Concept 52: the number of
channels is the same before and after) and reduces it to one number. The window geometry
(kernel ``k``, stride ``s``, padding ``p``, dilation ``d``, ``ceil_mode``) is shared with
convolution and explained once in :mod:`convscope.shapes`.

How it is computed: instead of materialising every window, the ops loop over the kernel
*taps* (the offsets ``j`` inside a window). For one tap, the input entries it reads across
all windows form a single strided slice of the input, so a max pool is a running
``np.maximum`` over ``prod(k)`` slices and an average pool a running sum (``x.reshape(...)
.max(axis=...)`` over tiny axes measured 30-40x slower). With padding, the input is padded
(with -inf or 0) one block of ``N*C`` rows at a time, so temporaries stay small whatever
the batch. The max-pool backward finds each window's argmax the same way and adds ``dy``
there with ``np.add.at``; the average-pool backward adds ``dy / divisor`` back through the
tap slices. Blur pooling is separable: one 1-D filter pass per spatial axis.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Sequence

import numpy as np

from .. import parallel
from ..errors import ConfigError, DTypeError, ShapeError
from ..shapes import (
    PADDING_MODES,
    PoolGeometry,
    as_float_array,
    check_same_dtype,
    format_shape,
    normalize_int,
    normalize_tuple,
    pool_geometry,
)
from . import windows

__all__ = [
    "max_pool",
    "max_pool_backward",
    "avg_pool",
    "avg_pool_backward",
    "blur_pool",
    "blur_pool_backward",
    "binomial_filter",
]

# Output entries per block of rows: keeps the per-tap temporaries (a comparison mask, the
# running max and argmax) small enough to stay in cache while the taps stream over them.
# Measured (nn.MaxPool2d fwd+bwd, 2x2/2 and 3x3/2 pad 1 on (128,32,32,32), (128,64,16,16),
# (64,32,32,32), (64,6,28,28)): 2**17 as fast as 2**16 on one thread and 10-20% faster on
# two (fewer, longer NumPy calls: less contention for the interpreter lock); 2**18 in between.
_BLOCK_ELEMENTS = 1 << 17
# Padded input entries per block of blur pooling (measured: 2**16 .. 2**20 within 30%, the
# whole batch at once 2-3x slower on (64, 32, 32, 32)).
_BLUR_BLOCK_ELEMENTS = 1 << 18


# ----------------------------------------------------------------------------------------
# Geometry helpers
# ----------------------------------------------------------------------------------------
def _pad_pairs(g: PoolGeometry) -> list[tuple[int, int]]:
    """Padding per axis, the ceil_mode overhang of the last window included in ``after``."""
    pairs = []
    for i in range(g.ndim):
        reach = (g.out[i] - 1) * g.s[i] + g.d[i] * (g.k[i] - 1) + 1
        before, after = g.p[i]
        pairs.append((before, max(after, reach - g.n[i] - before)))
    return pairs


def _tap_slices(g: PoolGeometry) -> list[tuple[int, tuple[slice, ...]]]:
    """Every kernel tap in window order: its number and its slice of the padded input."""
    origin = (0,) * g.ndim
    return [
        (t, windows.tap_slices(tap, g.s, g.d, origin, g.out))
        for t, tap in enumerate(windows.kernel_taps(g.k))
    ]


def _first_inside_tap(g: PoolGeometry, op: str) -> np.ndarray:
    """Number of the first tap (in window order) of each window that lands inside the input.

    This is where PyTorch's argmax starts; it is also the check that no window sees only
    padding (possible with dilation and ceil_mode, where PyTorch returns -inf and an index
    outside the input; we refuse instead).
    """
    first = []
    for i in range(g.ndim):
        o = np.arange(g.out[i])[:, None]
        pos = o * g.s[i] + np.arange(g.k[i])[None, :] * g.d[i] - g.p[i][0]
        inside = (pos >= 0) & (pos < g.n[i])
        empty = ~inside.any(axis=1)
        if empty.any():
            bad = int(np.argmax(empty))
            raise ConfigError(
                f"{op}: every window must cover at least one input entry; along spatial axis "
                f"{i} the window of output {bad} reads positions "
                f"{pos[bad].tolist()} of an input of size {g.n[i]} (kernel {g.k[i]}, dilation "
                f"{g.d[i]}, stride {g.s[i]}, padding {g.p[i]}, ceil_mode={g.ceil_mode}): its "
                f"taps jump over the input. Use a smaller dilation or padding, or "
                f"ceil_mode=False."
            )
        first.append(np.argmax(inside, axis=1))
    tap = np.zeros(g.out, dtype=np.int64)
    for i in range(g.ndim):
        shape = [1] * g.ndim
        shape[i] = g.out[i]
        tap = tap * g.k[i] + first[i].reshape(shape)
    return tap


_CACHE: dict = {}


def _cached(kind: str, key, make):
    """``make()``, remembered under ``(kind, key)``: layers pool the same geometry every
    step, and its tables took ~0.1 ms per call (a sixth of a LeNet pooling forward).
    Errors are raised by ``make`` and never remembered."""
    value = _CACHE.get((kind, key))
    if value is None:
        value = make()
        if len(_CACHE) >= 1024:
            _CACHE.clear()
        _CACHE[(kind, key)] = value
    return value


def _max_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode, op) -> PoolGeometry:
    # PyTorch 2.13 allows padding up to half the kernel size, k // 2, for max pooling too
    # (dilation does not enlarge the limit: max_pool2d(k=3, d=2, p=2) is refused).
    # The key is the repr: 2.0 == 2 and True == 1 hash alike but must still be refused.
    return _cached(
        "max", repr((x_shape, kernel_size, stride, padding, dilation, ceil_mode, op)),
        lambda: pool_geometry(
            x_shape, kernel_size, stride, padding, dilation, ceil_mode, op, max_padding="half_kernel"
        ),
    )


def _avg_geometry(x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, op) -> PoolGeometry:
    g = pool_geometry(x_shape, kernel_size, stride, padding, 1, ceil_mode, op, max_padding="half_kernel")
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise ConfigError(f"{op}: count_include_pad must be True or False; got {count_include_pad!r}.")
    if g.ndim == 3 and any(n < k for n, k in zip(g.n, g.k)):
        # PyTorch's avg_pool3d (unlike 1-D and 2-D) refuses inputs smaller than the kernel,
        # padding or not; we refuse the same so a 3-D model stays portable.
        raise ShapeError(
            f"{op}: a 3-D average pool needs an input at least as large as the kernel on "
            f"every spatial axis (PyTorch's avg_pool3d rule, padding not counted); got spatial "
            f"size {format_shape(g.n)} for kernel {format_shape(g.k)}."
        )
    return g


def _check_sizes(g: PoolGeometry, dtype, op: str) -> None:
    """Refuse outputs or padded inputs over the array limit (zero-stride views of huge
    shapes, huge padding) with the arithmetic, before any allocation."""
    windows.check_allocation(g.y_shape, dtype, "output", op)
    windows.check_allocation((g.batch, g.c, *g.padded), dtype, "padded input", op)


def _check_dy(dy: Any, x: np.ndarray, g_shape: tuple[int, ...], op: str) -> np.ndarray:
    dy = as_float_array(dy, "dy", op)
    check_same_dtype(op, dy=dy, x=x)
    if dy.shape != tuple(g_shape):
        raise ShapeError(
            f"{op}: dy must have the shape of the forward output, {format_shape(g_shape)} for x "
            f"of shape {format_shape(x.shape)}; got {format_shape(dy.shape)}."
        )
    return dy


def _rows(x: np.ndarray, g: PoolGeometry) -> np.ndarray:
    """``x`` as ``(N*C, 1, *n)``: pooling treats every channel of every sample alike, so
    blocks of rows can be cut across the batch and channel axes together."""
    return x.reshape((g.batch * g.c, 1) + tuple(g.n))


def _blocks(rows: int, g: PoolGeometry) -> tuple[int, list[slice]]:
    """Consecutive row blocks of about ``_BLOCK_ELEMENTS`` outputs (at least one row): the
    per-tap buffers of one block stay in cache while the taps stream over them."""
    step = max(1, min(rows, _BLOCK_ELEMENTS // max(1, math.prod(g.out))))
    return step, [slice(r, min(rows, r + step)) for r in range(0, rows, step)]


def _non_overlapping(g: PoolGeometry) -> bool:
    """True when no input entry is read by two (window, tap) pairs."""
    return all(s >= d * (k - 1) + 1 for s, d, k in zip(g.s, g.d, g.k))


def _inner(pairs: Sequence[tuple[int, int]], n: Sequence[int]) -> tuple[slice, ...]:
    return (slice(None), slice(None)) + tuple(slice(b, b + size) for (b, _), size in zip(pairs, n))


# ----------------------------------------------------------------------------------------
# Max pooling
# ----------------------------------------------------------------------------------------
class _Argmax:
    """Running max and argmax over the taps of a max pool, block by block.

    Each tap's slice of the (-inf padded) input is first copied into a contiguous buffer:
    elementwise NumPy on strided views is several times slower than a copy followed by
    contiguous operations. The argmax is the tap number (window order); it starts at each
    window's first tap inside the input, as in PyTorch, so a window of -inf entries points
    at its first real entry.
    """

    def __init__(self, x: np.ndarray, g: PoolGeometry, op: str):
        self.g = g
        self.x = _rows(x, g)

        def tables():
            itype = np.min_scalar_type(max(math.prod(g.k) - 1, 0)).type
            first = _first_inside_tap(g, op).astype(itype)
            first.flags.writeable = False
            return _pad_pairs(g), _tap_slices(g), itype, first, _blocks(self.x.shape[0], g)

        self.pairs, self.taps, self.itype, self.first, (self.step, self.blocks) = _cached("argmax", g, tables)
        shape = (self.step, 1) + tuple(g.out)
        self._v = np.empty(shape, dtype=x.dtype)
        self._upd = np.empty(shape, dtype=bool)
        self._tmp = np.empty(shape, dtype=self.itype)

    def block(self, rows: slice, m: np.ndarray, idx: np.ndarray) -> None:
        """Fill ``m`` (max) and ``idx`` (tap number) for the rows ``rows``."""
        xp = windows.pad(self.x[rows], self.pairs, value=-np.inf)
        self._run(xp, m, idx, nan_aware=False)
        if np.isnan(m).any():  # a NaN somewhere: redo this block with PyTorch's NaN rule
            self._run(xp, m, idx, nan_aware=True)

    def _run(self, xp: np.ndarray, m: np.ndarray, idx: np.ndarray, nan_aware: bool) -> None:
        count = m.shape[0]
        v, upd, tmp = self._v[:count], self._upd[:count], self._tmp[:count]
        m.fill(-np.inf)
        idx[...] = self.first
        for t, sl in self.taps:
            np.copyto(v, xp[sl])
            np.greater(v, m, out=upd)  # strict '>': an equal later value keeps the earlier tap
            if nan_aware:  # PyTorch: (v > max) || isnan(v), so the last NaN of a window wins
                upd |= np.isnan(v)
            # "idx = t where upd" as a maximum: idx holds the window's first inside tap or an
            # earlier updating tap, so idx <= t wherever upd (padding taps never update).
            np.multiply(upd, self.itype(t), out=tmp)
            np.maximum(idx, tmp, out=idx)
            np.maximum(m, v, out=m)  # NaN propagates like PyTorch's max


def _index_tables(g: PoolGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Flat index in the input plane of a window's origin (``base``, per output) and of each
    tap relative to it (``offset``, per tap number): index = base + offset[tap]."""
    return _cached("index", g, lambda: _make_index_tables(g))


def _make_index_tables(g: PoolGeometry) -> tuple[np.ndarray, np.ndarray]:
    plane = [math.prod(g.n[i + 1 :]) for i in range(g.ndim)]
    base = np.zeros(g.out, dtype=np.int64)
    offset = np.zeros(g.k, dtype=np.int64)
    for i in range(g.ndim):
        shape = [1] * g.ndim
        shape[i] = -1
        base = base + ((np.arange(g.out[i]) * g.s[i] - g.p[i][0]) * plane[i]).reshape(shape)
        offset = offset + (np.arange(g.k[i]) * g.d[i] * plane[i]).reshape(shape)
    offset = offset.reshape(-1)
    base.flags.writeable = offset.flags.writeable = False  # shared by later calls
    return base, offset


def max_pool(
    x: np.ndarray,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """Max pooling: the largest entry of each window, per channel (notes 9.2.2, Key Eq. 48).

    Args:
        x: ``(N, C, *spatial)`` float32 or float64 array.
        kernel_size: window size, an int (same on every spatial axis) or one int per axis.
            A tuple fixes the number of spatial axes; an int uses ``x.ndim - 2``.
        stride: step between windows, int or tuple; defaults to ``kernel_size``.
        padding: int, one int per axis, ``(before, after)`` pairs, ``"valid"`` or ``"same"``
            (see :mod:`convscope.shapes`). At most ``k // 2`` on each side, as in PyTorch.
            The padding counts as minus infinity, so it is never the maximum.
        dilation: spacing between the taps of a window (1: adjacent), int or tuple.
        ceil_mode: round the output size up instead of down, keeping a last, partial window
            if it starts inside the input or its left padding (PyTorch's rule). Its
            missing entries count as minus infinity.
        return_indices: also return, for every output, the flat index of the chosen entry in
            its input plane (``i_1*n_2*...*n_r + ... + i_r``, as PyTorch's ``return_indices``).

    Returns:
        ``y`` of shape ``(N, C, *out)`` and dtype of ``x``; with ``return_indices`` the pair
        ``(y, indices)`` where ``indices`` is int64 of the same shape.

    Shape:
        Per spatial axis, ``out = floor((n + p_before + p_after - d*(k-1) - 1) / s) + 1``
        (``ceil`` instead of ``floor`` with ``ceil_mode``, then one less if the last window
        would start at or beyond ``n + p_before``).

    Raises:
        ShapeError: ``x`` without batch and channel axes, or a window larger than the padded
            input (the arithmetic is in the message).
        ConfigError: stride/dilation/kernel < 1, padding negative or above ``k // 2``, or a
            dilated window that sees only padding.
        DTypeError: ``x`` not float32/float64.

    Example:
        The notes' 2x2, stride-2 example (9.12):

        >>> x = np.array([[1., 3., -9., -22.], [44., -10., -11., -1.],
        ...               [0., 10., 4., -3.], [11., 9., 321., 99.]])[None, None]
        >>> max_pool(x, 2)[0, 0]
        array([[ 44.,  -1.],
               [ 11., 321.]])

        ``ceil_mode`` keeps the partial last window; padding is minus infinity:

        >>> v = np.array([[[1., 2., 3., 4., 5.]]])
        >>> max_pool(v, 2)[0, 0], max_pool(v, 2, ceil_mode=True)[0, 0]
        (array([2., 4.]), array([2., 4., 5.]))
        >>> max_pool(np.array([[[-1., -2., -3.]]]), 2, padding=1)[0, 0]
        array([-1., -2.])

        Ties go to the first entry of the window (indices are positions in the input):

        >>> max_pool(np.array([[[3., 3., 1., 1.]]]), 2, return_indices=True)[1][0, 0]
        array([0, 2])

    Notes:
        The gradient (see :func:`max_pool_backward`) flows only to the chosen maximum
        (notes 9.4.6, Key Equation 69); of tied entries the first in window order (row-major
        over the kernel) is chosen, as PyTorch does. NaN counts as the maximum (the output
        is NaN and, as in PyTorch, the last NaN of the window is the chosen index). Unlike
        PyTorch, a dilated ``ceil_mode`` window that jumps over the whole input is an error
        (PyTorch returns -inf with an index outside the input).
    """
    op = "max_pool"
    x = as_float_array(x, "x", op)
    g = _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, op)
    _check_sizes(g, x.dtype, op)
    if not isinstance(return_indices, (bool, np.bool_)):
        raise ConfigError(f"{op}: return_indices must be True or False; got {return_indices!r}.")
    if not return_indices:
        _first_inside_tap(g, op)  # validation only
        return _tap_reduce(x, g, -np.inf, np.maximum)
    base, offset = _index_tables(g)
    argmax = _Argmax(x, g, op)
    y = np.empty((g.batch * g.c, 1) + tuple(g.out), dtype=x.dtype)
    indices = np.empty(y.shape, dtype=np.int64)
    idx = np.empty((argmax.step, 1) + tuple(g.out), dtype=argmax.itype)
    for rows in argmax.blocks:
        ib = idx[: rows.stop - rows.start]
        argmax.block(rows, y[rows], ib)
        np.add(base, offset[ib], out=indices[rows])
    return y.reshape(g.y_shape), indices.reshape(g.y_shape)


def _tap_reduce(x: np.ndarray, g: PoolGeometry, pad_value: float, combine) -> np.ndarray:
    """``combine`` (np.maximum or np.add) over the taps of every window, padding = pad_value."""
    xr = _rows(x, g)
    pairs = _pad_pairs(g)
    taps = _tap_slices(g)
    y = np.empty((xr.shape[0], 1) + tuple(g.out), dtype=x.dtype)
    if not any(b or a for b, a in pairs):
        # No padding: one pass per tap over the whole array, straight from the strided
        # views (measured faster than blocks with contiguous copies when nothing is copied).
        np.copyto(y, xr[taps[0][1]])
        for _, sl in taps[1:]:
            combine(y, xr[sl], out=y)
        return y.reshape(g.y_shape)
    step, blocks = _blocks(xr.shape[0], g)
    buf = np.empty((step, 1) + tuple(g.out), dtype=x.dtype)
    for rows in blocks:  # padded copies block by block keep the temporaries small
        xp = windows.pad(xr[rows], pairs, value=pad_value)
        yb, v = y[rows], buf[: rows.stop - rows.start]
        np.copyto(yb, xp[taps[0][1]])
        for _, sl in taps[1:]:  # window order, as PyTorch sums
            np.copyto(v, xp[sl])  # contiguous copy first: strided ufuncs are slow
            combine(yb, v, out=yb)
    return y.reshape(g.y_shape)


def _tap_scatter(x: np.ndarray, g: PoolGeometry, share: np.ndarray) -> np.ndarray:
    """The adjoint of the average pool's tap loop: add ``share`` (``(N*C, 1, *out)``, one
    value per window) onto every tap's slice of the padded input, then drop the padding.
    Where windows do not overlap, each entry is written once: a copy suffices."""
    pairs = _pad_pairs(g)
    padded = tuple(n + b + a for n, (b, a) in zip(g.n, pairs))
    no_pad = not any(b or a for b, a in pairs)
    disjoint = _non_overlapping(g)
    taps = _tap_slices(g)
    dx = np.zeros((g.batch * g.c, 1) + tuple(g.n), dtype=x.dtype)
    for rows in _blocks(g.batch * g.c, g)[1]:
        count = rows.stop - rows.start
        dxp = dx[rows] if no_pad else np.zeros((count, 1) + padded, dtype=x.dtype)
        c = share[rows]
        for _, sl in taps:
            target = dxp[sl]
            if disjoint:
                np.copyto(target, c)
            else:
                np.add(target, c, out=target)
        if not no_pad:
            dx[rows] = dxp[_inner(pairs, g.n)]
    return dx.reshape(x.shape)


def max_pool_backward(
    dy: np.ndarray,
    x: np.ndarray,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> np.ndarray:
    """Gradient of :func:`max_pool` with respect to ``x``.

    Args:
        dy: upstream gradient, shaped like ``max_pool``'s output.
        x: the forward input. The other arguments are the forward's.

    Returns:
        ``dx`` shaped like ``x``: each window's ``dy`` added to its maximum entry (the first
        of tied maxima); entries that are no window's maximum get 0.

    Raises:
        ShapeError: ``dy`` not shaped like the forward output. Also everything
            :func:`max_pool` raises. DTypeError: ``dy`` and ``x`` of different dtypes.

    Example:
        The notes' example (9.12) with ``dy = 1``: each window's derivative is one-hot at its
        maximum (notes 9.35, Key Equation 69).

        >>> x = np.array([[1., 3., -9., -22.], [44., -10., -11., -1.],
        ...               [0., 10., 4., -3.], [11., 9., 321., 99.]])[None, None]
        >>> max_pool_backward(np.ones((1, 1, 2, 2)), x, 2)[0, 0]
        array([[0., 0., 0., 0.],
               [1., 0., 0., 1.],
               [0., 0., 0., 0.],
               [1., 0., 1., 0.]])
    """
    op = "max_pool_backward"
    x = as_float_array(x, "x", op)
    g = _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, op)
    _check_sizes(g, x.dtype, op)
    dy = _check_dy(dy, x, g.y_shape, op)
    # Notes 9.4.6 (Key Equation 69): d maxpool / d a_i is 1 for the (first) maximum of the
    # window, else 0: each window's dy goes to its argmax.
    _, idx = _max_and_argmax(x, g, op, values=False)
    return _argmax_scatter(dy, idx, g, x.shape)


def _max_and_argmax(x: np.ndarray, g: PoolGeometry, op: str, values: bool = True):
    """``(y, idx)`` as ``(N*C, 1, *out)`` arrays: every window's max (None unless
    ``values``) and the tap number (window order) of its first maximum."""
    argmax = _Argmax(x, g, op)
    shape = (g.batch * g.c, 1) + tuple(g.out)
    y = np.empty(shape, dtype=x.dtype) if values else None
    idx = np.empty(shape, dtype=argmax.itype)

    def part(blocks, first):  # blocks of rows; each thread has its own buffers
        worker = argmax if first else _Argmax(x, g, op)
        m = None if values else np.empty((worker.step, 1) + tuple(g.out), dtype=x.dtype)
        for rows in blocks:
            count = rows.stop - rows.start
            worker.block(rows, y[rows] if values else m[:count], idx[rows])

    runs = parallel.split_evenly(argmax.blocks, parallel.threads_for(x))
    parallel.run_parallel([partial(part, run, i == 0) for i, run in enumerate(runs)])
    return y, idx


def _argmax_scatter(dy: np.ndarray, idx: np.ndarray, g: PoolGeometry, x_shape) -> np.ndarray:
    """``dx``: each window's ``dy`` added at the input entry its tap ``idx`` points to
    (``np.add.at`` at flat indices sums the shares of overlapping windows).

    Measured on (64, 32, 32, 32), 2x2 / stride 2: 3.4 ms, against 11 ms for copying ``dy``
    where ``idx == tap`` into each tap's (strided) slice of ``dx``.
    """
    dyr = dy.reshape((g.batch * g.c, 1) + tuple(g.out))
    rows = dyr.shape[0]
    base, offset = _index_tables(g)
    plane = math.prod(g.n)
    dx = np.zeros(rows * plane, dtype=dy.dtype)
    step, blocks = _blocks(rows, g)

    def part(run):  # blocks of rows write disjoint parts of dx: safe on separate threads
        flat = np.empty((step, 1) + tuple(g.out), dtype=np.int64)
        for rb in run:
            count = rb.stop - rb.start
            fb = flat[:count]
            np.take(offset, idx[rb], out=fb)
            fb += base
            fb += (np.arange(rb.start, rb.stop, dtype=np.int64) * plane).reshape((count,) + (1,) * (g.ndim + 1))
            np.add.at(dx, fb.reshape(-1), dyr[rb].reshape(-1))

    runs = parallel.split_evenly(blocks, parallel.threads_for(dx))
    parallel.run_parallel([partial(part, run) for run in runs])
    return dx.reshape(x_shape)


class _MaxPoolContext:
    """What :func:`_max_pool_backward_ctx` needs: the geometry, input shape and dtype, and
    the forward's argmax (one small integer per output)."""

    __slots__ = ("g", "idx", "x_shape", "dtype")

    def __init__(self, g, idx, x_shape, dtype):
        self.g, self.idx, self.x_shape, self.dtype = g, idx, x_shape, dtype


def _max_pool_forward(
    x: np.ndarray,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> tuple[np.ndarray, _MaxPoolContext]:
    """:func:`max_pool` that also keeps each window's argmax for
    :func:`_max_pool_backward_ctx` (for ``nn.MaxPool*`` in training: the backward then
    does not search the windows again)."""
    op = "max_pool"
    x = as_float_array(x, "x", op)
    g = _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, op)
    _check_sizes(g, x.dtype, op)
    y, idx = _max_and_argmax(x, g, op)
    return y.reshape(g.y_shape), _MaxPoolContext(g, idx, x.shape, x.dtype)


def _max_pool_backward_ctx(dy: np.ndarray, ctx: _MaxPoolContext) -> np.ndarray:
    """:func:`max_pool_backward` from the context of :func:`_max_pool_forward`."""
    op = "max_pool_backward"
    dy = as_float_array(dy, "dy", op)
    if dy.dtype != ctx.dtype:
        raise DTypeError(f"{op}: dy must have the dtype of x ({ctx.dtype}); got {dy.dtype}.")
    if dy.shape != tuple(ctx.g.y_shape):
        raise ShapeError(
            f"{op}: dy must have the shape of the forward output, {format_shape(ctx.g.y_shape)}; "
            f"got {format_shape(dy.shape)}."
        )
    return _argmax_scatter(dy, ctx.idx, ctx.g, ctx.x_shape)


# ----------------------------------------------------------------------------------------
# Average pooling
# ----------------------------------------------------------------------------------------
def _avg_divisor(g: PoolGeometry, count_include_pad: bool, dtype) -> np.ndarray:
    """PyTorch's divisor per output: the window clipped to the padded input (padding counts,
    the ceil_mode overhang beyond it does not), or to the input alone without
    ``count_include_pad``. Separable, so built as an outer product over the axes."""
    div = np.ones(g.out, dtype=np.int64)
    for i in range(g.ndim):
        start = np.arange(g.out[i]) * g.s[i] - g.p[i][0]
        end = np.minimum(start + g.k[i], g.n[i] + g.p[i][1])
        if count_include_pad:
            size = end - start
        else:
            size = np.minimum(end, g.n[i]) - np.maximum(start, 0)
        shape = [1] * g.ndim
        shape[i] = -1
        div = div * size.reshape(shape)
    return div.astype(dtype)


def avg_pool(
    x: np.ndarray,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Average pooling: the mean of each window, per channel.

    Args:
        x: ``(N, C, *spatial)`` float32 or float64 array.
        kernel_size: window size, int or one int per spatial axis (a tuple fixes the number
            of spatial axes; an int uses ``x.ndim - 2``).
        stride: step between windows, int or tuple; defaults to ``kernel_size``.
        padding: int, one int per axis, ``(before, after)`` pairs, ``"valid"`` or ``"same"``;
            at most ``k // 2`` per side (PyTorch's rule). The padding is zeros.
        ceil_mode: round the output size up (see :func:`max_pool`). The part of a last
            window that hangs beyond the padded input is ignored, also by the divisor.
        count_include_pad: divide by the number of window entries inside the padded input
            (True, PyTorch's default) or only by those inside the input itself (False).

    Returns:
        ``y`` of shape ``(N, C, *out)`` (output size as in :func:`max_pool`, dilation 1),
        dtype of ``x``.

    Raises:
        ShapeError, ConfigError, DTypeError: as :func:`max_pool`. A 3-D pool also needs an
        input at least as large as the kernel (PyTorch's avg_pool3d refuses smaller ones).

    Example:
        >>> v = np.array([[[1., 2., 3., 4.]]])
        >>> avg_pool(v, 2)[0, 0]
        array([1.5, 3.5])
        >>> avg_pool(v, 2, padding=1)[0, 0]          # zeros: (0+1)/2, (2+3)/2, (4+0)/2
        array([0.5, 2.5, 2. ])
        >>> avg_pool(v, 2, padding=1, count_include_pad=False)[0, 0]
        array([1. , 2.5, 4. ])

        With ``ceil_mode`` the last window [4, pad, overhang] counts the padding but not the
        overhang: (0+1+2)/3, (2+3+4)/3, (4+0)/2.

        >>> avg_pool(v, 3, stride=2, padding=1, ceil_mode=True)[0, 0]
        array([1., 3., 2.])
    """
    op = "avg_pool"
    x = as_float_array(x, "x", op)
    g = _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, op)
    _check_sizes(g, x.dtype, op)
    y = _tap_reduce(x, g, 0.0, np.add)
    y /= _avg_divisor(g, bool(count_include_pad), x.dtype)
    return y


def avg_pool_backward(
    dy: np.ndarray,
    x: np.ndarray,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Gradient of :func:`avg_pool` with respect to ``x``.

    Each window's ``dy`` divided by its divisor is added to every input entry of the window
    (the padding's share is dropped). Arguments as :func:`avg_pool`.

    Example:
        >>> avg_pool_backward(np.array([[[2., 4.]]]), np.zeros((1, 1, 4)), 2)[0, 0]
        array([1., 1., 2., 2.])
    """
    op = "avg_pool_backward"
    x = as_float_array(x, "x", op)
    g = _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, op)
    _check_sizes(g, x.dtype, op)
    dy = _check_dy(dy, x, g.y_shape, op)
    # Each window's mean spreads its gradient evenly: dy / divisor to every entry.
    share = dy.reshape((g.batch * g.c, 1) + tuple(g.out)) / _avg_divisor(
        g, bool(count_include_pad), x.dtype
    )
    return _tap_scatter(x, g, share)


# ----------------------------------------------------------------------------------------
# Anti-aliased (blur) pooling
# ----------------------------------------------------------------------------------------
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
    if max(x.shape[2:]) <= _BLUR_MATRIX_MAX and np.isfinite(x).all():
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

    return _cached("blur", (n, f, s, padding_mode, np.dtype(dtype).str), make)


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
    dy = _check_dy(dy, x, x.shape[:2] + out, op)
    if max(x.shape[2:]) <= _BLUR_MATRIX_MAX and np.isfinite(dy).all():  # the transposed matrices
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
