"""The HTML explainer: one self-contained page that walks an input through a model, forward and backward.

:func:`explain_model_html` writes ONE ``.html`` file, with every picture inline (PNG
``data:`` URIs drawn by :mod:`convscope.viz.image`, palette PNGs of the colour scale's 255 steps,
no matplotlib needed) and its style sheet
and script inline, so it opens offline in any browser. At the top: the prediction and the
next classes, a layer index and the backward controls. For every layer (collapsible):

* the input and output shapes (a merge: every input's, named by the layer that made it), and
  for window layers the output size with both forms of Key Equation 48 per axis; the parameter
  count with its formula, beside a fully-connected layer's (weight sharing); the receptive field
  and jump;
* every channel's feature map, or a strip of a vector output; a click on any value shows how
  it was computed, in the notes' terms, redone on the page from the embedded numbers next to
  convscope's own value (see :mod:`convscope.viz._explainer_js` for every kind of layer),
  with the window drawn on the previous layer's maps and the receptive field on the input,
  and a play / pause / step animation of the window sliding over the layer;
* for convolutions, the filters (one row per filter, one column per input channel); a click
  on a filter shows its ``dL/dW`` in the notes' 9.31 form;
* backward: for a chosen class (the true label when given, else the prediction), the loss
  ``L = -log p_c`` and every layer's gradient map ``dL/dy``, the ReLU masks and the max-pool
  routing, what a merge sends to each of its inputs, computed by each layer's own backward
  (:mod:`convscope.viz._explainer_data`);

and the class probabilities (a click shows ``exp / sum`` over every class) and a playground
for the output-size formula. The numbers the page computes with are embedded bit-exactly as
little-endian float bytes in base64 (raw DEFLATE first where that saves an eighth, as the zeros
after a ReLU do) inside a JSON block. Every layer has its own cap on embedded
numbers (``max_layer_numbers``): a layer embeds what a click needs on a centred block of
positions, the whole map when it fits (:mod:`convscope.viz._explainer_slices`), so late layers
keep their arithmetic however large the early ones are. Big models are also capped in channels
per layer, layers, and backward numbers and classes; the page says what was left out.

:func:`explainer_parts` builds the same page body for the live mode (:mod:`convscope.viz.serve`).

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError
from ..explain import explain_model_shapes, receptive_field
from ..files import write_text
from ..nn import Module
from ..nn.summary import summary
from ..nn.walk import one_line
from ._branches import Block, Item, branch_layout
from ._explainer_css import CSS
from ._explainer_data import Budget, b64, backward_passes, input_refs, layer_numbers, probabilities_of
from ._explainer_js import JS
from ._explainer_slices import (
    ADAPTIVE,
    MERGES,
    WINDOWED,
    Slice,
    adaptive_region,
    block,
    conv_need,
    conv_numbers,
    covers,
    dw_inputs,
    dw_need,
    merge_reads,
    piece_text,
    pool_input,
    pool_region,
    same_as_dy,
    sent_region,
    tile_of,
    window_span,
)
from ._html_parts import (
    INPUT_PX,
    MAP_PX,
    class_names_of,
    feature_maps,
    filters_html,
    input_html,
    merge_shapes,
    playground,
    positive,
    probabilities,
    shape_lines,
    top_classes,
    vector_strip,
)
from .activations import LayerActivation, forward_layers
from .activations import name_suffix as _name_text
from .fields import receptive_boxes
from .figure import HTMLPage

__all__ = ["explain_model_html", "explain_model_page", "explainer_parts", "ExplainerParts"]

MAX_LAYERS = 120                 # ResNet-18 has 69 walked layers, ResNet-34 125 (max_layers)
MAX_NUMBERS = 500_000            # backward passes, all classes together (max_numbers)
MAX_LAYER_NUMBERS = 24_000       # one layer's forward numbers (max_layer_numbers)


@dataclass(frozen=True, eq=False)
class ExplainerParts:
    """The explainer page for one input, in pieces the static page and the live mode share.

    Attributes:
        title: the page title.  body: the page body (header, layers, side panel, embedded
            numbers), without the script.  prediction: the predicted class (None when the
            output is not ``(1, classes)``).  probabilities: one per class (or None).
        class_names: the names shown.  data: the embedded numbers (JSON-safe).
    """

    title: str
    body: str
    prediction: int | None
    probabilities: list[float] | None
    class_names: list[str] | None
    data: dict[str, Any]


def _check_label(label: Any, n: int | None) -> int | None:
    if label is None:
        return None
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or n is None or not 0 <= int(label) < n:
        raise ConfigError(f"explain_model_html: label must be a class index from 0 to {(n or 1) - 1} (the true "
                          f"class of x); got {label!r}.")
    return int(label)


def explainer_parts(model: Module, x: Any, class_names: Sequence[Any] | None = None, label: int | None = None,
                    max_channels: int = 64, max_layers: int = MAX_LAYERS, max_numbers: int = MAX_NUMBERS,
                    title: str | None = None, input_note: str | None = None, backward: bool = True,
                    max_classes: int = 10, max_layer_numbers: int = MAX_LAYER_NUMBERS) -> ExplainerParts:
    """The explainer page body for ``x`` (see :func:`explain_model_html` for the arguments).

    Args:
        backward: embed backward passes (gradient maps, dL/dW) for up to ``max_classes``
            classes: the true label, the prediction, then the likeliest others.
    """
    max_channels = positive(max_channels, "max_channels")
    max_layers = positive(max_layers, "max_layers")
    max_classes = positive(max_classes, "max_classes")
    if isinstance(max_numbers, bool) or not isinstance(max_numbers, numbers.Integral) or max_numbers < 0:
        raise ConfigError(f"explain_model_html: max_numbers must be a non-negative int; got {max_numbers!r}.")
    max_layer_numbers = positive(max_layer_numbers, "max_layer_numbers")
    if not isinstance(backward, bool):
        raise ArgumentTypeError(f"explain_model_html: backward must be True or False; got {backward!r}.")
    xb, acts = forward_layers(model, x, "explain_model_html")
    nd = xb.ndim - 2
    if nd not in (1, 2):
        raise ConfigError(f"explain_model_html: the page draws 1-D and 2-D inputs; x as a batch has shape "
                          f"{tuple(xb.shape)} ({nd} spatial axes).")
    found = probabilities_of(acts)
    names = None if found is None else class_names_of(found[1].size, class_names)
    label = _check_label(label, None if found is None else found[1].size)
    walk = _Walk(model, xb, acts, max_channels, int(max_numbers), max_layer_numbers)
    shown_acts = acts[:max_layers]
    cards: dict[int, str] = {}
    layer_data = []
    for act in shown_acts:
        cards[act.index], entry = walk.layer(act)
        layer_data.append(entry)
    data: dict[str, Any] = {"spatial_ndim": nd, "input_shape": list(xb.shape), "dtype": str(xb.dtype),
                            "eps": float(np.finfo(xb.dtype).eps), "input": walk.input_b64, "layers": layer_data,
                            "max_layer_numbers": max_layer_numbers,
                            "classes": names, "probs": None, "backward": None}
    prediction = probs = None
    if found is not None:
        z, p, own = found
        prediction, probs = int(np.argmax(p)), [float(v) for v in p]
        data["probs"] = {"z": [float(v) for v in z], "p": probs, "own": own}
        if backward:
            data["backward"] = walk.backward(model, xb, acts, p, label, max_classes)
    notes = []
    if len(acts) > max_layers:
        notes.append(f"Only the first {max_layers} of {len(acts)} layers are shown (max_layers).")
    if walk.capped:
        notes.append(f"Layers {', '.join(map(str, walk.capped))}: only the first {max_channels} channels "
                     f"are drawn (max_channels).")
    if walk.tiled:
        notes.append(f"Layers {', '.join(map(str, walk.tiled))}: the numbers of a centred block of positions "
                     f"are embedded (the dashed box on the maps; at most {max_layer_numbers:,} numbers per layer, "
                     f"max_layer_numbers): click inside it for the arithmetic.")
    if walk.unembedded:
        notes.append(f"Layers {', '.join(map(str, walk.unembedded))}: some numbers are not embedded (the "
                     f"cap of {max_layer_numbers:,} numbers per layer is reached), so clicks there show pictures "
                     f"and receptive fields only.")
    if walk.backward_note:
        notes.append(walk.backward_note)
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")   # no "</script>" inside
    total = sum(r.params for r in walk.rows.values())
    heading = title or f"convscope explainer: {type(model).__name__} on an input of shape {tuple(xb.shape)}"
    index = "".join(f'<a href="#layer-{a.index}" class="{"nested" if a.nested else ""}" '
                    f'title="{html.escape(one_line(a.module))}">{a.index} {html.escape(a.module.layer_kind)}</a>'
                    for a in shown_acts)
    body = _BODY.format(
        title=html.escape(heading), notes="".join(f'<p class="note">{html.escape(n)}</p>' for n in notes),
        facts=f"{len(acts)} layers, {total:,} parameters, {html.escape(str(xb.dtype))}",
        top=top_classes(acts, names), input_note=f"<p>{html.escape(input_note)}</p>" if input_note else "",
        controls=_controls(data["backward"], names, probs), index=index,
        input_shape=tuple(xb.shape), inputs=input_html(xb, MAP_PX * 2, False),
        side_inputs=input_html(xb, INPUT_PX, True),
        cards=_layout_html(branch_layout(a.layer for a in shown_acts), cards, walk.by_index),
        probabilities=probabilities(acts, names, label), playground=playground(), blob=blob)
    return ExplainerParts(heading, body, prediction, probs, names, data)


def explain_model_page(model: Module, x: Any, class_names: Sequence[Any] | None = None, max_channels: int = 64,
                       max_layers: int = MAX_LAYERS, max_numbers: int = MAX_NUMBERS, title: str | None = None,
                       input_note: str | None = None, label: int | None = None, backward: bool = True,
                       max_layer_numbers: int = MAX_LAYER_NUMBERS) -> HTMLPage:
    """The page of :func:`explain_model_html` as an :class:`~convscope.viz.HTMLPage` (no file written).

    It shows inline in Jupyter (in a frame) and ``.save("report.html")`` writes it; the
    arguments are those of :func:`explain_model_html`.
    """
    parts = explainer_parts(model, x, class_names, label, max_channels, max_layers, max_numbers, title,
                            input_note, backward, max_layer_numbers=max_layer_numbers)
    return HTMLPage(page_html(parts.title, parts.body), parts.title)


def explain_model_html(model: Module, x: Any, path: Any, class_names: Sequence[Any] | None = None,
                       max_channels: int = 64, max_layers: int = MAX_LAYERS, max_numbers: int = MAX_NUMBERS,
                       title: str | None = None, input_note: str | None = None, label: int | None = None,
                       backward: bool = True, max_layer_numbers: int = MAX_LAYER_NUMBERS) -> Path:
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
        max_numbers: cap on the numbers of the backward passes, all classes together (one
            class's ``dL/dy`` tiles, ``dL/dx`` and ``dL/dW`` checks); classes that do not fit
            are left out, and the page says so.
        max_layer_numbers: cap on the numbers one layer embeds for its clicks (its values tile,
            a convolution's input patch and filters, a Linear layer's weight rows; see
            :mod:`convscope.viz._explainer_slices`); a layer over it embeds a smaller centred
            block of positions, drawn as a dashed box.
        title: the page title (default names the model and the input shape).
        input_note: a sentence shown under the title (e.g. how the input was normalised).
        label: the true class of ``x``; the backward view starts on it (else on the prediction).
        backward: embed backward passes (gradient maps, the ReLU mask, the max-pool routing,
            ``dL/dW`` of every filter) for up to 10 classes.

    Returns:
        ``path`` as a Path.

    Raises:
        ShapeError: ``x`` does not fit the model (the layer is named).
        ConfigError: 3-D inputs, a bad cap, a bad label, or ``class_names`` of the wrong length.
    """
    if not isinstance(path, (str, Path)) or not str(path):
        raise ArgumentTypeError(f"explain_model_html: path must be a file name; got {path!r}.")
    parts = explainer_parts(model, x, class_names, label, max_channels, max_layers, max_numbers, title,
                            input_note, backward, max_layer_numbers=max_layer_numbers)
    page = page_html(parts.title, parts.body)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_text(p, page, op="explain_model_html")


