"""The staged real data in ../shared/data (skips cleanly where it is absent). Kept fast:
MNIST is small; of CIFAR-10 only the test batch is read."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.data import CIFAR10_CLASSES, DataLoader, load_dataset
from convscope.data.download import REMOTE_FILES, _content_sha256

# From shared/data/mnist/SOURCE.md.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def mnist_dir(shared_data):
    folder = shared_data / "mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not staged in {folder}")
    return folder


@pytest.fixture
def cifar_dir(shared_data):
    folder = shared_data / "cifar-10"
    if not (folder / "test_batch.bin.xz").is_file():
        pytest.skip(f"CIFAR-10 not staged in {folder}")
    return folder


def test_mnist_counts_labels_and_pixels(shared_data, mnist_dir):
    test = load_dataset("mnist", shared_data, "test")  # found in the mnist/ sub-folder
    assert len(test) == 10_000 and test.image_shape == (1, 28, 28)
    assert test.class_counts().tolist() == MNIST_TEST_COUNTS
    mean, std = test.channel_stats()
    assert abs(mean[0] - 0.1325) < 1e-4 and abs(std[0] - 0.3105) < 1e-4
    train = load_dataset("mnist", mnist_dir, "train")
    assert len(train) == 60_000 and train.class_counts().tolist() == MNIST_TRAIN_COUNTS
    x, y = next(iter(DataLoader(train, batch_size=32, shuffle=True, seed=0)))
    assert x.shape == (32, 1, 28, 28) and 0.0 <= x.min() and x.max() <= 1.0


def test_builtin_mnist_hashes_match_the_staged_files(mnist_dir):
    # The download verifier's table agrees with the real files (decompressed content).
    for spec in REMOTE_FILES["mnist"]:
        assert _content_sha256(mnist_dir / spec.name, spec.max_content_bytes) == spec.sha256, spec.name


def test_cifar10_test_batch(shared_data, cifar_dir):
    test = load_dataset("cifar10", shared_data, "test")  # found in the cifar-10/ sub-folder
    assert len(test) == 10_000 and test.image_shape == (3, 32, 32)
    assert test.class_counts().tolist() == [1000] * 10
    assert test.classes == CIFAR10_CLASSES  # read from batches.meta.txt
    mean, std = test.channel_stats()
    np.testing.assert_allclose(mean, (0.4942, 0.4851, 0.4504), atol=1e-4)
    np.testing.assert_allclose(std, (0.2467, 0.2429, 0.2616), atol=1e-4)
