"""IDX and CIFAR-10 binary parsing: round trips on generated files, every corruption a DataError."""

from __future__ import annotations

import gzip
import io
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope.data.formats import (
    CIFAR_RECORD_BYTES,
    open_data_file,
    read_cifar_binary,
    read_cifar_tar,
    read_idx,
)
from convscope.errors import DataError

from ._helpers import cifar_bytes, compress, idx_bytes, tar_with, write

COMPRESSIONS = ["raw", "gz", "xz"]


# --- IDX --------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_idx_round_trip_images_and_labels(tmp_path, compression):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    pi = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images), compression)
    pl = write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(labels), compression)
    np.testing.assert_array_equal(read_idx(pi), images)
    np.testing.assert_array_equal(read_idx(pl), labels)
    assert read_idx(pi).dtype == np.uint8


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_other_element_types_are_big_endian_decoded(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 11).astype(dtype)
    path = write(tmp_path / "x.idx", idx_bytes(array))
    got = read_idx(path)
    np.testing.assert_array_equal(got, array)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative


def test_compression_is_recognised_by_content_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = tmp_path / "looks-raw-idx2-ubyte"
    path.write_bytes(compress(idx_bytes(array), "xz"))
    np.testing.assert_array_equal(read_idx(path), array)


@settings(max_examples=25)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    compression=st.sampled_from(COMPRESSIONS),
    seed=st.integers(0, 2**16),
)
def test_idx_round_trip_property(tmp_path_factory, shape, compression, seed):
    array = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    path = write(tmp_path_factory.mktemp("idx") / "a", idx_bytes(array), compression)
    np.testing.assert_array_equal(read_idx(path), array)


@settings(max_examples=30)
@given(cut_fraction=st.floats(0.0, 0.999), compression=st.sampled_from(COMPRESSIONS))
def test_idx_any_truncation_is_a_data_error(tmp_path_factory, cut_fraction, compression):
    data = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    cut = int(cut_fraction * len(data))
    blob = compress(data, compression)[: int(cut_fraction * len(compress(data, compression)))]
    if compression == "raw":
        blob = data[:cut]
    path = tmp_path_factory.mktemp("cut") / "t"
    path.write_bytes(blob)
    with pytest.raises(DataError):
        read_idx(path)


def _header(code=0x08, dims=(3,)):
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    "blob, words",
    [
        (b"\x00\x00", ["4-byte IDX header"]),
        (b"\x01\x00\x08\x01" + bytes(8), ["not an IDX file", "01 00 08 01"]),
        (b"\x00\x00\x07\x01" + bytes(8), ["not an IDX file", "07"]),
        (b"\x00\x00\x08\x00" + bytes(8), ["not an IDX file"]),
        (b"PK\x03\x04" + bytes(20), ["not an IDX file"]),
        (_header(dims=(3, 2))[:9], ["truncated", "2 dimensions"]),
        (_header(dims=(0,)), ["no items"]),
        (_header(dims=(5,)) + bytes(3), ["promises 5 items", "holds only 3"]),
        (_header(dims=(2,)) + bytes(3), ["continues after"]),
    ],
    ids=["short", "magic", "type", "ndim0", "zip", "dims-cut", "empty", "promise", "trailing"],
)
def test_idx_malformed_raw_files(tmp_path, blob, words):
    path = tmp_path / "bad-idx"
    path.write_bytes(blob)
    with pytest.raises(DataError) as info:
        read_idx(path)
    for word in words:
        assert word in str(info.value)
    assert str(path) in str(info.value)


def test_idx_header_promising_more_than_a_gzip_file_holds(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_header(dims=(10, 28, 28)) + bytes(3 * 28 * 28 + 5)))
    with pytest.raises(DataError, match=r"promises 10 items .* ends after 2357 bytes \(3 complete items\)"):
        read_idx(path)


def test_idx_trailing_bytes_inside_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(_header(dims=(2,)) + b"\x01\x02\x03"))
    with pytest.raises(DataError, match="continues after the 2 data bytes"):
        read_idx(path)


def test_idx_declared_size_above_limit_is_refused_before_reading(tmp_path):
    # A gzip "bomb": 64 MiB of zeros compress to ~64 KiB; the header declares all of it.
    dims = (64, 1024, 1024)
    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(_header(dims=dims))
        zeros = bytes(1 << 20)
        for _ in range(64):
            f.write(zeros)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(DataError, match="more than the limit max_bytes=1000000.*decompression bomb"):
        read_idx(path, max_bytes=1_000_000)
    # Same file within the limit reads fine: the refusal is the limit, not the content.
    assert read_idx(path, max_bytes=1 << 27).shape == dims


@pytest.mark.parametrize("damage", ["truncated", "garbage", "bad-crc"])
def test_idx_corrupt_gzip_stream(tmp_path, damage):
    good = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)), mtime=0)
    if damage == "truncated":
        blob = good[: len(good) // 2]
    elif damage == "garbage":
        blob = good[:10] + b"\xff" * (len(good) - 10)
    else:
        blob = good[:-8] + bytes(8)  # zeroed CRC32 and size
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(blob)
    with pytest.raises(DataError, match="corrupt|truncated"):
        read_idx(path)


def test_missing_and_folder_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="not a regular file"):
        read_idx(tmp_path)


