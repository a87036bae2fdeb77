"""Max and average pooling over any number of spatial axes, with their backward.

Each op slides a window over every channel separately (notes, Concept 52: the number of
channels is the same before and after) and reduces it to one number: its largest entry
(max pooling, notes 9.2.2) or its mean. The window geometry (kernel ``k``, stride ``s``,
padding ``p``, dilation ``d``, ``ceil_mode``) is shared with convolution and explained once
in :mod:`convscope.shapes`. The derivatives: max pooling's is one-hot at each window's
maximum (notes 9.4.6, Key Equation 69), so the backward routes each window's ``dy`` to the
entry that was chosen; an average spreads ``dy / divisor`` evenly over its window.
(Anti-aliased blur pooling is :mod:`convscope.functional.blur_pool`.)

How it is computed: instead of materialising every window, the ops loop over the kernel
*taps* (the offsets ``j`` inside a window). For one tap, the input entries it reads across
all windows form a single strided slice of the input, so a max pool is a running
``np.maximum`` over ``prod(k)`` slices and an average pool a running sum (``x.reshape(...)
.max(axis=...)`` over tiny axes measured 30-40x slower). With padding, the input is padded
(with -inf or 0) one block of ``N*C`` rows at a time, so temporaries stay small whatever
the batch. The max-pool backward finds each window's argmax the same way (or takes the one
:func:`max_pool_with_argmax` kept) and adds ``dy`` there with ``np.add.at``; the
average-pool backward adds ``dy / divisor`` back through the tap slices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from .. import parallel, settings
from ..errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError
from ..shapes import PoolGeometry, as_float_array, avg_pool_geometry, format_shape, pool_geometry
from . import windows
from .blur_pool import binomial_filter  # noqa: F401  (convscope.explain imports it from here)

__all__ = [
    "max_pool",
    "max_pool_backward",
    "max_pool_with_argmax",
    "max_pool_with_argmax_backward",
    "avg_pool",
    "avg_pool_backward",
]

# Output entries per block of rows: keeps the per-tap temporaries (a comparison mask, the
# running max and argmax) small enough to stay in cache while the taps stream over them.
# Measured (nn.MaxPool2d fwd+bwd, 2x2/2 and 3x3/2 pad 1 on (128,32,32,32), (128,64,16,16),
# (64,32,32,32), (64,6,28,28)): 2**17 as fast as 2**16 on one thread and 10-20% faster on
# two (fewer, longer NumPy calls: less contention for the interpreter lock); 2**18 in between.
_BLOCK_ELEMENTS = 1 << 17


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
                f"{i + 1} the window of output {bad} reads positions "
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


_CACHE = settings.cache("pool", 1024)


def _cached(kind: str, key, make):
    """``make()``, remembered under ``(kind, key)``: layers pool the same geometry every
    step, and its tables took ~0.1 ms per call (a sixth of a LeNet pooling forward).
    Errors are raised by ``make`` and never remembered."""
    value = _CACHE.get((kind, key))
    if value is None:
        value = _CACHE.put((kind, key), make())
    return value


def _max_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode, op) -> PoolGeometry:
    # PyTorch 2.13 allows padding up to half the kernel size, k // 2, for max pooling too
    # (dilation does not enlarge the limit: max_pool2d(k=3, d=2, p=2) is refused).
    # The key is the repr: 2.0 == 2 and True == 1 hash alike but must still be refused.
    return _cached(
        "max", repr((x_shape, kernel_size, stride, padding, dilation, ceil_mode, op)),
        lambda: pool_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode, op),
    )


def _avg_geometry(x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, op) -> PoolGeometry:
    g = avg_pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode, op)
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise ConfigError(f"{op}: count_include_pad must be True or False; got {count_include_pad!r}.")
    return g


def _check_sizes(g: PoolGeometry, dtype, op: str, *more) -> None:
    """Refuse outputs (with the arrays ``more`` allocated beside them: argmax indices, the
    input gradient) or padded inputs over the array limit (zero-stride views of huge
    shapes, huge padding) with the arithmetic, before any allocation."""
    windows.check_allocation(g.y_shape, dtype, "output", op, *more)
    windows.check_allocation((g.batch, g.c, *g.padded), dtype, "padded input", op)


def _argmax_type(g: PoolGeometry) -> type:
    """The smallest unsigned integer type that holds every tap number ``0 .. prod(k)-1``."""
    return np.min_scalar_type(max(math.prod(g.k) - 1, 0)).type


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
            itype = _argmax_type(g)
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
    if not isinstance(return_indices, (bool, np.bool_)):
        raise ConfigError(f"{op}: return_indices must be True or False; got {return_indices!r}.")
    _check_sizes(g, x.dtype, op, *([(g.y_shape, np.int64, "indices (int64)")] if return_indices else []))
    if not return_indices:
        _cached("first", g, lambda: _read_only(_first_inside_tap(g, op)))  # validation only
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
    _check_sizes(g, x.dtype, op, (x.shape, x.dtype, "gradient dx (the shape of x)"),
                 (g.y_shape, _argmax_type(g), "argmax (tap numbers)"))
    dy = windows.check_dy(dy, x, g.y_shape, op)
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
    dyr: np.ndarray = dy.reshape((g.batch * g.c, 1) + tuple(g.out))
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


def max_pool_with_argmax(x: np.ndarray, kernel_size: Any, stride: Any = None, padding: Any = 0,
                         dilation: Any = 1, ceil_mode: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`max_pool`, and for every window which of its entries was the maximum.

    The pair of this and :func:`max_pool_with_argmax_backward` is :func:`max_pool` /
    :func:`max_pool_backward` with the search for the maxima done once: the forward keeps
    each window's choice and the backward only routes ``dy`` (what ``nn.MaxPool*`` does in
    training).

    The derivative of a window's maximum is one-hot at the chosen entry (notes 9.4.6, Key
    Equation 69; the vector 9.35); ``argmax`` is the position of that one: ``argmax[b, c,
    *o] = t`` means that tap ``t`` of window ``o`` (window order, row-major over the kernel:
    ``t = j_1 * k_2 * ... * k_r + ... + j_r``) holds the maximum. Ties and NaN follow
    :func:`max_pool` (the first maximum; the last NaN). Unlike ``return_indices`` (positions
    in the input plane, int64, as PyTorch), tap numbers fit the smallest unsigned integer type
    that holds ``prod(kernel_size) - 1`` (uint8 for up to 256 taps): one byte per output.

    Args:
        x, kernel_size, stride, padding, dilation, ceil_mode: as :func:`max_pool`.

    Returns:
        ``(y, argmax)``: ``y`` as :func:`max_pool` returns it, and ``argmax`` of the same
        shape with an unsigned integer dtype.

    Raises:
        As :func:`max_pool`; ResourceError also when ``y`` and ``argmax`` together exceed the
        array limit.

    Example:
        The notes' example (9.12): 44 is tap 2 of its 2x2 window (row 1, column 0).

        >>> x = np.array([[1., 3., -9., -22.], [44., -10., -11., -1.],
        ...               [0., 10., 4., -3.], [11., 9., 321., 99.]])[None, None]
        >>> y, argmax = max_pool_with_argmax(x, 2)
        >>> argmax[0, 0]
        array([[2, 3],
               [2, 2]], dtype=uint8)
        >>> dx = max_pool_with_argmax_backward(np.ones_like(y), argmax, x.shape, 2)
        >>> bool(np.array_equal(dx, max_pool_backward(np.ones_like(y), x, 2)))  # one-hot routing, 9.35
        True
    """
    op = "max_pool_with_argmax"
    x = as_float_array(x, "x", op)
    g = _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, op)
    _check_sizes(g, x.dtype, op, (g.y_shape, _argmax_type(g), "argmax (tap numbers)"))
    y, idx = _max_and_argmax(x, g, op)
    return y.reshape(g.y_shape), idx.reshape(g.y_shape)


