"""Pictures of a model as PNG files (matplotlib, Agg): filters, feature maps, weight gradients.

Every function draws one figure, writes it to ``path`` (parent folders are created; the
format is PNG whatever the suffix) and returns the path as a :class:`pathlib.Path`.

* :func:`plot_filters` - the learned filters of one convolution layer as a grid: one row per
  filter, one column per input channel (the notes' "these filters teach us interesting
  things"); one-channel filters are wrapped into a square-ish grid.
* :func:`plot_feature_maps` - every channel of every layer's output for one input image.
* :func:`plot_weight_gradients` - dLoss/dW of every layer with weights (after a backward, or
  computed here from ``x`` and ``target``).

Training and shift curves are in :mod:`convscope.viz.curves`, the filter-bank demo in
:mod:`convscope.viz.demo`. Signed arrays (filters, gradients, convolution outputs) use a
blue-white-red scale symmetric around 0, so white always means 0; non-negative maps (after
a ReLU) use viridis. matplotlib is imported only when a picture is drawn; without it a
:class:`~convscope.errors.MissingDependencyError` says to install ``convscope[train]``.

Example:
    >>> import tempfile, pathlib
    >>> from convscope import nn
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> plot_filters(nn.Conv2d(1, 4, 3, rng=0), folder / "filters.png").name
    'filters.png'
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, StateError
from ..nn import Module
from ..nn.layer_types import ConvLayer, LinearLayer
from ..nn.walk import one_line as _one_line
from ._mpl import WIDTH as _WIDTH
from ._mpl import as_2d as _as_2d
from ._mpl import check_positive as _check_positive
from ._mpl import draw_mosaic as _draw_mosaic
from ._mpl import figure as _figure
from ._mpl import label_tiles as _label_tiles
from ._mpl import mosaic as _mosaic
from ._mpl import out_path as _out_path
from ._mpl import save as _save
from ._mpl import tiled_size as _tiled_size
from .activations import find_layer, forward_layers, numbered_layers
from .activations import name_suffix as _name_text

__all__ = ["plot_filters", "plot_feature_maps", "plot_weight_gradients"]


def _filter_grid(w: np.ndarray, max_filters: int, max_channels: int) -> tuple[np.ndarray, int, str, str]:
    """Mosaic of a weight ``(C_out, C_in/g, *k)``; also the columns used and axis labels."""
    c_out, c_in = w.shape[:2]
    shown_f, shown_c = min(c_out, max_filters), min(c_in, max_channels)
    note = ""
    if c_in == 1:
        tiles = [_as_2d(w[f, 0])[0] for f in range(shown_f)]
        note = _as_2d(w[0, 0])[1]
        columns = min(shown_f, max(1, math.ceil(math.sqrt(shown_f * 1.5))))
        return _mosaic(tiles, columns), columns, f"filters 1..{shown_f} (row-major)", note
    tiles = []
    for f in range(shown_f):
        for c in range(shown_c):
            tile, note = _as_2d(w[f, c])
            tiles.append(tile)
    return _mosaic(tiles, shown_c), shown_c, f"input channels 1..{shown_c}", note


#: Above this many input channels (columns) a filter grid names its rows and columns on the axes
#: ("f1", "ch 1") instead of writing "f1, ch 1" over each tile, which would overlap.
_TILE_LABEL_COLUMNS = 8


def _grid_ticks(ax: Any, tile: tuple[int, int], rows: int, columns: int, gap: int = 1) -> None:
    """Row ("f1" ...) and column ("ch 1" ...) names of a (filters x channels) mosaic on its axes."""
    h, w = tile
    step = max(1, math.ceil(max(rows, columns) / 64))  # at most 64 names per axis
    ax.set_xticks([c * (w + gap) + (w - 1) / 2 for c in range(0, columns, step)])
    ax.set_xticklabels([f"ch {c + 1}" for c in range(0, columns, step)], fontsize=6, rotation=90)
    ax.set_yticks([r * (h + gap) + (h - 1) / 2 for r in range(0, rows, step)])
    ax.set_yticklabels([f"f{r + 1}" for r in range(0, rows, step)], fontsize=6)
    ax.tick_params(length=0, pad=1)


def _caps(c_out: int, c_in: int, max_filters: int, max_channels: int) -> str:
    parts = []
    if c_out > max_filters:
        parts.append(f"first {max_filters} of {c_out} filters")
    if c_in > max_channels and c_in > 1:
        parts.append(f"first {max_channels} of {c_in} channels")
    return f" [{', '.join(parts)}]" if parts else ""


def plot_filters(model: Module, path: Any = None, layer: Any = None, max_filters: int = 64,
                 max_channels: int = 16) -> Any:
    """Draw the filters (weights) of one convolution layer as a grid.

    Args:
        model: a model, or a convolution layer itself.
        path: the file to write (PNG; SVG for a ``.svg`` name), or None to get the picture back.
        layer: which convolution: 1-based layer number (as ``convscope.summary``) or dotted
            name; None picks the first one.
        max_filters: draw at most this many filters (rows); the title says when some are left out.
        max_channels: draw at most this many input channels (columns).

    Returns:
        ``path`` as a Path when given; otherwise a :class:`~convscope.viz.Figure` (shows inline in
        Jupyter, ``.save("x.png")`` / ``.save("x.svg")``).

    Raises:
        ConfigError: no such convolution layer, or non-positive caps.
        MissingDependencyError: matplotlib is not installed.

    Notes:
        Row ``f``, column ``c`` is ``weight[f, c]``: the part of filter ``f`` (a tensor
        filter, Concept 31) that reads input channel ``c``. The notes draw a filter bank as
        ``k x k x m``; the weight array is ``(m, C_in, k, k)`` (channels first).
    """
    op = "plot_filters"
    max_filters = _check_positive(max_filters, "max_filters", op)
    max_channels = _check_positive(max_channels, "max_channels", op)
    if isinstance(model, Module) and model.layer_kind == "conv" and layer is None:
        index, name, conv = 1, "", model
    else:
        index, name, conv = find_layer(model, layer, ("conv",), "convolution", op)
    p = _out_path(path, op)
    w = np.asarray(cast(ConvLayer, conv).weight.data, dtype=np.float64)
    mosaic, columns, xlabel, note = _filter_grid(w, max_filters, max_channels)
    tile = _as_2d(w[0, 0])[0].shape
    shown_f, shown_c = min(w.shape[0], max_filters), min(w.shape[1], max_channels)
    count = shown_f if w.shape[1] == 1 else shown_f * shown_c
    small = tile[0] * tile[1] <= 25 and count <= 32 and w.ndim == 4
    tile_in = 1.2 if small else (0.9 if count <= 16 else 0.6)
    width, height = _tiled_size(mosaic, columns, tile_in, _WIDTH + 2.0)
    fig = _figure(width + 2.0, height + 1.6)
    ax = fig.add_subplot(1, 1, 1)
    where = f"layer {index}{_name_text(name)}"
    title = (f"{where}: {_one_line(conv)}\nweight {tuple(w.shape)}"
             + _caps(w.shape[0], w.shape[1], max_filters, max_channels) + (f"; {note}" if note else "")
             + "\nblue < 0, white = 0, red > 0")
    _draw_mosaic(fig, ax, mosaic, title, xlabel=xlabel,
                 ylabel="filters (one per row)" if w.shape[1] > 1 else "", width_in=width, title_pad=20.0)
    if w.shape[1] == 1:
        labels = [f"filter {f + 1}" for f in range(shown_f)]
        tiles = [_as_2d(w[f, 0])[0] for f in range(shown_f)]
    elif shown_c <= _TILE_LABEL_COLUMNS:
        labels = [f"f{f + 1}, ch {c + 1}" for f in range(shown_f) for c in range(shown_c)]
        tiles = [_as_2d(w[f, c])[0] for f in range(shown_f) for c in range(shown_c)]
    else:  # a label over every tile would not fit: name the rows and columns on the axes instead
        labels, tiles = None, []
        _grid_ticks(ax, tile, shown_f, shown_c)
    _label_tiles(ax, mosaic, tile, count, columns, labels, tiles if small else None,
                 fontsize=9.0 if tile_in >= 0.9 else 7.0)
    fig.tight_layout()
    return _save(fig, p, f"{where}: the filters of {_one_line(conv)}")


def plot_feature_maps(model: Module, x: Any, path: Any = None, max_channels: int | None = None,
                      columns: int = 16, class_names: Any = None) -> Any:
    """Draw every channel of every layer's output (feature maps) for one input.

    One panel per layer, channels laid out row-major (channel 1 top left), on one colour
    scale per layer so channels can be compared; the input comes first. Layers whose output
    has no spatial axes (Linear) are drawn as one strip of numbers; Flatten (a reshape of
    the previous panel) is skipped. 1-D feature maps are drawn one channel per row. A node
    with several outputs (a graph's Split) gets one panel per piece.

    Args:
        model: the model.
        x: one sample, ``(C, *spatial)``, ``(1, C, *spatial)`` or ``(H, W)`` for a one-channel
            model; cast to the model's dtype.
        path: the file to write (PNG; SVG for a ``.svg`` name), or None to get the picture back.
        max_channels: draw at most this many channels per layer (None: all; a title says
            when some are left out).
        columns: channels per row (2-D maps).
        class_names: names of the outputs of the last layer (the classes), written under its
            strip of numbers; default ``class 0``, ``class 1``, ...

    Returns:
        ``path`` as a Path when given; otherwise a :class:`~convscope.viz.Figure` (shows inline in
        Jupyter, ``.save("x.png")`` / ``.save("x.svg")``).

    Raises:
        ShapeError: ``x`` does not fit the model (the layer is named).
        MissingDependencyError: matplotlib is not installed.
    """
    op = "plot_feature_maps"
    columns = _check_positive(columns, "columns", op)
    if max_channels is not None:
        max_channels = _check_positive(max_channels, "max_channels", op)
    xb, acts = forward_layers(model, x, op)
    p = _out_path(path, op)
    panels: list[tuple[np.ndarray, str, float, Any]] = []   # mosaic, title, height, width (None: stretch)
    usable = _WIDTH - 1.5

    def add(a: np.ndarray, title: str, tile_in: float) -> None:
        if a.ndim >= 3:
            c = a.shape[1]
            shown = c if max_channels is None else min(c, max_channels)
            tiles = [_as_2d(np.asarray(a[0, i], dtype=np.float64))[0] for i in range(shown)]
            note = f" [first {shown} of {c} channels]" if shown < c else ""
            if a.ndim == 3:        # 1-D maps: one channel per row
                panels.append((_mosaic(tiles, 1), title + note, 0.22 * shown + 0.2, None))
                return
            across = min(columns, shown)
            mosaic = _mosaic(tiles, across)
            width, height = _tiled_size(mosaic, across, tile_in, usable)
            panels.append((mosaic, title + note, height, width))
        else:
            panels.append((np.asarray(a, dtype=np.float64).reshape(1, -1), title, 0.55, "strip"))

    add(xb, f"input {tuple(xb.shape)}", 2.5)
    for act in acts:
        if act.module.layer_kind == "flatten":
            continue
        title = f"layer {act.index}{_name_text(act.name)}: {_one_line(act.module)}"
        pieces = act.outputs
        for k, y in enumerate(pieces):        # a Split: every piece (each feeds its own branch)
            piece = f" -> piece {k + 1} of {len(pieces)}" if len(pieces) > 1 else " ->"
            add(y, f"{title}{piece} {tuple(y.shape)}", 0.75)
    heights = [h + 0.45 for _, _, h, _ in panels]
    fig = _figure(_WIDTH, sum(heights) + 0.2)
    grid = fig.add_gridspec(len(panels), 1, height_ratios=heights)
    last_strip = max((i for i, panel in enumerate(panels) if panel[3] == "strip"), default=None)
    for i, (mosaic, title, _, width) in enumerate(panels):
        ax = fig.add_subplot(grid[i, 0])
        strip = width == "strip"
        _draw_mosaic(fig, ax, mosaic, title, aspect="auto" if strip or not width else "equal",
                     width_in=None if strip else width, scale="gray" if i == 0 else None)
        if strip and mosaic.shape[1] <= 40:
            n_out = mosaic.shape[1]
            if i == last_strip:
                names = ([str(v) for v in class_names] if class_names is not None and len(class_names) == n_out
                         else [f"class {j}" for j in range(n_out)])
            else:
                names = [str(j + 1) for j in range(n_out)]
            ax.set_xticks(range(n_out), names, fontsize=8, rotation=0 if n_out <= 12 else 60)
            _label_tiles(ax, mosaic, (1, n_out), 1, 1, None, [mosaic], fontsize=8.0)
    fig.tight_layout()
    return _save(fig, p, "feature maps of every layer")


def plot_weight_gradients(model: Module, path: Any = None, x: Any = None, target: Any = None,
                          loss: Module | None = None, max_filters: int = 32,
                          max_channels: int = 8) -> Any:
    """Draw dLoss/dW of every layer with weights (convolutions as filter grids, Linear as a matrix).

    Args:
        model: the model.
        path: the file to write (PNG; SVG for a ``.svg`` name), or None to get the picture back.
        x, target: a batch and its targets; when given, the gradients are computed here
            (``zero_grad``, forward, ``loss``, backward: the model's ``.grad`` is overwritten).
            When None, the gradients already in ``.grad`` are drawn.
        loss: the loss module (default :class:`convscope.nn.CrossEntropyLoss`).
        max_filters, max_channels: caps on the filter grid of each convolution.

    Returns:
        ``path`` as a Path when given; otherwise a :class:`~convscope.viz.Figure` (shows inline in
        Jupyter, ``.save("x.png")`` / ``.save("x.svg")``).

    Raises:
        StateError: no ``x`` and every gradient is zero (backward has not run).
        ConfigError: only one of ``x`` and ``target``, or a model without weights.
        MissingDependencyError: matplotlib is not installed.
    """
    from .. import nn

    op = "plot_weight_gradients"
    max_filters = _check_positive(max_filters, "max_filters", op)
    max_channels = _check_positive(max_channels, "max_channels", op)
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"{op}: model must be a convscope Module; got {type(model).__name__}.")
    if (x is None) != (target is None):
        raise ConfigError(f"{op}: give both x and target (to compute the gradients here) or neither "
                          f"(to draw the .grad left by your own backward).")
    layers = [(i, n, m) for i, n, m in numbered_layers(model) if m.layer_kind in ("conv", "linear")]
    if not layers:
        raise ConfigError(f"{op}: the model has no convolution or Linear layer, so no weights to draw.")
    if x is not None:
        loss = nn.CrossEntropyLoss() if loss is None else loss
        model.zero_grad()
        value = loss(model(x), target)
        # a loss's backward starts the chain and takes no upstream gradient, unlike Module.backward
        model.backward(cast(Any, loss).backward())
        loss_text = f"loss {float(value):.4g} on a batch of {np.shape(x)[0]}"
    else:
        if all(not np.any(cast(ConvLayer, m).weight.grad) for _, _, m in layers):
            raise StateError(f"{op}: every weight gradient is zero: run loss.backward() and "
                             f"model.backward(...) first, or pass x and target.")
        loss_text = "gradients as left in .grad"
    p = _out_path(path, op)
    panels = []
    usable = _WIDTH - 1.5
    for index, name, m in layers:
        g = np.asarray(cast(ConvLayer | LinearLayer, m).weight.grad, dtype=np.float64)
        norm = float(np.linalg.norm(g))
        title = (f"layer {index}{_name_text(name)}: {_one_line(m)}\n"
                 f"dL/dW {tuple(g.shape)}, ||dL/dW|| = {norm:.3g}")
        ylabel = ""
        if m.layer_kind == "conv" and g.shape[1] > 1:
            # filters across (one column each), input channels down: wide rather than tall
            shown_f, shown_c = min(g.shape[0], max_filters), min(g.shape[1], max_channels)
            tiles = [_as_2d(g[f, c])[0] for c in range(shown_c) for f in range(shown_f)]
            mosaic, columns = _mosaic(tiles, shown_f), shown_f
            xlabel, ylabel = f"filters 1..{shown_f} (columns)", f"input channels 1..{shown_c} (rows)"
            width, height = _tiled_size(mosaic, columns, 0.45, usable)
            title += _caps(g.shape[0], g.shape[1], max_filters, max_channels)
        elif m.layer_kind == "conv":
            mosaic, columns, xlabel, _ = _filter_grid(g, max_filters, max_channels)
            width, height = _tiled_size(mosaic, columns, 0.45, usable)
            title += _caps(g.shape[0], g.shape[1], max_filters, max_channels)
        else:
            mosaic, xlabel = g, f"inputs 1..{g.shape[1]} (columns), outputs 1..{g.shape[0]} (rows)"
            width, height = None, min(max(usable * g.shape[0] / g.shape[1], 0.5), 2.5)
            ylabel = "outputs (rows)"
        panels.append((mosaic, title, xlabel, width, height, ylabel))
    heights = [p_[4] + 1.0 for p_ in panels]
    total = sum(heights) + 0.5
    fig = _figure(_WIDTH, total)
    grid = fig.add_gridspec(len(panels), 1, height_ratios=heights)
    for i, (mosaic, title, xlabel, width, _, ylabel) in enumerate(panels):
        ax = fig.add_subplot(grid[i, 0])
        _draw_mosaic(fig, ax, mosaic, title, xlabel=xlabel, aspect="equal" if width else "auto",
                     width_in=width, ylabel=ylabel)
    # the heading 0.1 in from the top, in the 0.45 in kept free above the panels (matplotlib's
    # default 98% of the height lands inside the first panel of a tall figure)
    fig.suptitle(f"Weight gradients dL/dW ({loss_text}); white = 0", fontsize=10, x=0.01, ha="left",
                 y=1 - 0.1 / total, va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / total))
    return _save(fig, p, f"weight gradients dL/dW ({loss_text})")


