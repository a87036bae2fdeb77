"""The exact receptive-field box of every output position of every layer, one axis at a time.

:func:`convscope.explain.receptive_field` answers for one pixel; the HTML explainer needs the
answer for every pixel a user may click, so this module computes, for every layer and
spatial axis, the first and last input index that can influence each output index, all
positions at once. Windows are separable, so a pixel's box is the product of its per-axis
ranges (which is how ``receptive_field`` represents its exact sets too).

Per window layer, output ``i`` reads the padded positions ``i*s + t*d`` (``t < k``); each
position is a real input entry (reflect, replicate and circular padding copy one) or a
constant (zero padding, max pooling's -inf), which sees nothing. So

    first_out[i] = min(first_in[j] for the real entries j the taps copy)
    last_out[i]  = max(last_in[j]  for the same j)

which is why a window that hangs over zero padding has a box narrower than the simple span
``start + i*jump .. + rf - 1``. Position-wise layers keep the box, a Residual takes the
union of its block's box and its input's, and after Flatten/Linear there is no spatial box.

Example:
    >>> from convscope import nn
    >>> from convscope.viz.activations import forward_layers
    >>> model = nn.Sequential(nn.Conv1d(1, 1, 3, padding=2, dilation=2, rng=0))
    >>> _, acts = forward_layers(model, np.zeros((1, 6)))
    >>> boxes = receptive_boxes(acts, (6,))
    >>> boxes[1][0]          # output i reads x[i-2], x[i], x[i+2]; the rest is zero padding
    (array([0, 1, 0, 1, 2, 3]), array([2, 3, 4, 5, 4, 5]))
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..functional.windows import pad
from .activations import LayerActivation

__all__ = ["receptive_boxes"]

Box = tuple[np.ndarray, np.ndarray]    # first and last input index per output index (-1: none)


def _source(n: int, pair: tuple[int, int], mode: str) -> np.ndarray:
    """Index of the real entry each padded position copies; -1 for a constant (it sees nothing)."""
    idx = np.arange(n, dtype=np.float64)[None, None]
    return pad(idx, [pair], "zeros" if mode == "zeros" else mode, value=-1.0)[0, 0].astype(np.int64)


def _window(act: LayerActivation, axis: int, box: Box, out: int) -> Box:
    lay = act.layer
    n, k, s, d = act.x.shape[2 + axis], lay.k[axis], lay.s[axis], lay.d[axis]
    source = _source(n, lay.p[axis], lay.padding_mode)
    taps = np.arange(out)[:, None] * s + np.arange(k)[None, :] * d
    inside = taps < source.size                       # ceil_mode overhang reads nothing
    real = np.where(inside, source[np.minimum(taps, source.size - 1)], -1)
    first_in, last_in = box
    ok = (real >= 0) & (first_in[np.maximum(real, 0)] >= 0)
    big = np.iinfo(np.int64).max
    first = np.where(ok, first_in[np.maximum(real, 0)], big).min(axis=1)
    last = np.where(ok, last_in[np.maximum(real, 0)], -1).max(axis=1)
    first[first == big] = -1
    return first, last


def _union(a: Box, b: Box) -> Box:
    fa, la = a
    fb, lb = b
    big = np.iinfo(np.int64).max
    first = np.minimum(np.where(fa >= 0, fa, big), np.where(fb >= 0, fb, big))
    first[first == big] = -1
    return first, np.maximum(la, lb)


def receptive_boxes(acts: Sequence[LayerActivation],
                    input_spatial: Sequence[int]) -> dict[int, list[Box] | None]:
    """``{layer index: [(first, last) per spatial axis] or None}`` for every walked layer.

    Args:
        acts: the layers of :func:`convscope.viz.forward_layers`, in order.
        input_spatial: the spatial shape of the model's input.

    Returns:
        For each layer, per spatial axis, two int arrays over the layer's output positions on
        that axis: the first and last input index any input entry that can influence them has
        (-1 where nothing real is seen, e.g. a window entirely in zero padding). None once
        the layer has no spatial layout (Flatten, Linear and after) or its effect on
        positions is unknown.
    """
    state: list[Box] | None = [(np.arange(n), np.arange(n)) for n in input_spatial]
    boxes: dict[int, list[Box] | None] = {}
    residuals = [a for a in acts if a.layer.kind == "residual" and a.layer.block]
    open_blocks: list[tuple[int, list[Box] | None]] = []   # (Residual index, state at its input)
    for act in acts:
        # entering Residual blocks (outermost first, so the innermost closes first)
        for res in sorted((r for r in residuals if r.layer.block[0].index == act.index),
                          key=lambda r: -r.index):
            open_blocks.append((res.index, state))
        kind = act.layer.kind
        if kind == "residual":
            before = open_blocks.pop()[1] if open_blocks and open_blocks[-1][0] == act.index else None
            state = None if before is None or state is None else [_union(b, s) for b, s in zip(before, state)]
        elif state is None:
            pass
        elif kind == "window":
            state = [_window(act, a, box, act.y.shape[2 + a]) for a, box in enumerate(state)]
        elif kind != "pointwise" or act.y.ndim != act.x.ndim:
            state = None
        boxes[act.index] = state
    return boxes
