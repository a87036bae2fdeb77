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

import base64
import html
import json
import numbers
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import functional as F
from ..errors import ArgumentTypeError, ConfigError
from ..explain import explain_model_shapes, receptive_field
from ..explain._layers import one_line
from ..explain.derive import axis_size
from ..functional.windows import pad
from ..nn import Module
from ..nn.activation import Softmax
from ..nn.conv import _ConvNd
from ..nn.summary import summary
from ._html_assets import CSS, JS
from .activations import LayerActivation, forward_layers, name_suffix as _name_text
from .fields import receptive_boxes
from .image import colorize, data_uri, value_range

__all__ = ["explain_model_html"]

_MAP_PX = 96        # displayed size of the longer side of a feature map
_INPUT_PX = 224     # displayed size of the input in the side panel
_FILTER_PX = 30     # displayed size of one filter tile
_MAX_FILTER_ROWS = 16
_MAX_FILTER_COLS = 8


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"explain_model_html: {name} must be a positive int; got {value!r}.")
    return int(value)


def _scale(shape: Sequence[int], target: int) -> tuple[int, int]:
    """Displayed (width, height) in CSS pixels: whole-number zoom, longer side about ``target``."""
    h, w = (1, shape[0]) if len(shape) == 1 else (shape[0], shape[1])
    zoom = max(1, round(target / max(h, w)))
    if len(shape) == 1:
        return w * zoom, max(16, min(zoom, 32))
    return w * zoom, h * zoom


def _b64(a: np.ndarray, dtype: np.dtype) -> dict[str, Any]:
    """A JSON-safe, bit-exact array: little-endian bytes in base64."""
    code = "f8" if np.dtype(dtype) == np.float64 else "f4"
    raw = np.ascontiguousarray(a, dtype="<" + code).tobytes()
    return {"dtype": code, "shape": list(a.shape), "b64": base64.b64encode(raw).decode("ascii")}


class _Budget:
    """How many numbers may still be embedded."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, count: int) -> bool:
        if count > self.left:
            return False
        self.left -= count
        return True


def _img(rgb: np.ndarray, shape: Sequence[int], target: int, cls: str = "", attrs: str = "",
         title: str = "") -> str:
    w, h = _scale(shape, target)
    c = f' class="{cls}"' if cls else ""
    t = f' title="{html.escape(title)}"' if title else ""
    return f'<img{c} src="{data_uri(rgb)}" width="{w}" height="{h}" alt="{html.escape(title)}"{t}{attrs}>'


def _map_cmap(a: np.ndarray) -> str:
    return "diverging" if np.nanmin(a) < 0 else "sequential"


def _input_html(xb: np.ndarray, target: int, with_rf: bool) -> str:
    """The input's channels (and an RGB composite for 3 channels), optionally with overlays."""
    parts = []
    x = np.asarray(xb[0], dtype=np.float64)
    box = '<div class="rf-box"></div>' if with_rf else ""
    if x.shape[0] == 3 and x.ndim == 3:
        lo, hi = float(x.min()), float(x.max())
        rgb = (x if lo >= 0 and hi <= 1 else (x - lo) / ((hi - lo) or 1.0)).transpose(1, 2, 0)
        rgb8 = np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
        parts.append(f'<figure><div class="rf-host">{_img(rgb8, x.shape[1:], target, "inmap", title="input (RGB)")}'
                     f'{box}</div><figcaption>RGB</figcaption></figure>')
    for c in range(x.shape[0] if (x.shape[0] != 3 or not with_rf) else 0):
        rgb8 = colorize(x[c], "gray")
        parts.append(f'<figure><div class="rf-host">{_img(rgb8, x.shape[1:], target, "inmap", title=f"input channel {c + 1}")}'
                     f'{box}</div><figcaption>channel {c + 1}</figcaption></figure>')
    return '<div class="maps">' + "".join(parts) + "</div>"


def _feature_maps(act: LayerActivation, max_channels: int) -> tuple[str, list[int]]:
    y = np.asarray(act.y[0], dtype=np.float64)
    shown = list(range(min(y.shape[0], max_channels)))
    cmap = _map_cmap(y)
    lo, hi = value_range(y, cmap)
    parts = []
    for c in shown:
        rgb = colorize(y[c], cmap, lo, hi)
        attrs = f' data-layer="{act.index}" data-channel="{c}"'
        parts.append(f'<figure><div class="rf-host">'
                     f'{_img(rgb, y.shape[1:], _MAP_PX, "fmap", attrs, f"layer {act.index} channel {c + 1}")}'
                     f'<div class="rf-pix"></div></div><figcaption>{c + 1}</figcaption></figure>')
    scale = (f"colour scale {'blue (negative) - white (0) - red (positive)' if cmap == 'diverging' else 'dark (low) to yellow (high)'}"
             f", {lo:.4g} .. {hi:.4g} for every channel of this layer")
    note = (f'<p class="note">Showing the first {len(shown)} of {y.shape[0]} channels (max_channels).</p>'
            if len(shown) < y.shape[0] else "")
    return (f'<p class="meta">{scale}. Click a pixel.</p>{note}<div class="maps">{"".join(parts)}</div>',
            shown)