def page_html(title: str, body: str, extra_head: str = "", body_attrs: str = "") -> str:
    """A complete page around an explainer body: the inline style sheet and script."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>{extra_head}</head>\n"
            f"<body{body_attrs}>\n{body}\n<script>{JS}</script>\n</body></html>\n")


def _controls(backward: dict[str, Any] | None, names: list[str] | None, probs: list[float] | None) -> str:
    if not backward or names is None or probs is None:
        return ""
    options = "".join(f'<option value="{c}">{html.escape(names[c])} (p = {probs[c]:.3f})'
                      f'{" - true label" if c == backward["label"] else ""}</option>' for c in backward["targets"])
    return ('<div class="controls"><label><input type="checkbox" id="show-grads"> show the backward pass '
            '(gradient maps dL/dy of every layer)</label>'
            f'<label>for class <select id="grad-class">{options}</select></label>'
            '<span class="muted">loss L = -log p (cross-entropy of that class); click a filter for its dL/dW</span>'
            '</div>')


def _layer_word(items: Sequence[Item]) -> str:
    count = sum(len(it.layers()) if isinstance(it, Block) else 1 for it in items)
    return f"{count} layer{'s' if count != 1 else ''}"


def _identity_source(item: Block, fork: str, acts: dict[int, LayerActivation]) -> str:
    """What a block's identity branch carries: the fork's output, or the piece of a Split it is."""
    source = acts.get(item.fork)
    if source is not None and len(source.outputs) > 1:
        read = {id(x) for x in acts[item.merge].inputs}
        for k, y in enumerate(source.outputs):
            if id(y) in read:
                return piece_text(source, k, fork)
    return f"the output of {fork} itself"


def _layout_html(items: Sequence[Item], cards: dict[int, str], acts: dict[int, LayerActivation]) -> str:
    """The cards in order, each block's branches side by side in columns above its merge card."""
    out = []
    for item in items:
        if not isinstance(item, Block):
            out.append(cards[item])
            continue
        merge = acts[item.merge]
        fork = '<a href="#input">the input</a>' if item.fork == 0 else \
            f'<a href="#layer-{item.fork}">layer {item.fork}</a>'
        columns = []
        for j, branch in enumerate(item.branches, 1):
            if branch:
                first = branch[0].fork if isinstance(branch[0], Block) else branch[0]
                head = f"branch {j}: {_layer_word(branch)} from layer {first}"
                inner = _layout_html(branch, cards, acts)
            else:
                head = f"branch {j}: identity"
                inner = (f'<p class="meta">{_identity_source(item, fork, acts)}, unchanged (the skip connection), '
                         f'into layer {item.merge}</p>')
            columns.append(f'<div class="branch{"" if branch else " identity"}" data-branch="{j}">'
                           f'<p class="branch-head">{html.escape(head)}</p>{inner}</div>')
        out.append(f'<div class="block" data-fork="{item.fork}" data-merge="{item.merge}">'
                   f'<p class="block-head">{fork} forks into {len(item.branches)} branches, side by side '
                   f'below; layer {item.merge} ({html.escape(merge.module.layer_kind)}) joins them</p>'
                   f'<div class="branches">{"".join(columns)}</div>{cards[item.merge]}</div>')
    return "".join(out)


