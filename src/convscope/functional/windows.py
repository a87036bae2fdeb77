"""Padded sliding-window views: the notes' windows v_i, shared by convolution and pooling.

The notes build a convolution from windows (Key Equation 15): ``v_{i+1} = x[i : i + k]``,
one per output position. Here every window of a padded input is a *view* into the same
memory (no copy): an array of shape ``(N, C, *out, *k)`` whose entry
``[b, c, o_1..o_r, j_1..j_r]`` is ``x_padded[b, c, o_1*s_1 + j_1*d_1, ..., o_r*s_r + j_r*d_r]``.

Also here: padding in the four modes (with its adjoint, used by every backward) and the
slices that address one kernel tap across all windows (used by the slice-add backwards).
The workspace budget and the array limit are settings of :mod:`convscope.settings`
(re-exported here, where the ops import them from).
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ShapeError
from ..shapes import as_float_array, check_same_dtype, format_shape
from ..settings import (
    check_allocation,
    get_array_limit,
    get_workspace_budget,
    set_array_limit,
    set_workspace_budget,
)

__all__ = [
    "get_workspace_budget",
    "get_array_limit",
    "set_array_limit",
    "check_allocation",
    "set_workspace_budget",
    "pad",
    "pad_backward",
    "sliding_windows",
    "tap_slices",
    "kernel_taps",
    "batch_chunks",
    "check_dy",
]

_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(
    x: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    mode: str = "zeros",
    value: float = 0.0,
) -> np.ndarray:
    """Pad the spatial axes (all axes after the first two) of ``x``.

    ``mode``: "zeros" (the constant ``value``, 0 unless given: max pooling pads with
    -inf), "reflect" (mirror without repeating the edge: ``[1 2 3] -> 3 2 [1 2 3] 2 1``),
    "replicate" (repeat the edge) or "circular" (wrap around). Returns ``x`` itself when no
    padding is asked for.

    >>> pad(np.array([[[1., 2., 3., 4.]]]), [(2, 2)])[0, 0]     # notes (9.7)
    array([0., 0., 1., 2., 3., 4., 0., 0.])
    >>> pad(np.array([[[1., 2., 3.]]]), [(2, 2)], "reflect")[0, 0]
    array([3., 2., 1., 2., 3., 2., 1.])
    """
    if not any(b or a for b, a in pairs):
        return x
    full = [(0, 0), (0, 0), *((int(b), int(a)) for b, a in pairs)]
    if mode == "zeros":
        out = np.full(
            x.shape[:2] + tuple(n + b + a for n, (b, a) in zip(x.shape[2:], pairs)),
            value,
            dtype=x.dtype,
        )
        inner = (slice(None), slice(None)) + tuple(
            slice(b, b + n) for n, (b, _) in zip(x.shape[2:], pairs)
        )
        out[inner] = x
        return out
    return np.pad(x, full, mode=_NP_MODES[mode])


def pad_backward(dxp: np.ndarray, pairs: Sequence[tuple[int, int]], mode: str = "zeros") -> np.ndarray:
    """The adjoint of :func:`pad`: fold the gradient of the padded array back onto ``x``.

    For "zeros" the padding's gradient is dropped (it came from constants); for the other
    modes each padded entry is a copy of an input entry, so its gradient is added there.
    Axes are unfolded in the reverse order in which :func:`numpy.pad` filled them.

    >>> pad_backward(np.ones((1, 1, 7)), [(2, 2)], "reflect")[0, 0]   # 3 2 [1 2 3] 2 1
    array([2., 3., 2.])
    """
    if not any(b or a for b, a in pairs):
        return dxp
    if mode == "zeros":
        inner = (slice(None), slice(None)) + tuple(
            slice(b, dxp.shape[2 + i] - a) for i, (b, a) in enumerate(pairs)
        )
        return dxp[inner]
    g = dxp
    for axis in reversed(range(len(pairs))):
        before, after = pairs[axis]
        ax = axis + 2
        size = g.shape[ax] - before - after
        core = np.array(_take(g, ax, before, before + size), copy=True)
        if before:
            head = _take(g, ax, 0, before)
            if mode == "reflect":  # padded[before-1-t] = x[t+1]
                _iadd(core, ax, 1, before + 1, np.flip(head, axis=ax))
            elif mode == "replicate":
                _iadd(core, ax, 0, 1, head.sum(axis=ax, keepdims=True))
            else:  # circular: padded[t] = x[size-before+t]
                _iadd(core, ax, size - before, size, head)
        if after:
            tail = _take(g, ax, before + size, before + size + after)
            if mode == "reflect":  # padded[before+size+t] = x[size-2-t]
                _iadd(core, ax, size - 1 - after, size - 1, np.flip(tail, axis=ax))
            elif mode == "replicate":
                _iadd(core, ax, size - 1, size, tail.sum(axis=ax, keepdims=True))
            else:  # circular: padded[before+size+t] = x[t]
                _iadd(core, ax, 0, after, tail)
        g = core
    return g


def _take(a: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    return a[tuple(index)]


def _iadd(a: np.ndarray, axis: int, start: int, stop: int, values: np.ndarray) -> None:
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    a[tuple(index)] += values


def sliding_windows(
    xp: np.ndarray,
    k: Sequence[int],
    s: Sequence[int],
    d: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:
    """A read-only view of every window of the padded input ``xp``: shape ``(N, C, *out, *k)``.

    Entry ``[b, c, *o, *j]`` is ``xp[b, c, *(o_i*s_i + j_i*d_i)]``; no data is copied.

    >>> x = np.arange(10.).reshape(1, 1, 10)
    >>> sliding_windows(x, (3,), (1,), (1,), (8,))[0, 0, :2]   # v_1, v_2 of Key Eq. 15
    array([[0., 1., 2.],
           [1., 2., 3.]])
    """
    st = xp.strides
    spatial = st[2:]
    shape = xp.shape[:2] + tuple(out) + tuple(k)
    strides = st[:2] + tuple(a * b for a, b in zip(spatial, s)) + tuple(
        a * b for a, b in zip(spatial, d)
    )
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def kernel_taps(k: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every kernel offset ``(j_1, ..., j_r)`` in window order (row-major)."""
    return itertools.product(*(range(v) for v in k))