def _filters_html(module: _ConvNd) -> str:
    w = np.asarray(module.weight.data, dtype=np.float64)
    c_out, c_in = w.shape[:2]
    rows, cols = min(c_out, _MAX_FILTER_ROWS), min(c_in, _MAX_FILTER_COLS)
    lo, hi = value_range(w, "diverging")
    k = w.shape[2:]
    if len(k) > 2:
        return '<p class="muted">(filters of 3-D convolutions are not drawn)</p>'
    cells = [f'<span></span>'] + [f'<span style="text-align:center">in {c + 1}</span>' for c in range(cols)]
    for f in range(rows):
        cells.append(f"<span>filter {f + 1}</span>")
        for c in range(cols):
            cells.append(_img(colorize(w[f, c], "diverging", lo, hi), k, _FILTER_PX,
                              title=f"filter {f + 1}, input channel {c + 1}"))
    cut = []
    if rows < c_out:
        cut.append(f"first {rows} of {c_out} filters")
    if cols < c_in:
        cut.append(f"first {cols} of {c_in} input channels")
    note = f' <span class="muted">(showing {", ".join(cut)})</span>' if cut else ""
    return (f'<details open><summary>Filters: weight {tuple(w.shape)} = (filters, input channels'
            f'{", " + " x ".join("k" * len(k)) if k else ""}); blue negative, white 0, red positive, '
            f'|w| up to {hi:.4g}{note}</summary>'
            f'<div class="filters" style="grid-template-columns: 70px repeat({cols}, max-content)">'
            f'{"".join(cells)}</div></details>')


def _shape_lines(act: LayerActivation, derivations: dict[int, tuple[str, ...]]) -> list[str]:
    lay = act.layer
    if lay.kind == "window" and not hasattr(act.module, "filter_size"):
        lines: list[str] = []
        for i, (n, k, p, s, d) in enumerate(zip(lay.in_shape[2:], lay.k, lay.p, lay.s, lay.d)):
            lines += list(axis_size(n, k, p, s, d, lay.ceil_mode, axis=i + 1).lines)
        return lines
    return list(derivations.get(act.index, ()))


def _conv_data(act: LayerActivation, shown: list[int], budget: _Budget, dtype: np.dtype) -> dict[str, Any]:
    m = act.module
    lay = act.layer
    x_in = np.asarray(act.x)
    xp = pad(x_in, lay.p, lay.padding_mode)[0]
    w = m.weight.data[shown]
    data: dict[str, Any] = {
        "k": list(lay.k), "s": list(lay.s), "d": list(lay.d), "p_before": [b for b, _ in lay.p],
        "n": list(x_in.shape[2:]), "groups": int(m.groups), "c_in": int(m.in_channels),
        "c_out": int(m.out_channels), "padding_mode": lay.padding_mode, "channels": shown,
        "padded": None, "weights": None, "bias": None, "note": None,
    }
    if not budget.take(xp.size + w.size):
        data["note"] = (f"The numbers of this layer ({xp.size + w.size:,}) are not embedded: the page's "
                        f"cap on embedded numbers (max_numbers) is reached. Pictures only.")
        return data
    data["padded"] = _b64(xp, dtype)
    data["padded_shape"] = list(xp.shape)
    data["weights"] = _b64(w, dtype)
    data["bias"] = None if m.bias is None else [float(v) for v in m.bias.data[shown]]
    return data


def _probabilities(acts: list[LayerActivation], class_names: Any) -> str:
    y = np.asarray(acts[-1].y)
    if y.ndim != 2:
        return (f'<p class="muted">The model output has shape {tuple(y.shape)}, not (1, classes): '
                f"no class probabilities to show.</p>")
    if isinstance(acts[-1].module, Softmax):
        probs, how = np.asarray(y[0], dtype=np.float64), "the model's own Softmax output"
    else:
        probs = np.asarray(F.softmax(np.asarray(y, dtype=np.float64), axis=1)[0])
        how = "softmax of the final scores (the model outputs scores; the softmax is applied here)"
    names = [str(i) for i in range(probs.size)] if class_names is None else [str(c) for c in class_names]
    if len(names) != probs.size:
        raise ConfigError(f"explain_model_html: class_names must name the model's {probs.size} outputs; "
                          f"got {len(names)} names.")
    top = int(np.argmax(probs))
    bars = []
    for i, (name, p) in enumerate(zip(names, probs)):
        bars.append(f'<div class="bar{" top" if i == top else ""}" data-class="{i}" data-p="{float(p)!r}">'
                    f'<span class="lab" title="{html.escape(name)}">{html.escape(name)}</span>'
                    f'<span class="track"><span class="fill" style="width:{100 * p:.2f}%;display:block"></span></span>'
                    f'<span class="num">{p:.4f}</span></div>')
    return (f'<p class="meta">{how}: p_j = exp(z_j) / sum_i exp(z_i). Prediction: '
            f'<b id="prediction" data-class="{top}">{html.escape(names[top])}</b> with probability {probs[top]:.4f}.</p>'
            f'<div class="bars">{"".join(bars)}</div>')


