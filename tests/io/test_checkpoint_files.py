"""save_checkpoint / load_checkpoint: round trips, every kind of bad file, atomic writes."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from convscope.errors import ArgumentTypeError, CheckpointError, ConfigError, DTypeError
from convscope.io import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    CheckpointNotFoundError,
    load_checkpoint,
    save_checkpoint,
)
from convscope.io import npz as npz_module


def sample_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6))
    return {
        "model/conv.weight": rng.standard_normal((2, 1, 3, 3)).astype(np.float32),
        "model/conv.bias": np.array([0.5, -1.25], dtype=np.float32),
        "f64": base,
        "strided": base[::2, ::3],  # not contiguous
        "fortran": np.asfortranarray(base),
        "big_endian": base.astype(">f8"),
        "int8": np.array([-128, 0, 127], dtype=np.int8),
        "int64": np.arange(5, dtype=np.int64) * 10**15,
        "uint8": np.arange(256, dtype=np.uint8),
        "bool": np.array([[True, False], [False, True]]),
        "complex": np.array([1 + 2j, -3.5j], dtype=np.complex128),
        "scalar": np.float64(3.25),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "rng/state": np.array([2**64 - 1, 7], dtype=np.uint64),
    }


HEADER = {
    "epoch": 3,
    "metrics": {"loss": [0.5, 0.25], "acc": np.float32(0.75), "best": np.int64(2)},
    "pair": (1, 2),
    "text": "Zeichen ✓ 数字",
    "nan": float("nan"),
    "flags": [True, None],
}


def assert_same_arrays(loaded, original):
    assert list(loaded) == list(original)
    for key, value in original.items():
        value = np.asarray(value)
        got = loaded[key]
        assert got.dtype == value.dtype and got.shape == value.shape, key
        np.testing.assert_array_equal(got, value, err_msg=key)
        assert got.flags.writeable, key


# ---------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------
def test_round_trip_arrays_and_header(tmp_path):
    arrays = sample_arrays()
    written = save_checkpoint(tmp_path / "ckpt.npz", arrays, HEADER)
    assert written == tmp_path / "ckpt.npz"
    loaded, header = load_checkpoint(str(written))
    assert_same_arrays(loaded, arrays)
    assert header["epoch"] == 3 and header["pair"] == [1, 2] and header["text"] == HEADER["text"]
    assert header["metrics"] == {"loss": [0.5, 0.25], "acc": 0.75, "best": 2}
    assert np.isnan(header["nan"]) and header["flags"] == [True, None]


def test_file_is_a_plain_npz_with_a_json_header(tmp_path):
    path = save_checkpoint(tmp_path / "c", {"w": np.arange(3.0)}, {"k": 1})
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["__convscope__", "w"]
        header = npz["__convscope__"]
        assert header.dtype == np.uint8
        outer = json.loads(header.tobytes().decode("utf-8"))
    assert outer["format"] == CHECKPOINT_FORMAT and outer["version"] == FORMAT_VERSION
    assert outer["header"] == {"k": 1} and outer["arrays"] == {"w": {"dtype": "<f8", "shape": [3]}}
    assert len(outer["sha256"]) == 64
    with zipfile.ZipFile(path) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_suffix_is_added_like_numpy_and_found_on_load(tmp_path):
    written = save_checkpoint(tmp_path / "run", {"a": np.zeros(1)})
    assert written.name == "run.npz" and written.exists() and not (tmp_path / "run").exists()
    arrays, header = load_checkpoint(tmp_path / "run")
    assert header == {} and list(arrays) == ["a"]
    assert save_checkpoint(str(tmp_path / "x.npz"), {}).name == "x.npz"
    assert save_checkpoint(tmp_path / "model.ckpt", {}).name == "model.ckpt.npz"


def test_overwrite_replaces_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"a": np.zeros(3)}, {"v": 1})
    save_checkpoint(path, {"b": np.ones(2)}, {"v": 2})
    arrays, header = load_checkpoint(path)
    assert header == {"v": 2} and list(arrays) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_written_file_has_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = save_checkpoint(tmp_path / "c", {})
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------------------------------
# what save refuses
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arrays, header, error, words", [
    ({"x": np.array([{}, 1], dtype=object)}, {}, DTypeError, ["'x'", "object"]),
    ({"x": np.array(["a", "b"])}, {}, DTypeError, ["'x'", "<U1"]),
    ({"x": np.zeros(2, dtype=[("a", "f4")])}, {}, DTypeError, ["'x'"]),
    ({"": np.zeros(1)}, {}, ConfigError, ["''"]),
    ({"a//b": np.zeros(1)}, {}, ConfigError, ["'a//b'"]),
    ({"../evil": np.zeros(1)}, {}, ConfigError, ["'../evil'", "'..'"]),
    ({"__convscope__": np.zeros(1)}, {}, ConfigError, ["reserved"]),
    ({3: np.zeros(1)}, {}, ArgumentTypeError, ["names must be str"]),
    ({}, {"w": np.zeros(2)}, ArgumentTypeError, ["header['w']", "ndarray", "arrays dict"]),
    ({}, {"a": {1: 2}}, ArgumentTypeError, ["header['a']", "key 1", "str"]),
    ({}, {"s": {1, 2}}, ArgumentTypeError, ["header['s']", "set"]),
    ({}, [1, 2], ArgumentTypeError, ["header must be a dict"]),
    ([np.zeros(1)], {}, ArgumentTypeError, ["arrays must be a dict"]),
])
def test_save_refuses(tmp_path, arrays, header, error, words):
    with pytest.raises(error) as info:
        save_checkpoint(tmp_path / "c", arrays, header)
    for word in words:
        assert word in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_missing_directory_and_directory_target(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "c.npz", {})
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        save_checkpoint(tmp_path / "d.npz", {})
    with pytest.raises(ArgumentTypeError, match="path"):
        save_checkpoint(None, {})


# ---------------------------------------------------------------------------------------
# what load refuses
# ---------------------------------------------------------------------------------------
def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def header_member(outer: dict) -> bytes:
    return npy_bytes(np.frombuffer(json.dumps(outer).encode("utf-8"), dtype=np.uint8))


def crafted(path: Path, arrays: dict[str, np.ndarray], manifest=None, fmt=CHECKPOINT_FORMAT,
            version=FORMAT_VERSION, header=None, extra=None, digest=True) -> Path:
    """A file laid out like ours, with any part replaced, and a correct digest unless told."""
    outer = {
        "format": fmt,
        "version": version,
        "arrays": manifest if manifest is not None else {
            k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()},
        "header": header if header is not None else {},
    }
    outer["sha256"] = npz_module._digest(outer, arrays) if digest else "0" * 64
    members = {"__convscope__.npy": header_member(outer)}
    members.update({f"{k}.npy": npy_bytes(v) for k, v in arrays.items()})
    members.update(extra or {})
    return write_zip(path, members)


def expect_rejected(path, *words):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


def test_crafted_helper_makes_a_loadable_file(tmp_path):
    # The corruption tests below change one thing in this file; it must load as it is.
    arrays = {"w": np.arange(4.0)}
    loaded, header = load_checkpoint(crafted(tmp_path / "ok.npz", arrays, header={"a": 1}))
    np.testing.assert_array_equal(loaded["w"], arrays["w"])
    assert header == {"a": 1}


def test_missing_file_is_checkpoint_error_and_file_not_found(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as info:
        load_checkpoint(tmp_path / "absent")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CheckpointError)
    assert "no such file" in str(info.value) and "absent.npz" in str(info.value)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_checkpoint(str(tmp_path / "absent.npz"))


def test_directory_is_rejected(tmp_path):
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(tmp_path / "d.npz")


def test_empty_file(tmp_path):
    path = tmp_path / "e.npz"
    path.write_bytes(b"")
    expect_rejected(path, "empty", "0 bytes")


def test_non_zip_garbage(tmp_path):
    path = tmp_path / "g.npz"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    expect_rejected(path, "not a zip archive")


def test_zip_magic_followed_by_garbage(tmp_path):
    path = tmp_path / "g.npz"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    expect_rejected(path, "truncated or corrupted")


def test_single_npy_file(tmp_path):
    path = tmp_path / "a.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    expect_rejected(path, "single .npy array")


class Boom:
    """Unpickling this creates a marker file: proof that something was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_file_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "p.npz"
    path.write_bytes(pickle.dumps({"w": np.zeros(2), "x": Boom(str(marker))}, protocol=4))
    expect_rejected(path, "pickle", "never unpickles")
    assert not marker.exists()


