"""Pieces of the HTML explainer page: pictures, per-layer blocks, probabilities, playground.

Used by :func:`convscope.viz.html.explain_model_html`; each function returns an HTML
fragment (or the JSON-safe numbers the page's script computes with).
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..explain.derive import axis_size
from ._explainer_data import probabilities_of
from ._explainer_slices import axis_word, concat_parts
from .activations import LayerActivation
from .image import colormap_png, data_uri, value_range

MAP_PX = 96        # displayed size of the longer side of a feature map
INPUT_PX = 224     # displayed size of the input in the side panel
FILTER_PX = 30     # displayed size of one filter tile
MAX_FILTER_ROWS = 16
MAX_FILTER_COLS = 8


def positive(value: Any, name: str) -> int:
    """``value`` as an int >= 1, or ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"explain_model_html: {name} must be a positive int; got {value!r}.")
    return int(value)


def scale(shape: Sequence[int], target: int) -> tuple[int, int]:
    """Displayed (width, height) in CSS pixels: whole-number zoom, longer side about ``target``."""
    h, w = (1, shape[0]) if len(shape) == 1 else (shape[0], shape[1])
    zoom = max(1, round(target / max(h, w)))
    if len(shape) == 1:
        return w * zoom, max(16, min(zoom, 32))
    return w * zoom, h * zoom


def img(picture: Any, shape: Sequence[int], target: int, cls: str = "", attrs: str = "",
         title: str = "") -> str:
    """An ``<img>`` of ``picture`` (PNG bytes or an RGB array, see :func:`~convscope.viz.image.data_uri`)."""
    w, h = scale(shape, target)
    c = f' class="{cls}"' if cls else ""
    t = f' title="{html.escape(title)}"' if title else ""
    return f'<img{c} src="{data_uri(picture)}" width="{w}" height="{h}" alt="{html.escape(title)}"{t}{attrs}>'


def map_cmap(a: np.ndarray) -> str:
    """Blue-white-red when ``a`` has negative entries, else the sequential scale."""
    return "diverging" if np.nanmin(a) < 0 else "sequential"


def input_html(xb: np.ndarray, target: int, with_rf: bool) -> str:
    """The input's channels (and an RGB composite for 3 channels), optionally with overlays."""
    parts = []
    x = np.asarray(xb[0], dtype=np.float64)
    box = '<div class="rf-box"></div>' if with_rf else ""
    if x.shape[0] == 3 and x.ndim == 3:
        lo, hi = float(x.min()), float(x.max())
        rgb = (x if lo >= 0 and hi <= 1 else (x - lo) / ((hi - lo) or 1.0)).transpose(1, 2, 0)
        rgb8 = np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
        picture = img(rgb8, x.shape[1:], target, "inmap", ' data-layer="0"', title="input (RGB)")
        parts.append(f'<figure><div class="rf-host">{picture}{box}</div>'
                     f'<figcaption>RGB</figcaption></figure>')
    for c in range(x.shape[0] if (x.shape[0] != 3 or not with_rf) else 0):
        picture = img(colormap_png(x[c], "gray"), x.shape[1:], target, "inmap", f' data-layer="0" data-channel="{c}"',
                      title=f"input channel {c + 1}")
        parts.append(f'<figure><div class="rf-host">{picture}{box}</div>'
                     f'<figcaption>channel {c + 1}</figcaption></figure>')
    return '<div class="maps">' + "".join(parts) + "</div>"


def feature_maps(act: LayerActivation, max_channels: int) -> tuple[str, list[int]]:
    """Clickable maps of the first ``max_channels`` channels (one colour scale), and their indices."""
    y = np.asarray(act.y[0], dtype=np.float64)
    shown = list(range(min(y.shape[0], max_channels)))
    cmap = map_cmap(y)
    lo, hi = value_range(y, cmap)
    parts = []
    for c in shown:
        attrs = f' data-layer="{act.index}" data-channel="{c}"'
        picture = img(colormap_png(y[c], cmap, lo, hi), y.shape[1:], MAP_PX, "fmap", attrs,
                      f"layer {act.index} channel {c + 1}")
        parts.append(f'<figure><div class="rf-host">{picture}'
                     f'<div class="rf-pix"></div></div><figcaption>{c + 1}</figcaption></figure>')
    colours = ("blue (negative) - white (0) - red (positive)" if cmap == "diverging"
               else "dark (low) to yellow (high)")
    legend = f"colour scale {colours}, {lo:.4g} .. {hi:.4g} for every channel of this layer"
    note = (f'<p class="note">Showing the first {len(shown)} of {y.shape[0]} channels: '
            f'<code>convscope explain model --max-channels {y.shape[0]}</code> (or '
            f'<code>max_channels={y.shape[0]}</code>) shows them all.</p>'
            if len(shown) < y.shape[0] else "")
    return (f'<p class="meta">{legend}. Click a pixel.</p>{note}<div class="maps">{"".join(parts)}</div>',
            shown)


