"""Receptive fields: how much of the input each layer's pixels see, and exactly which entries.

Per layer and spatial axis (any number of axes), with ``k, s, d, p_before`` of each window
layer (convolution, max/avg/blur pooling) and everything position-wise (activations,
dropout, batch norm) passed through (computed by :mod:`convscope.nn.receptive`):

    rf_out    = rf_in + d*(k - 1)*jump_in      (input entries one output pixel spans)
    jump_out  = jump_in * s                    (input distance between neighbouring pixels)
    start_out = start_in - p_before*jump_in    (where output pixel 0's field starts; < 0 is padding)

so output pixel ``i`` of a layer spans input entries ``start + i*jump`` to
``start + i*jump + rf - 1`` (clipped to the input). For a chosen pixel the exact set of input
entries that can influence it is also computed, by walking back through every window:
with dilation or a stride larger than the window it has gaps, and reflect/replicate/circular
padding folds the padded taps back onto real entries. After Flatten or Linear every output
sees the whole input. (Window layers are what the notes call receptive fields for pooling,
Definition 50; the same arithmetic holds for the windows of convolutions.)

Example:
    >>> from convscope import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, rng=1))
    >>> rf = receptive_field(model, (1, 12, 12), pixel=(0, 1))
    >>> [row.rf for row in rf.rows]
    [(1, 1), (3, 3), (3, 3), (4, 4), (8, 8)]
    >>> rf.region
    (slice(0, 8, None), slice(2, 10, None))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError
from ..nn.receptive import field_steps, input_indices
from ..nn.walk import batched_input_shape, one_line, walk
from ._result import Result

__all__ = ["ReceptiveRow", "ReceptiveField", "receptive_field"]


@dataclass(frozen=True)
class ReceptiveRow:
    """One layer's receptive-field arithmetic.

    Attributes:
        index: 1-based layer number (0 for the input).  name, layer: path and repr.
        out_shape: the layer's (batched) output shape.
        rf, jump, start: per spatial axis; ``rf`` None once every output sees the whole
            input (or after a layer whose effect on positions is unknown); ``jump`` and
            ``start`` None also after Flatten (each entry keeps its field, the layout is gone).
        note: "whole input", "unknown layer" or "flattened" when those are None, else "".
    """

    index: int
    name: str
    layer: str
    out_shape: tuple[int, ...]
    rf: tuple[int, ...] | None
    jump: tuple[int, ...] | None
    start: tuple[int, ...] | None
    note: str = ""

    def span(self, pixel: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """Unclipped ``(first, last)`` input entry per axis seen by output ``pixel`` of this layer."""
        if self.rf is None:
            raise ConfigError(f"receptive_field: layer {self.index} ({self.layer}) has no "
                              f"spatial receptive field ({self.note}).")
        assert self.jump is not None and self.start is not None  # rf, jump and start are None together
        return tuple((st + i * j, st + i * j + r - 1)
                     for i, r, j, st in zip(pixel, self.rf, self.jump, self.start))

    def __repr__(self) -> str:
        rf = "x".join(map(str, self.rf)) if self.rf is not None else self.note
        jump = "x".join(map(str, self.jump)) if self.jump is not None else "-"
        layer = self.layer if len(self.layer) <= 80 else self.layer[:79] + "…"
        return f"ReceptiveRow({self.index}: {layer}, receptive field {rf}, jump {jump})"

    def _repr_html_(self) -> str:
        from .._display import panel, table

        return panel(f"Layer {self.index}: {self.layer}", table(
            ["output shape", "receptive field", "jump", "field of pixel 0 starts at"],
            [[str(self.out_shape), "x".join(map(str, self.rf)) if self.rf is not None else self.note,
              "x".join(map(str, self.jump)) if self.jump is not None else "-",
              str(self.start) if self.start is not None else "-"]]))


@dataclass(frozen=True, eq=False)
class ReceptiveField(Result):
    """Receptive field of every layer and, for a chosen pixel, the input region it sees.

    Attributes:
        input_shape: batched input shape.  rows: one :class:`ReceptiveRow` per layer, after a
            row 0 for the input itself.
        layer: the 1-based layer of the chosen pixel (None without a pixel).
        pixel: the chosen output pixel (0-based spatial position) or None.
        exact: per spatial axis, the sorted input indices that can influence the pixel.
        chain: for every top-level layer up to ``layer`` (and 0 for the input), the indices
            per axis of that layer's output that lie on the way to the pixel.
    """

    input_shape: tuple[int, ...]
    rows: tuple[ReceptiveRow, ...]
    layer: int | None
    pixel: tuple[int, ...] | None
    exact: tuple[np.ndarray, ...] | None
    chain: tuple[tuple[int, tuple[np.ndarray, ...]], ...] | None

    @property
    def region(self) -> tuple[slice, ...] | None:
        """The bounding box of ``exact`` as slices of the input's spatial axes."""
        if self.exact is None:
            return None
        return tuple(slice(int(a[0]), int(a[-1]) + 1) for a in self.exact)

    @property
    def mask(self) -> np.ndarray | None:
        """Boolean array over the input's spatial axes: True where the pixel can look."""
        if self.exact is None:
            return None
        mask = np.zeros(self.input_shape[2:], dtype=bool)
        mask[np.ix_(*self.exact)] = True
        return mask

    def text(self) -> str:
        """The per-layer table and, for a pixel, the region it sees."""
        header = ["#", "layer", "output shape", "receptive field", "jump", "field of pixel 0 starts at"]
        table = [header]
        for r in self.rows:
            table.append([str(r.index), r.layer if r.index == 0 else f"{r.name}: {r.layer}",
                          "(" + ", ".join(map(str, r.out_shape)) + ")",
                          "x".join(map(str, r.rf)) if r.rf is not None else r.note,
                          "x".join(map(str, r.jump)) if r.jump is not None else "-",
                          str(tuple(r.start)) if r.start is not None else "-"])
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines = ["Receptive fields (rf_out = rf_in + d*(k-1)*jump_in, jump_out = jump_in*s, "
                 "start_out = start_in - p_before*jump_in)"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
        if self.pixel is not None and self.exact is not None:
            assert self.layer is not None and self.region is not None and self.chain is not None
            row = self.rows[self.layer]
            sizes = "x".join(str(int(a[-1] - a[0] + 1)) for a in self.exact)
            count = math.prod(len(a) for a in self.exact)
            lines.append(
                f"output pixel {self.pixel} of layer {self.layer} ({row.layer}) sees the input "
                f"region x[..., {_slices(self.region)}] ({sizes}; {count} entries can influence it)"
            )
            if any(len(a) != a[-1] - a[0] + 1 for a in self.exact):
                lines.append("  (with gaps: " + "; ".join(f"axis {i + 1}: {_indices(a)}"
                                                          for i, a in enumerate(self.exact)) + ")")
            for index, sets in self.chain[1:-1]:
                lines.append(f"  via layer {index} output: [..., {', '.join(_indices(a) for a in sets)}]")
        return "\n".join(lines)

    _html = "text_html"
    _html_title = "Receptive fields"

    def __repr__(self) -> str:
        last = self.rows[-1]
        rf = "x".join(map(str, last.rf)) if last.rf is not None else last.note
        pixel = f", pixel {self.pixel} of layer {self.layer}" if self.pixel is not None else ""
        return f"ReceptiveField({len(self.rows) - 1} layers, last receptive field {rf}{pixel})"


def _slices(region: Sequence[slice]) -> str:
    return ", ".join(f"{s.start}:{s.stop}" for s in region)


def _indices(a: np.ndarray) -> str:
    if len(a) == a[-1] - a[0] + 1:
        return f"{a[0]}:{a[-1] + 1}"
    shown = ", ".join(str(int(v)) for v in a[:8])
    return "{" + shown + (", ..." if len(a) > 8 else "") + "}"


def receptive_field(model: Any, input_shape: Sequence[int], pixel: Any = None,
                    layer: int | None = None) -> ReceptiveField:
    """Receptive field size and jump of every layer, and the exact input region of one pixel.

    Args:
        model: a :class:`convscope.nn.Module` (Sequential and Residual unfolded; a Graph's
            pixel region is the union, per axis, over every branch that reaches it).
        input_shape: with or without the batch axis, as :func:`convscope.summary`.
        pixel: a 0-based spatial position (int for 1-D) in the output of ``layer``; None
            for the table only.
        layer: 1-based layer number (as in the table and ``convscope.summary``); None means
            the last layer whose outputs still have a spatial receptive field.

    Returns:
        A :class:`ReceptiveField`.

    Raises:
        ShapeError: a layer does not fit the input (the message names it), or ``pixel`` is
            outside the layer's output.
        ConfigError: ``layer`` out of range, inside a Residual block, or after Flatten/Linear.

    Example:
        A dilated convolution sees its input with gaps:

        >>> from convscope import nn
        >>> rf = receptive_field(nn.Conv1d(1, 1, 3, dilation=2, rng=0), (1, 9), pixel=1)
        >>> rf.rows[-1].rf, rf.exact[0]
        ((5,), array([1, 3, 5]))
    """
    op = "receptive_field"
    shape, _ = batched_input_shape(model, input_shape, op)
    layers = list(walk(model, shape))
    bad = [lay for lay in layers if lay.error is not None]
    if bad:
        raise ShapeError(f"{op}: layer {bad[0].label} does not fit its input of shape "
                         f"{bad[0].in_shape}: {bad[0].error}")
    n_spatial = len(shape) - 2
    if n_spatial < 1:
        raise ShapeError(f"{op}: the input must have spatial axes, (C, *spatial) or (N, C, *spatial); "
                         f"got shape {tuple(shape)}.")
    top = [lay for lay in layers if not lay.nested]
    rows = [ReceptiveRow(0, "", "input", shape, (1,) * n_spatial, (1,) * n_spatial, (0,) * n_spatial)]
    for lay, step in zip(layers, field_steps(layers, n_spatial)):
        assert lay.out_shape is not None  # walk was given the input shape and every layer fits
        rows.append(ReceptiveRow(lay.index, lay.name, one_line(lay.module), lay.out_shape, step.rf,
                                 step.jump, step.start, step.note))
    if pixel is None and layer is None:
        return ReceptiveField(shape, tuple(rows), None, None, None, None)
    spatial_top = [lay for lay in top if rows[lay.index].jump is not None]
    if layer is None:
        if not spatial_top:
            raise ConfigError(f"{op}: no layer of this model keeps a spatial receptive field.")
        chosen = spatial_top[-1]
    else:
        if not isinstance(layer, int) or isinstance(layer, bool) or not 1 <= layer <= len(layers):
            raise ConfigError(f"{op}: layer must be a layer number from 1 to {len(layers)} (as in the "
                              f"table); got {layer!r}.")
        chosen = layers[layer - 1]
        if chosen.nested:
            raise ConfigError(f"{op}: layer {chosen.label} is inside a Residual block; choose the "
                              f"Residual's own row or a layer outside it.")
        if rows[chosen.index].jump is None:
            raise ConfigError(f"{op}: layer {chosen.label} has no spatial receptive field "
                              f"({rows[chosen.index].note}); choose an earlier layer.")
    assert chosen.out_shape is not None
    out_spatial = chosen.out_shape[2:]
    if pixel is None:
        pixel = tuple(o // 2 for o in out_spatial)
    pix = (int(pixel),) if np.ndim(pixel) == 0 else tuple(int(v) for v in pixel)
    if len(pix) != len(out_spatial) or any(not 0 <= v < o for v, o in zip(pix, out_spatial)):
        raise ShapeError(f"{op}: pixel must be a 0-based position inside the spatial output "
                         f"{tuple(out_spatial)} of layer {chosen.label}; got {pixel!r}.")
    chain = _chain_back(layers, top[: top.index(chosen) + 1], tuple(np.array([v]) for v in pix))
    return ReceptiveField(shape, tuple(rows), chosen.index, pix, chain[0][1], chain)


def _chain_back(layers: Sequence[Any], top: Sequence[Any],
                sets: tuple[np.ndarray, ...]) -> tuple[tuple[int, tuple[np.ndarray, ...]], ...]:
    """``((0, input indices), ..., (top[-1].index, sets))``: the indices of every layer's output
    on the way to ``sets`` of the last layer of ``top``, walked back along each record's
    ``inputs`` (a graph's branches meet at a merge and fan out: the union over the paths)."""
    nested = {lay.name for lay in layers if lay.nested}
    by_name = {lay.name: lay for lay in top}
    reached: dict[str, tuple[np.ndarray, ...]] = {top[-1].name: sets}
    seen: tuple[np.ndarray, ...] | None = None     # indices of the model's input
    chain = []
    for lay in reversed(top):
        out = reached.pop(lay.name, None)
        if out is None:                            # not on the way to the pixel
            continue
        chain.append((lay.index, out))
        through = out if lay.effect == "merge" else input_indices(lay, out)
        for ref in lay.inputs:
            name = ref.split(":")[0]               # piece k of a Split: its layer's output
            if name in nested:                     # a Residual's block: input_indices went through it
                continue
            if name in by_name:                    # a broadcast input (size 1) is read at 0
                size = by_name[name].out_shape[2:]
                fit = tuple(a[a < n] if n > 1 else np.zeros(1, np.int64) for a, n in zip(through, size))
                old = reached.get(name)
                reached[name] = fit if old is None else tuple(np.union1d(a, b) for a, b in zip(old, fit))
            else:
                seen = through if seen is None else tuple(np.union1d(a, b) for a, b in zip(seen, through))
    assert seen is not None, "the pixel's layer is reached from the model's input"
    chain.append((0, seen))
    return tuple(reversed(chain))
