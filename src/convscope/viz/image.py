"""Arrays to pictures without matplotlib: colour maps and PNG bytes (zlib from the standard library).

The HTML explainer embeds every feature map and filter as a small PNG ``data:`` URI, so it
needs no plotting library: :func:`colorize` maps values to RGB with the colour maps of
convscope's one colour convention (:mod:`convscope.viz.colors`; the same anchors draw the
matplotlib pictures) and :func:`png_bytes` writes the PNG file format (signature, IHDR, one
IDAT, IEND), as an 8-bit palette PNG (a PLTE chunk) when the picture has at most 256 colours;
:func:`colormap_png` draws values straight to a palette PNG whose entries follow the scale.

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
from .._display import LEVELS as _LEVELS
from .._display import levels as _levels
from .._display import rgb as _rgb
from .._display import scale_colours as _scale_colours
from .._display import value_range
from ..errors import ArgumentTypeError, ConfigError, ShapeError

__all__ = ["colorize", "png_bytes", "colormap_png", "data_uri", "value_range", "COLORMAPS"]

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
    return _rgb(_checked(a, cmap, "colorize"), cmap, vmin, vmax)


def _checked(a: Any, cmap: str, op: str) -> np.ndarray:
    """``a`` as a 2-D float64 array (1-D: one row) for colour map ``cmap``, or the error ``op`` raises."""
    if cmap not in COLORMAPS:
        raise ConfigError(f"{op}: cmap must be one of {', '.join(COLORMAPS)}; got {cmap!r}.")
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.size == 0:
        raise ShapeError(f"{op}: expected a non-empty 1-D or 2-D array; got shape {a.shape}.")
    return a


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


def _residuals(r: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """The bytes of scanlines ``r`` (int16, ``(H, W * bpp)``) under PNG filter ``kind`` 1..4 (Sub, Up,
    Average, Paeth: each byte minus its prediction from the raw bytes left, above, above-left)."""
    h = r.shape[0]
    up = np.vstack([np.zeros((1, r.shape[1]), r.dtype), r[:-1]])
    left = np.hstack([np.zeros((h, bpp), r.dtype), r[:, :-bpp]])
    if kind == 1:
        pred = left
    elif kind == 2:
        pred = up
    elif kind == 3:
        pred = (left + up) // 2
    else:
        corner = np.hstack([np.zeros((h, bpp), r.dtype), up[:, :-bpp]])
        p = left + up - corner
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - corner)
        pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, corner))
    return ((r - pred) & 255).astype(np.uint8)


_BYTE_COST = np.minimum(np.arange(256), 256 - np.arange(256))     # |byte| read as a signed byte


def _idat(rows: np.ndarray, bpp: int) -> bytes:
    """The compressed scanlines, one filter for the whole image: none, or the filter whose residuals are
    smallest (libpng's sum of |signed byte| measure) when that compresses shorter."""
    h = rows.shape[0]
    rows = np.ascontiguousarray(rows).reshape(h, -1)

    def packed(kind: int, body: np.ndarray) -> bytes:
        return zlib.compress(np.concatenate([np.full((h, 1), kind, np.uint8), body], axis=1).tobytes(), 9)

    plain = packed(0, rows)
    if h * rows.shape[1] < 256:
        return plain
    r = rows.astype(np.int16)
    costs = [int(np.bincount(body.reshape(-1), minlength=256) @ _BYTE_COST) for body in
             [rows] + [_residuals(r, bpp, kind) for kind in (1, 2, 3, 4)]]
    kind = int(np.argmin(costs))
    if kind == 0:
        return plain
    filtered = packed(kind, _residuals(r, bpp, kind))
    return filtered if len(filtered) < len(plain) else plain


def _png(rows: np.ndarray, w: int, color_type: int, bpp: int, palette: np.ndarray | None = None) -> bytes:
    header = struct.pack(">IIBBBBB", w, rows.shape[0], 8, color_type, 0, 0, 0)
    plte = b"" if palette is None else _chunk(b"PLTE", palette.tobytes())
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + plte + _chunk(b"IDAT", _idat(rows, bpp))
            + _chunk(b"IEND", b""))


def _shorter(indexed: bytes, rgb: np.ndarray) -> bytes:
    """``indexed``, or for a few pixels the RGB file when it is shorter (the palette may cost more)."""
    h, w = rgb.shape[:2]
    if h * w > 64:
        return indexed
    direct = _png(rgb, w, 2, 3)
    return indexed if len(indexed) <= len(direct) else direct


def png_bytes(rgb: Any, palette: bool = True) -> bytes:
    """The PNG file of an ``(H, W, 3)`` uint8 RGB image (or ``(H, W)`` grey).

    With ``palette`` (the default), an RGB image of at most 256 distinct colours - a picture
    drawn through a colour map usually is - is written as an 8-bit palette PNG (colour type 3:
    a ``PLTE`` chunk of its colours, one byte per pixel), which decodes to exactly the same
    pixels in a third of the raw bytes; a tiny image keeps whichever file is shorter. The rows
    go through the one PNG filter (none, Sub, Up, Average, Paeth) that suits the picture best.

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
    w = a.shape[1]
    if a.ndim == 2:
        return _png(a, w, 0, 1)
    found = _palette(a) if palette else None
    if found is None:
        return _png(a, w, 2, 3)
    return _shorter(_png(found[0], w, 3, 1, found[1]), a)


def colormap_png(a: Any, cmap: str = "sequential", vmin: float | None = None, vmax: float | None = None) -> bytes:
    """The PNG of ``colorize(a, cmap, vmin, vmax)``: the same pixels, as a palette PNG in the scale's order.

    The palette lists the steps of the scale that ``a`` uses, from ``vmin`` up, so close values get
    close indices and PNG's row filters (chosen per picture) can pay off on smooth maps, which
    :func:`png_bytes` cannot know from the colours alone.

    Raises:
        ConfigError: unknown ``cmap``.  ShapeError: ``a`` is not 1-D or 2-D, or empty.

    >>> png = colormap_png(np.arange(100.0).reshape(10, 10))
    >>> png[:8], png[25]                              # the signature, colour type 3 (palette)
    (b'\\x89PNG\\r\\n\\x1a\\n', 3)
    """
    values = _checked(a, cmap, "colormap_png")
    step = _levels(values, cmap, vmin, vmax)
    used = np.flatnonzero(np.bincount(step.reshape(-1), minlength=_LEVELS))
    rank = np.zeros(_LEVELS, np.uint8)
    rank[used] = np.arange(used.size)
    colours = _scale_colours(cmap)
    return _shorter(_png(rank[step], values.shape[1], 3, 1, colours[used]), colours[step])


def data_uri(image: Any) -> str:
    """``data:image/png;base64,...`` for an ``<img src=...>``: of PNG bytes (as :func:`colormap_png`
    gives), or of an RGB image (:func:`png_bytes`: a palette PNG when it can be).

    Raises:
        ShapeError: bytes that are not a PNG file, or an array :func:`png_bytes` refuses.
    """
    if isinstance(image, bytes):
        if not image.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ShapeError(f"data_uri: expected the bytes of a PNG file (they start with \\x89PNG); got "
                             f"{image[:8]!r}.")
        data = image
    else:
        data = png_bytes(image)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