_BODY = """<header><h1>{title}</h1>
{top}
<p>{facts}. Click any value of any layer: the panel on the right shows how it was computed (the window on the
previous layer's maps in blue, the receptive field on the input in orange) and can slide the window over the layer.</p>
{input_note}
{controls}
<nav id="layer-index"><span class="muted">layers:</span> <a href="#input">input</a> {index}
<a href="#probabilities">probabilities</a> <a href="#playground">playground</a>
<button type="button" id="collapse-all">collapse all</button>
<button type="button" id="expand-all">expand all</button></nav>
</header>
<div class="wrap"><main>
{notes}
<section class="card" id="probabilities"><h2>Class probabilities</h2>{probabilities}</section>
<section class="card" id="input"><h2><span class="idx">Input</span> x {input_shape}</h2>
{inputs}<div class="gmaps" data-layer="0"></div></section>
{cards}
{playground}
</main>
<aside><h2 style="font-size:16px;margin:2px 0 8px">Input and receptive field</h2>
{side_inputs}
<div class="anim" id="anim" style="display:none"><button type="button" id="anim-back">&#9664; step</button>
<button type="button" id="anim-play">&#9654; play</button><button type="button" id="anim-step">step &#9654;</button>
<span id="anim-pos" data-pos=""></span></div>
<div id="detail"><p class="muted">Click any value of any layer, a class bar or a filter.</p></div></aside></div>
<div id="hover"></div>
<script type="application/json" id="convscope-data">{blob}</script>
"""


