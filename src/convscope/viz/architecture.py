"""The typical architecture of a CNN (notes 9.3) drawn for any model: layers as boxes with shapes.

:func:`plot_architecture` draws the stack of layers left to right, as the notes' figure of a
typical CNN does: each tensor a box whose height grows with its spatial size and whose depth
grows with its channels, labelled with the layer, its output shape (channels first, the notes'
``(n x n x m)`` written ``m x n x n``), its parameter count and the receptive field of one
output pixel. Every number comes from :func:`convscope.summary`.

Example:
    >>> from convscope import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    ...                       nn.Linear(36, 10, rng=1))
    >>> plot_architecture(model, (1, 8, 8)).title
    'The architecture of the model (notes 9.3): conv-relu-pool, then fully connected'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..nn import Module, walk
from ..nn.summary import summary
from ._branches import Block, Item, branch_layout, predecessors
from ._canvas import Canvas
from .figure import Figure

__all__ = ["plot_architecture"]

_KIND_COLORS = {
    "conv": "#9ecae1", "pool": "#a1d99b", "act": "#fdd0a2", "linear": "#cbc9e2", "flatten": "#d9d9d9",
    "norm": "#fcbba1", "other": "#eeeeee", "input": "#ffffff",
}
_PER_ROW = 11


def _kind(layer_kind: str) -> str:
    """The colour family of a layer, from its ``layer_kind`` (the layer protocol)."""
    if layer_kind == "conv":
        return "conv"
    if layer_kind.endswith("_pool"):
        return "pool"
    if layer_kind in ("relu", "sigmoid", "tanh", "leaky_relu", "softmax"):
        return "act"
    if layer_kind in ("linear", "flatten"):
        return layer_kind
    if layer_kind == "batch_norm":
        return "norm"
    return "other"


def _shape_text(shape: Sequence[int]) -> str:
    return " x ".join(str(v) for v in shape[1:]) if len(shape) > 1 else str(shape[0])


def _units(items: list[Item]) -> list[list[Item]]:
    """Top-level items in groups that stay on one row: a fork with the block that follows it."""
    units: list[list[Item]] = []
    for item in items:
        if isinstance(item, Block) and units and units[-1][-1] == item.fork:
            units[-1].append(item)
        else:
            units.append([item])
    return units


def _place(items: Sequence[Item], col: int, lane: int, pos: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """Columns and lanes for ``items`` from ``(col, lane)``: a block's branches one lane each, below
    one another, its merge after the widest; an identity branch takes no lane (it is drawn above).
    Returns (columns used, lanes used)."""
    c, lanes = col, 1
    for item in items:
        if not isinstance(item, Block):
            pos[item] = (c, lane)
            c += 1
            continue
        width, below = 0, lane
        for branch in item.branches:
            if branch:
                w, h = _place(branch, c, below, pos)
                width, below = max(width, w), below + h
        lanes = max(lanes, below - lane)
        pos[item.merge] = (c + width, lane)
        c += width + 1
    return c - col, lanes


def plot_architecture(model: Module, input_shape: Sequence[int], title: str | None = None) -> Figure:
    """Draw ``model`` as the notes' typical-architecture figure (9.3), for inputs of ``input_shape``.

    A graph's blocks (a ResNet block, a fire module, an SE gate) are drawn with their branches
    in lanes one under the other, from the fork to the merge; an identity shortcut is the line
    above the main path from the fork to the merge (:mod:`convscope.viz._branches`).

    Args:
        model: a :class:`convscope.nn.Module`.
        input_shape: as :func:`convscope.summary` takes it (with or without the batch axis).
        title: the figure title.

    Returns:
        A :class:`~convscope.viz.Figure`: one box per layer output (the input first), arrows
        for what each layer reads, and under each box the layer, its output shape, parameters
        and receptive field.

    Raises:
        ShapeError: a layer does not fit (as :func:`convscope.summary`).
    """
    s = summary(model, input_shape)
    records = list(walk(model, s.input_shape))
    kinds_by_index = {rec.index: rec.kind for rec in records}
    preds = predecessors(records)
    boxes: dict[int, tuple[Any, ...]] = {
        0: ("input", "input", s.input_shape, 0, (1,) * max(len(s.input_shape) - 2, 0), "")}
    for r in s.rows:
        boxes[r.index] = (_kind(kinds_by_index.get(r.index, "module")), r.layer, r.output_shape, r.params,
                          r.receptive_field, r.name)
    # rows of units (a fork stays with its block), at most _PER_ROW columns unless one unit is wider
    pos: dict[int, tuple[int, int, int]] = {}          # layer -> (row, column, lane)
    row_lanes: list[int] = []
    col = 0
    for unit in _units([0, *branch_layout(records)]):
        here: dict[int, tuple[int, int]] = {}
        width, lanes = _place(unit, 0, 0, here)
        if not row_lanes or (col and col + width > _PER_ROW):
            row_lanes.append(1)
            col = 0
        for i, (c_i, lane) in here.items():
            pos[i] = (len(row_lanes) - 1, col + c_i, lane)
        row_lanes[-1] = max(row_lanes[-1], lanes)
        col += width
    spatial = {i: math.prod(b[2][2:]) if len(b[2]) > 2 else 1 for i, b in boxes.items()}
    channels = {i: b[2][1] if len(b[2]) > 1 else 1 for i, b in boxes.items()}
    big_s, big_c = max(spatial.values()), max(channels.values())
    c = Canvas(cell_in=0.5)
    col_w = 4.4
    row_h = 10.5
    row_top = [sum(row_lanes[:k]) * row_h for k in range(len(row_lanes))]
    kinds = [b[0] for b in boxes.values()]
    geo: dict[int, tuple[float, float, float, float]] = {}     # layer -> (centre x, lane top, depth, height)
    for i, (kind, layer, shape, params, rf, _name) in boxes.items():
        if i not in pos:
            continue
        row, column, lane = pos[i]
        y0 = row_top[row] + lane * row_h
        flat = len(shape) <= 2
        height = 1.0 + 3.4 * math.sqrt(spatial[i] / big_s) if not flat else 0.8 + 3.0 * min(1.0, shape[-1] / 512)
        depth = 0.4 + 1.6 * math.log2(1 + channels[i]) / math.log2(1 + big_c) if not flat else 0.5
        cx = column * col_w + col_w / 2
        geo[i] = (cx, y0, depth, height)
        top = y0 + 3.2 - height / 2
        fill = _KIND_COLORS[kind]
        # a box with a little perspective: front face and an offset back face
        off = 0.35
        c.rect(cx - depth / 2 + off, top - off, depth, height, edge="#777777", lw=1.0, fill=fill, z=2.4)
        c.rect(cx - depth / 2, top, depth, height, edge="#444444", lw=1.4, fill=fill, z=2.6)
        c.text(cx, y0 + 6.0, layer.split("(")[0] if kind != "input" else "input", ha="center", scale=0.9,
               weight="bold")
        c.text(cx, y0 + 6.7, _shape_text(shape), ha="center", scale=0.9)
        details = []
        if kind != "input":
            details.append(f"{params:,} params" if params else "no parameters")
        if rf is not None and kind != "input" and len(rf):
            details.append("rf " + "x".join(map(str, rf)))
        elif kind in ("linear",) or (rf is None and kind != "input"):
            details.append("rf: whole input")
        for j, line in enumerate(details):
            c.text(cx, y0 + 7.4 + 0.65 * j, line, ha="center", scale=0.8, color="#444444")
    _edges(c, preds, pos, geo, col_w)
    y = sum(row_lanes) * row_h - 1.2
    fc_count = sum(r.fc_params or 0 for r in s.rows)
    c.text(0.0, y, f"total {s.total_params:,} parameters; fully-connected layers with the same sizes would need "
           f"{fc_count:,} (weight sharing, Definition 42); rf = receptive field of one output pixel",
           scale=0.8, color="#444444")
    legend = [(name, {"fill": _KIND_COLORS[key]}) for key, name in
              (("conv", "convolution"), ("act", "activation"), ("pool", "pooling"), ("norm", "normalisation"),
               ("flatten", "flatten"), ("linear", "fully connected"), ("other", "other")) if key in kinds]
    c.legend(0.0, y + 0.6, legend)
    default = "The architecture of the model (notes 9.3)"
    if "conv" in kinds and "linear" in kinds:
        default += ": conv-relu-pool, then fully connected"
    return c.finish(title or default, f"input {tuple(s.input_shape)} -> output {tuple(s.output_shape)}; "
                    f"shapes channels first (the notes' n x n x m is written m x n x n)")




def _edges(c: Canvas, preds: dict[int, list[int]], pos: dict[int, tuple[int, int, int]],
           geo: dict[int, tuple[float, float, float, float]], col_w: float) -> None:
    """An arrow for every input of every layer: straight to the next box, down into a branch's lane,
    up into the merge, over the top for an identity shortcut, and a "from layer N" note across rows."""
    for i in sorted(pos):
        if i == 0:
            continue
        row, column, lane = pos[i]
        cx, y0, depth, _height = geo[i]
        yc = y0 + 3.2
        far: list[int] = []                             # inputs from earlier rows: one note for all
        for p in dict.fromkeys(preds.get(i, [])):
            if p not in pos:
                continue
            p_row, p_col, p_lane = pos[p]
            px, p_y0, p_depth, p_height = geo[p]
            pyc = p_y0 + 3.2
            if p_row != row:
                if p_col == max(col for (r, col, _l) in pos.values() if r == p_row) and column == 0 and p_lane == 0:
                    c.text(px + p_depth / 2 + 0.9, pyc, "\u21b5", scale=1.3, color="#555555")
                else:
                    far.append(p)
                continue
            if p_lane == lane and p_col == column - 1:
                c.arrow(px + p_depth / 2 + 0.45, pyc, cx - depth / 2 - 0.5, yc, lw=1.2)
            elif p_lane == lane:                        # a shortcut over the boxes between
                c.line([(px, pyc - p_height / 2 - 0.45), (px, y0 + 0.3), (cx, y0 + 0.3)], lw=1.2)
                c.arrow(cx, y0 + 0.3, cx, yc - _height / 2 - 0.4, lw=1.2)
            elif p_lane < lane:                         # the fork into a lower branch
                xb = (p_col + 1) * col_w
                c.line([(px + p_depth / 2 + 0.45, pyc), (xb, pyc), (xb, yc)], lw=1.2)
                c.arrow(xb, yc, cx - depth / 2 - 0.5, yc, lw=1.2)
            else:                                       # a lower branch up into its merge
                xb = column * col_w + 0.6
                c.line([(px + p_depth / 2 + 0.45, pyc), (xb, pyc)], lw=1.2)
                c.arrow(xb, pyc, xb, yc + 0.05, lw=1.2)
        if far:                                         # a DenseNet concat reads several earlier rows
            note = f"from layer {far[0]}" if len(far) == 1 else f"from layers {', '.join(map(str, far))}"
            c.text(cx, y0 + 0.3, note, ha="center", scale=0.75, color="#555555")
