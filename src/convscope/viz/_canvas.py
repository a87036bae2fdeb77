"""Drawing in cell units for the pictures of the notes: cells with numbers, outlines, labels, arrows.

A :class:`Canvas` is one matplotlib axes without frame or ticks whose unit is one cell: x
grows to the right, y grows downward (rows are read top to bottom, as in the notes). The
figure is sized at the end from what was drawn, so a cell is always ``cell_in`` inches and
fonts, in points, keep their size; text outside the drawn cells is kept by the tight crop of
:class:`~convscope.viz.figure.Figure`, so nothing is clipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._display import ACCENTS, text_color
from ..explain._text import fmt_num
from ._mpl import figure as _figure
from .colors import cell_colors
from .figure import Figure

__all__ = ["Canvas", "num", "ACCENTS"]

INK = ACCENTS["ink"]


def num(value: float, digits: int = 3) -> str:
    """A number as the pictures write it: explain's format (``digits`` significant digits) with a
    true minus sign."""
    return fmt_num(value, digits).replace("-", "\u2212")


class Canvas:
    """One picture drawn in cell units (see the module docstring).

    Args:
        cell_in: the size of one cell in inches (0.5 suits numbers in 13 pt).
    """

    def __init__(self, cell_in: float = 0.5) -> None:
        self.cell_in = float(cell_in)
        self.fig = _figure(4.0, 3.0)
        self.ax = self.fig.add_axes((0.0, 0.0, 1.0, 1.0))
        self.ax.set_axis_off()
        self._box = [np.inf, np.inf, -np.inf, -np.inf]     # x0, y0, x1, y1 of what was drawn

    # ----------------------------------------------------------------- sizes
    @property
    def pt(self) -> float:
        """Points per cell."""
        return self.cell_in * 72.0

    def font(self, scale: float = 1.0) -> float:
        """Font size in points: ``scale`` times the size of a number in a cell."""
        return max(7.0, 0.36 * self.pt * scale)

    def _grow(self, x0: float, y0: float, x1: float, y1: float) -> None:
        b = self._box
        b[0], b[1], b[2], b[3] = min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)

    # ----------------------------------------------------------------- primitives
    def cell(self, x: float, y: float, text: str = "", fill: Any = "white", edge: str = "#9a9a9a",
             lw: float = 0.8, hatch: str | None = None, color: str | None = None, scale: float = 1.0,
             weight: str = "normal", style: str = "normal", w: float = 1.0, h: float = 1.0,
             hatch_color: str | None = None) -> None:
        """A cell with its top-left corner at ``(x, y)`` and its text centred."""
        from matplotlib.patches import Rectangle

        fill_rgb = fill
        rect = Rectangle((x, y), w, h, facecolor=fill, edgecolor=edge, linewidth=lw, zorder=2)
        self.ax.add_patch(rect)
        if hatch:
            self.ax.add_patch(Rectangle((x, y), w, h, facecolor="none", edgecolor=hatch_color or "#9a9a9a",
                                        linewidth=0, hatch=hatch, zorder=2.1))
        if text:
            if color is None:
                color = text_color(_rgb255(fill_rgb))
            longest = max(len(line) for line in text.split("\n"))
            room = 4.2 * w                       # characters that fit a cell at the normal size
            if longest > room:
                scale *= max(0.5, room / longest)
            self.ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=self.font(scale),
                         color=color, fontweight=weight, fontstyle=style, zorder=4, clip_on=False)
        self._grow(x, y, x + w, y + h)

    def rect(self, x: float, y: float, w: float, h: float, edge: str = INK, lw: float = 2.0,
             ls: str = "-", fill: str = "none", z: float = 3.0, alpha: float = 1.0) -> None:
        """An outline (or a filled box) from ``(x, y)``, ``w`` wide and ``h`` high."""
        from matplotlib.patches import Rectangle

        self.ax.add_patch(Rectangle((x, y), w, h, facecolor=fill, edgecolor=edge, linewidth=lw,
                                    linestyle=ls, zorder=z, alpha=alpha))
        self._grow(x, y, x + w, y + h)

    def text(self, x: float, y: float, s: str, scale: float = 1.0, ha: str = "left", va: str = "center",
             color: str = INK, weight: str = "normal", style: str = "normal", family: str | None = None,
             rotation: float = 0.0) -> None:
        """Text at ``(x, y)``; its extent is estimated so the figure makes room for it."""
        kw = {"family": family} if family else {}
        self.ax.text(x, y, s, ha=ha, va=va, fontsize=self.font(scale), color=color, fontweight=weight,
                     fontstyle=style, zorder=5, clip_on=False, rotation=rotation, **kw)
        lines = s.split("\n")
        width = max(len(line) for line in lines) * 0.56 * self.font(scale) / self.pt
        height = len(lines) * 1.25 * self.font(scale) / self.pt
        x0 = x - (width if ha == "right" else width / 2 if ha == "center" else 0.0)
        y0 = y - (height / 2 if va == "center" else height if va == "bottom" else 0.0)
        if rotation:
            width, height = height, width
        self._grow(x0, y0, x0 + width, y0 + height)

    def arrow(self, x0: float, y0: float, x1: float, y1: float, color: str = INK, lw: float = 1.6,
              style: str = "-|>", rad: float = 0.0) -> None:
        """An arrow from ``(x0, y0)`` to ``(x1, y1)``."""
        from matplotlib.patches import FancyArrowPatch

        self.ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle=style, mutation_scale=0.5 * self.pt,
                                          color=color, linewidth=lw, zorder=6,
                                          connectionstyle=f"arc3,rad={rad}"))
        self._grow(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def line(self, points: Sequence[tuple[float, float]], color: str = INK, lw: float = 1.6) -> None:
        """A polyline through ``points`` (no head; end it with :meth:`arrow`)."""
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        self.ax.plot(xs, ys, color=color, linewidth=lw, zorder=6, solid_capstyle="butt")
        self._grow(min(xs), min(ys), max(xs), max(ys))

    def circle(self, x: float, y: float, r: float = 0.42, edge: str = ACCENTS["match"], lw: float = 2.5) -> None:
        """A circle around the cell centred at ``(x, y)``."""
        from matplotlib.patches import Circle

        self.ax.add_patch(Circle((x, y), r, facecolor="none", edgecolor=edge, linewidth=lw, zorder=6))

    # ----------------------------------------------------------------- arrays
    def matrix(self, a: np.ndarray, x: float, y: float, cmap: str | None = "diverging", vmax: float | None = None,
               texts: Any = None, pad: Any = None, unread: Any = None, numbers: bool = True,
               scale: float = 1.0, cell: float = 1.0) -> tuple[float, float]:
        """Draw a 1-D (one row) or 2-D array from ``(x, y)``; returns its (width, height) in cells.

        Args:
            a: the values (colour, and the numbers written unless ``texts``).
            cmap: the colour map of the convention; ``None`` leaves the cells white.
            vmax: the end of the colour scale (default from ``a``).
            texts: the strings to write instead of the numbers (same shape), or None.
            pad: boolean mask of padding cells (drawn grey, hatched, text in grey italics).
            unread: boolean mask of entries no window reads (hatched red).
            numbers: write the numbers at all.
            cell: the size of one cell in canvas units.
        """
        a = np.asarray(a, dtype=np.float64)
        a2 = a[None] if a.ndim == 1 else a
        colors = cell_colors(a2, cmap, vmax) if cmap is not None else None
        txt = None if texts is None else np.asarray(texts, dtype=object).reshape(a2.shape)
        padm = None if pad is None else np.asarray(pad, dtype=bool).reshape(a2.shape)
        unr = None if unread is None else np.asarray(unread, dtype=bool).reshape(a2.shape)
        for r in range(a2.shape[0]):
            for c in range(a2.shape[1]):
                label = txt[r, c] if txt is not None else (num(a2[r, c]) if numbers else "")
                cx, cy = x + c * cell, y + r * cell
                if padm is not None and padm[r, c]:
                    self.cell(cx, cy, label, fill=ACCENTS["pad"], hatch="///", color="#666666",
                              style="italic", scale=scale, w=cell, h=cell)
                elif unr is not None and unr[r, c]:
                    fill = tuple(colors[r, c]) if colors is not None else "white"
                    self.cell(cx, cy, label, fill=fill, hatch="xx", hatch_color=ACCENTS["unread"],
                              edge=ACCENTS["unread"], lw=1.6, scale=scale, w=cell, h=cell)
                else:
                    fill = tuple(colors[r, c]) if colors is not None else "white"
                    self.cell(cx, cy, label, fill=fill, scale=scale, w=cell, h=cell)
        return a2.shape[1] * cell, a2.shape[0] * cell

    # ----------------------------------------------------------------- finish
    def legend(self, x: float, y: float, items: Sequence[tuple[str, dict[str, Any]]], scale: float = 0.8) -> float:
        """A row of legend swatches (``(label, cell keywords)``) from ``(x, y)``; returns its width."""
        start = x
        for label, style in items:
            kind = style.pop("kind", "cell")
            if kind == "outline":
                self.rect(x + 0.1, y + 0.1, 0.6, 0.6, **style)
            else:
                self.cell(x + 0.1, y + 0.1, "", w=0.6, h=0.6, **style)
            self.text(x + 0.9, y + 0.4, label, scale=scale)
            x += 1.4 + len(label) * 0.56 * self.font(scale) / self.pt
        return x - start

    def finish(self, title: str, subtitle: str | None = None, margin: float = 0.4) -> Figure:
        """Put the title above what was drawn, size the figure, and wrap it in a :class:`Figure`."""
        x0, y0, x1, y1 = self._box
        if subtitle:
            self.text(x0, y0 - 0.7, subtitle, scale=0.95, color="#444444")
            top = y0 - 0.7 - 1.0
        else:
            top = y0 - 0.9
        self.text(x0, top, title, scale=1.2, weight="bold")
        x0, y0, x1, y1 = self._box
        self.ax.set_xlim(x0 - margin, x1 + margin)
        self.ax.set_ylim(y1 + margin, y0 - margin)
        self.ax.set_aspect("equal")
        width = (x1 - x0 + 2 * margin) * self.cell_in
        height = (y1 - y0 + 2 * margin) * self.cell_in
        self.fig.set_size_inches(width, height)
        return Figure(self.fig, title)


def _rgb255(fill: Any) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(fill)
    return int(r * 255), int(g * 255), int(b * 255)
