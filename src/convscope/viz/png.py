"""Pictures as PNG files (matplotlib, Agg): filters, feature maps, gradients, curves, demos.

Every function draws one figure, writes it to ``path`` (parent folders are created; the
format is PNG whatever the suffix) and returns the path as a :class:`pathlib.Path`.

* :func:`plot_filters` - the learned filters of one convolution layer as a grid: one row per
  filter, one column per input channel (the notes' "these filters teach us interesting
  things"); one-channel filters are wrapped into a square-ish grid.
* :func:`plot_feature_maps` - every channel of every layer's output for one input image.
* :func:`plot_weight_gradients` - dLoss/dW of every layer with weights (after a backward, or
  computed here from ``x`` and ``target``).
* :func:`plot_curves` - loss and accuracy per epoch from a training History.
* :func:`plot_shift_curve` - the correct-class probability against the shift (Concept 59,
  Zhang 2019's Figure 1), for one model or several side by side.
* :func:`plot_filter_bank_demo` - the notes' filter-bank story (9.1.11-9.1.12) in pictures.

Signed arrays (filters, gradients, convolution outputs) use a blue-white-red scale
symmetric around 0, so white always means 0; non-negative maps use viridis.

matplotlib is imported only when a picture is drawn, through its object-oriented API (no
``pyplot``, so no global backend is switched and nothing opens a window); without it a
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
import numbers
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, DataError, MissingDependencyError, StateError
from ..nn import Module
from ..nn.conv import _ConvNd
from ..nn.linear import Linear
from ..nn.flatten import Flatten
from .activations import find_layer, forward_layers, numbered_layers

__all__ = [
    "plot_filters",
    "plot_feature_maps",
    "plot_weight_gradients",
    "plot_curves",
    "plot_shift_curve",
    "plot_filter_bank_demo",
]

_WIDTH = 12.0  # figure width in inches
_DPI = 100


def _figure(width: float, height: float):
    """A matplotlib Figure (Agg canvas), or MissingDependencyError."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        raise MissingDependencyError(
            "convscope.viz: drawing PNG pictures needs matplotlib; install it with "
            "pip install 'convscope[train]'. (The HTML explainer needs no matplotlib.)"
        ) from None
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _cmap(name: str):
    from matplotlib import colormaps

    cmap = colormaps[name].copy()
    cmap.set_bad("#d9d9d9")   # gaps between tiles of a mosaic
    return cmap


def _out_path(path: Any, op: str) -> Path:
    if not isinstance(path, (str, Path)) or not str(path):
        raise ArgumentTypeError(f"{op}: path must be a file name (str or Path); got {path!r}.")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _save(fig, path: Path) -> Path:
    fig.savefig(path, format="png", dpi=_DPI)
    return path


def _as_2d(a: np.ndarray) -> tuple[np.ndarray, str]:
    """A tile to draw: 1-D as one row, 2-D as is, 3-D as its middle slice (with a note)."""
    if a.ndim == 1:
        return a[None], ""
    if a.ndim == 2:
        return a, ""
    mid = a.shape[0] // 2
    return _as_2d(a[mid])[0], f"middle slice {mid} of the first spatial axis shown"


