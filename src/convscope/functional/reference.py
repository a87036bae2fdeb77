"""Plain-loop versions of convolution and pooling, forward and backward: the readable oracle.

Every output entry is computed by an explicit loop over windows, exactly as the notes
describe it (Key Equation 15: ``y_i = f . v_i + f_0``), and every gradient by the chain rule
written per window: the filter derivative ``dZ_i/dW_j = X_{i+j-1}`` (Key Equation 68), the
input derivative ``dZ_i/dX_{i+j-1} = W_j``, max pooling's one-hot routing to each window's
maximum (Key Equation 69) and average pooling's even spread. Slow on purpose and never
imported by the fast path; the tests compare these loops with PyTorch (a reference nobody
tests is not a reference) and then use them as the oracle for the fast paths' chunking,
layouts and odd shapes. The step-by-step traces of ``convscope.explain`` are computed by
their own code; the tests hold them to these loops as well.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError
from ..shapes import as_float_array, check_same_dtype, conv_geometry, float_inputs, normalize_int, pool_geometry
from .windows import pad, pad_backward

# ---- convolution ----


def reference_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: Any = 1,
                   padding: Any = 0, dilation: Any = 1, groups: Any = 1, padding_mode: str = "zeros",
                   flip: bool = False) -> np.ndarray:
    """Convolution (cross-correlation) by explicit loops: ``y_i = f . v_i + f_0`` per window.

    Same arguments, shapes and errors as :func:`convscope.functional.conv`. For every sample,
    every filter ``f`` (one output channel) and every output position ``i``, the window
    ``v_i`` of the padded input is cut out (Key Equation 15, generalised to any number of
    spatial axes with stride and dilation) and the generalised dot product ``f . v_i`` (sum of
    the element-wise products, Definition 26) plus the bias ``f_0`` is written to ``y``.
    ``flip=True`` reverses the filter on every spatial axis first (true convolution,
    Clarification 17).

    Example (the notes' 1-D example, section 9.1.4):
        >>> x = np.array([[[1., 1, -1, -1, -1, 1, -1, 1, 1, 1]]])
        >>> f = np.array([[[1., -1, 1]]])
        >>> reference_conv(x, f)[0, 0]
        array([-1.,  1., -1.,  1., -3.,  3., -1.,  1.])
    """
    op = "reference_conv"
    x, w, b = float_inputs(op, x, w, b)
    geom = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups, padding_mode, op)
    if b is not None and b.shape != (geom.c_out,):
        raise ShapeError(
            f"{op}: b must have shape ({geom.c_out},), one bias per filter; got shape {b.shape}."
        )
    if flip:  # true convolution: reverse the filter on every spatial axis
        w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * geom.ndim]
    xp = pad(x, geom.p, geom.padding_mode)
    c_in_per_group = geom.c_in // geom.g
    c_out_per_group = geom.c_out // geom.g
    y = np.zeros(geom.y_shape, dtype=x.dtype)
    for sample in range(geom.batch):
        for channel in range(geom.c_out):
            f = w[channel]                                 # (C_in/groups, *k)
            group = channel // c_out_per_group             # the input channels f sees
            seen = slice(group * c_in_per_group, (group + 1) * c_in_per_group)
            f_0 = b[channel] if b is not None else 0.0
            for i in itertools.product(*(range(o) for o in geom.out)):
                window = tuple(
                    slice(o * s, o * s + d * (k - 1) + 1, d)
                    for o, s, d, k in zip(i, geom.s, geom.d, geom.k)
                )
                v_i = xp[(sample, seen) + window]          # same shape as f
                y[(sample, channel) + i] = np.sum(f * v_i) + f_0
    return y


def reference_conv_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, stride: Any = 1, padding: Any = 0,
                            dilation: Any = 1, groups: Any = 1, padding_mode: str = "zeros",
                            flip: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a convolution by explicit loops: ``(dx, dw, db)`` as the notes derive them.

    Same arguments, shapes and results as :func:`convscope.functional.conv_backward`. Every
    output ``y_i = f . v_i + f_0`` (:func:`reference_conv`) passes its upstream gradient
    ``dy_i`` back along the three things it was made of:

    * the offset: ``dL/df_0 += dy_i``;
    * the filter (notes 9.4.5, Key Equation 68: ``dZ_i/dW_j = X_{i+j-1}``, the input entry
      that weight ``j`` met in window ``i``): ``dL/dW += dy_i * v_i``;
    * the input (the same sum 9.28 differentiated by ``X_{i+j-1}`` gives ``W_j``):
      ``dL/dv_i += dy_i * f``, added where the window was read in the padded input; the
      padding's share is then folded back onto the entries it copied (dropped for zeros).

    Example (the notes' 9.31: 4 weights, 6 inputs; ``dy = [1, 0, 0]`` picks the first window):
        >>> x = np.arange(1.0, 7.0).reshape(1, 1, 6)
        >>> dx, dw, db = reference_conv_backward(np.array([[[1.0, 0.0, 0.0]]]), x, np.ones((1, 1, 4)))
        >>> dw[0, 0], db, dx[0, 0]
        (array([1., 2., 3., 4.]), array([1.]), array([1., 1., 1., 1., 0., 0.]))
    """
    op = "reference_conv_backward"
    x = as_float_array(x, "x", op)
    w = as_float_array(w, "w", op)
    dy = as_float_array(dy, "dy", op)
    check_same_dtype(op, dy=dy, x=x, w=w)
    geom = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups, padding_mode, op)
    if dy.shape != geom.y_shape:
        raise ShapeError(f"{op}: dy must have the forward output's shape {geom.y_shape}; got {dy.shape}.")
    spatial_flip = (slice(None), slice(None)) + (slice(None, None, -1),) * geom.ndim
    if flip:  # true convolution: the filter reversed on every spatial axis
        w = w[spatial_flip]
    xp = pad(x, geom.p, geom.padding_mode)
    dxp = np.zeros(xp.shape, dtype=x.dtype)
    dw = np.zeros(w.shape, dtype=x.dtype)
    db = np.zeros(geom.c_out, dtype=x.dtype)
    c_in_per_group = geom.c_in // geom.g
    c_out_per_group = geom.c_out // geom.g
    for sample in range(geom.batch):
        for channel in range(geom.c_out):
            f = w[channel]
            group = channel // c_out_per_group
            seen = slice(group * c_in_per_group, (group + 1) * c_in_per_group)
            for i in itertools.product(*(range(o) for o in geom.out)):
                window = tuple(
                    slice(o * s, o * s + d * (k - 1) + 1, d)
                    for o, s, d, k in zip(i, geom.s, geom.d, geom.k)
                )
                dy_i = dy[(sample, channel) + i]
                db[channel] += dy_i                                  # dZ_i/df_0 = 1
                dw[channel] += dy_i * xp[(sample, seen) + window]    # Key Eq. 68
                dxp[(sample, seen) + window] += dy_i * f             # dZ_i/dX_{i+j-1} = W_j
    dx = pad_backward(dxp, geom.p, geom.padding_mode)
    if flip:
        dw = dw[spatial_flip]
    return np.ascontiguousarray(dx), np.ascontiguousarray(dw), db


