"""Hostile model files with a valid digest (anyone can recompute SHA-256): every field is
checked against a schema before use, member counts are capped, nesting is measured before
parsing. Each case is a convscope error naming what is wrong, never a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import convscope
from convscope import nn
from convscope.cli import main
from convscope.errors import ArgumentTypeError, CheckpointError, ConfigError
from convscope.io import MODEL_FORMAT, load_checkpoint, save_checkpoint
from convscope.io import npz as npz_module
from convscope.models import build_model


# ----------------------------------------------------------------------------------------
# Member counts and duplicates
# ----------------------------------------------------------------------------------------
def zip_of_copies(path: Path, count: int, *, announced: int | None = None,
                  name: bytes = b"__convscope__.npy", data: bytes = b"x") -> Path:
    """A zip whose directory lists ``count`` entries, all the same member (built in ms).

    ``announced``: the entry count the end record states (default: the true one; above
    65,535 a zip64 end record carries it, as zip tools write).
    """
    crc = zlib.crc32(data)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data),
                        len(name), 0) + name + data
    entry = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(data), len(data),
                        len(name), 0, 0, 0, 0, 0, 0) + name
    directory = entry * count
    stated = count if announced is None else announced
    tail = b""
    if stated > 0xFFFF:
        zip64_at = len(local) + len(directory)
        tail += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, stated, stated,
                            len(directory), len(local))
        tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_at, 1)
        tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, stated, stated, len(directory), len(local), 0)
    path.write_bytes(local + directory + tail)
    return path


def test_a_zip_of_100000_copies_of_one_member_is_refused_fast(tmp_path):
    path = zip_of_copies(tmp_path / "copies.npz", 100_000)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=f"holds 100000 members; a convscope file holds at most "
                                              f"{npz_module.MAX_MEMBERS}"):
        convscope.load(path)
    assert time.perf_counter() - start < 3.0


def test_an_end_record_that_understates_the_members_is_caught_after_parsing(tmp_path):
    path = zip_of_copies(tmp_path / "lying.npz", npz_module.MAX_MEMBERS + 1, announced=1)
    with pytest.raises(CheckpointError, match=f"holds {npz_module.MAX_MEMBERS + 1} members"):
        load_checkpoint(path)


def test_duplicate_members_under_the_cap_are_named(tmp_path):
    path = zip_of_copies(tmp_path / "dups.npz", 5_000)
    with pytest.raises(CheckpointError, match=r"duplicate members \['__convscope__.npy'\]"):
        load_checkpoint(path)


def test_save_refuses_more_arrays_than_load_reads(tmp_path):
    arrays = {f"a{i}": np.zeros(1) for i in range(npz_module.MAX_MEMBERS)}
    with pytest.raises(ConfigError, match=f"at most {npz_module.MAX_MEMBERS - 1}"):
        save_checkpoint(tmp_path / "many", arrays)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------
# Nesting depth
# ----------------------------------------------------------------------------------------
def nested_spec(depth: int) -> dict:
    spec: dict = {"type": "ReLU", "config": {}}
    for _ in range(depth):
        spec = {"type": "Sequential", "config": {}, "children": {"0": spec}}
    return spec


def model_file_with_digest(path: Path, header: dict, arrays: dict | None = None) -> Path:
    """A model file written byte for byte as save_checkpoint does, digest included, for a
    header deeper than save itself accepts."""
    arrays = arrays or {}
    outer = {"format": MODEL_FORMAT, "version": 1,
             "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()},
             "header": header}
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20_000))
    try:
        outer["sha256"] = npz_module._digest(outer, arrays)
        text = json.dumps(outer).encode("utf-8")
    finally:
        sys.setrecursionlimit(old)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(text, dtype=np.uint8))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__convscope__.npy", buf.getvalue())
        for k, v in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, v)
            zf.writestr(f"{k}.npy", member.getvalue())
    return path


@pytest.mark.parametrize("depth", [60, 400, 490])
def test_a_spec_nested_deeper_than_save_writes_is_refused_on_load(tmp_path, depth):
    model = nested_spec(depth)
    path = model_file_with_digest(tmp_path / "deep.npz", {"spec": model, "metadata": {}})
    with pytest.raises(CheckpointError, match="nested .* levels deep; at most 102"):
        convscope.load(path)
    with pytest.raises(ConfigError, match="nested more than 100 levels deep"):
        nn.from_spec(model)


def nested_model(depth: int) -> nn.Module:
    model: nn.Module = nn.ReLU()
    for _ in range(depth):
        model = nn.Sequential(model)
    return model


def test_save_and_load_agree_on_the_deepest_spec(tmp_path):
    deepest = nested_spec(49)  # 100 levels of JSON
    path = convscope.save(nn.from_spec(deepest), tmp_path / "ok")
    assert nn.to_spec(convscope.load(path)) == deepest
    with pytest.raises(ArgumentTypeError, match="nested more than 100 levels"):
        convscope.save(nested_model(50), tmp_path / "no")
    with pytest.raises(ConfigError, match="nested more than 100 levels"):
        nn.from_spec(nn.to_spec(nested_model(50)))


def test_a_header_nested_5000_deep_is_refused_before_parsing(tmp_path):
    text = ('{"format": "convscope-model", "version": 1, "arrays": {}, "sha256": "' + "0" * 64
            + '", "header": {"x": ' + "[" * 5000 + "]" * 5000 + "}}").encode()
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(text, dtype=np.uint8))
    path = tmp_path / "deep.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__convscope__.npy", buf.getvalue())
    with pytest.raises(CheckpointError, match="nested 5002 levels deep"):
        load_checkpoint(path, format=None)


def test_a_spec_file_nested_5000_deep_for_arch_is_one_line(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text('{"type": "Sequential", "children": {"0": ' * 2500 + "{}" + "}}" * 2500)
    with pytest.raises(ConfigError, match="could not read the architecture spec.*nested 5001 levels"):
        build_model(path)
    assert main(["summary", "--arch", str(path), "--input-shape", "1,8,8"]) == 2
    err = capsys.readouterr().err
    assert "nested 5001 levels deep" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------------
# Field types
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("manifest, words", [
    ({"w": {"dtype": 5, "shape": [1]}}, "['dtype'] must be a str"),
    ({"w": {"dtype": "<f8", "shape": "abc"}}, "['shape'] must be a list"),
    ({"w": {"dtype": "<f8", "shape": [-1]}}, "must be an int >= 0"),
    ({"w": {"dtype": "<f8", "shape": [1], "extra": 1}}, "unexpected entry 'extra'"),
    ({"../w": {"dtype": "<f8", "shape": [1]}}, "array name '../w'"),
])
def test_the_array_manifest_is_checked(tmp_path, manifest, words):
    outer = {"format": "convscope-checkpoint", "version": 1, "arrays": manifest, "header": {},
             "sha256": "0" * 64}
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(json.dumps(outer).encode(), dtype=np.uint8))
    member = io.BytesIO()
    np.lib.format.write_array(member, np.zeros(1))
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__convscope__.npy", buf.getvalue())
        zf.writestr(f"{next(iter(manifest))}.npy", member.getvalue())
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert words in str(info.value)


TINY = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0))

BAD_METADATA = [
    ({"image_shape": "abc"}, "image_shape"),
    ({"image_shape": [1, 2]}, "image_shape"),
    ({"image_shape": [1, -2, 2]}, "image_shape"),
    ({"image_shape": [1, 2.5, 2]}, "image_shape"),
    ({"classes": 5}, "classes"),
    ({"classes": [1, 2]}, "classes"),
    ({"normalize": "x"}, "normalize"),
    ({"normalize": {"mean": "a", "std": [1.0]}}, "normalize"),
    ({"normalize": {"mean": [0.0], "std": [0.0]}}, "normalize"),
    ({"normalize": {"mean": [0.0]}}, "normalize"),
    ({"dataset": 3}, "dataset"),
]


@pytest.mark.parametrize("metadata, key", BAD_METADATA)
def test_model_metadata_of_the_wrong_type_is_refused_by_load_and_save(tmp_path, metadata, key):
    path = save_checkpoint(tmp_path / "m.npz", TINY.state_dict(),
                           {"spec": nn.to_spec(TINY), "metadata": metadata}, format=MODEL_FORMAT)
    with pytest.raises(CheckpointError, match=f"metadata'\\]\\['{key}'\\]"):
        convscope.load(path)
    with pytest.raises(ArgumentTypeError, match=f"\\['{key}'\\]"):
        convscope.save(TINY, tmp_path / "n.npz", metadata)


def test_other_metadata_stays_free_json(tmp_path):
    metadata = {"image_shape": [1, 2, 2], "classes": ["a", "b"], "normalize": None, "note": {"x": [1]}}
    path = convscope.save(TINY, tmp_path / "m.npz", metadata)
    assert convscope.load(path, return_metadata=True)[1] == metadata


def _predict(tmp_path, metadata) -> tuple[int, str]:
    path = save_checkpoint(tmp_path / "m.npz", TINY.state_dict(),
                           {"spec": nn.to_spec(TINY), "metadata": metadata}, format=MODEL_FORMAT)
    np.save(tmp_path / "x.npy", np.zeros((2, 2), dtype=np.float32))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["predict", str(path), str(tmp_path / "x.npy")])
    return status, err.getvalue()


@pytest.mark.parametrize("metadata, key", BAD_METADATA[:1] + BAD_METADATA[4:5] + BAD_METADATA[6:7])
def test_predict_with_hostile_metadata_is_one_line(tmp_path, metadata, key):
    status, err = _predict(tmp_path, {"image_shape": [1, 2, 2], **metadata})
    assert status == 2 and key in err and "Traceback" not in err


def test_predict_refuses_class_names_that_do_not_match_the_scores(tmp_path):
    status, err = _predict(tmp_path, {"image_shape": [1, 2, 2], "classes": ["only one"]})
    assert status == 2 and "names 1 classes" in err and "2 scores" in err
