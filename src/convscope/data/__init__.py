"""Datasets, batching and augmentation for training (``convscope.data``).

* :func:`load_dataset` returns a :class:`Dataset` for ``"digits"`` (the built-in default,
  shipped with scikit-learn), ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` or an image
  folder, from ``data_dir`` or downloaded into a verified cache (:mod:`.download`).
* :class:`DataLoader` iterates ``(x, y)`` mini-batches in a seeded order, with a
  transform, and saves/restores its position (:attr:`DataLoader.state`).
* :mod:`.transforms`: :class:`Normalize`, :class:`RandomCrop`, :class:`RandomShift`,
  :class:`RandomHorizontalFlip`, :class:`Compose`.
* :mod:`.formats`: bounded readers of IDX and CIFAR-10 binary files.

Example:
    >>> from convscope.data import load_dataset, DataLoader
    >>> train = load_dataset("digits", split="train")
    >>> loader = DataLoader(train, batch_size=64, shuffle=True, seed=0)
    >>> x, y = next(iter(loader))
    >>> x.shape, y.shape, len(loader)
    ((64, 1, 8, 8), (64,), 23)
"""

from .datasets import (
    CIFAR10_CLASSES,
    DATASET_NAMES,
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    Dataset,
    DatasetSplits,
    load_cifar10,
    load_dataset,
    load_digits,
    load_image_folder,
    load_mnist,
    stratified_split,
)
from .download import MIRRORS, default_cache_dir, download_dataset, download_file
from .folder import read_image_folder
from .formats import read_cifar_binary, read_cifar_tar, read_idx
from .loader import DataLoader
from .transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomShift,
    Transform,
)

__all__ = [
    "CIFAR10_CLASSES",
    "DATASET_NAMES",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "MIRRORS",
    "Dataset",
    "DatasetSplits",
    "DataLoader",
    "Transform",
    "Normalize",
    "RandomCrop",
    "RandomShift",
    "RandomHorizontalFlip",
    "Compose",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_cifar10",
    "load_image_folder",
    "stratified_split",
    "default_cache_dir",
    "download_dataset",
    "download_file",
    "read_idx",
    "read_cifar_binary",
    "read_cifar_tar",
    "read_image_folder",
]