def reference_conv_windows(x: np.ndarray, k: int, stride: int = 1, padding: Any = 0,
                           dilation: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(i, v)`` for every window of a 1-D signal, in order (Key Equation 15).

    ``i`` counts from 0 (the notes' ``v_{i+1}``); ``v`` is the window of the zero-padded
    signal that the filter is dotted with to give output ``i``. ``padding`` is an int or a
    ``(before, after)`` pair.

    Example:
        >>> for i, v in reference_conv_windows(np.array([1., 2., 3., 4.]), 3, padding=1):
        ...     print(i, v)
        0 [0. 1. 2.]
        1 [1. 2. 3.]
        2 [2. 3. 4.]
        3 [3. 4. 0.]
    """
    op = "reference_conv_windows"
    x = as_float_array(x, "x", op)
    if x.ndim != 1:
        raise ShapeError(f"{op}: x must be a 1-D signal; got shape {x.shape}.")
    k = normalize_int(k, "k", op, minimum=1)
    geom = conv_geometry(
        (1, 1, x.shape[0]), (1, 1, k), stride, padding, dilation, 1, "zeros", op
    )
    xp = pad(x[None, None], geom.p)[0, 0]
    (s,), (d,) = geom.s, geom.d
    for i in range(geom.out[0]):
        yield i, xp[i * s : i * s + d * (k - 1) + 1 : d]


# ---- pooling ----


def _window_positions(o, g):
    """Input positions of the window of output ``o``, in window order; None for padding."""
    for j in itertools.product(*(range(k) for k in g.k)):
        pos = tuple(oi * si + ji * di - pi[0] for oi, ji, si, di, pi in zip(o, j, g.s, g.d, g.p))
        inside = all(0 <= q < n for q, n in zip(pos, g.n))
        yield pos if inside else None


def _window_max(x, b, c, o, g, op):
    """The largest entry of window ``o`` of channel ``c`` of sample ``b`` and its position:
    the scan starts at the window's first input entry and replaces the current maximum only
    by a strictly larger value (ties keep the first) or by NaN (PyTorch's rule)."""
    best, best_pos = -np.inf, None
    for pos in _window_positions(o, g):
        if pos is None:  # padding: minus infinity, never the maximum
            continue
        value = x[(b, c) + pos]
        if best_pos is None:
            best_pos = pos
        if value > best or np.isnan(value):
            best, best_pos = value, pos
    if best_pos is None:
        raise ConfigError(
            f"{op}: the window of output {o} covers no input entry (its dilated "
            f"taps jump over the input); every window must see at least one."
        )
    return best, best_pos


def _avg_divisor(o, g, count_include_pad):
    """The number of entries window ``o`` averages: those inside the padded input
    (``count_include_pad``; the ceil_mode overhang beyond the padding never counts) or
    inside the input itself."""
    divisor = 1
    for oi, si, ki, ni, (before, after) in zip(o, g.s, g.k, g.n, g.p):
        start = oi * si - before
        end = min(start + ki, ni + after)  # the overhang past the padding is dropped
        divisor *= (end - start) if count_include_pad else (min(end, ni) - max(start, 0))
    return divisor


def _every_window(g):
    """``(b, c, o)`` for every window of every channel of every sample."""
    for b in range(g.batch):
        for c in range(g.c):
            for o in itertools.product(*(range(v) for v in g.out)):
                yield b, c, o


def _pool_dy(dy, x, g, op):
    dy = as_float_array(dy, "dy", op)
    check_same_dtype(op, dy=dy, x=x)
    if dy.shape != g.y_shape:
        raise ShapeError(f"{op}: dy must have the forward output's shape {g.y_shape}; got {dy.shape}.")
    return dy


def reference_max_pool(x: np.ndarray, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False):
    """Max pooling by explicit loops: for every output, scan its window and keep the largest.

    Same arguments and results as :func:`convscope.functional.max_pool`. Padding entries are
    minus infinity, so they are skipped; the scan starts at the window's first input entry
    and replaces the current maximum only by a strictly larger value (ties keep the first)
    or by NaN (PyTorch's rule).

    >>> x = np.array([[1., 3., -9., -22.], [44., -10., -11., -1.],
    ...               [0., 10., 4., -3.], [11., 9., 321., 99.]])[None, None]
    >>> reference_max_pool(x, 2)[0, 0]                   # notes (9.12)
    array([[ 44.,  -1.],
           [ 11., 321.]])
    """
    op = "reference_max_pool"
    x = as_float_array(x, "x", op)
    g = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, op)
    y = np.empty(g.y_shape, dtype=x.dtype)
    indices = np.empty(g.y_shape, dtype=np.int64)
    for b, c, o in _every_window(g):
        best, best_pos = _window_max(x, b, c, o, g, op)
        y[(b, c) + o] = best
        indices[(b, c) + o] = np.ravel_multi_index(best_pos, g.n)
    return (y, indices) if return_indices else y


def reference_max_pool_backward(dy: np.ndarray, x: np.ndarray, kernel_size: Any, stride: Any = None,
                                padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False) -> np.ndarray:
    """The max-pool gradient by explicit loops: each window's ``dy`` goes to its maximum.

    Same arguments and result as :func:`convscope.functional.max_pool_backward`. The
    derivative of a window's maximum is one-hot (notes 9.4.6, Key Equation 69; the vector
    9.35): 1 at the entry that was chosen (the first of tied maxima, found by the same scan as
    :func:`reference_max_pool`), 0 at the others; an entry chosen by several overlapping
    windows collects all their ``dy``.

    >>> x = np.array([[[1., 3., 3., 0.]]])
    >>> reference_max_pool_backward(np.array([[[10., 20., 30.]]]), x, 2, stride=1)[0, 0]
    array([ 0., 30., 30.,  0.])
    """
    op = "reference_max_pool_backward"
    x = as_float_array(x, "x", op)
    g = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, op)
    dy = _pool_dy(dy, x, g, op)
    dx = np.zeros(x.shape, dtype=x.dtype)
    for b, c, o in _every_window(g):
        _, best_pos = _window_max(x, b, c, o, g, op)
        dx[(b, c) + best_pos] += dy[(b, c) + o]       # one-hot at the maximum (Key Eq. 69)
    return dx


def reference_avg_pool(x: np.ndarray, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       ceil_mode: bool = False, count_include_pad: bool = True) -> np.ndarray:
    """Average pooling by explicit loops: for every output, sum its window and divide.

    Same arguments and results as :func:`convscope.functional.avg_pool`. The divisor is the
    number of window entries inside the padded input (``count_include_pad``; the ceil_mode
    overhang beyond the padding never counts) or inside the input itself.

    >>> reference_avg_pool(np.array([[[1., 2., 3., 4.]]]), 3, 2, 1, ceil_mode=True)[0, 0]
    array([1., 3., 2.])
    """
    op = "reference_avg_pool"
    x = as_float_array(x, "x", op)
    g = pool_geometry(x.shape, kernel_size, stride, padding, 1, ceil_mode, op)
    y = np.empty(g.y_shape, dtype=x.dtype)
    for b, c, o in _every_window(g):
        total = x.dtype.type(0)
        for pos in _window_positions(o, g):
            if pos is not None:  # padding adds zero
                total += x[(b, c) + pos]
        y[(b, c) + o] = total / _avg_divisor(o, g, count_include_pad)
    return y


def reference_avg_pool_backward(dy: np.ndarray, x: np.ndarray, kernel_size: Any, stride: Any = None,
                                padding: Any = 0, ceil_mode: bool = False,
                                count_include_pad: bool = True) -> np.ndarray:
    """The average-pool gradient by explicit loops: each window spreads ``dy / divisor``.

    Same arguments and result as :func:`convscope.functional.avg_pool_backward`. A window's
    mean depends on each of its entries with weight ``1 / divisor``, so every input entry of
    the window receives ``dy / divisor``; the padding's share is dropped (it was a constant).

    >>> reference_avg_pool_backward(np.array([[[2., 4.]]]), np.zeros((1, 1, 4)), 2)[0, 0]
    array([1., 1., 2., 2.])
    """
    op = "reference_avg_pool_backward"
    x = as_float_array(x, "x", op)
    g = pool_geometry(x.shape, kernel_size, stride, padding, 1, ceil_mode, op)
    dy = _pool_dy(dy, x, g, op)
    dx = np.zeros(x.shape, dtype=x.dtype)
    for b, c, o in _every_window(g):
        share = dy[(b, c) + o] / _avg_divisor(o, g, count_include_pad)
        for pos in _window_positions(o, g):
            if pos is not None:  # the padding's share is dropped
                dx[(b, c) + pos] += share
    return dx