class _Walk:
    """Builds one layer's card (HTML) and its entry in the embedded data, in order."""

    def __init__(self, model: Module, xb: np.ndarray, acts: list[LayerActivation], max_channels: int,
                 max_numbers: int, max_layer_numbers: int) -> None:
        self.rows = {r.index: r for r in summary(model, xb.shape).rows}
        self.derivations = {r[0]: r[5] for r in explain_model_shapes(model, xb.shape).rows}
        self.fields = {r.index: r for r in receptive_field(model, xb.shape).rows}
        self.boxes = receptive_boxes(acts, xb.shape[2:])
        self.refs = input_refs(xb, acts)
        self.producer = {id(xb): 0, **{id(a.y): a.index for a in acts}}
        # a Split's later pieces: (the Split's index, piece, its channel range); their maps are not
        # drawn (the Split's card shows its first piece), so they are named, not referenced
        self.pieces = {id(y): (a.index, piece_text(a, k, f"layer {a.index}")) for a in acts
                       for k, y in enumerate(a.outputs) if k}
        self.by_index = {a.index: a for a in acts}
        self.consumers: dict[int, list[list[int]]] = {}  # producer -> [[layer, its input], ...] reading it
        for a in acts:
            for i, x_i in enumerate(a.inputs):
                ref = self.producer.get(id(x_i))
                if ref is not None:
                    self.consumers.setdefault(ref, []).append([a.index, i])
        self.budget = Budget(max_numbers)               # the backward passes, all layers together
        self.cap = max_layer_numbers                    # each layer's forward numbers
        self.dtype = xb.dtype
        self.max_channels = max_channels
        self.capped: list[int] = []
        self.unembedded: list[int] = []
        self.tiled: list[int] = []
        self.shown: dict[int, list[int] | None] = {}
        self.tiles: dict[int, tuple[list[int], list[int]] | None] = {}
        self.entries: dict[int, dict[str, Any]] = {}
        self.reasons: dict[int, tuple[str, str]] = {}   # no receptive field: (text after it, where it was lost)
        self.backward_note: str | None = None
        self.input_b64 = b64(xb[0], self.dtype)         # the input, whole: the page draws and explains it
        self.input_values = {"channels": None, "data": self.input_b64}

    def _meta(self, act: LayerActivation) -> str:
        row, rf = self.rows[act.index], self.fields[act.index]
        fc = (f" &nbsp; (a fully-connected layer with the same input and output sizes: "
              f"{html.escape(row.fc_formula)})" if row.fc_params is not None else "")
        shapes = (self._merge_shapes(act) if len(act.inputs) > 1 else
                  f'shape <b>{tuple(act.x.shape)}</b> &rarr; <b>{tuple(act.y.shape)}</b>')
        meta = [f'<p class="meta shapes">{shapes}</p>',
                f'<p class="meta">parameters: <b>{html.escape(row.formula)}</b>{fc}</p>']
        if rf.rf is not None and rf.jump is not None:
            meta.append(f'<p class="meta">receptive field {"x".join(map(str, rf.rf))} input pixels, jump '
                        f'{"x".join(map(str, rf.jump))}</p>')
        lines = shape_lines(act, self.derivations)
        if lines:
            meta.append("<details><summary>output size, Key Equation 48</summary><pre>"
                        + html.escape("\n".join(lines)) + "</pre></details>")
        return "".join(meta)

    def _merge_shapes(self, act: LayerActivation) -> str:
        refs = [self.producer.get(id(x_i)) for x_i in act.inputs]
        return merge_shapes(act, [(r, None if r is None or r == 0 else self.by_index[r].name) for r in refs])

    def _piece_text(self, x: np.ndarray) -> str | None:
        """``piece 2 of layer 19's split (channels 9..16 of its input)`` for a Split's later piece."""
        return self.pieces[id(x)][1] if id(x) in self.pieces else None

    def _source_link(self, x: np.ndarray) -> str:
        """The layer an input came from, linked; a Split's later piece named with its range."""
        piece = self._piece_text(x)
        if piece is not None:
            return f'<a href="#layer-{self.pieces[id(x)][0]}">{html.escape(piece)}</a>'
        return self._ref_link(self.producer.get(id(x)))

    def _ref_link(self, index: int | None) -> str:
        if index is None:
            return "?"
        if index == 0:
            return '<a href="#input">the input</a>'
        return f'<a href="#layer-{index}">layer {index}</a>'

    def _feeds(self, act: LayerActivation) -> str:
        """Which layers' outputs this layer takes: the branches a merge joins, the fan-out of a block."""
        ref = self.refs.get(act.index)
        if act.module.layer_kind == "residual":
            block = act.index - 1 if act.index - 1 in self.refs else None
            return (f'<p class="meta feeds">merge (add): {self._ref_link(ref)} (the identity branch) + '
                    f'{self._ref_link(block)} (the block\'s last layer) &rarr; y = x + block(x)</p>')
        if len(act.inputs) > 1:             # a merge node of a graph: every branch it joins
            links = " + ".join(self._source_link(x) for x in act.inputs)
            return f'<p class="meta feeds">merge ({html.escape(act.module.layer_kind)}) of: {links}</p>'
        return f'<p class="meta feeds">input: {self._source_link(act.x)}</p>'

    def _field_reason(self, act: LayerActivation) -> str:
        """Why a layer's values have no receptive field on the input (each can read all of it), as the
        page says it after "This value can depend on the whole input": a layer whose every value reads
        everything (a global pooling, Linear) says so itself; a squeeze-and-excitation Mul
        names the global pooling its gate comes from; any other layer is after the nearest of them."""
        kind, at = act.module.layer_kind, f"layer {act.index}"
        own = None
        if kind in ADAPTIVE and all(v == 1 for v in act.y.shape[2:]):
            what, own = f"the global pooling of {at}", "a global pooling: each value reads its whole channel"
            self.reasons[act.index] = (f"after {what}: each of its values reads its whole channel", what)
        elif kind == "linear":
            what, own = f"the Linear layer of {at}", "a Linear layer: each value is a dot product over every feature"
        elif kind == "softmax":
            what, own = f"the softmax over a spatial axis of {at}", "a softmax over a spatial axis"
        if own is not None:
            self.reasons.setdefault(act.index, (f"after {what}", what))
            return own
        refs = [self.producer.get(id(x_i)) for x_i in act.inputs]
        if kind == "mul" and len(refs) > 1:          # the broadcast gate's branch first
            refs.sort(key=lambda r: 0 if r and all(v == 1 for v in self.by_index[r].y.shape[2:]) else 1)
        for ref in refs:
            origin = self.reasons.get(ref) if ref else None
            if origin is None:
                continue
            if kind == "mul" and act.y.ndim > 2 and len(refs) > 1:
                self.reasons[act.index] = (f"after the squeeze-and-excitation gate of {at}, made from "
                                           f"{origin[1]}", origin[1])
                return (f"it multiplies by a gate (squeeze-and-excitation) made from {origin[1]}, "
                        f"so every value reads its whole input channels")
            self.reasons[act.index] = origin
            return origin[0]
        if kind == "flatten":
            what, own = f"the Flatten of {at}", "a Flatten: from here on the page does not trace positions"
        elif kind in ADAPTIVE:
            what = f"the adaptive pooling of {at}"
            own = "an adaptive pooling, whose windows (floor(i*n/out) to ceil((i+1)*n/out)) the receptive field " \
                  "does not trace"
        else:
            what, own = f"{at} ({kind})", f"a layer ({kind}) whose effect on positions convscope does not know"
        self.reasons[act.index] = (f"after {what}", what)
        return own

    def _tile(self, act: LayerActivation, shown: list[int]) -> tuple[list[int], list[int]]:
        """The layer's values tile: that of its (first) input for an elementwise layer or a merge; else
        half the cap for the values, then shrunk until what its arithmetic reads fits too."""
        spatial, cap, kind = list(act.y.shape[2:]), self.cap, act.module.layer_kind
        bound = None
        for x_i in act.inputs if kind not in WINDOWED else ():
            ref = self.producer.get(id(x_i))
            tile = self.tiles.get(ref) if ref else None
            if tile is not None and ref is not None and x_i.shape == act.y.shape \
                    and self.shown.get(ref) == shown:
                return tile                 # an elementwise layer, a merge: the tile of the layer it reads
            if kind == "concat" and tile is not None and list(x_i.shape[2:]) == spatial:
                bound = tile[1] if bound is None else [min(a, b) for a, b in zip(bound, tile[1])]
        # a Concat: at most its inputs' (centred) tiles, so its tile lies inside each of them
        start, size = tile_of(spatial, lambda t: len(shown) * int(np.prod(t)), cap // 2, bound)
        if kind == "conv":
            extra = dw_need(act, self.refs.get(act.index) == 0)

            def need(t: list[int]) -> int:
                return conv_need(act, shown, [0] * len(t), t) + (0 if t == spatial else extra)
            start, size = tile_of(spatial, need, cap, size)
        elif kind in ("max_pool", "avg_pool") and act.module.window is not None:
            start, size = tile_of(spatial, lambda t: len(shown) * (int(np.prod(t)) + int(np.prod(
                pool_region(act, [0] * len(t), t)[1]))), cap, size)
        elif kind == "blur_pool" and act.module.window is not None:
            def blur_need(t: list[int]) -> int:
                first, last = window_span(act.module.window, [0] * len(t), t)
                return len(shown) * (int(np.prod(t)) + int(np.prod([e - f + 1 for f, e in zip(first, last)])))
            start, size = tile_of(spatial, blur_need, cap, size)
        elif kind in ADAPTIVE:
            n = list(act.x.shape[2:])
            def adaptive_need(t: list[int]) -> int:           # the windows of the centred block tile_of picks
                centred = [(o - k) // 2 for o, k in zip(spatial, t)]
                return len(shown) * (int(np.prod(t)) + int(np.prod(adaptive_region(n, spatial, centred, t)[1])))
            start, size = tile_of(spatial, adaptive_need, cap, size)
        return start, size

    def _reads(self, act: LayerActivation, i: int, x_i: np.ndarray, shown: list[int] | None,
               tile: tuple[list[int], list[int]] | None) -> tuple[list[int] | None, list[int], list[int]] | None:
        """What an input of a layer without its own window patch is read at: (channels, start, size)."""
        kind = act.module.layer_kind
        if kind in WINDOWED:
            return None                               # a window patch of its own (conv, blur) or pool_input
        if x_i.ndim == 2:
            return None, [], []                       # a vector: read whole
        if kind == "flatten":
            return None, [0] * (x_i.ndim - 2), list(x_i.shape[2:])
        if kind in MERGES and tile is not None and shown is not None and i < len(act.inputs):
            return merge_reads(act, i, shown, tile)   # Concat's channels, Mul's broadcast, shuffle's sources
        if kind in ADAPTIVE and tile is not None and shown is not None:
            return (shown, *adaptive_region(x_i.shape[2:], act.y.shape[2:], *tile))   # the tile's windows
        if tile is not None and x_i.shape == act.y.shape:
            return shown, tile[0], tile[1]            # elementwise, a merge: the same positions
        return None

    def _inputs(self, act: LayerActivation, shown: list[int] | None, tile: tuple[list[int], list[int]] | None,
                room: int) -> tuple[list[dict[str, Any]], int]:
        """Each input: a reference to the producer's tile when it covers what is read, else a slice of its own."""
        xs = list(act.inputs)
        if act.module.layer_kind == "residual" and act.index - 1 in self.entries:
            xs = [act.x, self.by_index[act.index - 1].y]             # x and block(x)
        out = []
        for i, x_i in enumerate(xs):
            ref = self.producer.get(id(x_i))
            item: dict[str, Any] = {"ref": ref, "shape": list(x_i.shape[1:])}
            if act.module.layer_kind in ("max_pool", "avg_pool") and act.module.window is not None and tile:
                item.update(pool_input(act, shown or [], tile[0], tile[1], self.dtype, b64))
                room -= len(shown or []) * int(np.prod(item["tile"]))
                out.append(item)
                continue
            reads = self._reads(act, i, x_i, shown, tile)
            if reads is not None:
                channels, start, size = reads
                have = (self.input_values if ref == 0 else
                        None if ref is None else self.entries.get(ref, {}).get("values"))
                if not covers(have, channels, start, size):
                    count = (x_i.shape[1] if channels is None else len(channels)) * int(np.prod(size)) \
                        if x_i.ndim > 2 else x_i[0].size
                    if count <= room:
                        if x_i.ndim == 2:
                            item["data"] = b64(x_i[0], self.dtype)
                            item["channels"] = None
                        else:
                            item.update(Slice.of(x_i[0], channels, start, size, self.dtype, b64))
                        room -= count
            out.append(item)
        return out, room

    def layer(self, act: LayerActivation) -> tuple[str, dict[str, Any]]:
        rf, box = self.fields[act.index], self.boxes[act.index]
        kind = act.module.layer_kind
        entry: dict[str, Any] = {
            "index": act.index, "name": _name_text(act.name), "repr": one_line(act.module), "kind": kind,
            "nested": act.nested, "in_shape": list(act.x.shape), "out_shape": list(act.y.shape),
            "rf": None if rf.rf is None or rf.jump is None else list(rf.rf),
            "jump": None if rf.jump is None else list(rf.jump),
            "start": None if rf.start is None else list(rf.start),
            "field": None if box is None else [[first.tolist(), last.tolist()] for first, last in box],
            "values": None, "conv": None, "input_ref": self.refs.get(act.index),
            "input_label": self._piece_text(act.x),
            "field_reason": None if box is not None else self._field_reason(act),
        }
        body = [self._meta(act), self._feeds(act)]
        room = self.cap
        tile: tuple[list[int], list[int]] | None = None
        if act.spatial:
            maps, shown = feature_maps(act, self.max_channels)
            body.append(maps)
            if len(shown) < act.y.shape[1]:
                self.capped.append(act.index)
            self.shown[act.index] = shown
            tile = self._tile(act, shown)
            values = Slice.of(np.asarray(act.y[0]), shown, tile[0], tile[1], self.dtype, b64)
            count = len(shown) * int(np.prod(tile[1]))
            if tile[1] != list(act.y.shape[2:]):
                self.tiled.append(act.index)
        else:
            body.append(vector_strip(act))
            shown = None
            self.shown[act.index] = None
            values = {"channels": None, "data": b64(np.asarray(act.y[0]), self.dtype)}
            count = act.y[0].size
        self.tiles[act.index] = tile
        if count <= room:
            entry["values"] = values
            room -= count
        else:
            self.unembedded.append(act.index)
        entry["inputs"], room = self._inputs(act, shown, tile, room)
        if kind == "conv" and act.spatial and tile is not None:
            from_input = self.refs.get(act.index) == 0
            full = tile[1] == list(act.y.shape[2:])
            conv = conv_numbers(act, shown or [], tile[0], tile[1], room - (0 if full else dw_need(act, from_input)),
                                self.dtype, b64)
            entry["conv"] = conv
            if conv["padded"] is None:
                self.unembedded.append(act.index)
            elif not full:
                conv["dw"] = dw_inputs(act, conv["channels"], self.dtype, b64, from_input)
            body.append(filters_html(act.module, act.index))
        extra = layer_numbers(act, shown if shown is not None else [], tile, room, self.dtype)
        entry.update({k: v for k, v in extra.items() if k != "kind"})
        if kind == "residual":
            entry["residual"] = {"block_ref": act.index - 1 if act.index - 1 in self.refs else None}
        if kind in ("add", "concat", "mul") and len(act.inputs) > 1:
            regions = [sent_region(act, i, shown, tile) for i in range(len(act.inputs))]
            entry["sent_at"] = [None if r is None else {"channels": r[0], "start": r[1], "tile": r[2]}
                                for r in regions]
        if len(self.consumers.get(act.index, [])) > 1:
            entry["consumers"] = self.consumers[act.index]     # fan-out: dL/dy sums what each sends back
        self.entries[act.index] = entry
        body.append(f'<div class="gmaps" data-layer="{act.index}"></div>')
        where = ' <span class="muted">(inside a Residual block)</span>' if act.nested else ""
        card = (f'<section class="card layer{" nested" if act.nested else ""}" id="layer-{act.index}" '
                f'data-layer="{act.index}" data-kind="{html.escape(kind)}"><details open><summary>'
                f'<h2><span class="idx">Layer {act.index}</span>'
                f'{html.escape(_name_text(act.name))}: {html.escape(one_line(act.module))}{where}</h2></summary>'
                f'{"".join(body)}</details></section>')
        return card, entry

    def _grad_parts(self, act: LayerActivation, grad: Any) -> dict[str, Any]:
        """What one backward pass embeds for one layer: dL/dy on its tile; for a merge what it sends
        to each input (``sent<i>``), or, where that is bit for bit a part of the embedded dL/dy (an
        Add's copy, a Concat's channel slice), the output channels it equals (``same<i>``: nothing is
        embedded twice); for a convolution dL/dW of its embedded filters (and the filters' whole
        dL/dy planes on a tiled layer)."""
        shown, tile = self.shown[act.index], self.tiles.get(act.index)
        g = grad.grads[act.index][0]
        parts: dict[str, Any] = {"dy": g if shown is None or tile is None else block(g[shown], *tile)}
        for i, where in enumerate(self.entries[act.index].get("sent_at") or ()):
            if where is None or act.index not in grad.sent:
                continue
            dx, chans = grad.sent[act.index][i][0], where["channels"]
            part = dx if not where["tile"] else block(dx if chans is None else dx[chans], where["start"], where["tile"])
            same = same_as_dy(act, i, where, shown, tile)
            ref = None if same is None or tile is None else block(g[same], *tile)
            if ref is not None and ref.shape == part.shape and ref.tobytes() == part.tobytes():
                parts[f"same{i}"] = same                 # bit for bit those channels of dL/dy
            else:
                parts[f"sent{i}"] = part
        conv = self.entries[act.index].get("conv")
        if act.index in grad.weight_grads and conv and conv.get("padded") is not None:
            dw = grad.weight_grads[act.index]
            check = conv.get("dw")
            if "dw" not in conv:                        # the whole map: the page has every input
                parts["dw"] = dw[conv["channels"]]
            elif check is not None:
                gsize = dw.shape[1]
                rel = [c - (c // gsize) * gsize for c in check["channels"]]
                parts["dw"] = dw[check["filters"]][:, rel]
                parts["dy_full"] = g[check["filters"]]
        return parts

    def backward(self, model: Module, xb: np.ndarray, acts: list[LayerActivation], probs: np.ndarray,
                 label: int | None, max_classes: int) -> dict[str, Any] | None:
        """Backward passes for the label, the prediction and the likeliest classes, as far as the budget goes."""
        order = [int(i) for i in np.argsort(-probs, kind="stable")]
        targets = ([label] if label is not None else []) + [c for c in order if c != label]
        shown_acts = [a for a in acts if a.index in self.shown]
        passes: dict[str, Any] = {}
        kept: list[int] = []
        per_class = None
        todo = targets[:max_classes]
        while todo:
            grad = backward_passes(model, xb, acts, todo[:1])[0]
            todo = todo[1:]
            parts = {a.index: self._grad_parts(a, grad) for a in shown_acts}
            need = xb[0].size + sum(v.size for p in parts.values() for v in p.values() if isinstance(v, np.ndarray))
            per_class = need
            if not self.budget.take(need):
                break
            passes[str(grad.target)] = {
                "loss": grad.loss, "input": b64(grad.input_grad[0], self.dtype),
                "layers": {str(i): b64(p["dy"], self.dtype) for i, p in parts.items()},
                "dw": {str(i): b64(p["dw"], self.dtype) for i, p in parts.items() if "dw" in p},
                "dy_full": {str(i): b64(p["dy_full"], self.dtype) for i, p in parts.items() if "dy_full" in p},
                "sent": {str(i): [b64(p[f"sent{j}"], self.dtype) if f"sent{j}" in p else
                                  {"same_as_dy": p[f"same{j}"]} if f"same{j}" in p else None
                                  for j in range(len(self.entries[i]["sent_at"]))]
                         for i, p in parts.items() if self.entries[i].get("sent_at")},
            }
            kept.append(grad.target)
            if per_class > self.budget.left:
                break
        if not kept:
            self.backward_note = (f"The backward pass is not embedded: one class needs {per_class or 0:,} numbers, "
                                  f"over the cap on embedded backward numbers (max_numbers).")
            return None
        if len(kept) < len(probs):
            which = ", ".join(f"class {c}" + (" (the label)" if c == label else "")
                              + (" (the prediction)" if c == order[0] else "") for c in kept)
            why = (f"max_classes={max_classes}" if len(kept) == max_classes else
                   f"each needs {per_class:,} numbers; the cap on embedded backward numbers is max_numbers")
            self.backward_note = (f"Backward passes are embedded for {len(kept)} of {len(probs)} classes: "
                                  f"{which} ({why}).")
        return {"targets": kept, "default": kept[0], "label": label, "passes": passes}
