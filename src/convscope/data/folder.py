"""Read an image folder: one sub-folder per class, images decoded with Pillow.

Layout (the usual one, as torchvision's ``ImageFolder``)::

    root/
      cat/  001.png  002.jpg ...
      dog/  a.png ...

Classes are the sub-folder names in sorted order (class index = position); files are
read in sorted order. Hidden entries (starting with ``.``) and files whose extension is
not in :data:`IMAGE_EXTENSIONS` are skipped. Pillow is imported only when a folder is
read; without it :class:`MissingDependencyError` names the extra to install.

Safety: every image's header is read first (Pillow reads only the header on open): each
declared size is checked against ``max_pixels`` and Pillow's own decompression-bomb
warning is turned into an error, so a small file claiming a huge image is refused
instead of filling memory. The array of all images is then counted against the array
limit (:func:`convscope.functional.windows.get_array_limit`) and allocated once, before
any image is decoded, so a folder of many large images is refused before its pixels are
decompressed; images are decoded straight into it. Unreadable folders and unreadable or
corrupt files raise :class:`DataError` naming them.

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

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, MissingDependencyError, ResourceError
from ..files import as_path
from ..settings import check_allocation

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
    folders = sorted(p for p in _entries(root, "image folder") if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            f"expected one sub-folder per class in {root}, but it has no sub-folders. Put "
            f"each class's images in its own folder, e.g. {root}/cat/1.png, {root}/dog/2.png."
        )
    return folders


def _entries(folder: Path, what: str) -> list[Path]:
    """The entries of ``folder``; a folder the system will not list is a DataError."""
    try:
        return list(folder.iterdir())
    except OSError as exc:
        raise DataError(
            f"cannot list the {what} {folder}: {exc.strerror or exc}. Check that it is a folder "
            f"you may read."
        ) from None


@contextlib.contextmanager
def _opened(image_module: Any, path: Path, max_pixels: int) -> Iterator[Any]:
    """The image at ``path``, opened (header read) and checked for size and mode."""
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
                if im.mode not in _GRAY_MODES + _COLOR_MODES:
                    raise DataError(
                        f"image {path} has mode {im.mode!r}; expected 8-bit gray or color "
                        f"(modes {', '.join(_GRAY_MODES + _COLOR_MODES)}). Convert it to 8-bit "
                        f"first (16-bit and float images are not supported)."
                    )
                yield im
    except DataError:
        raise
    except errors as exc:
        raise DataError(
            f"could not read image {path}: {type(exc).__name__}: {exc}. The file is corrupt, "
            f"truncated or not an image."
        ) from None


def _header(image_module: Any, path: Path, image_size: tuple[int, int] | None,
            max_pixels: int) -> tuple[tuple[int, int], bool]:
    """``((height, width) after resizing, is color)`` from the image's header alone."""
    with _opened(image_module, path, max_pixels) as im:
        hw = image_size if image_size is not None else (im.size[1], im.size[0])
        return hw, im.mode in _COLOR_MODES


def _decode(image_module: Any, path: Path, image_size: tuple[int, int] | None, max_pixels: int) -> np.ndarray:
    """One image as uint8 (H, W) for gray or (H, W, 3) for color."""
    with _opened(image_module, path, max_pixels) as im:
        im = im.convert("L" if im.mode in _GRAY_MODES else "RGB")
        if image_size is not None and im.size != (image_size[1], image_size[0]):
            im = im.resize((image_size[1], image_size[0]), image_module.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


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
    paths: list[Path] = []
    labels: list[int] = []
    first: tuple[Path, tuple[int, int]] | None = None
    color = False
    folders = _class_folders(root)
    for index, folder in enumerate(folders):
        files = sorted(
            p for p in _entries(folder, "class folder")
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise DataError(
                f"class folder {folder} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                f"every class needs at least one image."
            )
        for path in files:
            hw, is_color = _header(image_module, path, image_size, max_pixels)
            color = color or is_color
            if first is None:
                first = (path, hw)
            elif hw != first[1]:
                raise DataError(
                    f"images must all have the same size, but {first[0]} is {first[1][0]}x"
                    f"{first[1][1]} (height x width) and {path} is {hw[0]}x{hw[1]}. Pass "
                    f"image_size=(height, width) to resize them."
                )
            paths.append(path)
            labels.append(index)
    assert first is not None
    shape = (len(paths), 3 if color else 1, *first[1])
    pixels = _allocate(shape, f"array of the {len(paths)} images (N, C, H, W)")
    for i, path in enumerate(paths):
        array = _decode(image_module, path, image_size, max_pixels)
        pixels[i] = array.transpose(2, 0, 1) if array.ndim == 3 else array
    return pixels, np.asarray(labels, dtype=np.int64), tuple(p.name for p in folders)


def _allocate(shape: tuple[int, ...], what: str) -> np.ndarray:
    """An uninitialised uint8 array, checked against the array limit and the system first."""
    op = "read_image_folder"
    check_allocation(shape, np.uint8, what, op)
    try:
        return np.empty(shape, dtype=np.uint8)
    except MemoryError:
        nbytes = int(np.prod(shape, dtype=object))
        raise ResourceError(
            f"{op}: the {what} needs {nbytes / 2**30:.2f} GiB, which the system refused to "
            f"allocate (a memory limit such as ulimit -v, or too little free memory); nothing "
            f"was decoded. Pass a smaller image_size= or max_pixels=, use fewer images, or give "
            f"the process more memory."
        ) from None
