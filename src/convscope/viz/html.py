"""The HTML explainer: one self-contained page that walks an input through a model.

:func:`explain_model_html` writes ONE ``.html`` file, with every picture inline (PNG
``data:`` URIs drawn by :mod:`convscope.viz.image`, no matplotlib needed) and its style sheet
and script inline, so it opens offline in any browser. For every layer it shows

* the input and output shapes, and for window layers the output size with both forms of
  Key Equation 48 per axis;
* the parameter count with its formula, beside a fully-connected layer's (weight sharing);
* the receptive field and jump;
* every channel's feature map (a click on a pixel shows its receptive field on the input and,
  for a convolution, the window ``v``, the filter ``f`` and ``y = f . v + f_0`` computed on
  the page from the embedded numbers, next to the value convscope's forward computed);
* for convolutions, the filters (one row per filter, one column per input channel);
* at the end, the softmax probabilities of the classes;

and a small playground for padding, stride, kernel size and dilation with the output-size
formula. The numbers the page computes with (each convolution's padded input, the shown
filters and biases, the shown outputs) are embedded bit-exactly as little-endian float bytes
in base64 inside a JSON block. Big models are capped (channels per layer, layers, embedded
numbers); the page says what was left out.

Example:
    >>> import tempfile, pathlib
    >>> from convscope import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
    ...                       nn.Flatten(), nn.Linear(2 * 3 * 3, 3, rng=1))
    >>> page = explain_model_html(model, np.eye(6), pathlib.Path(tempfile.mkdtemp()) / "m.html")
    >>> text = page.read_text()
    >>> "http://" in text or "https://" in text, text.count('class="fmap"') >= 2 * 3
    (False, True)
"""

from __future__ import annotations

import html
import json
import numbers
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ArgumentTypeError, ConfigError
from ..files import write_text
from ..explain import explain_model_shapes, receptive_field
from ..nn import Module
from ..nn.summary import summary
from ..nn.walk import one_line
from ._html_assets import CSS, JS
from ._html_parts import (
    INPUT_PX,
    MAP_PX,
    Budget,
    b64,
    conv_data,
    feature_maps,
    filters_html,
    img,
    input_html,
    map_cmap,
    playground,
    positive,
    probabilities,
    shape_lines,
)
from .activations import LayerActivation, forward_layers, name_suffix as _name_text
from .fields import receptive_boxes
from .figure import HTMLPage
from .image import colorize

__all__ = ["explain_model_html", "explain_model_page"]

_PAGE_ONLY = object()     # explain_model_page: build the page, write no file


def explain_model_page(model: Module, x: Any, **options: Any) -> HTMLPage:
    """The page of :func:`explain_model_html` as an :class:`~convscope.viz.HTMLPage` (no file written).

    It shows inline in Jupyter (in a frame) and ``.save("report.html")`` writes it. ``options``
    are those of :func:`explain_model_html` (``class_names``, ``max_channels``, ``title``, ...).
    """
    return explain_model_html(model, x, _PAGE_ONLY, **options)

