"""Fuzz the file boundary: model files, checkpoints and dataset files.

* A valid model file (convscope.save) and a valid checkpoint are mutated at random by
  hypothesis (truncation, bit flips, overwritten, inserted and deleted byte ranges, junk
  appended, a different file entirely). Loading must end in CheckpointError, or in a model
  whose architecture and every weight equal the saved ones: a damaged file never loads
  silently with other numbers.
* save/load/save_checkpoint/load_checkpoint get malformed paths, models, array dicts and
  headers (cyclic, deeply nested, non-JSON, huge broadcast arrays).
* IDX and CIFAR-10 files (raw and gzip) and PNG images are mutated the same way: a
  DataError or a valid result. DataLoader and the transforms get malformed arguments.
"""

from __future__ import annotations

import gzip
import io
import os
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope
from convscope import nn
from convscope.data import (
    Compose,
    DataLoader,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomShift,
    read_cifar_binary,
    read_cifar_tar,
    read_idx,
    read_image_folder,
)
from convscope.errors import CheckpointError, ConvscopeError, DataError
from convscope.io import load_checkpoint, save_checkpoint

from ._harness import (
    array_malformations,
    bool_malformations,
    float_malformations,
    int_malformations,
    judge,
    scalar_malformations,
)

# NaN, Inf and huge values are fed in on purpose; the warnings they raise are expected.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

CATEGORY = "files"


