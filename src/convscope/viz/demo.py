"""The notes' filter-bank story (9.1.11-9.1.12) in pictures, from :func:`convscope.explain.filter_bank_demo`.

* :func:`plot_filter_bank_demo` - one overview figure with every step.
* :func:`save_filter_bank_demo` - the overview plus one picture per step in a folder (what
  ``convscope explain demo --out DIR`` writes): the input image, the two line filters with
  the channels they make ("vertical detection", "horizontal detection"), the tensor filter
  with its response, and the composed single "donut" filter with its response.

Example:
    >>> import tempfile, pathlib
    >>> plot_filter_bank_demo(pathlib.Path(tempfile.mkdtemp()) / "demo.png").name
    'demo.png'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError
from ._mpl import figure as _figure
from ._mpl import out_path as _out_path
from ._mpl import save as _save

__all__ = ["plot_filter_bank_demo", "save_filter_bank_demo"]


def _check_demo(demo: Any, op: str):
    from ..explain import FilterBankDemo, filter_bank_demo

    demo = filter_bank_demo() if demo is None else demo
    if not isinstance(demo, FilterBankDemo):
        raise ArgumentTypeError(f"{op}: demo must be a FilterBankDemo (from "
                                f"convscope.explain.filter_bank_demo()); got {type(demo).__name__}.")
    return demo


def _panels(demo: Any) -> dict[str, tuple[np.ndarray, str, str]]:
    return {
        "image": (demo.image, "image (+1 ink, -1 background)", "gray"),
        "vertical_filter": (demo.vertical_filter, "vertical-line filter", "RdBu_r"),
        "horizontal_filter": (demo.horizontal_filter, "horizontal-line filter", "RdBu_r"),
        "vertical": (demo.channels[0], "channel 1: vertical detection", "RdBu_r"),
        "horizontal": (demo.channels[1], "channel 2: horizontal detection", "RdBu_r"),
        "tensor_0": (demo.tensor_filter[0], "tensor filter, slice on channel 1", "RdBu_r"),
        "tensor_1": (demo.tensor_filter[1], "tensor filter, slice on channel 2", "RdBu_r"),
        "response": (demo.response, f"tensor-filter response (f_0 = {demo.offset:g})", "RdBu_r"),
        "donut": (demo.donut, "composed 'donut' filter (7x7)", "RdBu_r"),
        "donut_response": (demo.donut_response, "donut filter on the image (the same)", "RdBu_r"),
    }


def _draw(fig, ax, demo: Any, key: str) -> None:
    from matplotlib.patches import Rectangle

    a, title, cmap = _panels(demo)[key]
    a = np.asarray(a, dtype=np.float64)
    m = float(np.abs(a).max()) or 1.0
    im = ax.imshow(a, cmap=cmap, vmin=-m, vmax=m, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    if key == "image":
        for (r, c), label, color, dy in ((demo.hollow_square, "hollow square", "tab:green", -4.3),
                                         (demo.filled_square, "filled square", "tab:orange", 4.9)):
            ax.add_patch(Rectangle((c - 3.5, r - 3.5), 7, 7, fill=False, edgecolor=color, linewidth=1.5))
            ax.text(c, r + dy, label, color=color, ha="center", va="center", fontsize=8,
                    bbox={"facecolor": "black", "edgecolor": "none", "pad": 1})
    if key in ("response", "donut_response"):
        rows, cols = np.nonzero(demo.fires)
        ax.plot(cols, rows, "o", markersize=12, markerfacecolor="none", markeredgecolor="tab:green",
                label="fires (> 0)")
        ax.legend(loc="lower right", fontsize=7)


def _figure_of(demo: Any, keys: list[str], columns: int, title: str, size: tuple[float, float]):
    fig = _figure(*size)
    rows = -(-len(keys) // columns)
    for i, key in enumerate(keys):
        _draw(fig, fig.add_subplot(rows, columns, i + 1), demo, key)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


_OVERVIEW = ("Filter bank (notes 9.1.11-9.1.12): two line detectors, one tensor filter that fires only "
             "on the hollow square, and the single filter they compose to")


def plot_filter_bank_demo(path: Any = None, demo: Any = None) -> Any:
    """Draw the whole filter-bank story in one figure.

    Top row: the image (hollow and filled squares marked), the vertical- and horizontal-line
    filters and the two channels they make. Bottom row: the two slices of the tensor filter,
    its response on the channels (where it fires is circled), the composed "donut" filter and
    its response on the image (the same numbers).

    Args:
        path: the file to write (PNG; SVG for a ``.svg`` name), or None to get the picture back.
        demo: a :class:`convscope.explain.FilterBankDemo` (default: a fresh one).

    Returns:
        ``path`` as a Path when given; otherwise a :class:`~convscope.viz.Figure` (shows inline in
        Jupyter, ``.save("x.png")`` / ``.save("x.svg")``).

    Raises:
        ArgumentTypeError: ``demo`` is not a FilterBankDemo.  MissingDependencyError: no matplotlib.
    """
    op = "plot_filter_bank_demo"
    demo = _check_demo(demo, op)
    p = _out_path(path, op)
    return _save(_figure_of(demo, list(_panels(demo)), 5, _OVERVIEW, (16.0, 7.0)), p)


def save_filter_bank_demo(demo: Any, folder: Any) -> list[Path]:
    """Write the overview and one picture per step of the story into ``folder``.

    Args:
        demo: a :class:`convscope.explain.FilterBankDemo` (None: a fresh one).
        folder: where to write (created if needed).

    Returns:
        The paths written: ``filter_bank.png`` (overview), ``filter_bank_image.png``,
        ``filter_bank_channels.png``, ``filter_bank_tensor_filter.png``, ``filter_bank_donut.png``.

    Raises:
        ArgumentTypeError: ``demo`` is not a FilterBankDemo or ``folder`` not a path.
        MissingDependencyError: matplotlib is not installed.
    """
    op = "save_filter_bank_demo"
    demo = _check_demo(demo, op)
    if not isinstance(folder, (str, Path)) or not str(folder):
        raise ArgumentTypeError(f"{op}: folder must be a directory name (str or Path); got {folder!r}.")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = [plot_filter_bank_demo(out / "filter_bank.png", demo)]
    steps = [
        ("image", ["image"], 1, "The input image", (5.0, 4.6)),
        ("channels", ["vertical_filter", "vertical", "horizontal_filter", "horizontal"], 2,
         "A filter bank of two 3x3 filters gives two channels", (9.0, 8.0)),
        ("tensor_filter", ["tensor_0", "tensor_1", "response"], 3,
         "One tensor filter across both channels, with offset f_0 as a threshold", (13.0, 4.6)),
        ("donut", ["donut", "donut_response"], 2,
         "compose(): the two layers as one 7x7 'donut' filter on the image", (9.0, 4.6)),
    ]
    for name, keys, columns, title, size in steps:
        path = out / f"filter_bank_{name}.png"
        written.append(_save(_figure_of(demo, keys, columns, title, size), path))
    return written
