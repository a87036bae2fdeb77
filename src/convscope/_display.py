"""How convscope objects show themselves: one colour convention and the HTML building blocks.

This bottom-layer module (standard library and NumPy only) is shared by ``nn`` (a model's
layer table), ``explain`` (traces and derivations as tables in the notes' notation) and
``viz`` (the pictures and the HTML explainer), so a number looks the same everywhere.

The colour convention, used by every PNG, SVG and HTML that convscope draws:

* ``"gray"`` - images (pixel intensities): black for the smallest value, white for the largest.
* ``"diverging"`` - anything signed (the notes' +1/-1 examples, filters, dot products, outputs,
  derivatives): blue below 0, white at 0, red above 0, on a scale symmetric around 0
  (``vmax = max |a|``), so white always means 0 and equal magnitudes get equal strength.
* ``"sequential"`` - non-negative magnitudes where 0 is the floor (after a ReLU, counts):
  dark violet to yellow (viridis-like).

and a few accents, each with one meaning (:data:`ACCENTS`): the window being read, the
strongest match / the chosen maximum, padding, entries never read, windows a stride skips,
the path of a gradient.

Example:
    >>> rgb(np.array([-1.0, 0.0, 1.0]), "diverging").tolist()
    [[20, 60, 140], [255, 255, 255], [165, 15, 35]]
    >>> hex_color(0.0, "diverging", 1.0)
    '#ffffff'
    >>> print(table(["n", "out"], [["10", "8"]]))
    <table class="cs-table"><thead><tr><th>n</th><th>out</th></tr></thead><tbody><tr><td>10</td><td>8</td></tr></tbody></table>
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["ANCHORS", "ACCENTS", "COLORMAPS", "LEVELS", "levels", "scale_colours", "rgb", "hex_color", "text_color", "value_range", "esc",
           "table", "grid", "panel", "pre", "short", "STYLE"]

#: Anchor colours of the three colour maps; values in between are interpolated linearly in RGB.
#: The diverging map has an odd number of anchors so that 0 falls exactly on white.
ANCHORS: dict[str, np.ndarray] = {
    "diverging": np.array([[20, 60, 140], [50, 110, 180], [120, 170, 215], [200, 225, 240],
                           [255, 255, 255],
                           [250, 215, 195], [235, 140, 110], [205, 60, 55], [165, 15, 35]],
                          dtype=np.float64),
    "sequential": np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98],
                            [253, 231, 37]], dtype=np.float64),
    "gray": np.array([[0, 0, 0], [255, 255, 255]], dtype=np.float64),
}

#: Names of the colour maps.
COLORMAPS = tuple(ANCHORS)

#: Steps of every colour scale, ends included (matplotlib's maps have 256): a value is drawn at the
#: nearest step, so a picture has at most this many colours (one byte per pixel in a palette PNG),
#: and the number is odd so that the middle of the scale (0 on a diverging one) is a step.
LEVELS = 255

#: One colour per meaning, the same in pictures and HTML tables.
ACCENTS: dict[str, str] = {
    "window": "#6a3d9a",     # the window v (or receptive field) being read, and the filter over it
    "match": "#ff7f0e",      # the strongest match of a convolution / the chosen maximum of a pool
    "pad": "#e0e0e0",        # padding cells (filler, not the signal)
    "unread": "#d62728",     # input entries no window ever reads (Key Equation 54)
    "skipped": "#8c8c8c",    # windows a stride > 1 steps over (drawn dashed)
    "gradient": "#1b9e77",   # where a derivative flows (max-pool routing of dy)
    "ink": "#222222",        # text and grid lines
}


def value_range(a: np.ndarray, cmap: str) -> tuple[float, float]:
    """``(vmin, vmax)`` for ``a``: symmetric around 0 for "diverging", else min and max.

    A constant array gets a range of width 1 around its value, so it still draws.

    >>> value_range(np.array([-2.0, 1.0]), "diverging"), value_range(np.array([3.0]), "gray")
    ((-2.0, 2.0), (2.5, 3.5))
    """
    a = np.asarray(a, dtype=np.float64)
    finite = a[np.isfinite(a)] if a.size else a
    if finite.size == 0:
        return (-1.0, 1.0)
    if cmap == "diverging":
        m = float(np.abs(finite).max())
        return (-m, m) if m > 0 else (-1.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def levels(a: Any, cmap: str, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """The step of the scale (``0 .. LEVELS - 1``, int64) that each value of ``a`` is drawn at.

    The nearest of :data:`LEVELS` steps from ``vmin`` to ``vmax`` (default :func:`value_range`),
    so off by at most half a step, 1/508 of the range; NaN goes to the middle step, infinities to
    the ends. ``rgb(a, ...) == scale_colours(cmap)[levels(a, ...)]``.
    """
    a = np.asarray(a, dtype=np.float64)
    lo, hi = value_range(a, cmap) if a.size else (-1.0, 1.0)
    lo = lo if vmin is None else float(vmin)
    hi = hi if vmax is None else float(vmax)
    span = hi - lo if hi > lo else 1.0
    t = np.clip((np.nan_to_num(a, nan=(lo + hi) / 2, posinf=hi, neginf=lo) - lo) / span, 0.0, 1.0)
    return np.rint(t * (LEVELS - 1)).astype(np.int64)


_SCALES: dict[str, np.ndarray] = {}


def scale_colours(cmap: str) -> np.ndarray:
    """The ``(LEVELS, 3)`` uint8 colours of the steps of ``cmap``: linear between its anchors.

    >>> scale_colours("diverging")[[0, LEVELS // 2, -1]].tolist()
    [[20, 60, 140], [255, 255, 255], [165, 15, 35]]
    """
    if cmap not in _SCALES:
        anchors = ANCHORS[cmap]
        pos = np.arange(LEVELS) / (LEVELS - 1) * (len(anchors) - 1)
        i = np.minimum(pos.astype(np.int64), len(anchors) - 2)
        frac = (pos - i)[..., None]
        colours = np.rint(anchors[i] * (1 - frac) + anchors[i + 1] * frac).astype(np.uint8)
        colours.setflags(write=False)
        _SCALES[cmap] = colours
    return _SCALES[cmap]


def rgb(a: Any, cmap: str, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Values to ``uint8`` RGB with one of :data:`COLORMAPS` (shape ``a.shape + (3,)``).

    A value is placed on the nearest of :data:`LEVELS` steps of the scale (:func:`levels`: off by
    at most half a step, 1/508 of the range), whose colour is interpolated linearly between the
    anchors (:func:`scale_colours`). NaN draws as the middle of the scale, infinities as its ends.
    An unknown ``cmap`` raises KeyError; callers that take a user's name check it first.
    """
    colours = scale_colours(cmap)
    return colours[levels(a, cmap, vmin, vmax)]


def hex_color(value: float, cmap: str, vmax: float, vmin: float | None = None) -> str:
    """One value's colour as ``#rrggbb`` (for "diverging", ``vmin`` defaults to ``-vmax``)."""
    lo = -vmax if vmin is None else vmin
    r, g, b = rgb(np.array([value]), cmap, lo, vmax)[0].tolist()
    return f"#{r:02x}{g:02x}{b:02x}"


def text_color(fill: Sequence[int] | str) -> str:
    """Black or white, whichever reads better on ``fill`` (RGB 0-255 or ``#rrggbb``).

    >>> text_color("#ffffff"), text_color((20, 60, 140))
    ('#222222', '#ffffff')
    """
    if isinstance(fill, str):
        fill = tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5))
    r, g, b = (float(v) / 255 for v in fill[:3])
    return ACCENTS["ink"] if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "#ffffff"


