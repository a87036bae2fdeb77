"""Image-classification datasets as one small object, and ``load_dataset`` to get them.

A :class:`Dataset` keeps its pixels as stored (uint8 for every built-in source, a
quarter of float32's memory) and converts to float32 in [0, 1], channels first
(N, C, H, W), when asked: per batch (:meth:`Dataset.batch`, what :class:`DataLoader`
uses) or all at once (:attr:`Dataset.images`).

Sources (``load_dataset(name, ...)``):

======================  ===========================  ================  ==============
name                    what                         shape per image   train / test
======================  ===========================  ================  ==============
``"digits"`` (default)  scikit-learn's 8x8 digits    (1, 8, 8), 0..16  1,437 / 360
``"mnist"``             MNIST, IDX files             (1, 28, 28)       60,000 / 10,000
``"fashion-mnist"``     Fashion-MNIST, IDX files     (1, 28, 28)       60,000 / 10,000
``"cifar10"``           CIFAR-10 binary version      (3, 32, 32)       50,000 / 10,000
a folder path           one sub-folder per class     as the images     see below
======================  ===========================  ================  ==============

The digits ship inside scikit-learn (1,797 real handwritten digits, no download); they
have no official split, so a fixed stratified split is used: 360 test images (20 %,
rounded up), allotted to the classes in proportion to their sizes (largest remainder),
chosen with ``numpy.random.default_rng(seed)``, ``seed=0`` by default. The same split
comes back on every machine. An image folder with ``train/`` and ``test/`` sub-folders
uses them; otherwise it is split the same way as the digits.

Example:
    >>> train = load_dataset("digits")
    >>> train
    Dataset(name='digits', split='train', n=1437, image_shape=(1, 8, 8), classes=10, pixels=uint8/16)
    >>> x, y = train.batch([0, 1])
    >>> x.shape, x.dtype, y.dtype
    ((2, 1, 8, 8), dtype('float32'), dtype('int64'))
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, DataError, MissingDependencyError
from . import download as _download
from .folder import DEFAULT_MAX_PIXELS, read_image_folder
from .formats import CIFAR_BATCH_RECORDS, read_cifar_binary, read_cifar_tar, read_idx

__all__ = [
    "DATASET_NAMES",
    "MNIST_CLASSES",
    "FASHION_MNIST_CLASSES",
    "CIFAR10_CLASSES",
    "Dataset",
    "DatasetSplits",
    "stratified_split",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_cifar10",
    "load_image_folder",
]

#: Names ``load_dataset`` knows (anything else is taken as an image-folder path).
DATASET_NAMES = ("digits", "mnist", "fashion-mnist", "cifar10")

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

_ALIASES = {
    "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10", "cifar_10": "cifar10",
}
_SPLITS = ("train", "test")


class Dataset:
    """Labelled images, stored compactly, handed out as float32 in [0, 1].

    Args:
        pixels: (N, C, *spatial) array, uint8 or float; kept as given (read-only view).
        labels: (N,) integer class indices in 0..len(classes)-1; stored as int64.
        classes: class names in index order.
        name: a short name for messages and reprs.
        split: ``"train"``, ``"test"`` or None.
        pixel_max: the value that maps to 1.0; default 255 for uint8, 1 for float.

    Attributes:
        pixels: the stored array (read-only).
        labels: int64 (N,) (read-only).
        classes: tuple of class names.
        name, split, pixel_max: as given.

    Raises:
        DataError: pixels with fewer than 3 axes, labels of the wrong length or out of
            range, no classes.
        ArgumentTypeError: non-array pixels, non-integer labels.

    Example:
        >>> ds = Dataset(np.full((2, 1, 2, 2), 255, np.uint8), [0, 1], ["a", "b"], "tiny")
        >>> x, y = ds[1]
        >>> x[0], y
        (array([[1., 1.],
               [1., 1.]], dtype=float32), 1)
    """

    def __init__(
        self,
        pixels: np.ndarray,
        labels: Any,
        classes: Sequence[str],
        name: str = "dataset",
        *,
        split: str | None = None,
        pixel_max: float | None = None,
    ) -> None:
        if not isinstance(pixels, np.ndarray):
            raise ArgumentTypeError(f"Dataset: pixels must be a NumPy array; got {type(pixels).__name__}.")
        if pixels.ndim < 3:
            raise DataError(
                f"Dataset: pixels must have shape (N, C, *spatial), at least 3 axes; got shape "
                f"{pixels.shape}. Add a channel axis, e.g. pixels[:, None]."
            )
        if pixels.dtype.kind not in "uf":
            raise ArgumentTypeError(f"Dataset: pixels must be unsigned int or float; got dtype {pixels.dtype}.")
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu":
            raise ArgumentTypeError(f"Dataset: labels must be integers; got dtype {labels.dtype}.")
        if labels.shape != (pixels.shape[0],):
            raise DataError(
                f"Dataset: expected one label per image, shape ({pixels.shape[0]},); got labels "
                f"of shape {labels.shape}."
            )
        classes = tuple(str(c) for c in classes)
        if not classes:
            raise DataError("Dataset: classes must name at least one class; got none.")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError(
                f"Dataset: labels must lie in 0..{len(classes) - 1} ({len(classes)} classes); got "
                f"values {int(labels.min())}..{int(labels.max())}."
            )
        if pixel_max is None:
            pixel_max = 255.0 if pixels.dtype == np.uint8 else 1.0
        if not pixel_max > 0:
            raise ConfigError(f"Dataset: pixel_max must be positive; got {pixel_max!r}.")
        self.pixels = pixels.view()
        self.pixels.flags.writeable = False
        self.labels = labels.astype(np.int64)
        self.labels.flags.writeable = False
        self.classes = classes
        self.name = str(name)
        self.split = split
        self.pixel_max = float(pixel_max)

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image."""
        return tuple(int(s) for s in self.pixels.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def batch(self, indices: Any, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
        """Images ``indices`` as ``dtype`` in [0, 1] (a new array) and their int64 labels.

        Example:
            >>> ds = Dataset(np.arange(8, dtype=np.uint8).reshape(2, 1, 2, 2), [1, 0], ["a", "b"],
            ...              pixel_max=8)
            >>> ds.batch([1])[0].ravel().tolist(), ds.batch([1])[1].tolist()
            ([0.5, 0.625, 0.75, 0.875], [0])
        """
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.dtype.kind not in "iu":
            raise ArgumentTypeError(f"{self.name}: indices must be integers; got dtype {idx.dtype}.")
        try:
            raw = self.pixels[idx]
        except IndexError:
            raise ConfigError(
                f"{self.name}: indices must lie in -{len(self)}..{len(self) - 1}; got values "
                f"{int(idx.min())}..{int(idx.max())}."
            ) from None
        return np.divide(raw, self.pixel_max, dtype=dtype), self.labels[idx]

    def __getitem__(self, index: Any) -> tuple[np.ndarray, Any]:
        """One image (C, H, W) and its int label, or a batch for a slice / index array."""
        if isinstance(index, (int, np.integer)):
            x, y = self.batch(np.asarray([index]))
            return x[0], int(y[0])
        if isinstance(index, slice):
            index = np.arange(len(self))[index]
        return self.batch(index)

    @functools.cached_property
    def images(self) -> np.ndarray:
        """All images as float32 (N, C, H, W) in [0, 1] (computed once, 4 bytes per value)."""
        return self.batch(np.arange(len(self)))[0]

    def class_counts(self) -> np.ndarray:
        """Number of images per class, int64 (num_classes,)."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and standard deviation of the [0, 1] images (for Normalize).

        Computed in float64 over chunks, so it never materialises the float dataset.

        Example:
            >>> ds = Dataset(np.array([[[[0, 255]]]], np.uint8), [0], ["a"])
            >>> ds.channel_stats()
            ((0.5,), (0.5,))
        """
        c = self.pixels.shape[1]
        total = np.zeros(c)
        total_sq = np.zeros(c)
        axes = (0,) + tuple(range(2, self.pixels.ndim))
        for start in range(0, len(self), 4096):
            chunk = self.pixels[start : start + 4096].astype(np.float64) / self.pixel_max
            total += chunk.sum(axis=axes)
            total_sq += np.square(chunk).sum(axis=axes)
        count = self.pixels.size / c
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        return tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def subset(self, indices: Any, split: str | None = None) -> Dataset:
        """A new Dataset with the images ``indices`` (copied), same classes and name."""
        idx = np.asarray(indices, dtype=np.int64)
        return Dataset(
            self.pixels[idx], self.labels[idx], self.classes, self.name,
            split=self.split if split is None else split, pixel_max=self.pixel_max,
        )

    def __repr__(self) -> str:
        scale = f"{self.pixel_max:g}"
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image_shape={self.image_shape}, classes={self.num_classes}, "
            f"pixels={self.pixels.dtype}/{scale})"
        )


def stratified_split(
    labels: Any, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, seeded, stratified train/test split of indices.

    ``ceil(test_fraction * N)`` indices go to the test part, allotted to the classes in
    proportion to their sizes (floor, then the largest remainders, ties to the lower
    class); within a class the test members are the first ones of a permutation drawn
    from ``numpy.random.default_rng(seed)``. Both index arrays are returned sorted.

    Example:
        >>> train, test = stratified_split([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 0.2, seed=0)
        >>> len(train), len(test), np.bincount(np.asarray([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])[test]).tolist()
        (8, 2, [1, 1])
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ArgumentTypeError(
            f"stratified_split: labels must be a 1-D integer array; got {labels.dtype} {labels.shape}."
        )
    if not 0.0 < float(test_fraction) < 1.0:
        raise ConfigError(f"stratified_split: test_fraction must lie strictly between 0 and 1; got {test_fraction!r}.")
    n = labels.size
    n_test = int(np.ceil(float(test_fraction) * n))
    classes, counts = np.unique(labels, return_counts=True)
    ideal = counts * n_test / n
    quota = np.floor(ideal).astype(np.int64)
    order = np.argsort(-(ideal - quota), kind="stable")
    quota[order[: n_test - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    test_parts = []
    for cls, q in zip(classes, quota):
        members = np.flatnonzero(labels == cls)
        test_parts.append(members[rng.permutation(members.size)[:q]])
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.empty(0, np.int64)
    mask = np.ones(n, dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask), test


def _check_split(split: Any) -> str:
    if split not in _SPLITS:
        raise ConfigError(f"split must be 'train' or 'test'; got {split!r}.")
    return split


class DatasetSplits(NamedTuple):
    """``(train, test)``: what :func:`load_digits` returns without a split.

    A plain pair (``train, test = load_digits()``). Reading an attribute of a Dataset from
    it (``load_digits().images``, the single-split call of earlier releases) gives the
    training split's attribute with a :class:`DeprecationWarning`; pass ``split="train"``
    to get that split alone.
    """

    train: Dataset
    test: Dataset

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or not hasattr(self.train, name):
            raise AttributeError(f"DatasetSplits (train, test) has no attribute {name!r}.")
        warnings.warn(
            "load_digits() now returns the pair (train, test); reading a Dataset attribute from the "
            "pair gives the training split's and is deprecated: call load_digits('train') for one "
            "split, or train, test = load_digits().", DeprecationWarning, stacklevel=2,
        )
        return getattr(self.train, name)


def load_digits(split: str | None = None, *, seed: int = 0, test_fraction: float = 0.2) -> Any:
    """scikit-learn's 1,797 handwritten 8x8 digits, with a fixed split.

    The pixels are whole numbers 0..16 (stored as uint8, ``pixel_max=16``); the images
    come out as float32 in ``[0, 1]`` (divided by 16) from ``Dataset.images`` and
    ``Dataset.batch``, like every other dataset's.

    Args:
        split: None (default): both splits as ``(train, test)``; ``"train"`` (1,437
            images with the defaults) or ``"test"`` (360): that split alone.
        seed: seed of the stratified split (see :func:`stratified_split`).
        test_fraction: share of the test part.

    Returns:
        A :class:`DatasetSplits` ``(train, test)``, or the one :class:`Dataset` asked for.

    Raises:
        MissingDependencyError: scikit-learn is not installed.

    Example:
        >>> train, test = load_digits()
        >>> len(train), len(test), float(train.images.max())
        (1437, 360, 1.0)
        >>> load_digits("test").class_counts().tolist()
        [36, 37, 35, 37, 36, 36, 36, 36, 35, 36]
    """
    if split is None:
        return DatasetSplits(load_digits("train", seed=seed, test_fraction=test_fraction),
                             load_digits("test", seed=seed, test_fraction=test_fraction))
    _check_split(split)
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise MissingDependencyError(
            "the built-in digits dataset ships with scikit-learn, which is not installed. "
            'Install it with pip install "convscope[train]" (or pip install scikit-learn), '
            "or choose another dataset."
        ) from None
    bunch = sk_load_digits()
    pixels = bunch.images.astype(np.uint8)[:, None]  # values are whole numbers 0..16
    labels = bunch.target.astype(np.int64)
    train, test = stratified_split(labels, test_fraction, seed)
    idx = train if split == "train" else test
    return Dataset(pixels[idx], labels[idx], MNIST_CLASSES, "digits", split=split, pixel_max=16.0)


# --- IDX datasets (MNIST, Fashion-MNIST) -------------------------------------------------

_IDX_FOLDERS = {
    "mnist": ("mnist", "MNIST", "MNIST/raw"),
    "fashion-mnist": ("fashion-mnist", "fashion_mnist", "fashion", "FashionMNIST", "FashionMNIST/raw"),
}
_IDX_COUNTS = {"train": 60_000, "test": 10_000}


def _find_first(folders: Sequence[Path], stems: Sequence[str], suffixes: Sequence[str]) -> Path | None:
    for folder in folders:
        for stem in stems:
            for suffix in suffixes:
                path = folder / (stem + suffix)
                if path.is_file():
                    return path
    return None


def _idx_pair(name: str, folders: Sequence[Path], split: str) -> tuple[Path, Path]:
    prefix = "train" if split == "train" else "t10k"
    found = []
    for kind, ndim in (("images", 3), ("labels", 1)):
        stems = (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte")
        path = _find_first(folders, stems, ("", ".gz", ".xz"))
        if path is None:
            raise DataError(
                f"{name} {split} files not found: looked for {stems[0]}[.gz|.xz] (or "
                f"{stems[1]}) in {', '.join(str(f) for f in folders)}. Pass the folder that "
                f"holds the standard files with --data-dir DIR, or leave it out to download them."
            )
        found.append(path)
    return found[0], found[1]


def load_mnist(
    data_dir: str | Path, split: str = "train", *, variant: str = "mnist"
) -> Dataset:
    """MNIST or Fashion-MNIST from the four standard IDX files in ``data_dir``.

    Looks in ``data_dir`` and in its sub-folders named after the dataset (``mnist/``,
    ``MNIST/raw/``, ``fashion-mnist/``, ...), for the standard names
    (``train-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, ...) raw or with ``.gz`` /
    ``.xz`` (the dotted ``train-images.idx3-ubyte`` form is accepted too).

    Args:
        data_dir: the folder.
        split: ``"train"`` or ``"test"``.
        variant: ``"mnist"`` or ``"fashion-mnist"`` (class names, sub-folder names).

    Raises:
        DataError: files missing, malformed (see :func:`read_idx`), not 28x28 uint8,
            more than 60,000 / 10,000 items, image and label counts that differ, or
            labels above 9.
    """
    _check_split(split)
    if variant not in _IDX_FOLDERS:
        raise ConfigError(f"variant must be 'mnist' or 'fashion-mnist'; got {variant!r}.")
    root = Path(data_dir)
    folders = [root] + [root / sub for sub in _IDX_FOLDERS[variant]]
    images_path, labels_path = _idx_pair(variant, folders, split)
    limit = _IDX_COUNTS[split]
    images = read_idx(images_path, max_bytes=limit * 28 * 28)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28); got {images.dtype} "
            f"{images.shape}. Is this the images file of {variant}?"
        )
    labels = read_idx(labels_path, max_bytes=limit)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{labels_path}: expected a 1-D uint8 label file; got {labels.dtype} {labels.shape}."
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{variant} {split}: {images_path.name} holds {images.shape[0]} images but "
            f"{labels_path.name} holds {labels.shape[0]} labels; they must match."
        )
    if labels.size and labels.max() > 9:
        bad = int(np.flatnonzero(labels > 9)[0])
        raise DataError(
            f"{labels_path}: labels must lie in 0..9; item {bad} has label {int(labels[bad])}."
        )
    classes = MNIST_CLASSES if variant == "mnist" else FASHION_MNIST_CLASSES
    return Dataset(images[:, None], labels, classes, variant, split=split)


# --- CIFAR-10 ---------------------------------------------------------------------------

_CIFAR_FOLDERS = ("cifar-10-batches-bin", "cifar-10", "cifar10", "cifar-10/cifar-10-batches-bin")
_CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"


def _cifar_classes(text: str | None, source: str) -> tuple[str, ...]:
    if text is None:
        return CIFAR10_CLASSES
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 10:
        raise DataError(f"{source}: expected 10 class names, one per line; got {len(names)}: {names[:12]}.")
    return names


def load_cifar10(data_dir: str | Path, split: str = "train") -> Dataset:
    """CIFAR-10 (binary version) from ``data_dir``.

    Looks in ``data_dir`` and in ``cifar-10-batches-bin/``, ``cifar-10/``, ``cifar10/``
    below it for ``data_batch_1..5.bin`` (train) or ``test_batch.bin`` (test), each
    plain, ``.gz`` or ``.xz``; failing that, for the official ``cifar-10-binary.tar.gz``,
    read in place. Class names come from ``batches.meta.txt`` when present.

    Raises:
        DataError: files missing (also when only some train batches exist), malformed
            (see :func:`read_cifar_binary`), or a malformed ``batches.meta.txt``.
    """
    _check_split(split)
    root = Path(data_dir)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    folders = [root] + [root / sub for sub in _CIFAR_FOLDERS]
    for folder in folders:
        paths = [_find_first([folder], [n], ("", ".gz", ".xz")) for n in names]
        if any(p is not None for p in paths):
            missing = [n for n, p in zip(names, paths) if p is None]
            if missing:
                raise DataError(
                    f"CIFAR-10 {split} in {folder}: found some batch files but not "
                    f"{', '.join(missing)} (plain, .gz or .xz); all of {', '.join(names)} are needed."
                )
            parts = [read_cifar_binary(p, max_records=CIFAR_BATCH_RECORDS) for p in paths]  # type: ignore[arg-type]
            meta = folder / "batches.meta.txt"
            text = None
            if meta.is_file():
                with open(meta, "rb") as f:  # a class list is tiny; never read more than 64 KiB
                    text = f.read(1 << 16).decode("utf-8", errors="replace")
            classes = _cifar_classes(text, str(meta))
            break
    else:
        archive = next((f / _CIFAR_ARCHIVE for f in folders if (f / _CIFAR_ARCHIVE).is_file()), None)
        if archive is None:
            raise DataError(
                f"CIFAR-10 {split} files not found: looked for {', '.join(names)} (plain, .gz or "
                f".xz) and {_CIFAR_ARCHIVE} in {', '.join(str(f) for f in folders)}. Pass the "
                f"folder that holds them with --data-dir DIR, or leave it out to download them."
            )
        batches, texts = read_cifar_tar(archive, names, max_records=CIFAR_BATCH_RECORDS)
        parts = [batches[n] for n in names]
        classes = _cifar_classes(texts.get("batches.meta.txt"), f"{archive}:batches.meta.txt")
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return Dataset(images, labels, classes, "cifar10", split=split)


# --- image folders ----------------------------------------------------------------------


def load_image_folder(
    root: str | Path,
    split: str | None = None,
    *,
    image_size: int | Sequence[int] | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Dataset:
    """Images from a folder with one sub-folder per class (see :mod:`.folder`).

    With ``split`` given: if ``root/train`` and ``root/test`` both exist they are read as
    the two parts; otherwise the whole folder is split by :func:`stratified_split`
    (``seed``, ``test_fraction``). With ``split=None`` the whole folder is returned.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for cls in ("cat", "dog"):
        ...     (root / cls).mkdir()
        ...     for i in range(5):
        ...         Image.new("RGB", (6, 4), (i, 0, 0)).save(root / cls / f"{i}.png")
        >>> load_image_folder(root, "test")
        Dataset(name='...', split='test', n=2, image_shape=(3, 4, 6), classes=2, pixels=uint8/255)
    """
    root = Path(root)
    name = root.name or str(root)
    if split is not None:
        _check_split(split)
        if (root / "train").is_dir() and (root / "test").is_dir():
            pixels, labels, classes = read_image_folder(root / split, image_size=image_size, max_pixels=max_pixels)
            return Dataset(pixels, labels, classes, name, split=split)
    pixels, labels, classes = read_image_folder(root, image_size=image_size, max_pixels=max_pixels)
    if split is None:
        return Dataset(pixels, labels, classes, name)
    train, test = stratified_split(labels, test_fraction, seed)
    idx = train if split == "train" else test
    return Dataset(pixels[idx], labels[idx], classes, name, split=split)


# --- the one entry point ----------------------------------------------------------------


def load_dataset(
    name: str | Path = "digits",
    data_dir: str | Path | None = None,
    split: str = "train",
    *,
    download: bool = True,
    cache_dir: str | Path | None = None,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    quiet: bool = False,
    image_size: int | Sequence[int] | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> Dataset:
    """Load one split of a named dataset or of an image folder.

    Args:
        name: ``"digits"``, ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` (also
            ``"cifar-10"``, ``"fashion_mnist"``; case-insensitive), or the path of an image
            folder. A name wins over a folder of the same name: write ``./digits`` for that.
        data_dir: a folder holding the standard files; when given nothing is downloaded.
        split: ``"train"`` or ``"test"``.
        download: without ``data_dir``, fetch missing files into the cache (when False,
            only the cache is read). Cached files are checked against the expected SHA-256
            either way; one that does not match is fetched again (or, when False, refused).
        cache_dir, mirrors, checksums, timeout, quiet: passed to
            :func:`~convscope.data.download.download_dataset`.
        image_size: image folders only: resize to (height, width).
        seed, test_fraction: the fixed split of the digits and of image folders without
            ``train/`` and ``test/`` sub-folders.

    Returns:
        A :class:`Dataset` (float32 batches in [0, 1], int64 labels).

    Raises:
        ConfigError: unknown name that is not a folder either, bad split, ``data_dir`` for
            the digits.
        DataError: files missing, corrupt, or not downloadable (the message names the URLs
            and suggests ``--data-dir``).
        MissingDependencyError: scikit-learn (digits) or Pillow (folders) missing.

    Example:
        >>> len(load_dataset("digits", split="test"))
        360
        >>> load_dataset("imagenet")
        Traceback (most recent call last):
        ...
        convscope.errors.ConfigError: unknown dataset 'imagenet': expected one of digits, mnist, fashion-mnist, cifar10, or the path of an image folder (one sub-folder per class); no folder exists at imagenet.
    """
    _check_split(split)
    if not isinstance(name, (str, Path)):
        raise ArgumentTypeError(f"dataset name must be a str or a path; got {type(name).__name__}.")
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if isinstance(name, str) and key in DATASET_NAMES:
        if key == "digits":
            if data_dir is not None:
                raise ConfigError(
                    "the digits dataset ships with scikit-learn and reads no files; drop "
                    f"data_dir (got {str(data_dir)!r}) or choose another dataset."
                )
            return load_digits(split, seed=seed, test_fraction=test_fraction)
        if data_dir is None:
            if download:
                folder = _download.download_dataset(
                    key, split, cache_dir, mirrors=mirrors, checksums=checksums,
                    timeout=timeout, quiet=quiet,
                )
            else:
                folder = _download.verify_cache(key, split, cache_dir, checksums=checksums)
        else:
            folder = Path(data_dir)
            if not folder.is_dir():
                raise DataError(f"data_dir {folder} is not an existing folder.")
        if key == "cifar10":
            return load_cifar10(folder, split)
        return load_mnist(folder, split, variant=key)
    path = Path(name)
    if path.is_dir():
        return load_image_folder(
            path, split, image_size=image_size, seed=seed, test_fraction=test_fraction
        )
    raise ConfigError(
        f"unknown dataset {str(name)!r}: expected one of {', '.join(DATASET_NAMES)}, or the "
        f"path of an image folder (one sub-folder per class); no folder exists at {path}."
    )
