"""Turn what a learner types (or a file) into an array: ``"1 1 -1"``, ``"[[1,3],[4,5]]"``, ``x.npy``.

``explain`` works in float64 so that every printed number is exact for the small integer
examples of the notes; :func:`as_explain_array` is the one place where its inputs are
converted (integers and booleans are accepted here, unlike in the core ops, because a
learner's ``[1, 1, -1]`` is a list of ints).

Example:
    >>> parse_array("1 1 -1 -1")
    array([ 1.,  1., -1., -1.])
    >>> parse_array("[[1,3],[4,5]]")
    array([[1., 3.],
           [4., 5.]])
    >>> parse_array("1 2; 3 4")
    array([[1., 2.],
           [3., 4.]])
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, DTypeError, MissingDependencyError
from ..files import check_readable
from ..shapes import to_ndarray

__all__ = ["parse_array", "as_explain_array", "IMAGE_SUFFIXES"]

#: File suffixes read as images (through Pillow, the ``train`` extra).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")

_EXPECTED = (
    "numbers separated by spaces or commas (\"1 1 -1\"), rows separated by ';' or new lines "
    "(\"1 2; 3 4\"), a nested list (\"[[1,3],[4,5]]\"), or the path of a .npy or image file"
)


def as_explain_array(x: Any, name: str, op: str) -> np.ndarray:
    """``x`` as a float64 array for an explanation (ints and bools accepted, copied).

    Raises:
        ArgumentTypeError: ``x`` is None, a string, or not array-like.
        DTypeError: complex, object or string data.
        DataError: NaN entries (an explanation of NaN arithmetic explains nothing).

    >>> as_explain_array([1, 2], "x", "demo")
    array([1., 2.])
    """
    a = to_ndarray(
        x, op, f"{name} must be an array or a (nested) list of numbers",
        hint=" Strings can be read with convscope.explain.parse_array.",
        expected_list=f"{name} must be an array or a rectangular (nested) list of numbers",
    )
    if a.dtype.kind not in "biuf":
        raise DTypeError(
            f"{op}: {name} must hold real numbers; got dtype {a.dtype}. Explanations work on "
            f"real-valued signals, images and filters."
        )
    a = a.astype(np.float64)
    if np.isnan(a).any():
        raise DataError(
            f"{op}: {name} must not contain NaN; got {int(np.isnan(a).sum())} NaN entries in an "
            f"array of shape {a.shape}. Replace them before tracing the arithmetic."
        )
    return a


def _read_image(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is in the train and test extras
        raise MissingDependencyError(
            f"parse_array: reading the image {path} needs Pillow; install it with "
            f"pip install 'convscope[train]' or pass a .npy file instead."
        ) from None
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("L", "1", "I", "I;16", "F", "P", "LA"):
                a = np.asarray(img.convert("F"), dtype=np.float64)
                scale = 255.0 if img.mode in ("L", "1", "P", "LA") else (65535.0 if img.mode == "I;16" else 1.0)
                return a / scale
            rgb = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
            return np.ascontiguousarray(rgb.transpose(2, 0, 1))
    except OSError as exc:
        raise DataError(
            f"parse_array: could not read {path} as an image ({exc}). Expected a PNG, JPEG or "
            f"other Pillow-readable file."
        ) from None


def _read_file(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    check_readable(path, "file", op="parse_array")
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"parse_array: could not read {path} as a .npy array ({exc}). Save arrays with "
                f"numpy.save; pickled object arrays are refused."
            ) from None
        return as_explain_array(a, str(path), "parse_array")
    if suffix in IMAGE_SUFFIXES:
        return _read_image(path)
    raise DataError(
        f"parse_array: expected a .npy or image file ({', '.join(IMAGE_SUFFIXES)}); got "
        f"{str(path)!r} with suffix {suffix or '(none)'!r}."
    )


def _looks_like_path(text: str) -> bool:
    if os.sep in text or "/" in text:
        return True
    suffix = Path(text).suffix.lower()
    return suffix == ".npy" or suffix in IMAGE_SUFFIXES


def _parse_rows(text: str) -> np.ndarray:
    rows = [r for r in (part.strip() for part in text.replace("\n", ";").split(";")) if r]
    values = []
    for _r, row in enumerate(rows):
        tokens = [t for t in row.replace(",", " ").split() if t]
        try:
            values.append([float(t) for t in tokens])
        except ValueError:
            bad = next(t for t in tokens if not _is_number(t))
            raise DataError(
                f"parse_array: expected {_EXPECTED}; could not read {bad!r} in {text!r} as a "
                f"number."
            ) from None
    if not values:
        raise DataError(f"parse_array: expected {_EXPECTED}; got an empty string.")
    lengths = {len(v) for v in values}
    if len(lengths) != 1:
        raise DataError(
            f"parse_array: every row must have the same number of entries; got rows of "
            f"lengths {[len(v) for v in values]} in {text!r}."
        )
    a = np.array(values, dtype=np.float64)
    return a[0] if len(values) == 1 else a


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def parse_array(source: Any) -> np.ndarray:
    """Read an array from text, a ``.npy`` file or an image file (float64).

    Args:
        source: a string such as ``"1 1 -1"`` or ``"1, 1, -1"`` (a vector), ``"1 2; 3 4"``
            (rows separated by ``;`` or new lines), a nested list literal such as
            ``"[[1,3],[4,5]]"``; a path (``str`` or :class:`pathlib.Path`) of a ``.npy``
            file or of an image (PNG, JPEG, ... read with Pillow: a grayscale image gives
            ``(H, W)``, a colour image ``(3, H, W)`` channels first, values scaled to
            [0, 1]); or an array / list, which is converted as is.

    Returns:
        A float64 array.

    Raises:
        DataError: text that is not numbers, ragged rows, a missing or unreadable file.
        DTypeError: a ``.npy`` file or array of non-real data.
        MissingDependencyError: an image file without Pillow installed.

    Example:
        >>> parse_array("1, -1, 1")
        array([ 1., -1.,  1.])
        >>> parse_array("[1.5, 2]")
        array([1.5, 2. ])
    """
    if isinstance(source, Path):
        return _read_file(source)
    if not isinstance(source, str):
        return as_explain_array(source, "source", "parse_array")
    text = source.strip()
    if not text:
        raise DataError(f"parse_array: expected {_EXPECTED}; got an empty string.")
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise DataError(
                f"parse_array: expected {_EXPECTED}; could not read {text!r} as a nested list "
                f"of numbers (check the brackets and commas)."
            ) from None
        try:
            a = np.array(value, dtype=np.float64)
        except (ValueError, TypeError):
            raise DataError(
                f"parse_array: a nested list must be rectangular and hold only numbers; got "
                f"{text!r}."
            ) from None
        return as_explain_array(a, "source", "parse_array")
    if _looks_like_path(text) or os.path.isfile(text):
        return _read_file(Path(text))
    return _parse_rows(text)