def _playground() -> str:
    inputs = "".join(
        f'<label>{label} <input id="pg-{key}" type="number" min="{lo}" value="{v}"></label>'
        for key, label, lo, v in (("n", "input size n", 1, 7), ("k", "kernel k", 1, 3), ("p", "padding p", 0, 1),
                                  ("s", "stride s", 1, 2), ("d", "dilation d", 1, 1)))
    presets = "".join(f'<button type="button" data-preset="{v}">{html.escape(t)}</button> '
                      for v, t in (("64,2,0,2,1", "notes: n=64, k=2, s=2"), ("5,3,1,1,1", "notes 9.1.18: 5x5, k=3, p=1"),
                                   ("10,3,0,1,1", "notes 1-D: n=10, k=3"), ("9,3,0,1,2", "dilation 2")))
    return (f'<section class="card" id="playground"><h2>Playground: output size (Key Equation 48)</h2>'
            f'<p class="meta">One spatial axis of a convolution or pooling window. Change the numbers; both forms '
            f'of Key Equation 48 are computed (with dilation the window spans d(k-1)+1 entries, used for k).</p>'
            f'<div class="pg-inputs">{inputs}</div><div>{presets}</div>'
            f'<p>output size: <b id="pg-out" data-value="">?</b></p><div id="pg-result"></div>'
            f'<div id="pg-diagram"></div></section>')


