"""Receptive fields over the walked layers of a model: the one implementation.

``convscope.summary``, :func:`convscope.explain.receptive_field` and the HTML explainer's
boxes all compute here, from the records of :func:`convscope.nn.walk` (with an input shape).

Per spatial axis, with ``k, s, d, p_before`` of each window layer (convolution, max/avg/blur
pooling; notes Definition 50) and position-wise layers passed through:

    rf_out    = rf_in + d*(k - 1)*jump_in      (input entries one output pixel spans)
    jump_out  = jump_in * s                    (input distance between neighbouring pixels)
    start_out = start_in - p_before*jump_in    (where output pixel 0's field starts; < 0 is padding)

A Residual's field is the union of its block's and its input's. After Flatten each entry keeps
its field but the layout is gone; after Linear (or a softmax over a spatial axis) every output
sees the whole input; after a layer convscope does not know, the field is unknown.

The exact input entries (:func:`input_indices`) and per-position boxes
(:func:`receptive_boxes`) walk back through the windows' taps: output ``i`` reads the padded
positions ``i*s + t*d`` (``t < k``), each a real input entry (reflect, replicate and circular
padding copy one) or a constant (zero padding, max pooling's -inf) that sees nothing.

Example:
    >>> from convscope import nn
    >>> records = list(nn.walk(nn.Sequential(nn.Conv1d(1, 1, 3, rng=0), nn.MaxPool1d(2)), (1, 1, 9)))
    >>> [(f.rf, f.jump, f.start) for f in field_steps(records, 1)]
    [((3,), (1,), (0,)), ((4,), (2,), (0,))]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..functional.windows import pad
from .walk import LayerRecord

__all__ = ["FieldStep", "field_steps", "branch_fields", "tap_sources", "input_indices", "receptive_boxes"]

_COPYING = ("reflect", "replicate", "circular")   # padding modes whose cells copy a real entry

Box = tuple[np.ndarray, np.ndarray]    # first and last input index per output index (-1: none)


@dataclass(frozen=True)
class FieldStep:
    """Receptive field after one layer, per spatial axis.

    Attributes:
        rf: input entries one output pixel spans; None once every output sees the whole
            input, or after a layer whose effect on positions is unknown.
        jump: input distance between neighbouring outputs; None also after Flatten.
        start: first input index of output pixel 0's field (negative: padding); None with jump.
        note: "whole input", "unknown layer" or "flattened" when rf or jump is None, else "".
    """

    rf: tuple[int, ...] | None
    jump: tuple[int, ...] | None
    start: tuple[int, ...] | None
    note: str = ""


def _step(record: LayerRecord, before: FieldStep, block_out: FieldStep | None) -> FieldStep:
    rf, jump, start = before.rf, before.jump, before.start
    if rf is None:       # stays unknown, or the whole input
        return FieldStep(None, None, None, before.note or "whole input")
    if record.kind == "flatten":
        return FieldStep(rf, None, None, "flattened")
    effect = record.effect
    if jump is None or start is None:  # set together with rf, or not at all
        if effect == "pointwise":
            return FieldStep(rf, None, None, "flattened")
        return FieldStep(None, None, None, "whole input" if effect == "global" else "unknown layer")
    w = record.window
    if w is not None:  # effect == "window"
        rf = tuple(r + d * (k - 1) * j for r, j, k, d in zip(rf, jump, w.kernel_size, w.dilation))
        start = tuple(st - b * j for st, j, (b, _) in zip(start, jump, record.padding))
        jump = tuple(j * s for j, s in zip(jump, w.stride))
        return FieldStep(rf, jump, start)
    if effect == "pointwise":
        return FieldStep(rf, jump, start)
    if effect == "residual":
        inner = block_out if block_out is not None else before
        if inner.rf is None or inner.jump is None:
            return FieldStep(None, None, None, "unknown layer")
        if inner.start is None:
            return FieldStep(None, None, None, "unknown layer")
        first = tuple(min(a, b) for a, b in zip(start, inner.start))
        last = tuple(max(a + r - 1, b + q - 1) for a, r, b, q in zip(start, rf, inner.start, inner.rf))
        return FieldStep(tuple(b - a + 1 for a, b in zip(first, last)), jump, first)
    if effect == "global":
        return FieldStep(None, None, None, "whole input")
    return FieldStep(None, None, None, "unknown layer")


def field_steps(records: Sequence[LayerRecord], n_spatial: int) -> list[FieldStep]:
    """The receptive field after every record of a walk (same order), from a 1-entry field.

    Args:
        records: the records of :func:`convscope.nn.walk` with an input shape, all of them
            (a Residual's input is the state before the first layer of its block).
        n_spatial: the input's number of spatial axes.
    """
    unit = FieldStep((1,) * n_spatial, (1,) * n_spatial, (0,) * n_spatial)
    steps: list[FieldStep] = []
    position = {r.index: i for i, r in enumerate(records)}
    by_name: dict[str, FieldStep] = {}
    for record in records:
        previous = steps[-1] if steps else unit
        if record.inputs and record.effect != "residual":
            feeding = [_field_of(by_name, ref, unit) for ref in record.inputs]
            previous = feeding[0] if len(feeding) == 1 else _merge(feeding)
        if record.effect == "merge":
            step = previous
        elif record.effect == "residual":
            if record.block:
                first = position[record.block[0].index]
                before = steps[first - 1] if first > 0 else unit
            else:
                before = previous
            step = _step(record, before, previous)
        else:
            step = _step(record, previous, None)
        steps.append(step)
        by_name[record.name] = step
    return steps


def _merge(fields: Sequence[FieldStep]) -> FieldStep:
    """The field of a merge (Add, Concat, Mul): the union of its inputs' fields, the largest
    over all paths. One input that sees the whole input (a squeeze-and-excitation gate after
    global pooling) makes the output see it too; an unknown one makes it unknown."""
    notes = [f.note for f in fields if f.rf is None or f.jump is None or f.start is None]
    if notes:
        note = "unknown layer" if "unknown layer" in notes else ("whole input" if "whole input" in notes
                                                                 else notes[0])
        return FieldStep(None, None, None, note)
    first = tuple(min(f.start[a] for f in fields if f.start) for a in range(len(fields[0].rf or ())))
    last = tuple(max(f.start[a] + f.rf[a] - 1 for f in fields if f.start and f.rf)
                 for a in range(len(fields[0].rf or ())))
    return FieldStep(tuple(b - a + 1 for a, b in zip(first, last)), fields[0].jump, first)


def branch_fields(records: Sequence[LayerRecord], n_spatial: int) -> dict[int, list[FieldStep]]:
    """For every merge of a walk (Add, Concat, Mul), the receptive field along each of its
    input branches, in the order of ``record.inputs`` (a residual block: the main path and
    the shortcut); :func:`field_steps` gives their union.

    >>> from convscope import nn
    >>> g = nn.GraphBuilder()
    >>> h = g.add("conv", nn.Conv1d(1, 1, 5, padding=2, rng=0), g.input)
    >>> model = g.build(g.add("add", nn.Add(), h, g.input))
    >>> [[f.rf for f in fields] for fields in branch_fields(list(nn.walk(model, (1, 1, 9))), 1).values()]
    [[(5,), (1,)]]
    """
    unit = FieldStep((1,) * n_spatial, (1,) * n_spatial, (0,) * n_spatial)
    by_name = {r.name: s for r, s in zip(records, field_steps(records, n_spatial))}
    return {r.index: [_field_of(by_name, ref, unit) for ref in r.inputs]
            for r in records if r.effect == "merge"}


def _field_of(by_name: dict[str, FieldStep], ref: str, unit: FieldStep) -> FieldStep:
    """The field of what ``ref`` names: a record, piece ``k`` of one (``"split:1"``: the
    pieces share their layer's field), or the model's input (``unit``)."""
    return by_name.get(ref.split(":")[0], unit)


def tap_sources(record: LayerRecord, axis: int, outputs: np.ndarray) -> np.ndarray:
    """``(len(outputs), k)``: the real input index each window tap of ``outputs`` reads along
    ``axis``, or -1 where it reads a constant pad cell or hangs past the padded input
    (ceil_mode)."""
    w = record.window
    assert w is not None and record.in_shape is not None, "a window layer of a walk with a shape"
    n = record.in_shape[2 + axis]
    k, s, d = w.kernel_size[axis], w.stride[axis], w.dilation[axis]
    mode = w.padding_mode if w.padding_mode in _COPYING else "zeros"
    index = np.arange(n, dtype=np.float64)[None, None]
    source = pad(index, [record.padding[axis]], mode, value=-1.0)[0, 0].astype(np.int64)
    taps = np.asarray(outputs)[:, None] * s + np.arange(k)[None, :] * d
    inside = taps < source.size
    return np.where(inside, source[np.minimum(taps, source.size - 1)], -1)


def input_indices(record: LayerRecord, sets: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Input indices per axis that the output indices ``sets`` of ``record`` depend on.

    For a window layer, position-wise layers and Residuals (both paths) only.
    """
    effect = record.effect
    if effect == "pointwise":
        return sets
    if effect == "residual":
        through = sets
        for inner in reversed([r for r in record.block if r.depth == record.depth + 1]):
            through = input_indices(inner, through)
        return tuple(np.union1d(a, b) for a, b in zip(sets, through))
    out = []
    for axis, outs in enumerate(sets):
        real = tap_sources(record, axis, outs).ravel()
        out.append(np.unique(real[real >= 0]))
    return tuple(out)


def _window_box(record: LayerRecord, axis: int, box: Box) -> Box:
    assert record.out_shape is not None, "a layer that fits its input"
    real = tap_sources(record, axis, np.arange(record.out_shape[2 + axis]))
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


def receptive_boxes(records: Sequence[LayerRecord],
                    input_spatial: Sequence[int]) -> dict[int, list[Box] | None]:
    """``{record index: [(first, last) per spatial axis] or None}`` for every walked layer.

    For each layer and spatial axis, two int arrays over the layer's output positions: the
    first and last input index that can influence them (-1 where nothing real is seen, e.g.
    a window wholly in zero padding). None once the layer has no spatial layout (Flatten,
    Linear and after) or its effect on positions is unknown.
    """
    state: list[Box] | None = [(np.arange(n), np.arange(n)) for n in input_spatial]
    boxes: dict[int, list[Box] | None] = {}
    states: list[list[Box] | None] = []
    position = {r.index: i for i, r in enumerate(records)}
    start = state
    for record in records:
        effect = record.effect
        if effect == "residual":
            before = state
            if record.block:
                first = position[record.block[0].index]
                before = states[first - 1] if first > 0 else start
            state = None if before is None or state is None else [_union(b, s) for b, s in zip(before, state)]
        elif state is None:
            pass
        elif effect == "window":
            state = [_window_box(record, a, box) for a, box in enumerate(state)]
        elif (effect != "pointwise" or record.out_shape is None or record.in_shape is None
              or len(record.out_shape) != len(record.in_shape)):
            state = None
        states.append(state)
        boxes[record.index] = state
    return boxes