def test_object_array_is_refused_before_reading_it(tmp_path):
    marker = tmp_path / "unpickled"
    obj = np.empty(1, dtype=object)
    obj[0] = Boom(str(marker))
    path = crafted(tmp_path / "o.npz", {"w": np.zeros(2)},
                   manifest={"w": {"dtype": "<f8", "shape": [2]}, "x": {"dtype": "|O", "shape": [1]}},
                   extra={"x.npy": npy_bytes(obj)})
    expect_rejected(path, "object array", "'x'")
    assert not marker.exists()
    # numpy's own npz with an object array and no convscope header: refused as foreign
    np.savez(tmp_path / "plain.npz", x=obj)
    expect_rejected(tmp_path / "plain.npz", "no '__convscope__.npy' member")
    assert not marker.exists()


def test_plain_numpy_npz_without_header(tmp_path):
    np.savez(tmp_path / "n.npz", w=np.zeros(3))
    expect_rejected(tmp_path / "n.npz", "__convscope__.npy", "not written by convscope")


def test_pytorch_file_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "unpickled"
    torch.save({"w": torch.zeros(2), "x": Boom(str(marker))}, tmp_path / "t.npz")
    expect_rejected(tmp_path / "t.npz", "PyTorch", "never unpickles")
    assert not marker.exists()


