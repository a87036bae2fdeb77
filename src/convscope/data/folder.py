"""Read an image folder: one sub-folder per class, images decoded with Pillow.

Layout (the usual one, as torchvision's ``ImageFolder``)::

    root/
      cat/  001.png  002.jpg ...
      dog/  a.png ...

Classes are the sub-folder names in sorted order (class index = position); files are
read in sorted order. Hidden entries (starting with ``.``) and files whose extension is
not in :data:`IMAGE_EXTENSIONS` are skipped. Pillow is imported only when a folder is
read; without it :class:`MissingDependencyError` names the extra to install.

Safety: each image's declared size is checked against ``max_pixels`` before it is
decoded (Pillow reads only the header on open), and Pillow's own decompression-bomb
warning is turned into an error, so a small file claiming a huge image is refused
instead of filling memory. Unreadable or corrupt files raise :class:`DataError` naming
the file.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for cls in ("a", "b"):
    ...     (root / cls).mkdir()
    ...     Image.new("L", (4, 3), 200).save(root / cls / "x.png")
    >>> pixels, labels, classes = read_image_folder(root)
    >>> pixels.shape, labels.tolist(), classes
    ((2, 1, 3, 4), [0, 1], ('a', 'b'))
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, DataError, MissingDependencyError
from ..files import as_path

__all__ = ["IMAGE_EXTENSIONS", "DEFAULT_MAX_PIXELS", "read_image_folder"]

#: File extensions read as images (case-insensitive).
IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp",
)

#: Default ceiling on the pixels of one image (width * height): 4096 x 4096.
DEFAULT_MAX_PIXELS = 4096 * 4096

_GRAY_MODES = ("1", "L", "LA")
_COLOR_MODES = ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La")


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError(
            "reading an image folder needs Pillow, which is not installed. Install it with "
            'pip install "convscope[train]" (or pip install pillow).'
        ) from None
    return Image


def _class_folders(root: Path) -> list[Path]:
    try:
        is_dir = root.is_dir()
    except OSError as exc:  # e.g. a name longer than the system allows
        raise DataError(f"read_image_folder: cannot look up {str(root)[:200]!r}: {exc.strerror or exc}.") from None
    if not is_dir:
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"expected an image folder (one sub-folder per class) at {root}, but it {what}.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            f"expected one sub-folder per class in {root}, but it has no sub-folders. Put "
            f"each class's images in its own folder, e.g. {root}/cat/1.png, {root}/dog/2.png."
        )
    return folders


def _decode(image_module: Any, path: Path, image_size: tuple[int, int] | None, max_pixels: int) -> np.ndarray:
    """One image as uint8 (H, W) for gray or (H, W, 3) for color."""
    errors = (
        image_module.UnidentifiedImageError,
        image_module.DecompressionBombError,
        image_module.DecompressionBombWarning,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", image_module.DecompressionBombWarning)
            with image_module.open(path) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise DataError(
                        f"image {path} declares {width}x{height} = {width * height} pixels, more "
                        f"than max_pixels={max_pixels}; refusing to decode it (too large for a "
                        f"training image, or a decompression bomb)."
                    )
                mode = im.mode
                if mode in _GRAY_MODES:
                    im = im.convert("L")
                elif mode in _COLOR_MODES:
                    im = im.convert("RGB")
                else:
                    raise DataError(
                        f"image {path} has mode {mode!r}; expected 8-bit gray or color "
                        f"(modes {', '.join(_GRAY_MODES + _COLOR_MODES)}). Convert it to 8-bit "
                        f"first (16-bit and float images are not supported)."
                    )
                if image_size is not None and im.size != (image_size[1], image_size[0]):
                    im = im.resize((image_size[1], image_size[0]), image_module.Resampling.BILINEAR)
                return np.asarray(im, dtype=np.uint8).copy()
    except DataError:
        raise
    except errors as exc:
        raise DataError(
            f"could not read image {path}: {type(exc).__name__}: {exc}. The file is corrupt, "
            f"truncated or not an image."
        ) from None


def read_image_folder(
    root: str | Path,
    *,
    image_size: int | Sequence[int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Decode every image under ``root/<class>/`` into one uint8 array.

    Args:
        root: the folder holding one sub-folder per class.
        image_size: ``(height, width)`` (or one int for square) to resize every image to
            with bilinear interpolation; None requires all images to have the same size.
        max_pixels: the largest width * height accepted for one image.

    Returns:
        (pixels, labels, classes): uint8 (N, C, H, W) with C = 1 when every image is gray
        and C = 3 otherwise (gray images are repeated into 3 channels, alpha is dropped);
        int64 labels (N,); class names in index order.

    Raises:
        DataError: no such folder, no class sub-folders, a class with no images, corrupt
            or oversized images, or differing sizes without ``image_size``.
        ConfigError: a malformed ``image_size`` or ``max_pixels``.
        MissingDependencyError: Pillow is not installed.
    """
    image_module = _pillow()
    root = as_path(root, "read_image_folder")
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels <= 0:
        raise ConfigError(f"max_pixels must be a positive int; got {max_pixels!r}.")
    if image_size is not None:
        if isinstance(image_size, (int, np.integer)):
            size: tuple = (image_size, image_size)
        elif isinstance(image_size, (tuple, list)):
            size = tuple(image_size)
        else:
            size = ()
        if len(size) != 2 or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size
        ) or int(size[0]) * int(size[1]) > max_pixels:
            raise ConfigError(
                f"image_size must be a positive int or (height, width) of positive ints, at "
                f"most max_pixels={max_pixels} pixels in all; got {image_size!r}."
            )
        image_size = (int(size[0]), int(size[1]))
    images: list[np.ndarray] = []
    labels: list[int] = []
    first: tuple[Path, tuple[int, int]] | None = None
    folders = _class_folders(root)
    for index, folder in enumerate(folders):
        files = sorted(
            p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise DataError(
                f"class folder {folder} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                f"every class needs at least one image."
            )
        for path in files:
            array = _decode(image_module, path, image_size, max_pixels)
            hw = array.shape[:2]
            if first is None:
                first = (path, hw)
            elif hw != first[1]:
                raise DataError(
                    f"images must all have the same size, but {first[0]} is {first[1][0]}x"
                    f"{first[1][1]} (height x width) and {path} is {hw[0]}x{hw[1]}. Pass "
                    f"image_size=(height, width) to resize them."
                )
            images.append(array)
            labels.append(index)
    color = any(a.ndim == 3 for a in images)
    n, (h, w) = len(images), images[0].shape[:2]
    pixels = np.empty((n, 3 if color else 1, h, w), dtype=np.uint8)
    for i, array in enumerate(images):
        pixels[i] = array.transpose(2, 0, 1) if array.ndim == 3 else array
    return pixels, np.asarray(labels, dtype=np.int64), tuple(p.name for p in folders)