def explain_model_html(model: Module, x: Any, path: Any, class_names: Sequence[Any] | None = None,
                       max_channels: int = 64, max_layers: int = 60, max_numbers: int = 300_000,
                       title: str | None = None, input_note: str | None = None) -> Path:
    """Write a self-contained HTML page that walks ``x`` through ``model`` layer by layer.

    Args:
        model: a :class:`convscope.nn.Module` with 1-D or 2-D spatial inputs.
        x: one sample: ``(C, *spatial)``, ``(1, C, *spatial)`` or ``(H, W)`` for a one-channel
            model; cast to the model's dtype (it is what the model sees, so normalise it as
            in training first).
        path: the ``.html`` file to write (parent folders are created). For the page as an
            object (inline in Jupyter, ``.save(path)``) use :func:`explain_model_page`.
        class_names: names of the model's outputs (default ``0, 1, ...``).
        max_channels: feature maps (and embedded numbers) per layer; more are left out and
            the page says so.
        max_layers: layers shown; later layers are left out (the probabilities still show).
        max_numbers: cap on the numbers embedded for the page's own arithmetic (each
            convolution's padded input and shown filters, each layer's shown outputs);
            layers past the cap show pictures only.
        title: the page title (default names the model and the input shape).
        input_note: a sentence shown under the title (e.g. how the input was normalised).

    Returns:
        ``path`` as a Path.

    Raises:
        ShapeError: ``x`` does not fit the model (the layer is named).
        ConfigError: 3-D inputs, a bad cap, or ``class_names`` of the wrong length.
    """
    max_channels = positive(max_channels, "max_channels")
    max_layers = positive(max_layers, "max_layers")
    if isinstance(max_numbers, bool) or not isinstance(max_numbers, numbers.Integral) or max_numbers < 0:
        raise ConfigError(f"explain_model_html: max_numbers must be a non-negative int; got {max_numbers!r}.")
    if path is not _PAGE_ONLY and (not isinstance(path, (str, Path)) or not str(path)):
        raise ArgumentTypeError(f"explain_model_html: path must be a file name; got {path!r}.")
    xb, acts = forward_layers(model, x, "explain_model_html")
    nd = xb.ndim - 2
    if nd not in (1, 2):
        raise ConfigError(f"explain_model_html: the page draws 1-D and 2-D inputs; x as a batch has shape "
                          f"{tuple(xb.shape)} ({nd} spatial axes).")
    walk = _Walk(model, xb, acts, max_channels, int(max_numbers))
    cards, layer_data = [], []
    for act in acts[:max_layers]:
        card, entry = walk.layer(act)
        cards.append(card)
        layer_data.append(entry)
    notes = []
    if len(acts) > max_layers:
        notes.append(f"Only the first {max_layers} of {len(acts)} layers are shown (max_layers).")
    if walk.capped:
        notes.append(f"Layers {', '.join(map(str, walk.capped))}: only the first {max_channels} channels "
                     f"are drawn (max_channels).")
    if walk.unembedded:
        notes.append(f"Layers {', '.join(map(str, walk.unembedded))}: some numbers are not embedded (the "
                     f"cap of {max_numbers:,} numbers is reached), so clicks there show pictures and "
                     f"receptive fields only.")
    data = {"spatial_ndim": nd, "input_shape": list(xb.shape), "dtype": str(xb.dtype),
            "eps": float(np.finfo(xb.dtype).eps), "layers": layer_data}
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")   # no "</script>" inside
    total = sum(r.params for r in walk.rows.values())
    heading = title or f"convscope explainer: {type(model).__name__} on an input of shape {tuple(xb.shape)}"
    note_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    page = _PAGE.format(
        title=html.escape(heading), css=CSS, js=JS, blob=blob, notes=note_html,
        facts=f"{len(acts)} layers, {total:,} parameters, {html.escape(str(xb.dtype))}",
        input_note=f"<p>{html.escape(input_note)}</p>" if input_note else "",
        input_shape=tuple(xb.shape), inputs=input_html(xb, MAP_PX * 2, False),
        side_inputs=input_html(xb, INPUT_PX, True), cards="".join(cards),
        probabilities=probabilities(acts, class_names), playground=playground())
    if path is _PAGE_ONLY:
        return HTMLPage(page, heading)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_text(p, page, op="explain_model_html")


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style></head>
<body>
<header><h1>{title}</h1>
<p>{facts}. Each layer below shows its shapes, its parameter formula and every channel's feature map.
Click a feature-map pixel: the panel on the right shows its receptive field on the input (orange box)
and, for a convolution, the window, the filter and the dot product y = f . v + f_0 computed on this page
next to convscope's own value.</p>
{input_note}
</header>
<div class="wrap"><main>
{notes}
<section class="card" id="input"><h2><span class="idx">Input</span> x {input_shape}</h2>
{inputs}</section>
{cards}
<section class="card" id="probabilities"><h2>Class probabilities</h2>{probabilities}</section>
{playground}
</main>
<aside><h2 style="font-size:16px;margin:2px 0 8px">Input and receptive field</h2>
{side_inputs}
<div id="detail"><p class="muted">Click a pixel of any feature map.</p></div></aside></div>
<div id="hover"></div>
<script type="application/json" id="convscope-data">{blob}</script>
<script>{js}</script>
</body></html>
"""


class _Walk:
    """Builds one layer's card (HTML) and its entry in the embedded data, in order."""

    def __init__(self, model: Module, xb: np.ndarray, acts: list[LayerActivation], max_channels: int,
                 max_numbers: int) -> None:
        self.rows = {r.index: r for r in summary(model, xb.shape).rows}
        self.derivations = {r[0]: r[5] for r in explain_model_shapes(model, xb.shape).rows}
        self.fields = {r.index: r for r in receptive_field(model, xb.shape).rows}
        self.boxes = receptive_boxes(acts, xb.shape[2:])
        self.budget = Budget(max_numbers)
        self.dtype = xb.dtype
        self.max_channels = max_channels
        self.capped: list[int] = []
        self.unembedded: list[int] = []

    def _meta(self, act: LayerActivation) -> str:
        row, rf = self.rows[act.index], self.fields[act.index]
        fc = (f" &nbsp; (a fully-connected layer with the same input and output sizes: "
              f"{html.escape(row.fc_formula)})" if row.fc_params is not None else "")
        meta = [f'<p class="meta">shape <b>{tuple(act.x.shape)}</b> &rarr; <b>{tuple(act.y.shape)}</b></p>',
                f'<p class="meta">parameters: <b>{html.escape(row.formula)}</b>{fc}</p>']
        if rf.rf is not None and rf.jump is not None:
            meta.append(f'<p class="meta">receptive field {"x".join(map(str, rf.rf))} input pixels, jump '
                        f'{"x".join(map(str, rf.jump))}</p>')
        lines = shape_lines(act, self.derivations)
        if lines:
            meta.append("<details><summary>output size, Key Equation 48</summary><pre>"
                        + html.escape("\n".join(lines)) + "</pre></details>")
        return "".join(meta)

    def layer(self, act: LayerActivation) -> tuple[str, dict[str, Any]]:
        rf, box = self.fields[act.index], self.boxes[act.index]
        entry: dict[str, Any] = {
            "index": act.index, "name": _name_text(act.name), "repr": one_line(act.module),
            "nested": act.nested, "in_shape": list(act.x.shape), "out_shape": list(act.y.shape),
            "rf": None if rf.rf is None or rf.jump is None else list(rf.rf),
            "jump": None if rf.jump is None else list(rf.jump),
            "start": None if rf.start is None else list(rf.start),
            "field": None if box is None else [[first.tolist(), last.tolist()] for first, last in box],
            "values": None, "conv": None,
        }
        body = [self._meta(act)]
        if act.spatial:
            maps, shown = feature_maps(act, self.max_channels)
            body.append(maps)
            if len(shown) < act.y.shape[1]:
                self.capped.append(act.index)
            values = np.asarray(act.y[0, shown])
            if self.budget.take(values.size):
                entry["values"] = {"channels": shown, "data": b64(values, self.dtype)}
            else:
                self.unembedded.append(act.index)
            if act.module.layer_kind == "conv":
                entry["conv"] = conv_data(act, shown, self.budget, self.dtype)
                if entry["conv"]["padded"] is None and act.index not in self.unembedded:
                    self.unembedded.append(act.index)
                body.append(filters_html(act.module))
        else:
            v = np.asarray(act.y[0], dtype=np.float64).ravel()
            picture = img(colorize(v, map_cmap(v)), v.shape, 400, title=f"layer {act.index} output")
            body.append(f"<figure>{picture}{v.size} values, {v.min():.4g} .. {v.max():.4g}</figure>")
        where = ' <span class="muted">(inside a Residual block)</span>' if act.nested else ""
        card = (f'<section class="card layer{" nested" if act.nested else ""}" id="layer-{act.index}" '
                f'data-layer="{act.index}"><h2><span class="idx">Layer {act.index}</span>'
                f'{html.escape(_name_text(act.name))}: {html.escape(one_line(act.module))}{where}</h2>'
                f'{"".join(body)}</section>')
        return card, entry
