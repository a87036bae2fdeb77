"""Shared matplotlib plumbing of the PNG pictures: figures, colour maps, mosaics, paths.

matplotlib is imported only when a figure is made, through its object-oriented API (no
``pyplot``: no global backend is switched and nothing opens a window); without it a
:class:`~convscope.errors.MissingDependencyError` says to install ``convscope[train]``.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, MissingDependencyError
from ..files import atomic_write

__all__ = ["WIDTH", "DPI", "figure", "colormap", "out_path", "save", "as_2d", "mosaic", "signed_scale",
           "check_positive", "draw_mosaic", "tiled_size"]

WIDTH = 12.0  # figure width in inches
DPI = 100


def figure(width: float, height: float):
    """A matplotlib Figure (Agg canvas), or MissingDependencyError."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        raise MissingDependencyError(
            "convscope.viz: drawing PNG pictures needs matplotlib; install it with "
            "pip install 'convscope[train]'. (The HTML explainer needs no matplotlib.)"
        ) from None
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def colormap(name: str):
    """A copy of matplotlib's colour map ``name`` that draws NaN (mosaic gaps) light grey."""
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad="#d9d9d9")   # gaps between tiles of a mosaic


def out_path(path: Any, op: str) -> Path:
    """``path`` as a Path, its parent folders created; ArgumentTypeError for a non-path."""
    if not isinstance(path, (str, Path)) or not str(path):
        raise ArgumentTypeError(f"{op}: path must be a file name (str or Path); got {path!r}.")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def save(fig, path: Path) -> Path:
    """Write ``fig`` as PNG (whatever the suffix) with :func:`convscope.files.atomic_write`."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI), op="convscope.viz")


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
    """Colour map and limits: symmetric blue-white-red when ``a`` has negatives, else viridis."""
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return "RdBu_r", -1.0, 1.0
    if finite.min() < 0:
        m = float(np.abs(finite).max()) or 1.0
        return "RdBu_r", -m, m
    hi = float(finite.max())
    return "viridis", 0.0, hi if hi > 0 else 1.0


def check_positive(value: Any, name: str, op: str) -> int:
    """``value`` as an int >= 1, or ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{op}: {name} must be a positive int; got {value!r}.")
    return int(value)


def draw_mosaic(fig, ax, grid: np.ndarray, title: str, xlabel: str = "", ylabel: str = "",
                aspect: str = "equal", width_in: float | None = None) -> None:
    """Draw a mosaic left-aligned in its axes, with its colour bar right beside the image.

    ``width_in`` is the drawn width of the image in inches when known (aspect "equal"):
    the colour bar then sits just right of the image instead of at the far edge.
    """
    name, lo, hi = signed_scale(grid)
    im = ax.imshow(grid, cmap=colormap(name), vmin=lo, vmax=hi, interpolation="nearest", aspect=aspect)
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


def tiled_size(grid: np.ndarray, tiles_across: int, tile_in: float, usable: float) -> tuple[float, float]:
    """(width, height) in inches of a mosaic whose tiles are drawn ``tile_in`` wide (capped)."""
    width = min(tiles_across * tile_in, usable)
    return width, width * grid.shape[0] / grid.shape[1]


