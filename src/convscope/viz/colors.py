"""convscope's one colour convention, for every picture (PNG, SVG) and every HTML page.

=============== ========================================================================
colour map      used for
=============== ========================================================================
``gray``        images: pixel intensities, black = smallest, white = largest
``diverging``   anything signed - the notes' +1/-1 examples, filters, dot products,
                convolution outputs, weights and derivatives: blue < 0, **white = 0**,
                red > 0, on a scale symmetric around 0 (equal magnitudes, equal strength)
``sequential``  non-negative magnitudes whose floor is 0 (after a ReLU): violet to yellow
=============== ========================================================================

Accents, one meaning each (:data:`ACCENTS`):

* ``window`` (purple outline) - the window ``v_i`` or receptive field being read, and the
  filter laid over it;
* ``match`` (orange) - the strongest match of a convolution (the notes mark the bright spot
  in orange, 9.1.5) and the maximum a max-pool chooses;
* ``pad`` (light grey, values in grey italics) - padding cells (9.1.7);
* ``unread`` (red hatching) - input entries that no window reads (Key Equation 54, s > k);
* ``skipped`` (grey, dashed) - windows a stride larger than 1 steps over (9.1.20);
* ``gradient`` (green) - where a derivative goes (the one-hot routing of max-pool, 9.35).

The anchors live in :mod:`convscope._display`, below every other module, so the HTML tables
of ``explain`` and ``nn`` and the HTML explainer (:mod:`convscope.viz.image`) use exactly the
colours that :func:`cmap` gives matplotlib here.

Example:
    >>> [round(float(v), 2) for v in cmap("diverging")(0.5)[:3]]
    [1.0, 1.0, 1.0]
    >>> ACCENTS["match"]
    '#ff7f0e'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._display import ACCENTS, ANCHORS, COLORMAPS, rgb, text_color, value_range
from ..errors import ConfigError, import_optional

__all__ = ["ACCENTS", "COLORMAPS", "cmap", "cell_colors", "text_color", "value_range", "for_values"]


def cmap(name: str, bad: str = "#d9d9d9"):
    """The matplotlib colour map of convention ``name`` (NaN drawn ``bad``: mosaic gaps).

    Raises:
        ConfigError: ``name`` is not one of :data:`COLORMAPS`.
        MissingDependencyError: matplotlib is not installed.
    """
    if name not in ANCHORS:
        raise ConfigError(f"cmap: the colour maps are {', '.join(COLORMAPS)}; got {name!r}.")
    colors = import_optional("matplotlib", "cmap (drawing PNG and SVG pictures)",
                             "pip install 'convscope[train]'", ("colors",)).colors
    LinearSegmentedColormap = colors.LinearSegmentedColormap

    anchors = ANCHORS[name] / 255.0
    steps = np.linspace(0.0, 1.0, len(anchors))
    made = LinearSegmentedColormap.from_list(f"convscope-{name}", list(zip(steps, anchors)), N=512)
    return made.with_extremes(bad=bad)


def for_values(a: Any) -> str:
    """The convention's map for ``a``: "diverging" when it has negatives, else "sequential".

    >>> for_values(np.array([-1.0, 2.0])), for_values(np.array([0.0, 2.0]))
    ('diverging', 'sequential')
    """
    a = np.asarray(a, dtype=np.float64)
    finite = a[np.isfinite(a)]
    return "diverging" if finite.size and finite.min() < 0 else "sequential"


def cell_colors(a: Any, name: str = "diverging", vmax: float | None = None) -> np.ndarray:
    """RGB in 0..1 for every entry of ``a`` (shape ``a.shape + (3,)``), as matplotlib takes them."""
    a = np.asarray(a, dtype=np.float64)
    if vmax is None:
        lo, hi = value_range(a, name)
    else:
        lo, hi = (-vmax, vmax) if name == "diverging" else (0.0, vmax)
    return rgb(a, name, lo, hi).astype(np.float64) / 255.0