def _mosaic(tiles: Sequence[np.ndarray], columns: int, gap: int = 1) -> np.ndarray:
    """Tiles of one shape laid out row-major, separated by NaN gaps (drawn grey)."""
    h, w = tiles[0].shape
    rows = math.ceil(len(tiles) / columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = t
    return out


def _signed_scale(a: np.ndarray) -> tuple[str, float, float]:
    """Colour map and limits: symmetric blue-white-red when ``a`` has negatives, else viridis."""
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return "RdBu_r", -1.0, 1.0
    if finite.min() < 0:
        m = float(np.abs(finite).max()) or 1.0
        return "RdBu_r", -m, m
    hi = float(finite.max())
    return "viridis", 0.0, hi if hi > 0 else 1.0


def _check_positive(value: Any, name: str, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{op}: {name} must be a positive int; got {value!r}.")
    return int(value)


def _draw_mosaic(fig, ax, mosaic: np.ndarray, title: str, xlabel: str = "", ylabel: str = "",
                 aspect: str = "equal", width_in: float | None = None) -> None:
    """Draw a mosaic left-aligned in its axes, with its colour bar right beside the image.

    ``width_in`` is the drawn width of the image in inches when known (aspect "equal"):
    the colour bar then sits just right of the image instead of at the far edge.
    """
    name, lo, hi = _signed_scale(mosaic)
    im = ax.imshow(mosaic, cmap=_cmap(name), vmin=lo, vmax=hi, interpolation="nearest", aspect=aspect)
    ax.set_anchor("W")
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    if width_in:
        cax = ax.inset_axes([1 + 0.08 / width_in, 0.0, 0.12 / width_in, 1.0])
        fig.colorbar(im, cax=cax)
        cax.tick_params(labelsize=7)
    else:
        fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01, panchor=False)


def _tiled_size(mosaic: np.ndarray, tiles_across: int, tile_in: float, usable: float) -> tuple[float, float]:
    """(width, height) in inches of a mosaic whose tiles are drawn ``tile_in`` wide (capped)."""
    width = min(tiles_across * tile_in, usable)
    return width, width * mosaic.shape[0] / mosaic.shape[1]


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


def _caps(c_out: int, c_in: int, max_filters: int, max_channels: int) -> str:
    parts = []
    if c_out > max_filters:
        parts.append(f"first {max_filters} of {c_out} filters")
    if c_in > max_channels and c_in > 1:
        parts.append(f"first {max_channels} of {c_in} channels")
    return f" [{', '.join(parts)}]" if parts else ""


def plot_filters(model: Module, path: Any, layer: Any = None, max_filters: int = 64,
                 max_channels: int = 16) -> Path:
    """Draw the filters (weights) of one convolution layer as a grid.

    Args:
        model: a model, or a convolution layer itself.
        path: the PNG file to write.
        layer: which convolution: 1-based layer number (as ``convscope.summary``) or dotted
            name; None picks the first one.
        max_filters: draw at most this many filters (rows); the title says when some are left out.
        max_channels: draw at most this many input channels (columns).

    Returns:
        ``path`` as a Path.

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
    if isinstance(model, _ConvNd) and layer is None:
        index, name, conv = 1, "", model
    else:
        index, name, conv = find_layer(model, layer, (_ConvNd,), "convolution", op)
    p = _out_path(path, op)
    w = np.asarray(conv.weight.data, dtype=np.float64)
    mosaic, columns, xlabel, note = _filter_grid(w, max_filters, max_channels)
    width, height = _tiled_size(mosaic, columns, 0.6, _WIDTH - 2.0)
    fig = _figure(width + 2.0, height + 1.1)
    ax = fig.add_subplot(1, 1, 1)
    where = f"layer {index}{_name_text(name)}"
    title = (f"{where}: {_one_line(conv)}\nweight {tuple(w.shape)}"
             + _caps(w.shape[0], w.shape[1], max_filters, max_channels) + (f"; {note}" if note else ""))
    _draw_mosaic(fig, ax, mosaic, title, xlabel=xlabel,
                 ylabel="filters (one per row)" if w.shape[1] > 1 else "", width_in=width)
    fig.tight_layout()
    return _save(fig, p)


def _name_text(name: str) -> str:
    """`` (features.3)`` for a dotted name; nothing for a plain position like ``3`` (it would
    read as a second layer number)."""
    return "" if not name or name.isdigit() else f" ({name})"


def _one_line(module: Module) -> str:
    text = repr(module)
    return text if "\n" not in text else f"{type(module).__name__}(...)"


def plot_feature_maps(model: Module, x: Any, path: Any, max_channels: int | None = None,
                      columns: int = 16) -> Path:
    """Draw every channel of every layer's output (feature maps) for one input.

    One panel per layer, channels laid out row-major (channel 1 top left), on one colour
    scale per layer so channels can be compared; the input comes first. Layers whose output
    has no spatial axes (Linear) are drawn as one strip of numbers; Flatten (a reshape of
    the previous panel) is skipped. 1-D feature maps are drawn one channel per row.

    Args:
        model: the model.
        x: one sample, ``(C, *spatial)``, ``(1, C, *spatial)`` or ``(H, W)`` for a one-channel
            model; cast to the model's dtype.
        path: the PNG file to write.
        max_channels: draw at most this many channels per layer (None: all; a title says
            when some are left out).
        columns: channels per row (2-D maps).

    Returns:
        ``path`` as a Path.

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
            panels.append((np.asarray(a, dtype=np.float64).reshape(1, -1), title, 0.35, None))

    add(xb, f"input {tuple(xb.shape)}", 2.5)
    for act in acts:
        if isinstance(act.module, Flatten):
            continue
        add(act.y, f"layer {act.index}{_name_text(act.name)}: {_one_line(act.module)} -> {tuple(act.y.shape)}", 0.75)
    heights = [h + 0.45 for _, _, h, _ in panels]
    fig = _figure(_WIDTH, sum(heights) + 0.2)
    grid = fig.add_gridspec(len(panels), 1, height_ratios=heights)
    for i, (mosaic, title, _, width) in enumerate(panels):
        ax = fig.add_subplot(grid[i, 0])
        _draw_mosaic(fig, ax, mosaic, title, aspect="equal" if width else "auto", width_in=width)
    fig.tight_layout()
    return _save(fig, p)


def plot_weight_gradients(model: Module, path: Any, x: Any = None, target: Any = None,
                          loss: Module | None = None, max_filters: int = 32,
                          max_channels: int = 8) -> Path:
    """Draw dLoss/dW of every layer with weights (convolutions as filter grids, Linear as a matrix).

    Args:
        model: the model.
        path: the PNG file to write.
        x, target: a batch and its targets; when given, the gradients are computed here
            (``zero_grad``, forward, ``loss``, backward: the model's ``.grad`` is overwritten).
            When None, the gradients already in ``.grad`` are drawn.
        loss: the loss module (default :class:`convscope.nn.CrossEntropyLoss`).
        max_filters, max_channels: caps on the filter grid of each convolution.

    Returns:
        ``path`` as a Path.

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
    layers = [(i, n, m) for i, n, m in numbered_layers(model) if isinstance(m, (_ConvNd, Linear))]
    if not layers:
        raise ConfigError(f"{op}: the model has no convolution or Linear layer, so no weights to draw.")
    if x is not None:
        loss = nn.CrossEntropyLoss() if loss is None else loss
        model.zero_grad()
        value = loss(model(x), target)
        model.backward(loss.backward())
        loss_text = f"loss {float(value):.4g} on a batch of {np.shape(x)[0]}"
    else:
        if all(not np.any(m.weight.grad) for _, _, m in layers):
            raise StateError(f"{op}: every weight gradient is zero: run loss.backward() and "
                             f"model.backward(...) first, or pass x and target.")
        loss_text = "gradients as left in .grad"
    p = _out_path(path, op)
    panels = []
    usable = _WIDTH - 1.5
    for index, name, m in layers:
        g = np.asarray(m.weight.grad, dtype=np.float64)
        norm = float(np.linalg.norm(g))
        title = f"layer {index}{_name_text(name)}: {_one_line(m)}\ndL/dW {tuple(g.shape)}, ||dL/dW|| = {norm:.3g}"
        if isinstance(m, _ConvNd):
            mosaic, columns, xlabel, _ = _filter_grid(g, max_filters, max_channels)
            width, height = _tiled_size(mosaic, columns, 0.45, usable)
            title += _caps(g.shape[0], g.shape[1], max_filters, max_channels)
        else:
            mosaic, xlabel = g, f"inputs 1..{g.shape[1]} (columns), outputs 1..{g.shape[0]} (rows)"
            width, height = None, min(max(usable * g.shape[0] / g.shape[1], 0.5), 2.5)
        panels.append((mosaic, title, xlabel, width, height))
    heights = [h + 1.0 for *_, h in panels]
    total = sum(heights) + 0.5
    fig = _figure(_WIDTH, total)
    grid = fig.add_gridspec(len(panels), 1, height_ratios=heights)
    for i, (mosaic, title, xlabel, width, _) in enumerate(panels):
        ax = fig.add_subplot(grid[i, 0])
        _draw_mosaic(fig, ax, mosaic, title, xlabel=xlabel, aspect="equal" if width else "auto",
                     width_in=width, ylabel="filters (rows)" if width and mosaic.shape[1] > 0 else "")
    fig.suptitle(f"Weight gradients dL/dW ({loss_text}); white = 0", fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / total))
    return _save(fig, p)


def _history_columns(history: Any, op: str) -> dict[str, list[Any]]:
    """``{metric: [per epoch]}`` from a History, its ``to_dict()``, a list of records or columns."""
    records = None
    if hasattr(history, "records") and isinstance(history.records, list):
        records = history.records
    elif isinstance(history, Mapping) and isinstance(history.get("epochs"), list):
        records = history["epochs"]
    elif isinstance(history, (list, tuple)) and all(isinstance(r, Mapping) for r in history):
        records = list(history)
    elif isinstance(history, Mapping) and all(isinstance(v, (list, tuple)) for v in history.values()):
        lengths = {len(v) for v in history.values()}
        if len(lengths) != 1:
            raise DataError(f"{op}: every column of history must have one entry per epoch; got "
                            f"lengths {sorted(lengths)}.")
        return {k: list(v) for k, v in history.items()}
    if records is None:
        raise ArgumentTypeError(
            f"{op}: history must be a convscope.train.History, its to_dict(), a list of per-epoch "
            f"dicts or a dict of per-epoch lists; got {type(history).__name__}."
        )
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r))
    return {k: [r.get(k) for r in records] for k in keys}


def plot_curves(history: Any, path: Any, test: Mapping[str, float] | None = None) -> Path:
    """Draw loss and accuracy per epoch (training and validation) from a training history.

    Args:
        history: a :class:`convscope.train.History` (what ``fit`` returns), its
            ``to_dict()``, a list of per-epoch dicts, or a dict of per-epoch lists. Keys
            used: ``epoch``, ``train_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy``.
        path: the PNG file to write.
        test: optional ``{"loss": ..., "accuracy": ...}`` drawn as dashed lines.

    Returns:
        ``path`` as a Path.

    Raises:
        DataError: the history has no loss column or no epochs.
        MissingDependencyError: matplotlib is not installed.
    """
    op = "plot_curves"
    cols = _history_columns(history, op)
    losses = [k for k in ("train_loss", "val_loss", "loss") if k in cols]
    if not losses or not cols[losses[0]]:
        raise DataError(f"{op}: the history needs at least one epoch with train_loss (or val_loss); "
                        f"it has keys {sorted(cols)}.")
    n = len(cols[losses[0]])
    epochs = cols.get("epoch") or list(range(1, n + 1))
    accs = [k for k in ("train_accuracy", "val_accuracy", "accuracy") if k in cols]
    p = _out_path(path, op)
    fig = _figure(10.0 if accs else 6.0, 4.0)
    axes = [fig.add_subplot(1, 2 if accs else 1, 1)]
    if accs:
        axes.append(fig.add_subplot(1, 2, 2))
    label = {"train_loss": "train", "val_loss": "validation", "loss": "loss",
             "train_accuracy": "train", "val_accuracy": "validation", "accuracy": "accuracy"}
    for ax, keys, what in zip(axes, (losses, accs), ("loss", "accuracy")):
        for k in keys:
            ys = [np.nan if v is None else float(v) for v in cols[k]]
            ax.plot(epochs, ys, marker="o", label=label[k])
        if test and what in test:
            ax.axhline(float(test[what]), color="gray", linestyle="--", label=f"test {float(test[what]):.4g}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.set_title(f"{what} per epoch")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, p)


def plot_shift_curve(curves: Any, path: Any, title: str | None = None) -> Path:
    """Draw the correct-class probability against the input shift (Concept 59).

    Args:
        curves: a :class:`convscope.explain.ShiftCurve` (from ``per_shift_probability``), or a
            dict ``{label: ShiftCurve}`` to compare models (e.g. MaxPool versus BlurPool).
        path: the PNG file to write.
        title: the figure title (default names the shift mode and the class).

    Returns:
        ``path`` as a Path.

    Raises:
        ArgumentTypeError: not ShiftCurve(s).  MissingDependencyError: no matplotlib.

    Notes:
        A shift that is the same on every axis (diagonal, as in Zhang 2019's Figure 1) is
        plotted at that value; other shifts are numbered in order and labelled below the axis.
        Shifts where the top-1 class is wrong are marked with a cross.
    """
    from ..explain import ShiftCurve

    op = "plot_shift_curve"
    items = {"": curves} if isinstance(curves, ShiftCurve) else curves
    if not isinstance(items, Mapping) or not items or not all(isinstance(c, ShiftCurve) for c in items.values()):
        raise ArgumentTypeError(f"{op}: curves must be a ShiftCurve or a dict of them; got "
                                f"{type(curves).__name__}.")
    p = _out_path(path, op)
    fig = _figure(8.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    ticks = None
    for name, c in items.items():
        shifts = np.asarray(c.shifts)
        if shifts.shape[1] == 1 or np.all(shifts == shifts[:, :1]):
            xs = shifts[:, 0].astype(float)
        else:
            xs = np.arange(len(shifts), dtype=float)
            ticks = (xs, [str(tuple(int(v) for v in s)) for s in shifts])
        ax.plot(xs, c.probabilities, marker="o", label=name or None)
        wrong = np.asarray(c.predicted) != c.label
        if wrong.any():
            ax.plot(xs[wrong], np.asarray(c.probabilities)[wrong], "x", color="black", markersize=8)
    if ticks is not None:
        ax.set_xticks(ticks[0], ticks[1], rotation=60, fontsize=7)
    first = next(iter(items.values()))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("shift (pixels on every axis)" if ticks is None else "shift")
    ax.set_ylabel(f"P(correct class {first.label})")
    ax.set_title(title or f"Correct-class probability per shift ({first.mode} shifts); x = wrong top-1")
    ax.grid(True, alpha=0.3)
    if any(items):
        ax.legend()
    fig.tight_layout()
    return _save(fig, p)


def plot_filter_bank_demo(path: Any, demo: Any = None) -> Path:
    """Draw the notes' filter-bank story (9.1.11-9.1.12) from :func:`convscope.explain.filter_bank_demo`.

    Top row: the image (hollow and filled squares marked), the vertical- and horizontal-line
    filters and the two channels they make ("vertical detection", "horizontal detection").
    Bottom row: the two slices of the tensor filter, its response on the channels (where it
    fires is circled), the composed single "donut" filter and its response on the image.

    Args:
        path: the PNG file to write.
        demo: a :class:`convscope.explain.FilterBankDemo` (default: a fresh one).

    Returns:
        ``path`` as a Path.
    """
    from ..explain import FilterBankDemo, filter_bank_demo

    op = "plot_filter_bank_demo"
    demo = filter_bank_demo() if demo is None else demo
    if not isinstance(demo, FilterBankDemo):
        raise ArgumentTypeError(f"{op}: demo must be a FilterBankDemo; got {type(demo).__name__}.")
    p = _out_path(path, op)
    fig = _figure(16.0, 7.0)
    panels = [
        (demo.image, "image (+1 ink, -1 background)", "gray"),
        (demo.vertical_filter, "vertical-line filter", "RdBu_r"),
        (demo.horizontal_filter, "horizontal-line filter", "RdBu_r"),
        (demo.channels[0], "channel 1: vertical detection", "RdBu_r"),
        (demo.channels[1], "channel 2: horizontal detection", "RdBu_r"),
        (demo.tensor_filter[0], "tensor filter, slice on channel 1", "RdBu_r"),
        (demo.tensor_filter[1], "tensor filter, slice on channel 2", "RdBu_r"),
        (demo.response, f"tensor-filter response (f_0 = {demo.offset:g})", "RdBu_r"),
        (demo.donut, "composed 'donut' filter (7x7)", "RdBu_r"),
        (demo.donut_response, "donut filter on the image (same)", "RdBu_r"),
    ]
    for i, (a, title, cmap) in enumerate(panels):
        ax = fig.add_subplot(2, 5, i + 1)
        a = np.asarray(a, dtype=np.float64)
        m = float(np.abs(a).max()) or 1.0
        im = ax.imshow(a, cmap=cmap, vmin=-m, vmax=m, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        if i == 0:
            for (r, c), label, color, dy in ((demo.hollow_square, "hollow square", "tab:green", -4.3),
                                             (demo.filled_square, "filled square", "tab:orange", 4.9)):
                ax.add_patch(_rectangle(c - 3.5, r - 3.5, 7, 7, color))
                ax.text(c, r + dy, label, color=color, ha="center", va="center", fontsize=8,
                        bbox={"facecolor": "black", "edgecolor": "none", "pad": 1})
        if i in (7, 9):
            rows, cols = np.nonzero(demo.fires)
            ax.plot(cols, rows, "o", markersize=12, markerfacecolor="none", markeredgecolor="tab:green")
    fig.suptitle("Filter bank (notes 9.1.11-9.1.12): two line detectors, one tensor filter that fires "
                 "only on the hollow square, and the single filter they compose to", fontsize=11)
    fig.tight_layout()
    return _save(fig, p)


def _rectangle(x: float, y: float, w: float, h: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=1.5)
