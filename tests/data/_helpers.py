"""Builders of small, valid (or deliberately broken) dataset files for the data tests."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
from pathlib import Path

import numpy as np

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
             np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (big-endian header and data)."""
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    code = IDX_CODES[np.dtype(big.dtype)]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + big.tobytes()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gz":
        return gzip.compress(data, mtime=0)
    if compression == "xz":
        return lzma.compress(data)
    return data


def write(path: Path, data: bytes, compression: str = "raw") -> Path:
    """Write ``data`` compressed as asked; the suffix is added for gz/xz."""
    if compression in ("gz", "xz"):
        path = path.with_name(path.name + "." + compression)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(compress(data, compression))
    return path


def fake_mnist(folder: Path, n_train: int = 30, n_test: int = 20, compression: str = "gz",
               seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write the four standard MNIST files with random content; return what was written."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        write(folder / f"{prefix}-images-idx3-ubyte", idx_bytes(images), compression)
        write(folder / f"{prefix}-labels-idx1-ubyte", idx_bytes(labels), compression)
        out[split] = (images, labels)
    return out


def cifar_bytes(n: int, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``n`` random CIFAR-10 binary records; returns (bytes, images (n,3,32,32), labels)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    records = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1)
    return records.tobytes(), images, labels


def fake_cifar(folder: Path, n: int = 12, compression: str = "raw") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write data_batch_1..5 and test_batch (``n`` records each) as separate files."""
    out = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, images, labels = cifar_bytes(n, seed=i)
        write(folder / f"{name}.bin", data, compression)
        out[name] = (images, labels)
    return out


def tar_with(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def fake_cifar_tar(path: Path, n: int = 12) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The layout of the official cifar-10-binary.tar.gz, with ``n`` records per batch."""
    members, out = {}, {}
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    members["cifar-10-batches-bin/batches.meta.txt"] = "\n".join(
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    ).encode() + b"\n\n"
    members["cifar-10-batches-bin/readme.html"] = b"<html></html>"
    for i, name in enumerate(names):
        data, images, labels = cifar_bytes(n, seed=i)
        members[f"cifar-10-batches-bin/{name}.bin"] = data
        out[name] = (images, labels)
    tar_with(path, members)
    return out