def test_unexpected_member(tmp_path):
    path = save_checkpoint(tmp_path / "c", {"w": np.zeros(3)})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("evil.npy", npy_bytes(np.zeros(1)))
    expect_rejected(path, "unexpected ['evil.npy']")
    path2 = save_checkpoint(tmp_path / "d", {"w": np.zeros(3)})
    with zipfile.ZipFile(path2, "a") as zf:
        zf.writestr("readme.txt", b"hello")
    expect_rejected(path2, "unexpected ['readme.txt']")


def test_missing_member(tmp_path):
    arrays = {"w": np.zeros(3), "b": np.ones(2)}
    path = crafted(tmp_path / "m.npz", {"w": arrays["w"]},
                   manifest={k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()})
    expect_rejected(path, "missing ['b.npy']")


def test_duplicate_member(tmp_path):
    path = save_checkpoint(tmp_path / "c", {"w": np.zeros(3)})
    with pytest.warns(UserWarning):  # zipfile itself warns about the duplicate name
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("w.npy", npy_bytes(np.ones(3)))
    expect_rejected(path, "duplicate")


def test_compressed_members_are_refused(tmp_path):
    arrays = {"w": np.zeros(1000)}
    outer = {"format": CHECKPOINT_FORMAT, "version": 1,
             "arrays": {"w": {"dtype": "<f8", "shape": [1000]}}, "header": {}}
    outer["sha256"] = npz_module._digest(outer, arrays)
    path = write_zip(tmp_path / "z.npz", {"__convscope__.npy": header_member(outer),
                                          "w.npy": npy_bytes(arrays["w"])}, zipfile.ZIP_DEFLATED)
    expect_rejected(path, "compressed")


def test_header_promising_more_data_than_held_allocates_nothing(tmp_path):
    # Build a .npy header claiming 10**12 float64 entries followed by 16 bytes of data.
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    member = buf.getvalue() + np.zeros(2).tobytes()
    path = crafted(tmp_path / "h.npz", {}, manifest={"x": {"dtype": "<f8", "shape": [10**12]}},
                   extra={"x.npy": member})
    expect_rejected(path, "promises 8000000000000 bytes", "holds 16 bytes")


def test_array_that_disagrees_with_manifest(tmp_path):
    path = crafted(tmp_path / "s.npz", {"w": np.zeros(3)}, manifest={"w": {"dtype": "<f8", "shape": [4]}})
    expect_rejected(path, "'w'", "header lists")


def test_digest_mismatch_with_valid_zip_crcs(tmp_path):
    # Contents changed and the zip re-written with fresh CRCs: only the SHA-256 can tell.
    path = crafted(tmp_path / "d.npz", {"w": np.zeros(3)}, digest=False)
    expect_rejected(path, "SHA-256")


def test_header_changed_after_writing_is_detected(tmp_path):
    good = save_checkpoint(tmp_path / "c", {"w": np.zeros(3)}, {"epoch": 1})
    with np.load(good, allow_pickle=False) as npz:
        outer = json.loads(npz["__convscope__"].tobytes())
        w = npz["w"]
    outer["header"]["epoch"] = 2
    path = write_zip(tmp_path / "x.npz", {"__convscope__.npy": header_member(outer), "w.npy": npy_bytes(w)})
    expect_rejected(path, "SHA-256")


