"""Dataset object, the built-in digits, MNIST / Fashion-MNIST / CIFAR-10 from generated folders."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from convscope.data import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    Dataset,
    load_dataset,
    load_digits,
    stratified_split,
)
from convscope.errors import ArgumentTypeError, ConfigError, DataError, MissingDependencyError

from ._helpers import cifar_bytes, fake_cifar, fake_cifar_tar, fake_mnist, idx_bytes, write

# --- Dataset ----------------------------------------------------------------------------


def test_dataset_scales_uint8_to_unit_float32_per_batch():
    pixels = np.array([0, 51, 255, 102], np.uint8).reshape(4, 1, 1, 1)
    ds = Dataset(pixels, [0, 1, 1, 0], ["a", "b"], "t", split="train")
    x, y = ds.batch([2, 1])
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x.ravel(), np.array([1.0, 0.2], np.float32))
    np.testing.assert_array_equal(y, [1, 1])
    assert ds.images.shape == (4, 1, 1, 1) and ds.images.dtype == np.float32
    assert ds[3][1] == 0 and ds[3][0].shape == (1, 1, 1)
    assert ds[1:3][0].shape == (2, 1, 1, 1)
    assert ds.class_counts().tolist() == [2, 2]
    assert len(ds) == 4 and ds.image_shape == (1, 1, 1) and ds.num_classes == 2


def test_dataset_storage_is_read_only_and_batches_are_fresh():
    pixels = np.zeros((2, 1, 2, 2), np.uint8)
    ds = Dataset(pixels, [0, 0], ["a"])
    with pytest.raises(ValueError):
        ds.pixels[0, 0, 0, 0] = 1
    pixels[0, 0, 0, 0] = 5  # the caller's own array stays writable
    x, _ = ds.batch([0])
    x[...] = 7
    assert ds.pixels.max() == 5


def test_dataset_channel_stats_match_numpy():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(50, 3, 4, 5), dtype=np.uint8)
    ds = Dataset(pixels, np.zeros(50, np.int64), ["x"])
    mean, std = ds.channel_stats()
    ref = pixels.astype(np.float64) / 255
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, ref.std(axis=(0, 2, 3)), rtol=1e-9)


def test_dataset_subset_keeps_metadata():
    ds = Dataset(np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1), [0, 1, 2, 0, 1, 2], "abc", "n", split="train")
    sub = ds.subset([5, 0])
    assert sub.labels.tolist() == [2, 0] and sub.classes == ("a", "b", "c") and sub.split == "train"


@pytest.mark.parametrize(
    "pixels, labels, classes, error, words",
    [
        (np.zeros((2, 4), np.uint8), [0, 0], ["a"], DataError, "at least 3 axes"),
        (np.zeros((2, 1, 2, 2), np.uint8), [0], ["a"], DataError, "one label per image"),
        (np.zeros((2, 1, 2, 2), np.uint8), [0, 2], ["a", "b"], DataError, "0..1"),
        (np.zeros((2, 1, 2, 2), np.uint8), [0.0, 1.0], ["a", "b"], ArgumentTypeError, "integers"),
        (np.zeros((2, 1, 2, 2), np.uint8), [0, 0], [], DataError, "at least one class"),
        ([[[[0]]]], [0], ["a"], ArgumentTypeError, "NumPy array"),
    ],
)
def test_dataset_rejects_bad_input(pixels, labels, classes, error, words):
    with pytest.raises(error, match=words):
        Dataset(pixels, labels, classes)


def test_dataset_bad_indices_are_convscope_errors():
    ds = Dataset(np.zeros((3, 1, 1, 1), np.uint8), [0, 0, 0], ["a"])
    with pytest.raises(ConfigError, match=r"-3\.\.2"):
        ds.batch([3])
    with pytest.raises(ArgumentTypeError):
        ds.batch([0.5])
    assert ds.batch([])[0].shape == (0, 1, 1, 1)


# --- stratified split and digits --------------------------------------------------------


def test_stratified_split_sizes_proportions_and_determinism():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    train, test = stratified_split(labels, 0.25, seed=5)
    assert len(test) == 25 and len(train) == 75
    # Ideal shares 12.5, 7.5, 5: floors 12, 7, 5 leave one image, which goes to the
    # largest remainder, ties to the lower class.
    assert np.bincount(labels[test]).tolist() == [13, 7, 5]
    assert np.intersect1d(train, test).size == 0 and np.union1d(train, test).size == 100
    again = stratified_split(labels, 0.25, seed=5)
    np.testing.assert_array_equal(again[1], test)
    assert not np.array_equal(stratified_split(labels, 0.25, seed=6)[1], test)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 2])
def test_stratified_split_rejects_fractions(fraction):
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        stratified_split([0, 1, 0, 1], fraction)


def test_digits_default_split_shapes_values_and_determinism():
    train, test = load_digits("train"), load_digits("test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.image_shape == (1, 8, 8) and train.pixels.dtype == np.uint8
    assert train.pixels.max() == 16 and train.pixel_max == 16.0
    x, _ = train.batch(np.arange(len(train)))
    assert x.min() == 0.0 and x.max() == 1.0
    # Stratified: every class has 35..37 of the 360 test images.
    assert set(test.class_counts().tolist()) <= {35, 36, 37}
    # Train and test together are exactly the whole dataset (as a multiset of images).
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    def rows(pixels, labels):
        return sorted(p.tobytes() + bytes([int(y)]) for p, y in zip(pixels.reshape(len(labels), -1), labels))
    whole = rows(bunch.images.astype(np.uint8), bunch.target)
    assert rows(np.concatenate([train.pixels, test.pixels]), np.concatenate([train.labels, test.labels])) == whole
    again = load_dataset("digits", split="test")
    np.testing.assert_array_equal(again.pixels, test.pixels)
    np.testing.assert_array_equal(again.labels, test.labels)
    other = load_digits("test", seed=1)
    assert not np.array_equal(other.labels, test.labels)


def test_digits_refuses_data_dir_and_bad_split(tmp_path):
    with pytest.raises(ConfigError, match="ships with scikit-learn"):
        load_dataset("digits", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="'train' or 'test'"):
        load_dataset("digits", split="validation")


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "convscope\[train\]"'):
        load_digits()


def test_unknown_dataset_name():
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'.*image folder"):
        load_dataset("imagenet")
    with pytest.raises(ArgumentTypeError):
        load_dataset(3)


# --- MNIST / Fashion-MNIST from a folder ------------------------------------------------


@pytest.mark.parametrize("compression", ["gz", "raw", "xz"])
def test_mnist_from_data_dir(tmp_path, compression):
    written = fake_mnist(tmp_path, compression=compression)
    for split in ("train", "test"):
        ds = load_dataset("mnist", data_dir=tmp_path, split=split)
        images, labels = written[split]
        assert ds.pixels.shape == (len(images), 1, 28, 28) and ds.name == "mnist"
        np.testing.assert_array_equal(ds.pixels[:, 0], images)
        np.testing.assert_array_equal(ds.labels, labels)


def test_mnist_found_in_named_subfolder_and_dotted_names(tmp_path):
    fake_mnist(tmp_path / "mnist")
    assert len(load_dataset("MNIST", tmp_path, "test")) == 20
    rng = np.random.default_rng(0)
    write(tmp_path / "other" / "t10k-images.idx3-ubyte", idx_bytes(rng.integers(0, 255, (3, 28, 28), dtype=np.uint8)))
    write(tmp_path / "other" / "t10k-labels.idx1-ubyte", idx_bytes(np.array([1, 2, 3], np.uint8)))
    assert load_dataset("mnist", tmp_path / "other", "test").labels.tolist() == [1, 2, 3]


def test_fashion_mnist_class_names_and_folder(tmp_path):
    fake_mnist(tmp_path / "fashion-mnist")
    ds = load_dataset("fashion_mnist", tmp_path, "train")
    assert ds.classes == FASHION_MNIST_CLASSES and ds.name == "fashion-mnist"
    # An MNIST sub-folder is not mistaken for Fashion-MNIST (they share file names).
    fake_mnist(tmp_path / "only" / "mnist")
    with pytest.raises(DataError, match="fashion-mnist train files not found"):
        load_dataset("fashion-mnist", tmp_path / "only", "train")
    assert load_dataset("mnist", tmp_path / "only", "train").classes[3] == "3"


def test_mnist_missing_files_suggest_data_dir(tmp_path):
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\[\.gz\|\.xz\].*--data-dir"):
        load_dataset("mnist", tmp_path, "test")
    with pytest.raises(DataError, match="not an existing folder"):
        load_dataset("mnist", tmp_path / "absent", "test")


def _write_pair(folder, images, labels):
    write(folder / "t10k-images-idx3-ubyte", idx_bytes(images), "gz")
    write(folder / "t10k-labels-idx1-ubyte", idx_bytes(labels), "gz")


@pytest.mark.parametrize(
    "images, labels, words",
    [
        (np.zeros((3, 27, 28), np.uint8), np.zeros(3, np.uint8), "shape \\(N, 28, 28\\)"),
        (np.zeros((3, 28, 28), np.int16), np.zeros(3, np.uint8), "uint8 images"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros(4, np.uint8), "3 images but .* 4 labels"),
        (np.zeros((3, 28, 28), np.uint8), np.array([1, 10, 2], np.uint8), "item 1 has label 10"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros((3, 1), np.uint8), "1-D uint8 label"),
        (np.zeros((10_001, 28, 28), np.uint8), np.zeros(3, np.uint8), "more than the limit"),
    ],
    ids=["dims", "dtype", "count", "label", "label-ndim", "too-many"],
)
def test_mnist_inconsistent_files(tmp_path, images, labels, words):
    _write_pair(tmp_path, images, labels)
    with pytest.raises(DataError, match=words):
        load_dataset("mnist", tmp_path, "test")


# --- CIFAR-10 from a folder -------------------------------------------------------------


@pytest.mark.parametrize("compression", ["raw", "gz", "xz"])
def test_cifar_from_batch_files(tmp_path, compression):
    written = fake_cifar(tmp_path / "cifar-10-batches-bin", n=4, compression=compression)
    train = load_dataset("cifar10", tmp_path, "train")
    assert train.pixels.shape == (20, 3, 32, 32) and train.classes == CIFAR10_CLASSES
    np.testing.assert_array_equal(train.pixels[4:8], written["data_batch_2"][0])
    test = load_dataset("cifar-10", tmp_path, "test")
    np.testing.assert_array_equal(test.labels, written["test_batch"][1])


def test_cifar_from_official_archive(tmp_path):
    written = fake_cifar_tar(tmp_path / "cifar-10-binary.tar.gz", n=3)
    train = load_dataset("cifar10", tmp_path, "train")
    np.testing.assert_array_equal(train.pixels[12:], written["data_batch_5"][0])
    np.testing.assert_array_equal(train.labels[:3], written["data_batch_1"][1])
    test = load_dataset("cifar10", tmp_path, "test")
    assert len(test) == 3 and test.classes[0] == "airplane"


def test_cifar_missing_batch_and_meta(tmp_path):
    fake_cifar(tmp_path, n=2)
    (tmp_path / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match="not data_batch_3.bin"):
        load_dataset("cifar10", tmp_path, "train")
    (tmp_path / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match="expected 10 class names"):
        load_dataset("cifar10", tmp_path, "test")
    (tmp_path / "batches.meta.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    assert load_dataset("cifar10", tmp_path, "test").classes[9] == "c9"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz.*--data-dir"):
        load_dataset("cifar10", empty, "test")


def test_cifar_bad_record_size(tmp_path):
    data, _, _ = cifar_bytes(2)
    (tmp_path / "test_batch.bin").write_bytes(data[:-1])
    with pytest.raises(DataError, match="not a multiple of 3073"):
        load_dataset("cifar10", tmp_path, "test")