def explain_model_html(model: Module, x: Any, path: Any, class_names: Sequence[Any] | None = None,
                       max_channels: int = 64, max_layers: int = 60, max_numbers: int = 300_000,
                       title: str | None = None, input_note: str | None = None) -> Path:
    """Write a self-contained HTML page that walks ``x`` through ``model`` layer by layer.

    Args:
        model: a :class:`convscope.nn.Module` with 1-D or 2-D spatial inputs.
        x: one sample: ``(C, *spatial)``, ``(1, C, *spatial)`` or ``(H, W)`` for a one-channel
            model; cast to the model's dtype (it is what the model sees, so normalise it as
            in training first).
        path: the ``.html`` file to write (parent folders are created).
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
    max_channels = _positive(max_channels, "max_channels")
    max_layers = _positive(max_layers, "max_layers")
    if isinstance(max_numbers, bool) or not isinstance(max_numbers, numbers.Integral) or max_numbers < 0:
        raise ConfigError(f"explain_model_html: max_numbers must be a non-negative int; got {max_numbers!r}.")
    if not isinstance(path, (str, Path)) or not str(path):
        raise ArgumentTypeError(f"explain_model_html: path must be a file name; got {path!r}.")
    xb, acts = forward_layers(model, x, "explain_model_html")
    nd = xb.ndim - 2
    if nd not in (1, 2):
        raise ConfigError(f"explain_model_html: the page draws 1-D and 2-D inputs; x as a batch has shape "
                          f"{tuple(xb.shape)} ({nd} spatial axes).")
    dtype = xb.dtype
    eps = float(np.finfo(dtype).eps)
    rows = {r.index: r for r in summary(model, xb.shape).rows}
    derivations = {r[0]: r[5] for r in explain_model_shapes(model, xb.shape).rows}
    rf_rows = {r.index: r for r in receptive_field(model, xb.shape).rows}
    boxes = receptive_boxes(acts, xb.shape[2:])
    budget = _Budget(int(max_numbers))
    shown_acts = acts[:max_layers]
    cards, layer_data, notes = [], [], []
    if len(acts) > max_layers:
        notes.append(f"Only the first {max_layers} of {len(acts)} layers are shown (max_layers).")
    capped, unembedded = [], []
    for act in shown_acts:
        row, rf = rows[act.index], rf_rows[act.index]
        entry: dict[str, Any] = {
            "index": act.index, "name": _name_text(act.name), "repr": one_line(act.module), "nested": act.nested,
            "in_shape": list(act.x.shape), "out_shape": list(act.y.shape),
            "rf": None if rf.rf is None or rf.jump is None else list(rf.rf),
            "jump": None if rf.jump is None else list(rf.jump),
            "start": None if rf.start is None else list(rf.start),
            "field": None if boxes[act.index] is None else [[f.tolist(), last.tolist()] for f, last in boxes[act.index]],
            "values": None, "conv": None,
        }
        body = []
        meta = [f'<p class="meta">shape <b>{tuple(act.x.shape)}</b> &rarr; <b>{tuple(act.y.shape)}</b></p>',
                f'<p class="meta">parameters: <b>{html.escape(row.formula)}</b>'
                + (f' &nbsp; (a fully-connected layer with the same input and output sizes: '
                   f'{html.escape(row.fc_formula)})' if row.fc_params is not None else "") + "</p>"]
        if rf.rf is not None and rf.jump is not None:
            meta.append(f'<p class="meta">receptive field {"x".join(map(str, rf.rf))} input pixels, jump '
                        f'{"x".join(map(str, rf.jump))}</p>')
        lines = _shape_lines(act, derivations)
        if lines:
            meta.append("<details><summary>output size, Key Equation 48</summary><pre>"
                        + html.escape("\n".join(lines)) + "</pre></details>")
        body += meta
        if act.spatial:
            maps, shown = _feature_maps(act, max_channels)
            body.append(maps)
            if len(shown) < act.y.shape[1]:
                capped.append(act.index)
            values = np.asarray(act.y[0, shown])
            if budget.take(values.size):
                entry["values"] = {"channels": shown, "data": _b64(values, dtype)}
            else:
                unembedded.append(act.index)
            if isinstance(act.module, _ConvNd):
                entry["conv"] = _conv_data(act, shown, budget, dtype)
                if entry["conv"]["padded"] is None and act.index not in unembedded:
                    unembedded.append(act.index)
                body.append(_filters_html(act.module))
        else:
            v = np.asarray(act.y[0], dtype=np.float64).ravel()
            body.append(f'<figure>{_img(colorize(v, _map_cmap(v)), v.shape, 400, title=f"layer {act.index} output")}'
                        f'{v.size} values, {v.min():.4g} .. {v.max():.4g}</figure>')
        nested = " nested" if act.nested else ""
        where = ' <span class="muted">(inside a Residual block)</span>' if act.nested else ""
        cards.append(f'<section class="card layer{nested}" id="layer-{act.index}" data-layer="{act.index}">'
                     f'<h2><span class="idx">Layer {act.index}</span>{html.escape(_name_text(act.name))}: '
                     f'{html.escape(one_line(act.module))}{where}</h2>{"".join(body)}</section>')
        layer_data.append(entry)
    if capped:
        notes.append(f"Layers {', '.join(map(str, capped))}: only the first {max_channels} channels are "
                     f"drawn (max_channels).")
    if unembedded:
        notes.append(f"Layers {', '.join(map(str, unembedded))}: some numbers are not embedded (the cap of "
                     f"{max_numbers:,} numbers is reached), so clicks there show pictures and receptive "
                     f"fields only.")
    data = {"spatial_ndim": nd, "input_shape": list(xb.shape), "dtype": str(dtype), "eps": eps,
            "layers": layer_data}
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    total = sum(r.params for r in rows.values())
    heading = title or f"convscope explainer: {type(model).__name__} on an input of shape {tuple(xb.shape)}"
    note_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(heading)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>{html.escape(heading)}</h1>
<p>{len(acts)} layers, {total:,} parameters, {html.escape(str(dtype))}. Each layer below shows its shapes, its
parameter formula and every channel's feature map. Click a feature-map pixel: the panel on the right shows its
receptive field on the input (orange box) and, for a convolution, the window, the filter and the dot product
y = f . v + f_0 computed on this page next to convscope's own value.</p>
{f'<p>{html.escape(input_note)}</p>' if input_note else ''}
</header>
<div class="wrap"><main>
{note_html}
<section class="card" id="input"><h2><span class="idx">Input</span> x {tuple(xb.shape)}</h2>
{_input_html(xb, _MAP_PX * 2, False)}</section>
{"".join(cards)}
<section class="card" id="probabilities"><h2>Class probabilities</h2>{_probabilities(acts, class_names)}</section>
{_playground()}
</main>
<aside><h2 style="font-size:16px;margin:2px 0 8px">Input and receptive field</h2>
{_input_html(xb, _INPUT_PX, True)}
<div id="detail"><p class="muted">Click a pixel of any feature map.</p></div></aside></div>
<div id="hover"></div>
<script type="application/json" id="convscope-data">{blob}</script>
<script>{JS}</script>
</body></html>
"""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(page, encoding="utf-8")
    return p