def test_newer_version_says_upgrade(tmp_path):
    path = crafted(tmp_path / "v.npz", {"w": np.zeros(1)}, version=FORMAT_VERSION + 1)
    message = expect_rejected(path, "newer convscope", f"version {FORMAT_VERSION + 1}", "Upgrade convscope")
    assert f"up to {FORMAT_VERSION}" in message


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, None, True])
def test_unknown_versions(tmp_path, version):
    path = crafted(tmp_path / "v.npz", {"w": np.zeros(1)}, version=version)
    expect_rejected(path, "unknown format version")


def test_foreign_format_name_and_wrong_format(tmp_path):
    expect_rejected(crafted(tmp_path / "f.npz", {}, fmt="keras-model"), "'keras-model'")
    path = crafted(tmp_path / "m.npz", {}, fmt="convscope-model", header={"spec": {}, "metadata": {}})
    expect_rejected(path, "'convscope-model' file", "convscope.load")
    arrays, header = load_checkpoint(path, format=None)  # any convscope format when asked
    assert header == {"spec": {}, "metadata": {}}


@pytest.mark.parametrize("payload", [b"\xff\xfe not utf8", b"[1, 2]", b"{not json"])
def test_header_that_is_not_a_json_object(tmp_path, payload):
    path = write_zip(tmp_path / "j.npz", {"__convscope__.npy": npy_bytes(np.frombuffer(payload, np.uint8))})
    expect_rejected(path, "header")


def test_header_of_the_wrong_dtype(tmp_path):
    path = write_zip(tmp_path / "j.npz", {"__convscope__.npy": npy_bytes(np.zeros(3))})
    expect_rejected(path, "1-D uint8")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -22, -1])
def test_truncated(tmp_path, keep):
    path = save_checkpoint(tmp_path / "c", sample_arrays(), HEADER)
    data = path.read_bytes()
    cut = int(len(data) * keep) if keep > 0 else len(data) + keep
    path.write_bytes(data[:cut])
    expect_rejected(path)


def test_every_single_bit_flip_is_caught_or_harmless(tmp_path):
    """Flip one bit at every byte of a small file: a clear error, or the same contents.

    (Some zip fields, e.g. a member's timestamp, do not affect the contents.)
    """
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array([7], dtype=np.int64)}
    good = save_checkpoint(tmp_path / "good", arrays, {"epoch": 5})
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.npz"
    caught = harmless = 0
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 1 << int(rng.integers(8))
        bad.write_bytes(flipped)
        try:
            loaded, header = load_checkpoint(bad)
        except CheckpointError:
            caught += 1
            continue
        assert header == {"epoch": 5}, f"byte {i}"
        assert_same_arrays(loaded, arrays)
        harmless += 1
    assert caught > 0.8 * len(data), (caught, harmless)


# ---------------------------------------------------------------------------------------
# atomic writing
# ---------------------------------------------------------------------------------------
def _dir_names(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_failure_midway_keeps_old_file_and_removes_temporary(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c", {"a": np.zeros(3), "b": np.zeros(3)}, {"v": 1})
    real = npz_module._write_member
    calls = []

    def failing(zf, name, array):
        calls.append(name)
        if len(calls) == 3:  # header and "a" written, then the disk "fills up"
            raise OSError(28, "No space left on device")
        real(zf, name, array)

    monkeypatch.setattr(npz_module, "_write_member", failing)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"a": np.ones(3), "b": np.ones(3)}, {"v": 2})
    assert calls == ["__convscope__", "a", "b"]
    assert _dir_names(tmp_path) == ["c.npz"]
    arrays, header = load_checkpoint(path)
    assert header == {"v": 1} and arrays["a"].sum() == 0


@pytest.mark.parametrize("target", ["fsync", "replace"])
def test_failing_fsync_or_rename_keeps_old_file(tmp_path, monkeypatch, target):
    path = save_checkpoint(tmp_path / "c", {"a": np.zeros(3)}, {"v": 1})

    def broken(*args, **kwargs):
        raise OSError(5, f"simulated {target} failure")

    monkeypatch.setattr(os, target, broken)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, {"a": np.ones(3)}, {"v": 2})
    monkeypatch.undo()
    assert _dir_names(tmp_path) == ["c.npz"]
    assert load_checkpoint(path)[1] == {"v": 1}


def test_interrupt_midway_removes_temporary_and_creates_nothing(tmp_path, monkeypatch):
    def interrupted(zf, name, array):
        raise KeyboardInterrupt

    monkeypatch.setattr(npz_module, "_write_member", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "new", {"a": np.zeros(1)})
    assert _dir_names(tmp_path) == []
