"""Shared matplotlib plumbing of the PNG pictures: figures, colour maps, mosaics, paths.

matplotlib is imported only when a figure is made, through its object-oriented API (no
``pyplot``: no global backend is switched and nothing opens a window); without it a
:class:`~convscope.errors.MissingDependencyError` says to install ``convscope[train]``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, MissingDependencyError

__all__ = ["WIDTH", "DPI", "figure", "colormap", "out_path", "save", "as_2d", "mosaic", "signed_scale",
           "check_positive", "draw_mosaic", "tiled_size"]

WIDTH = 12.0  # figure width in inches
DPI = 100


def require_matplotlib(op: str = "convscope.viz") -> None:
    """MissingDependencyError unless matplotlib can be imported."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            f"{op}: drawing PNG and SVG pictures needs matplotlib; install it with "
            "pip install 'convscope[train]'. (The HTML explainer needs no matplotlib.)"
        ) from None


def figure(width: float, height: float):
    """A matplotlib Figure (Agg canvas), or MissingDependencyError."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def colormap(name: str):
    """The colour map ``name`` of convscope's convention (:mod:`convscope.viz.colors`); NaN
    (the gaps of a mosaic) draws light grey."""
    from .colors import cmap

    return cmap(name)


def out_path(path: Any, op: str) -> Path | None:
    """``path`` as a Path (None stays None: the caller returns a Figure); ArgumentTypeError for a
    non-path. Parent folders are created when the file is written."""
    if path is None:
        return None
    if not isinstance(path, (str, Path)) or not str(path):
        raise ArgumentTypeError(f"{op}: path must be a file name (str or Path) or None; got {path!r}.")
    return Path(path)


def save(fig, path: Path | None, title: str = ""):
    """Wrap ``fig`` in a :class:`~convscope.viz.Figure`; with a ``path``, write it there and return
    the path instead: SVG for a ``.svg`` suffix, PNG for any other (at least 1600 px wide)."""
    from .figure import Figure, write_file

    picture = Figure(fig, title or _title_of(fig))
    if path is None:
        return picture
    data = picture.svg() if path.suffix.lower() == ".svg" else picture.png()
    return write_file(path, data, "save")


def _title_of(fig) -> str:
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        return suptitle.get_text()
    for ax in fig.axes:
        for loc in ("left", "center"):
            text = ax.get_title(loc=loc)
            if text:
                return text.replace("\n", " ")
    return "convscope picture"


def as_2d(a: np.ndarray) -> tuple[np.ndarray, str]:
    """A tile to draw: 1-D as one row, 2-D as is, 3-D as its middle slice (with a note)."""
    if a.ndim == 1:
        return a[None], ""
    if a.ndim == 2:
        return a, ""
    mid = a.shape[0] // 2
    return as_2d(a[mid])[0], f"middle slice {mid} of the first spatial axis shown"


def mosaic(tiles: Sequence[np.ndarray], columns: int, gap: int = 1) -> np.ndarray:
    """Tiles of one shape laid out row-major, separated by NaN gaps (drawn grey).

    >>> mosaic([np.zeros((1, 2)), np.ones((1, 2))], 2)
    array([[ 0.,  0., nan,  1.,  1.]])
    """
    h, w = tiles[0].shape
    rows = math.ceil(len(tiles) / columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = t
    return out


def signed_scale(a: np.ndarray) -> tuple[str, float, float]:
    """Colour map and limits: "diverging" (symmetric around 0) when ``a`` has negatives, else
    "sequential" from 0 (:mod:`convscope.viz.colors`)."""
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return "diverging", -1.0, 1.0
    if finite.min() < 0:
        m = float(np.abs(finite).max()) or 1.0
        return "diverging", -m, m
    hi = float(finite.max())
    return "sequential", 0.0, hi if hi > 0 else 1.0


def check_positive(value: Any, name: str, op: str) -> int:
    """``value`` as an int >= 1, or ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{op}: {name} must be a positive int; got {value!r}.")
    return int(value)


def draw_mosaic(fig, ax, grid: np.ndarray, title: str, xlabel: str = "", ylabel: str = "",
                aspect: str = "equal", width_in: float | None = None, title_pad: float = 6.0,
                scale: str | None = None) -> None:
    """Draw a mosaic left-aligned in its axes, with its colour bar right beside the image.

    ``width_in`` is the drawn width of the image in inches when known (aspect "equal"):
    the colour bar then sits just right of the image instead of at the far edge.
    """
    name, lo, hi = signed_scale(grid)
    if scale == "gray":                      # an image: the grey scale of the convention
        finite = grid[np.isfinite(grid)]
        name, lo, hi = "gray", float(finite.min()) if finite.size else 0.0, float(finite.max()) if finite.size else 1.0
    im = ax.imshow(grid, cmap=colormap(name), vmin=lo, vmax=hi, interpolation="nearest", aspect=aspect)
    ax.set_anchor("W")
    ax.set_title(title, fontsize=9, loc="left", pad=title_pad)
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


def label_tiles(ax, grid: np.ndarray, tile: tuple[int, int], count: int, columns: int,
                labels: Sequence[str] | None = None, values: Sequence[np.ndarray] | None = None,
                gap: int = 1, fontsize: float = 9.0) -> None:
    """Number the tiles of a mosaic (a label above each) and, when given, write each tile's values.

    ``values`` are the tiles' numbers (drawn in black or white, whichever reads on the colour
    of the cell under the mosaic's own colour scale).
    """
    from .._display import rgb, text_color
    from ..explain._text import fmt_num

    h, w = tile
    name, lo, hi = signed_scale(grid)
    for i in range(count):
        r, c = divmod(i, columns)
        top, left = r * (h + gap), c * (w + gap)
        if labels is not None:
            ax.text(left + (w - 1) / 2, top - 0.55, labels[i], ha="center", va="bottom", fontsize=fontsize,
                    color="#333333", clip_on=False)
        if values is not None:
            tile_values = np.asarray(values[i], dtype=np.float64)
            colors = rgb(tile_values, name, lo, hi)
            for (y, x), v in np.ndenumerate(tile_values):
                text = fmt_num(round(float(v), 2) if abs(v) < 100 else float(v)).replace("-", "\u2212")
                ax.text(left + x, top + y, text, ha="center", va="center", fontsize=fontsize * 0.85,
                        color=text_color(colors[y, x]), clip_on=False)


def tiled_size(grid: np.ndarray, tiles_across: int, tile_in: float, usable: float) -> tuple[float, float]:
    """(width, height) in inches of a mosaic whose tiles are drawn ``tile_in`` wide (capped)."""
    width = min(tiles_across * tile_in, usable)
    return width, width * grid.shape[0] / grid.shape[1]