def max_pool_with_argmax_backward(dy: np.ndarray, argmax: np.ndarray, x_shape: Any, kernel_size: Any,
                                  stride: Any = None, padding: Any = 0, dilation: Any = 1,
                                  ceil_mode: bool = False) -> np.ndarray:
    """Gradient of max pooling from the ``argmax`` that :func:`max_pool_with_argmax` kept.

    Each window's ``dy`` goes to the entry its ``argmax`` names (Key Equation 69: the
    derivative is one-hot there); entries that are no window's maximum get 0, and an entry
    chosen by several overlapping windows gets the sum of their ``dy``. Equal to
    :func:`max_pool_backward` on the forward's ``x``, without searching the windows again.

    Args:
        dy: upstream gradient, shaped like the forward output; its dtype is ``dx``'s.
        argmax: the forward's tap numbers (any integer dtype, same shape as ``dy``, entries
            in ``0 .. prod(kernel_size) - 1``).
        x_shape: the shape of the forward's input ``x``.
        kernel_size, stride, padding, dilation, ceil_mode: the forward's.

    Returns:
        ``dx`` of shape ``x_shape``.

    Raises:
        ShapeError: ``dy`` or ``argmax`` not shaped like the forward output.
        DTypeError: ``dy`` not float32/float64, ``argmax`` not integers.
        ConfigError: an ``argmax`` entry that is no tap of the window; as :func:`max_pool`.
        ArgumentTypeError: ``x_shape`` not a tuple of non-negative ints, ``argmax`` not an
            array.
    """
    op = "max_pool_with_argmax_backward"
    dy = as_float_array(dy, "dy", op)
    g = _max_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode, op)
    x_shape = (g.batch, g.c, *g.n)
    if dy.shape != tuple(g.y_shape):
        raise ShapeError(
            f"{op}: dy must have the shape of the forward output, {format_shape(g.y_shape)} for "
            f"x_shape {format_shape(x_shape)}; got {format_shape(dy.shape)}."
        )
    idx = _check_argmax(argmax, g, op)
    windows.check_allocation(x_shape, dy.dtype, "gradient dx (the shape of x)", op)
    _cached("first", g, lambda: _read_only(_first_inside_tap(g, op)))  # as the forward refuses
    try:
        return _argmax_scatter(dy, idx.reshape((g.batch * g.c, 1) + tuple(g.out)), g, x_shape)
    except IndexError:  # a tap number past the window's last tap
        raise _bad_argmax(argmax, g, op) from None


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _check_argmax(argmax: Any, g: PoolGeometry, op: str) -> np.ndarray:
    if not isinstance(argmax, np.ndarray):
        raise ArgumentTypeError(
            f"{op}: argmax must be the integer array max_pool_with_argmax returned; got "
            f"{type(argmax).__name__}."
        )
    if argmax.dtype.kind not in "ui":
        raise DTypeError(
            f"{op}: argmax must hold integers (the tap number of each window's maximum, as "
            f"max_pool_with_argmax returns it); got dtype {argmax.dtype}."
        )
    if argmax.shape != tuple(g.y_shape):
        raise ShapeError(
            f"{op}: argmax must have the shape of the forward output, {format_shape(g.y_shape)}; "
            f"got {format_shape(argmax.shape)}."
        )
    # Unsigned tap numbers past the last tap make the scatter's np.take raise (see
    # _bad_argmax); negative ones would silently count from the end, so they are looked for.
    if argmax.dtype.kind == "i" and argmax.size and int(argmax.min()) < 0:
        raise _bad_argmax(argmax, g, op)
    return argmax


def _bad_argmax(argmax: np.ndarray, g: PoolGeometry, op: str) -> ConfigError:
    return ConfigError(
        f"{op}: argmax entries must be tap numbers 0 .. {math.prod(g.k) - 1} of a window of "
        f"{format_shape(g.k)} taps; got values from {int(argmax.min())} to {int(argmax.max())}."
    )


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


def avg_pool_backward(dy: np.ndarray, x: np.ndarray, kernel_size: Any, stride: Any = None, padding: Any = 0,
                      ceil_mode: bool = False, count_include_pad: bool = True) -> np.ndarray:
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
    _check_sizes(g, x.dtype, op, (x.shape, x.dtype, "gradient dx (the shape of x)"))
    dy = windows.check_dy(dy, x, g.y_shape, op)
    # Each window's mean spreads its gradient evenly: dy / divisor to every entry.
    share = dy.reshape((g.batch * g.c, 1) + tuple(g.out)) / _avg_divisor(
        g, bool(count_include_pad), x.dtype
    )
    return _tap_scatter(x, g, share)
