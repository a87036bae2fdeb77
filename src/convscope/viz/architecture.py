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

from ..nn import Module, walk
from ..nn.summary import summary
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


def plot_architecture(model: Module, input_shape: Sequence[int], title: str | None = None) -> Figure:
    """Draw ``model`` as the notes' typical-architecture figure (9.3), for inputs of ``input_shape``.

    Args:
        model: a :class:`convscope.nn.Module`.
        input_shape: as :func:`convscope.summary` takes it (with or without the batch axis).
        title: the figure title.

    Returns:
        A :class:`~convscope.viz.Figure`: one box per layer output (the input first), arrows
        between, and under each box the layer, its output shape, parameters and receptive field.

    Raises:
        ShapeError: a layer does not fit (as :func:`convscope.summary`).
    """
    s = summary(model, input_shape)
    kinds_by_index = {rec.index: rec.kind for rec in walk(model)}
    boxes: list[tuple[str, str, tuple[int, ...], int, tuple[int, ...] | None, str]] = [
        ("input", "input", s.input_shape, 0, (1,) * max(len(s.input_shape) - 2, 0), "")]
    for r in s.rows:
        boxes.append((_kind(kinds_by_index.get(r.index, "module")), r.layer, r.output_shape, r.params,
                      r.receptive_field, r.name))
    spatial = [math.prod(b[2][2:]) if len(b[2]) > 2 else 1 for b in boxes]
    channels = [b[2][1] if len(b[2]) > 1 else 1 for b in boxes]
    big_s, big_c = max(spatial), max(channels)
    c = Canvas(cell_in=0.5)
    col_w = 4.4
    row_h = 10.5
    kinds = [b[0] for b in boxes]
    for i, (kind, layer, shape, params, rf, _name) in enumerate(boxes):
        row, col = divmod(i, _PER_ROW)
        x = col * col_w
        y0 = row * row_h
        flat = len(shape) <= 2
        height = 1.0 + 3.4 * math.sqrt(spatial[i] / big_s) if not flat else 0.8 + 3.0 * min(1.0, shape[-1] / 512)
        depth = 0.4 + 1.6 * math.log2(1 + channels[i]) / math.log2(1 + big_c) if not flat else 0.5
        cx = x + col_w / 2
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
        if i + 1 < len(boxes) and (i + 1) % _PER_ROW:
            c.arrow(cx + depth / 2 + 0.45, y0 + 3.2, cx + col_w - 0.95, y0 + 3.2, lw=1.2)
        elif i + 1 < len(boxes):
            c.text(cx + depth / 2 + 0.9, y0 + 3.2, "\u21b5", scale=1.3, color="#555555")
    y = (len(boxes) - 1) // _PER_ROW * row_h + 9.3
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