def tap_slices(
    tap: Sequence[int],
    s: Sequence[int],
    d: Sequence[int],
    out_start: Sequence[int],
    out_count: Sequence[int],
) -> tuple[slice, ...]:
    """Slices of the padded input touched by kernel tap ``tap`` over a block of outputs.

    Output positions ``out_start[i] .. out_start[i] + out_count[i] - 1`` along each axis read
    ``xp[..., o*s + j*d, ...]``; this is that set as one strided slice per axis (with the two
    leading full slices for N and C).
    """
    index = [slice(None), slice(None)]
    for j, si, di, o0, cnt in zip(tap, s, d, out_start, out_count):
        start = o0 * si + j * di
        index.append(slice(start, start + (cnt - 1) * si + 1, si))
    return tuple(index)


def batch_chunks(batch: int, bytes_per_sample: int) -> Iterator[slice]:
    """Split the batch into consecutive slices whose work stays under the budget."""
    per = max(1, get_workspace_budget() // max(1, bytes_per_sample))
    for start in range(0, batch, per):
        yield slice(start, min(batch, start + per))


def check_dy(dy: Any, x: np.ndarray, y_shape: Sequence[int], op: str) -> np.ndarray:
    """``dy`` as a float array of the forward output's shape ``y_shape`` and ``x``'s dtype,
    or the error that says which shape was expected (for the backward of a pooling op)."""
    dy = as_float_array(dy, "dy", op)
    check_same_dtype(op, dy=dy, x=x)
    if dy.shape != tuple(y_shape):
        raise ShapeError(
            f"{op}: dy must have the shape of the forward output, {format_shape(y_shape)} for x "
            f"of shape {format_shape(x.shape)}; got {format_shape(dy.shape)}."
        )
    return dy