def filters_html(module: Any, index: int) -> str:
    """The filter bank as a grid of small pictures: one row per filter, one column per input channel.

    Each tile is clickable (``img.ftile``): the page then shows that filter's ``dL/dW``."""
    w = np.asarray(module.weight.data, dtype=np.float64)
    c_out, c_in = w.shape[:2]
    rows, cols = min(c_out, MAX_FILTER_ROWS), min(c_in, MAX_FILTER_COLS)
    lo, hi = value_range(w, "diverging")
    k = w.shape[2:]
    if len(k) > 2:
        return '<p class="muted">(filters of 3-D convolutions are not drawn)</p>'
    cells = ['<span></span>'] + [f'<span style="text-align:center">in {c + 1}</span>' for c in range(cols)]
    for f in range(rows):
        cells.append(f"<span>filter {f + 1}</span>")
        for c in range(cols):
            cells.append(img(colormap_png(w[f, c], "diverging", lo, hi), k, FILTER_PX, "ftile",
                             f' data-layer="{index}" data-filter="{f}" data-channel="{c}"',
                             title=f"filter {f + 1}, input channel {c + 1} (click: its dL/dW)"))
    cut = []
    if rows < c_out:
        cut.append(f"first {rows} of {c_out} filters")
    if cols < c_in:
        cut.append(f"first {cols} of {c_in} input channels")
    more = (f"; <code>convscope explain filters MODEL --layer {index} "
            f"--max-filters {c_out} --max-channels {c_in}</code> draws them all" if cut else "")
    note = f' <span class="muted">(showing {", ".join(cut)}{more})</span>' if cut else ""
    return (f'<details open><summary>Filters: weight {tuple(w.shape)} = (filters, input channels'
            f'{", " + " x ".join("k" * len(k)) if k else ""}); blue negative, white 0, red positive, '
            f'|w| up to {hi:.4g}{note}</summary>'
            f'<div class="filters" style="grid-template-columns: 70px repeat({cols}, max-content)">'
            f'{"".join(cells)}</div></details>')


def shape_lines(act: LayerActivation, derivations: dict[int, tuple[str, ...]]) -> list[str]:
    """The output-size derivation of a layer: both forms of Key Equation 48 per axis for windows."""
    w = act.module.window
    if w is not None and w.op != "blur":
        spatial = act.x.shape[2:]
        lines: list[str] = []
        for i, (n, k, p, s, d) in enumerate(zip(spatial, w.kernel_size, w.padding_pairs(spatial), w.stride,
                                                w.dilation)):
            lines += list(axis_size(n, k, p, s, d, w.ceil_mode, axis=i + 1).lines)
        return lines
    return list(derivations.get(act.index, ()))


