"""Arrays to pictures without matplotlib: colour maps and PNG bytes (zlib from the standard library).

The HTML explainer embeds every feature map and filter as a small PNG ``data:`` URI, so it
needs no plotting library: :func:`colorize` maps values to RGB with the colour maps of
convscope's one colour convention (:mod:`convscope.viz.colors`; the same anchors draw the
matplotlib pictures) and :func:`png_bytes` writes the PNG file format (signature, IHDR, one
IDAT, IEND), as an 8-bit palette PNG (a PLTE chunk) when the picture has at most 256 colours.

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
from ..errors import ArgumentTypeError, ConfigError, ShapeError

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


def _palette(a: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(indices (H, W) uint8, palette (n, 3) uint8)`` of an RGB image with at most 256 colours, else None."""
    packed = (a[..., 0].astype(np.uint32) << 16) | (a[..., 1].astype(np.uint32) << 8) | a[..., 2]
    colours, index = np.unique(packed.reshape(-1), return_inverse=True)
    if colours.size > 256:
        return None
    palette = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1).astype(np.uint8)
    return index.reshape(a.shape[:2]).astype(np.uint8), palette


def _png(rows: np.ndarray, w: int, color_type: int, palette: np.ndarray | None = None) -> bytes:
    h = rows.shape[0]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows.reshape(h, -1)], axis=1).tobytes()  # filter 0
    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    plte = b"" if palette is None else _chunk(b"PLTE", palette.tobytes())
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + plte + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))


def png_bytes(rgb: Any, palette: bool = True) -> bytes:
    """The PNG file of an ``(H, W, 3)`` uint8 RGB image (or ``(H, W)`` grey).

    With ``palette`` (the default), an RGB image of at most 256 distinct colours - a picture
    drawn through a colour map usually is - is written as an 8-bit palette PNG (colour type 3:
    a ``PLTE`` chunk of its colours, one byte per pixel), which decodes to exactly the same
    pixels in a third of the raw bytes; a tiny image keeps whichever file is shorter.

    Raises:
        ShapeError: another shape or dtype.  ArgumentTypeError: ``palette`` is not a bool.

    >>> import zlib
    >>> data = png_bytes(np.zeros((2, 3, 3), np.uint8))
    >>> int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")   # width, height
    (3, 2)
    """
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3) or a.size == 0:
        raise ShapeError(f"png_bytes: expected a non-empty uint8 array (H, W, 3) or (H, W); got "
                         f"{a.dtype} of shape {a.shape}.")
    if not isinstance(palette, bool):
        raise ArgumentTypeError(f"png_bytes: palette must be True or False; got {palette!r}.")
    h, w = a.shape[:2]
    if a.ndim == 2:
        return _png(a, w, 0)
    found = _palette(a) if palette else None
    if found is None:
        return _png(a, w, 2)
    indexed = _png(found[0], w, 3, found[1])
    if h * w > 64:
        return indexed
    direct = _png(a, w, 2)                  # a few pixels: the palette may cost more than it saves
    return indexed if len(indexed) <= len(direct) else direct


def data_uri(rgb: Any) -> str:
    """``data:image/png;base64,...`` of an RGB image (a palette PNG when it can be), for an ``<img src=...>``."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")
