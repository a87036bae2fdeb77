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
    >>> import numpy as np
    >>> from convscope import nn
    >>> from convscope.viz.activations import forward_layers
    >>> model = nn.Sequential(nn.Conv1d(1, 1, 3, padding=2, dilation=2, rng=0))
    >>> _, acts = forward_layers(model, np.zeros((1, 6)))
    >>> boxes = receptive_boxes(acts, (6,))
    >>> boxes[1][0]          # output i reads x[i-2], x[i], x[i+2]; the rest is zero padding
    (array([0, 1, 0, 1, 2, 3]), array([2, 3, 4, 5, 4, 5]))
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ..nn import receptive
from .activations import LayerActivation

__all__ = ["receptive_boxes"]

Box = receptive.Box


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
        positions is unknown. Computed by :func:`convscope.nn.receptive.receptive_boxes`.
    """
    records = [act.layer for act in acts]
    if not any(len(r.inputs) > 1 for r in records if r.kind != "residual"):
        return receptive.receptive_boxes(records, input_spatial)
    # a graph: follow each record's own inputs (a branch starts from the node that feeds it)
    by_name: dict[str, list[Box] | None] = {}
    full: list[Box] | None = [(np.arange(n), np.arange(n)) for n in input_spatial]
    boxes: dict[int, list[Box] | None] = {}
    for record in records:
        ins = [by_name.get(ref.split(":")[0], full) for ref in (record.inputs or ("input",))]
        effect = record.effect
        state: list[Box] | None
        if effect in ("residual", "merge"):          # every branch's field, united
            sizes = {tuple(len(first) for first, _ in b) for b in ins if b is not None}
            state = None if any(b is None for b in ins) or len(sizes) != 1 else [
                functools.reduce(receptive._union, axis) for axis in zip(*ins)]
        elif ins[0] is None:
            state = None
        elif effect == "window":
            state = [receptive._window_box(record, a, box) for a, box in enumerate(ins[0])]
        elif (effect != "pointwise" or record.out_shape is None or record.in_shape is None
              or len(record.out_shape) != len(record.in_shape)):
            state = None
        else:
            state = ins[0]
        by_name[record.name] = boxes[record.index] = state
    return boxes