def vector_strip(act: LayerActivation) -> str:
    """A clickable strip of a vector output ``(1, n)``: one cell per entry (``img.fvec``)."""
    v = np.asarray(act.y[0], dtype=np.float64).reshape(1, -1)
    cmap = map_cmap(v)
    lo, hi = value_range(v, cmap)
    n = v.shape[1]
    cell = max(1, min(24, 900 // n))
    title = f"layer {act.index} output"
    picture = (f'<img class="fvec" src="{data_uri(colormap_png(v, cmap, lo, hi))}" width="{n * cell}" '
               f'height="{max(16, min(cell, 24))}" alt="{title}" title="{title}" data-layer="{act.index}">')
    return (f'<p class="meta">{n} values, {v.min():.4g} .. {v.max():.4g}. Click an entry.</p>'
            f'<figure><div class="rf-host">{picture}</div></figure>')


def class_names_of(n: int, class_names: Any) -> list[str]:
    """``class_names`` as ``n`` strings (default ``0, 1, ...``), or ConfigError."""
    names = [str(i) for i in range(n)] if class_names is None else [str(c) for c in class_names]
    if len(names) != n:
        raise ConfigError(f"explain_model_html: class_names must name the model's {n} outputs; "
                          f"got {len(names)} names.")
    return names


def probabilities(acts: list[LayerActivation], class_names: Any, label: int | None = None) -> str:
    """The class probabilities as bars (softmax of the scores unless the model ends in Softmax)."""
    found = probabilities_of(acts)
    if found is None:
        y = np.asarray(acts[-1].y)
        return (f'<p class="muted">The model output has shape {tuple(y.shape)}, not (1, classes): '
                f"no class probabilities to show.</p>")
    _, probs, own = found
    how = ("the model's own Softmax output" if own else
           "softmax of the final scores (the model outputs scores; the softmax is applied here)")
    names = class_names_of(probs.size, class_names)
    top = int(np.argmax(probs))
    bars = []
    for i, (name, p) in enumerate(zip(names, probs)):
        fill = f'<span class="fill" style="width:{100 * p:.2f}%;display:block"></span>'
        cls = " top" if i == top else ""
        cls += " label" if label == i else ""
        mark = " (true label)" if label == i else ""
        bars.append(f'<div class="bar{cls}" data-class="{i}" data-p="{float(p)!r}" title="click: the softmax">'
                    f'<span class="lab" title="{html.escape(name)}">{html.escape(name)}{mark}</span>'
                    f'<span class="track">{fill}</span><span class="num">{p:.4f}</span></div>')
    return (f'<p class="meta">{how}: p_j = exp(z_j) / sum_i exp(z_i). Prediction: '
            f'<b id="prediction" data-class="{top}">{html.escape(names[top])}</b> with probability '
            f'{probs[top]:.4f}. Click a bar for its exp / sum over every class.</p>'
            f'<div class="bars">{"".join(bars)}</div>')


def top_classes(acts: list[LayerActivation], class_names: Any, count: int = 3) -> str:
    """One line for the top of the page: the prediction and the next classes."""
    found = probabilities_of(acts)
    if found is None:
        return ""
    probs = found[1]
    names = class_names_of(probs.size, class_names)
    order = [int(i) for i in np.argsort(-probs, kind="stable")[:count]]
    first = order[0]
    rest = ", ".join(f"{html.escape(names[i])} {probs[i]:.3f}" for i in order[1:])
    return (f'<p id="top-classes" data-class="{first}">Prediction: <b>{html.escape(names[first])}</b> '
            f'(p = {probs[first]:.3f})' + (f' <span class="alt">&middot; next: {rest}</span>' if rest else "")
            + "</p>")


def playground() -> str:
    """Inputs for n, k, p, s, d; the script fills in both forms of Key Equation 48 and a drawing."""
    fields = (("n", "input size n", 1, 7), ("k", "kernel k", 1, 3), ("p", "padding p", 0, 1),
              ("s", "stride s", 1, 2), ("d", "dilation d", 1, 1))
    inputs = "".join(f'<label>{label} <input id="pg-{key}" type="number" min="{lo}" value="{v}"></label>'
                     for key, label, lo, v in fields)
    examples = (("64,2,0,2,1", "notes: n=64, k=2, s=2"), ("5,3,1,1,1", "notes 9.1.18: 5x5, k=3, p=1"),
                ("10,3,0,1,1", "notes 1-D: n=10, k=3"), ("9,3,0,1,2", "dilation 2"))
    presets = "".join(f'<button type="button" data-preset="{v}">{html.escape(t)}</button> '
                      for v, t in examples)
    return ('<section class="card" id="playground"><h2>Playground: output size (Key Equation 48)</h2>'
            '<p class="meta">One spatial axis of a convolution or pooling window. Change the numbers; both '
            'forms of Key Equation 48 are computed (with dilation the window spans d(k-1)+1 entries, used '
            f'for k).</p><div class="pg-inputs">{inputs}</div><div>{presets}</div>'
            '<p>output size: <b id="pg-out" data-value="">?</b></p><div id="pg-result"></div>'
            '<div id="pg-diagram"></div></section>')


def merge_shapes(act: LayerActivation, producers: Sequence[tuple[int | None, str | None]]) -> str:
    """A merge card's shape line: every input's shape (one sample), named by the layer that made it
    (``producers``: its index, 0 for the model's input, and name per input), then the output's:
    ``a (C, H, W) + b (C, H, W) -> (C, H, W)``; a Concat's inputs with the ranges they fill, a
    Mul's broadcast axes."""
    kind = act.module.layer_kind
    names = []
    for x_i, (ref, name) in zip(act.inputs, producers):
        who = "the input" if ref == 0 else "?" if ref is None else html.escape(
            name if name and not name.isdigit() else f"layer {ref}")
        link = who if ref is None else f'<a href="#{"input" if ref == 0 else f"layer-{ref}"}">{who}</a>'
        names.append(f"<b>{link}</b> {tuple(x_i.shape[1:])}")
    out = f"<b>{tuple(act.y.shape[1:])}</b>"
    if kind == "concat":
        axis, offsets, sizes = concat_parts(act)
        along = axis_word(axis)
        parts = [f"{n} &rarr; {along} {o + 1}..{o + k}" for n, o, k in zip(names, offsets, sizes)]
        return f"shape: {' | '.join(parts)} &rarr; {out} (one sample; the inputs side by side)"
    if kind == "mul":
        text = " &times; ".join(names) + f" &rarr; {out} (one sample)"
        spatial = {1: ("entries",), 2: ("rows", "columns")}.get(act.y.ndim - 2, ())
        axes = ("entries",) if act.y.ndim == 2 else ("channels", *spatial)
        for x_i in act.inputs:
            spread = [axes[a] if a < len(axes) else f"axis {a + 1}" for a, n in enumerate(x_i.shape[1:])
                      if n == 1 and act.y.shape[a + 1] != 1]
            if spread:
                text += (f"; {tuple(x_i.shape[1:])} is broadcast over the {' and '.join(spread)}"
                         + (": one factor per channel" if spatial and spread == list(spatial) else ""))
        return f"shape: {text}"
    sign = " + " if kind == "add" else ", "
    return f"shape: {sign.join(names)} &rarr; {out} (one sample)"