def esc(text: Any) -> str:
    """HTML-escaped ``str(text)``."""
    return _html.escape(str(text), quote=True)


#: The style sheet of every convscope HTML fragment (scoped to ``.cs``).
STYLE = (
    "<style>"
    ".cs{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;color:#222;"
    "line-height:1.35;max-width:100%;overflow-x:auto}"
    ".cs h4{margin:.2em 0 .4em;font-size:14px}"
    ".cs .cs-note{color:#555;margin:.2em 0}"
    ".cs table.cs-table{border-collapse:collapse;margin:.3em 0}"
    ".cs table.cs-table th,.cs table.cs-table td{border:1px solid #ccc;padding:2px 7px;"
    "text-align:left;vertical-align:top;font-variant-numeric:tabular-nums}"
    ".cs table.cs-table th{background:#f3f3f3}"
    ".cs table.cs-grid{border-collapse:collapse;display:inline-table;margin:2px 6px 2px 0;"
    "vertical-align:middle}"
    ".cs table.cs-grid td{border:1px solid #bbb;min-width:1.9em;height:1.6em;padding:0 3px;"
    "text-align:center;font-variant-numeric:tabular-nums}"
    ".cs table.cs-grid th{font-weight:normal;color:#555;padding:0 4px;font-size:11px}"
    f".cs td.cs-window{{outline:2px solid {ACCENTS['window']};outline-offset:-2px}}"
    f".cs td.cs-match{{outline:3px solid {ACCENTS['match']};outline-offset:-3px;font-weight:bold}}"
    f".cs td.cs-pad{{background:{ACCENTS['pad']} !important;color:#777 !important;font-style:italic}}"
    f".cs td.cs-unread{{background:repeating-linear-gradient(45deg,#fff,#fff 3px,#f4c7c7 3px,"
    f"#f4c7c7 6px) !important;color:{ACCENTS['unread']} !important}}"
    ".cs pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:6px;margin:.3em 0;"
    "font-size:12px;white-space:pre;overflow-x:auto}"
    ".cs .cs-label{display:inline-block;vertical-align:middle;margin-right:4px;color:#444}"
    "</style>"
)


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], raw: bool = False,
          caption: str | None = None) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then they are HTML already)."""
    cell = (lambda v: str(v)) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="cs-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def grid(cells: Any, values: Any = None, cmap: str = "diverging", classes: Any = None,
         vmax: float | None = None, row_labels: Sequence[str] | None = None,
         col_labels: Sequence[str] | None = None) -> str:
    """A small matrix as an HTML grid: the text of each cell, coloured by its value.

    Args:
        cells: 1-D or 2-D array of the strings to write (a 1-D array is one row).
        values: numbers for the colours (same shape), or None for no colour.
        cmap: one of :data:`COLORMAPS`.
        classes: same shape, CSS classes per cell ("cs-window", "cs-match", "cs-pad",
            "cs-unread"), or None.
        vmax: the colour scale's end (default from ``values``).
        row_labels, col_labels: labels written left of the rows and above the columns.
    """
    text = np.asarray(cells, dtype=object)
    if text.ndim == 1:
        text = text[None]
    vals = None if values is None else np.asarray(values, dtype=np.float64).reshape(text.shape)
    cls = None if classes is None else np.asarray(classes, dtype=object).reshape(text.shape)
    colors = None
    if vals is not None:
        lo, hi = value_range(vals, cmap)
        if vmax is not None:
            lo, hi = (-vmax, vmax) if cmap == "diverging" else (lo, vmax)
        colors = rgb(vals, cmap, lo, hi)
    out = ['<table class="cs-grid">']
    if col_labels is not None:
        out.append("<tr>" + ("<th></th>" if row_labels is not None else "")
                   + "".join(f"<th>{esc(c)}</th>" for c in col_labels) + "</tr>")
    for r in range(text.shape[0]):
        out.append("<tr>")
        if row_labels is not None:
            out.append(f"<th>{esc(row_labels[r])}</th>")
        for c in range(text.shape[1]):
            style = ""
            if colors is not None:
                fill = colors[r, c]
                style = (f' style="background:#{int(fill[0]):02x}{int(fill[1]):02x}{int(fill[2]):02x};'
                         f'color:{text_color(fill)}"')
            klass = f' class="{esc(cls[r, c])}"' if cls is not None and cls[r, c] else ""
            out.append(f"<td{klass}{style}>{esc(text[r, c])}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def pre(text: str) -> str:
    """Preformatted text (a printed trace) inside the HTML."""
    return f"<pre>{esc(text)}</pre>"


def panel(title: str, *parts: str, note: str | None = None) -> str:
    """One self-styled fragment: a title, an optional note line, then the given HTML parts."""
    body = "".join(parts)
    note_html = f'<div class="cs-note">{esc(note)}</div>' if note else ""
    return f'<div class="cs">{STYLE}<h4>{esc(title)}</h4>{note_html}{body}</div>'


def short(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (for reprs).

    >>> short("abcdef", 4)
    'abc…'
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"