def _model():
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.BatchNorm2d(2), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 2 * 2, 3, rng=1))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Valid bytes of each file kind, written once."""
    root = tmp_path_factory.mktemp("fuzz-files")
    model = _model()
    model_bytes = convscope.save(model, root / "model.npz", {"note": "fuzz"}).read_bytes()
    ckpt = save_checkpoint(root / "ckpt.npz", {"a": np.arange(6.0).reshape(2, 3),
                                                "b/c": np.array([True, False])},
                           {"epoch": 3, "lr": 0.1}).read_bytes()
    images = np.random.default_rng(0).integers(0, 256, (4, 5, 5), dtype=np.uint8)
    idx = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape) + images.tobytes()
    labels = np.arange(3, dtype=np.uint8)
    cifar = b"".join(bytes([int(lab)]) + np.full(3072, lab, np.uint8).tobytes() for lab in labels)
    png = io.BytesIO()
    from PIL import Image
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (6, 7, 3), dtype=np.uint8)).save(png, "PNG")
    return {
        "root": root, "model": model, "model_bytes": model_bytes, "ckpt_bytes": ckpt,
        "idx": idx, "idx_gz": gzip.compress(idx, mtime=0), "idx_array": images,
        "cifar": cifar, "cifar_gz": gzip.compress(cifar, mtime=0), "png": png.getvalue(),
    }


# ----------------------------------------------------------------------------------------
# Byte mutations
# ----------------------------------------------------------------------------------------
MUTATIONS = ["truncate", "flip", "overwrite", "insert", "delete", "append", "zero_range",
             "empty", "swap_halves"]


@st.composite
def mutated(draw, data: bytes) -> tuple[str, bytes]:
    """A damaged copy of ``data`` and a description of the damage."""
    kind = draw(st.sampled_from(MUTATIONS))
    n = len(data)
    b = bytearray(data)
    if kind == "truncate":
        k = draw(st.integers(0, n - 1))
        return f"truncated to {k} of {n} bytes", bytes(b[:k])
    if kind == "flip":
        positions = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8))
        bits = draw(st.lists(st.integers(0, 7), min_size=len(positions), max_size=len(positions)))
        for p, bit in zip(positions, bits):
            b[p] ^= 1 << bit
        return f"bits flipped at {positions}", bytes(b)
    if kind == "overwrite":
        start = draw(st.integers(0, n - 1))
        junk = draw(st.binary(min_size=1, max_size=64))
        b[start:start + len(junk)] = junk
        return f"{len(junk)} bytes overwritten at {start}", bytes(b[:max(n, start + len(junk))])
    if kind == "insert":
        start = draw(st.integers(0, n))
        junk = draw(st.binary(min_size=1, max_size=64))
        return f"{len(junk)} bytes inserted at {start}", bytes(b[:start] + junk + b[start:])
    if kind == "delete":
        start = draw(st.integers(0, n - 1))
        length = draw(st.integers(1, 64))
        return f"{length} bytes deleted at {start}", bytes(b[:start] + b[start + length:])
    if kind == "append":
        junk = draw(st.binary(min_size=1, max_size=256))
        return f"{len(junk)} bytes appended", bytes(b) + junk
    if kind == "zero_range":
        start = draw(st.integers(0, n - 1))
        length = draw(st.integers(1, 512))
        b[start:start + length] = bytes(min(length, n - start))
        return f"{length} bytes zeroed at {start}", bytes(b)
    if kind == "empty":
        return "empty file", b""
    return "halves swapped", bytes(b[n // 2:] + b[: n // 2])


def _write(root: Path, name: str, data: bytes) -> Path:
    path = root / name
    path.write_bytes(data)
    return path


def _same_model(a, b, context: str) -> None:
    assert repr(a) == repr(b), f"{context}: architecture changed: {b!r}"
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), context
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k], equal_nan=True), (
            f"{context}: {k} loaded with other values"
        )


@settings(max_examples=120)
@given(data=st.data())
def test_damaged_model_files(files, data):
    label, damaged = data.draw(mutated(files["model_bytes"]))
    path = _write(files["root"], "damaged-model.npz", damaged)
    out = judge(lambda: convscope.load(path), category=CATEGORY, errors=(CheckpointError,),
                context=f"load(model file {label})")
    if out.ok:
        _same_model(files["model"], out.value, f"load(model file {label})")


@settings(max_examples=80)
@given(data=st.data())
def test_damaged_checkpoints(files, data):
    label, damaged = data.draw(mutated(files["ckpt_bytes"]))
    path = _write(files["root"], "damaged-ckpt.npz", damaged)
    out = judge(lambda: load_checkpoint(path), category=CATEGORY, errors=(CheckpointError,),
                context=f"load_checkpoint({label})")
    if out.ok:
        arrays, header = out.value
        assert header == {"epoch": 3, "lr": 0.1}, label
        assert np.array_equal(arrays["a"], np.arange(6.0).reshape(2, 3)), label
        assert np.array_equal(arrays["b/c"], [True, False]), label


def test_foreign_files(files, tmp_path):
    """Files that are not convscope models at all."""
    import pickle
    import zipfile
    cases = {
        "pickle": pickle.dumps({"weight": np.zeros(3)}),
        "plain npz": _npz_bytes(weight=np.zeros(3)),
        "npz with object array": _npz_bytes(weight=np.array([{"a": 1}], dtype=object)),
        "text": b"hello, world\n" * 10,
        "png": files["png"],
        "gzip": files["idx_gz"],
        "zip bomb member": _zip_bytes({"__header__.npy": b"\0" * 10**6}),
        "zip with odd member": _zip_bytes({"../../evil.npy": b"x"}),
        "checkpoint, not a model": files["ckpt_bytes"],
    }
    for label, blob in cases.items():
        path = _write(tmp_path, "foreign.npz", blob)
        judge(lambda: convscope.load(path), category=CATEGORY, errors=(CheckpointError,),
              expect="error", context=f"load({label})")
    _ = zipfile  # (imported for the helper below)


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------
# Arguments of save / load / save_checkpoint / load_checkpoint
# ----------------------------------------------------------------------------------------
def path_malformations(root: Path) -> list[tuple[str, object]]:
    (root / "a-directory.npz").mkdir(exist_ok=True)
    cases = [
        ("None", None), ("int", 3), ("float", 2.5), ("bytes", b"model.npz"), ("empty", ""),
        ("list", ["model.npz"]), ("directory", root / "a-directory.npz"),
        ("missing parent", root / "no" / "such" / "dir" / "m.npz"),
        ("NUL byte", str(root / "bad\0name.npz")), ("very long name", str(root / ("x" * 300))),
        ("file as parent", root / "afile" / "m.npz"),
    ]
    return cases + special_files(root)


def special_files(root: Path) -> list[tuple[str, Path]]:
    """Files that are not regular files, made in ``root`` (never the system's own): reading
    a FIFO would block, replacing one would destroy it."""
    if not hasattr(os, "mkfifo") or not hasattr(socket, "AF_UNIX"):
        return []
    fifo, sock, link, loop = (root / n for n in ("a-fifo.npz", "a-socket.npz", "link-to-fifo.npz", "loop.npz"))
    if not fifo.exists():
        os.mkfifo(fifo)
        here = os.getcwd()
        os.chdir(root)  # a socket's path must stay under about 100 characters
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.bind(sock.name)  # the socket file outlives the socket
        finally:
            os.chdir(here)
        link.symlink_to(fifo)
        loop.symlink_to(root / "loop-back.npz")
        (root / "loop-back.npz").symlink_to(loop)
    return [("FIFO", fifo), ("unix socket", sock), ("link to a FIFO", link), ("loop of links", loop)]


def assert_special_files_intact(root: Path) -> None:
    for label, path in special_files(root):
        mode = os.lstat(path).st_mode
        kept = {"FIFO": stat.S_ISFIFO, "unix socket": stat.S_ISSOCK}.get(label, stat.S_ISLNK)(mode)
        assert kept, f"{label} {path} was replaced"


def test_save_load_arguments(files, tmp_path):
    (tmp_path / "afile").write_bytes(b"x")
    model = _model()
    names = ("path", "directory", "file", "name")
    for label, path in path_malformations(tmp_path):
        judge(lambda: convscope.save(model, path), names, category=CATEGORY, expect="error",
              context=f"save(path = {label})")
        judge(lambda: convscope.load(path), names, category=CATEGORY, expect="error",
              context=f"load(path = {label})")
        judge(lambda: save_checkpoint(path, {"a": np.zeros(2)}), names, category=CATEGORY,
              expect="error", context=f"save_checkpoint(path = {label})")
        judge(lambda: load_checkpoint(path), names, category=CATEGORY, expect="error",
              context=f"load_checkpoint(path = {label})")
    assert_special_files_intact(tmp_path)

    class Custom(nn.Module):
        def forward(self, x):
            return x

    for label, value in [("None", None), ("function", np.tanh), ("class", nn.Linear),
                         ("unregistered module", nn.Sequential(Custom())), ("state dict", model.state_dict())]:
        judge(lambda: convscope.save(value, tmp_path / "m.npz"), ("model", "Custom", "config"),
              category=CATEGORY, expect="error", context=f"save(model = {label})")
    cyclic: dict = {}
    cyclic["self"] = cyclic
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    metadata = [
        ("list", [1, 2]), ("string", "meta"), ("object value", {"a": object()}),
        ("array value", {"a": np.zeros(3)}), ("int key", {1: "a"}), ("set value", {"a": {1}}),
        ("bytes value", {"a": b"x"}), ("cyclic", cyclic), ("deeply nested", {"a": deep}),
        ("complex", {"a": 1j}), ("numpy complex", {"a": np.complex64(1)}),
        ("huge int", {"a": 10**400}), ("giant int", {"a": 10**5000}), ("NaN", {"a": float("nan")}),
    ]
    for label, value in metadata:
        path = tmp_path / "meta.npz"
        out = judge(lambda: convscope.save(model, path, value), ("metadata", "header"),
                    category=CATEGORY, context=f"save(metadata = {label})")
        if out.ok:
            loaded, meta = convscope.load(path, return_metadata=True)
            _same_model(model, loaded, f"save(metadata = {label})")
    judge(lambda: convscope.load(convscope.save(model, tmp_path / "m2.npz"), return_metadata="yes"),
          ("return_metadata",), category=CATEGORY, context="load(return_metadata = 'yes')")


def test_save_checkpoint_arrays(tmp_path):
    path = tmp_path / "c.npz"
    good = np.arange(4.0)
    names = [("empty", ""), ("dot", "."), ("dotdot", "a/../b"), ("leading slash", "/a"),
             ("backslash", "a\\b"), ("NUL", "a\0b"), ("newline", "a\nb"), ("header key", "__header__"),
             ("int", 3), ("None", None), ("tuple", ("a",)), ("very long", "a" * 10_000),
             ("unicode", "\u00e9t\u00e9"), ("double slash", "a//b")]
    for label, name in names:
        out = judge(lambda: save_checkpoint(path, {name: good}), ("name", "names"), category=CATEGORY,
                    context=f"save_checkpoint(array name {label})")
        if out.ok:
            arrays, _ = load_checkpoint(path)
            assert list(arrays) == [name] and np.array_equal(arrays[name], good), label
    for label, value, _kind in array_malformations(good, None):
        out = judge(lambda: save_checkpoint(path, {"a": value}), ("a", "array", "arrays"),
                    category=CATEGORY, context=f"save_checkpoint(array {label})")
        if out.ok:
            arrays, _ = load_checkpoint(path)
            np.testing.assert_array_equal(arrays["a"], np.asarray(value), err_msg=label)
    for label, value in [("None", None), ("list", [good]), ("array", good), ("string", "arrays")]:
        judge(lambda: save_checkpoint(path, value), ("arrays",), category=CATEGORY, expect="error",
              context=f"save_checkpoint(arrays = {label})")
    for label, value in [("None", None), ("int", 3), ("foreign", "pytorch"), ("empty", "")]:
        judge(lambda: save_checkpoint(path, {"a": good}, format=value), ("format",),
              category=CATEGORY, expect="error", context=f"save_checkpoint(format = {label})")
        judge(lambda: load_checkpoint(path, format=value), ("format",), category=CATEGORY,
              context=f"load_checkpoint(format = {label})")


# ----------------------------------------------------------------------------------------
# Dataset files
# ----------------------------------------------------------------------------------------
@settings(max_examples=80)
@given(data=st.data(), which=st.sampled_from(["idx", "idx_gz"]))
def test_damaged_idx(files, data, which):
    label, damaged = data.draw(mutated(files[which]))
    path = _write(files["root"], "images-idx3-ubyte" + (".gz" if which == "idx_gz" else ""), damaged)
    out = judge(lambda: read_idx(path), category=CATEGORY, errors=(DataError,),
                context=f"read_idx({which} {label})")
    if out.ok:
        assert isinstance(out.value, np.ndarray) and out.value.size * out.value.itemsize <= 2**30


def test_idx_headers(tmp_path):
    """Headers that promise more than the file holds, or absurd sizes: refused before reading."""
    cases = {
        "huge dims": bytes([0, 0, 8, 3]) + (2**31 - 1).to_bytes(4, "big") * 3,
        "zero dims": bytes([0, 0, 8, 0]),
        "255 dims": bytes([0, 0, 8, 255]) + (1).to_bytes(4, "big") * 255,
        "unknown type": bytes([0, 0, 0x42, 1]) + (1).to_bytes(4, "big") + b"\0",
        "promises more": bytes([0, 0, 8, 1]) + (1000).to_bytes(4, "big") + b"\0" * 10,
        "bad magic": b"\x1f\x00\x08\x01" + (1).to_bytes(4, "big") + b"\0",
        "header only": bytes([0, 0, 8, 2]) + (3).to_bytes(4, "big"),
    }
    for label, blob in cases.items():
        for compress in (False, True):
            name = "x-idx" + (".gz" if compress else "")
            path = _write(tmp_path, name, gzip.compress(blob, mtime=0) if compress else blob)
            judge(lambda: read_idx(path), category=CATEGORY, errors=(DataError,), expect="error",
                  context=f"read_idx({label}, gzip={compress})")
    path = _write(tmp_path, "ok-idx", bytes([0, 0, 8, 1]) + (2).to_bytes(4, "big") + b"\1\2")
    for label, value in int_malformations(1):
        judge(lambda: read_idx(path, max_bytes=value), ("max_bytes",), category=CATEGORY,
              context=f"read_idx(max_bytes = {label})")


def test_reader_arguments(files, tmp_path):
    """Paths and limits of every dataset reader."""
    (tmp_path / "afile").write_bytes(b"x")
    cifar = _write(tmp_path, "data_batch_1.bin", files["cifar"])
    readers = [("read_idx", read_idx), ("read_cifar_binary", read_cifar_binary),
               ("read_cifar_tar", read_cifar_tar), ("read_image_folder", read_image_folder)]
    for name, reader in readers:
        call = (lambda p: reader(p, ["data_batch_1.bin"])) if name == "read_cifar_tar" else reader
        for label, path in path_malformations(tmp_path) + [("a file", tmp_path / "afile")]:
            judge(lambda: call(path), ("path", "root", "file", "folder", "directory", "archive"),
                  category=CATEGORY, expect="error", context=f"{name}(path = {label})")
    assert_special_files_intact(tmp_path)
    for arg in ("max_records", "num_classes"):
        for label, value in int_malformations(1):
            judge(lambda: read_cifar_binary(cifar, **{arg: value}), (arg, "labels"), category=CATEGORY,
                  context=f"read_cifar_binary({arg} = {label})")
    folder = tmp_path / "folder"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "a.png").write_bytes(files["png"])
    for arg, cases in (("max_pixels", int_malformations(1)), ("image_size", int_malformations(2))):
        for label, value in cases:
            judge(lambda: read_image_folder(folder, **{arg: value}), (arg,), category=CATEGORY,
                  context=f"read_image_folder({arg} = {label})")


@settings(max_examples=60)
@given(data=st.data(), which=st.sampled_from(["cifar", "cifar_gz"]))
def test_damaged_cifar(files, data, which):
    label, damaged = data.draw(mutated(files[which]))
    path = _write(files["root"], "data_batch_1.bin" + (".gz" if which == "cifar_gz" else ""), damaged)
    out = judge(lambda: read_cifar_binary(path), category=CATEGORY, errors=(DataError,),
                context=f"read_cifar_binary({which} {label})")
    if out.ok:
        images, labels = out.value
        assert images.shape[1:] == (3, 32, 32) and labels.min() >= 0 and labels.max() <= 9


@settings(max_examples=40)
@given(data=st.data())
def test_damaged_png_in_image_folder(files, data, tmp_path_factory):
    label, damaged = data.draw(mutated(files["png"]))
    root = tmp_path_factory.mktemp("folder")
    (root / "cat").mkdir()
    (root / "cat" / "a.png").write_bytes(files["png"])
    (root / "cat" / "b.png").write_bytes(damaged)
    out = judge(lambda: read_image_folder(root), category=CATEGORY, errors=(DataError,),
                context=f"read_image_folder(png {label})")
    if out.ok:
        pixels, labels, classes = out.value
        assert pixels.dtype == np.uint8 and pixels.shape[0] == 2 and classes == ("cat",)


# ----------------------------------------------------------------------------------------
# DataLoader and transforms
# ----------------------------------------------------------------------------------------
def test_dataloader_arguments():
    x = np.random.default_rng(0).standard_normal((5, 1, 4, 4)).astype(np.float32)
    y = np.arange(5)
    DataLoader((x, y), batch_size=2)
    datas = [("None", None), ("array", x), ("triple", (x, y, y)), ("length mismatch", (x, y[:3])),
             ("0-d", (np.float32(1), 1)), ("strings", ("x", "y")), ("dict", {"x": x}),
             ("ragged", ([[1.0], [1.0, 2.0]], [0, 1]))]
    for label, value in datas:
        judge(lambda: list(DataLoader(value, batch_size=2)), ("data", "x", "y"), category=CATEGORY,
              context=f"DataLoader(data = {label})")
    args = {"batch_size": scalar_malformations(), "shuffle": bool_malformations(),
            "drop_last": bool_malformations(),
            "seed": [v for v in scalar_malformations() if v[0] != "None"],
            "rng": [("int", 3), ("string", "rng"), ("legacy", np.random.RandomState(0))],
            "transform": [("int", 3), ("string", "flip"), ("returns None", lambda b, rng: None),
                          ("raises", lambda b, rng: 1 / 0)]}
    for arg, cases in args.items():
        for label, value in cases:
            kw = {"batch_size": 2, arg: value}
            raises = label == "raises"  # the user's own error passes through unchanged
            judge(lambda: [b[0].shape for b in DataLoader((x, y), **kw)],
                  () if raises else (arg, "transform", "seed"), category=CATEGORY,
                  errors=(ZeroDivisionError,) if raises else (ConvscopeError,),
                  context=f"DataLoader({arg} = {label})")


def test_transform_arguments():
    x = np.random.default_rng(0).standard_normal((3, 2, 6, 6)).astype(np.float32)
    ctors = [
        ("Normalize", lambda v: Normalize(v, 1.0), float_malformations() + [("string", "abc"),
                                                                              ("empty list", [])]),
        ("Normalize std", lambda v: Normalize(0.0, v), float_malformations() + [("zero", 0.0)]),
        ("RandomCrop size", lambda v: RandomCrop(v, padding=1, rng=0), int_malformations(2)),
        ("RandomCrop padding", lambda v: RandomCrop(4, padding=v, rng=0), int_malformations(1)),
        ("RandomShift", lambda v: RandomShift(v, rng=0), int_malformations(1)),
        ("RandomHorizontalFlip", lambda v: RandomHorizontalFlip(v, rng=0), float_malformations()),
        ("Compose", lambda v: Compose(v), [("None", None), ("int", 3), ("list of ints", [1, 2]),
                                             ("string", "flip")]),
    ]
    for name, make, cases in ctors:
        for label, value in cases:
            out = judge(lambda: make(value), (name.split()[-1].lower(), "mean", "std", "size",
                                              "padding", "max_shift", "p", "transforms",
                                              "transform"),
                        category=CATEGORY, context=f"{name}({label})")
            if out.ok:
                judge(lambda: out.value(x, np.random.default_rng(0)), category=CATEGORY,
                      context=f"{name}({label}) applied")
    for label, value, _kind in array_malformations(x, 1):
        for t in (Normalize([0.0, 0.0], [1.0, 1.0]), RandomCrop(6, padding=1, rng=0),
                  RandomHorizontalFlip(0.5, rng=0)):
            judge(lambda: t(value, np.random.default_rng(0)), ("x", "batch", "images", "channels",
                                                               "input"),
                  category=CATEGORY, context=f"{type(t).__name__}(x = {label})")


def test_environment_untouched():
    """The fuzz files never change the BLAS environment of the test process."""
    assert "OPENBLAS_CORETYPE" not in os.environ or os.environ["OPENBLAS_CORETYPE"]
