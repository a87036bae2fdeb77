"""Arrays to pictures without matplotlib: colour maps and PNG bytes (zlib from the standard library).

The HTML explainer embeds every feature map and filter as a small PNG ``data:`` URI, so it
needs no plotting library: :func:`colorize` maps values to RGB with the colour maps of
convscope's one colour convention (:mod:`convscope.viz.colors`; the same anchors draw the
matplotlib pictures) and :func:`png_bytes` writes the PNG file format (signature, IHDR, one
IDAT, IEND).

* ``"diverging"``: blue for negative, white for 0, red for positive, on a scale symmetric
  around 0 (``vmax = max |a|``), for anything signed: filters, convolution outputs, weights.
* ``"sequential"``: dark to bright (viridis-like), for non-negative maps (after a ReLU).
* ``"gray"``: black (``vmin``) to white (``vmax``), for input images.

Example:
    >>> rgb = colorize(np.array([[-1.0, 0.0, 1.0]]), "diverging")
    >>> rgb.shape, rgb[0, 1].tolist()
    ((1, 3, 3), [255, 255, 255])
    >>> png_bytes(rgb)[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    >>> data_uri(rgb).startswith("data:image/png;base64,")
    True
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import numpy as np

from .._display import COLORMAPS as _COLORMAPS
from .._display import rgb as _rgb
from .._display import value_range
from ..errors import ConfigError, ShapeError

__all__ = ["colorize", "png_bytes", "data_uri", "value_range", "COLORMAPS"]

#: Names accepted by :func:`colorize` (the colour convention of :mod:`convscope.viz.colors`).
COLORMAPS = _COLORMAPS


def colorize(a: Any, cmap: str = "sequential", vmin: float | None = None,
             vmax: float | None = None) -> np.ndarray:
    """Map a 1-D or 2-D array to RGB ``uint8`` of shape ``(H, W, 3)`` (1-D: one row).

    Args:
        a: the values (NaN and infinities draw as the ends of the scale / mid grey).
        cmap: "diverging", "sequential" or "gray".
        vmin, vmax: the ends of the scale; None takes :func:`value_range`.

    Raises:
        ConfigError: unknown ``cmap``.  ShapeError: ``a`` is not 1-D or 2-D, or empty.
    """
    if cmap not in COLORMAPS:
        raise ConfigError(f"colorize: cmap must be one of {', '.join(COLORMAPS)}; got {cmap!r}.")
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.size == 0:
        raise ShapeError(f"colorize: expected a non-empty 1-D or 2-D array; got shape {a.shape}.")
    return _rgb(a, cmap, vmin, vmax)


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bytes(rgb: Any) -> bytes:
    """The PNG file of an ``(H, W, 3)`` uint8 RGB image (or ``(H, W)`` grey).

    Raises:
        ShapeError: another shape or dtype.

    >>> import zlib
    >>> data = png_bytes(np.zeros((2, 3, 3), np.uint8))
    >>> int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")   # width, height
    (3, 2)
    """
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3) or a.size == 0:
        raise ShapeError(f"png_bytes: expected a non-empty uint8 array (H, W, 3) or (H, W); got "
                         f"{a.dtype} of shape {a.shape}.")
    h, w = a.shape[:2]
    color_type = 2 if a.ndim == 3 else 0
    rows = np.ascontiguousarray(a).reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))


def data_uri(rgb: Any) -> str:
    """``data:image/png;base64,...`` of an RGB image, for an ``<img src=...>``."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")