def test_open_data_file_detects_xz(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(compress(b"payload", "xz"))
    with open_data_file(path) as f:
        assert f.read() == b"payload"


# --- CIFAR-10 binary --------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_cifar_round_trip(tmp_path, compression):
    data, images, labels = cifar_bytes(13, seed=4)
    path = write(tmp_path / "test_batch.bin", data, compression)
    got_images, got_labels = read_cifar_binary(path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
    # Channels first: the first 1,024 pixel bytes of a record are the red plane.
    np.testing.assert_array_equal(got_images[0, 0].ravel(), np.frombuffer(data[1:1025], np.uint8))


@pytest.mark.parametrize("extra", [1, 3072, -1])
def test_cifar_size_not_multiple_of_record(tmp_path, extra):
    data, _, _ = cifar_bytes(3)
    path = tmp_path / "b.bin"
    path.write_bytes(data + bytes(extra) if extra > 0 else data[:extra])
    with pytest.raises(DataError, match="not a multiple of 3073"):
        read_cifar_binary(path)


def test_cifar_100_records_get_a_hint(tmp_path):
    path = tmp_path / "c100.bin"
    path.write_bytes(bytes(5 * 3074))  # five 3,074-byte records: not a multiple of 3,073
    with pytest.raises(DataError, match="CIFAR-100"):
        read_cifar_binary(path)


def test_cifar_label_out_of_range(tmp_path):
    data, _, _ = cifar_bytes(4)
    blob = bytearray(data)
    blob[2 * CIFAR_RECORD_BYTES] = 10
    path = tmp_path / "b.bin.gz"
    path.write_bytes(gzip.compress(bytes(blob)))
    with pytest.raises(DataError, match="record 2 has label 10"):
        read_cifar_binary(path)


def test_cifar_empty_and_too_many_records(tmp_path):
    empty = tmp_path / "e.bin"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_cifar_binary(empty)
    data, _, _ = cifar_bytes(5)
    big = write(tmp_path / "big.bin", data, "xz")
    with pytest.raises(DataError, match="more than max_records=4"):
        read_cifar_binary(big, max_records=4)
    assert read_cifar_binary(big, max_records=5)[0].shape[0] == 5


def test_cifar_corrupt_xz(tmp_path):
    data, _, _ = cifar_bytes(3)
    blob = compress(data, "xz")
    path = tmp_path / "b.bin.xz"
    path.write_bytes(blob[: len(blob) - 40])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_cifar_binary(path)


# --- CIFAR-10 tar archive ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["w:gz", "w:xz", "w"])
def test_cifar_tar_reads_members_in_one_pass(tmp_path, mode):
    members = {}
    expected = {}
    for i, name in enumerate(["data_batch_1.bin", "test_batch.bin"]):
        data, images, labels = cifar_bytes(6, seed=i)
        members[f"cifar-10-batches-bin/{name}"] = data
        expected[name] = (images, labels)
    members["cifar-10-batches-bin/batches.meta.txt"] = b"a\nb\n"
    path = tar_with(tmp_path / "cifar-10-binary.tar.gz", members, mode)
    batches, texts = read_cifar_tar(path, ["test_batch.bin", "data_batch_1.bin"])
    for name, (images, labels) in expected.items():
        np.testing.assert_array_equal(batches[name][0], images)
        np.testing.assert_array_equal(batches[name][1], labels)
    assert texts["batches.meta.txt"] == "a\nb\n"


def test_cifar_tar_missing_member_lists_what_it_found(tmp_path):
    data, _, _ = cifar_bytes(2)
    path = tar_with(tmp_path / "a.tar.gz", {"cifar-10-batches-bin/data_batch_1.bin": data})
    with pytest.raises(DataError, match=r"test_batch.bin.*found: cifar-10-batches-bin/data_batch_1.bin"):
        read_cifar_tar(path, ["test_batch.bin"])


def test_cifar_tar_member_in_other_folder_is_ignored(tmp_path):
    data, _, _ = cifar_bytes(2)
    path = tar_with(tmp_path / "a.tar.gz", {"../evil/test_batch.bin": data})
    with pytest.raises(DataError, match="not in it"):
        read_cifar_tar(path, ["test_batch.bin"])


def test_cifar_tar_member_that_is_a_link(tmp_path):
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="regular file"):
        read_cifar_tar(path, ["test_batch.bin"])


def test_cifar_tar_member_larger_than_limit(tmp_path):
    data, _, _ = cifar_bytes(3)
    path = tar_with(tmp_path / "a.tar.gz", {"cifar-10-batches-bin/test_batch.bin": data})
    with pytest.raises(DataError, match="more than the limit"):
        read_cifar_tar(path, ["test_batch.bin"], max_records=2)


def test_cifar_tar_bomb_stops_scanning(tmp_path):
    # A huge junk member first: refused by its declared size, without decompressing it all.
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("junk")
        info.size = 32 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    with pytest.raises(DataError, match="Refusing to decompress further"):
        read_cifar_tar(path, ["test_batch.bin"], max_records=100)


@pytest.mark.parametrize("damage", ["truncated", "not-a-tar"])
def test_cifar_tar_corrupt(tmp_path, damage):
    data, _, _ = cifar_bytes(20)
    path = tar_with(tmp_path / "a.tar.gz", {"cifar-10-batches-bin/test_batch.bin": data})
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:3000])
    else:
        path.write_bytes(gzip.compress(b"hello, not a tar archive" * 30))
    with pytest.raises(DataError):
        read_cifar_tar(path, ["test_batch.bin"])
