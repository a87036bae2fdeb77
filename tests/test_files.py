"""convscope.files: the one atomic writer, the one JSON encoder, the one read-side check.

Non-regular targets are made in the test's own temporary folder (a FIFO with os.mkfifo, a
unix socket, a directory); the system's device nodes are never touched. Every read of a
FIFO runs under a guard that unblocks and fails the test instead of hanging.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import convscope
from convscope import files, nn
from convscope.errors import ArgumentTypeError, CheckpointError, ConfigError, DataError
from convscope.files import (
    atomic_write,
    check_readable,
    to_jsonable,
    write_json,
    write_text,
)
from convscope.io import load_checkpoint, save_checkpoint

posix_only = pytest.mark.skipif(os.name != "posix" or not hasattr(os, "mkfifo"), reason="FIFOs and sockets (POSIX)")


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _model():
    return nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 2 * 2, 3, rng=1))


def _make(kind: str, path: Path) -> Path:
    """A FIFO, unix socket or directory at ``path`` (the socket is bound relative to its folder,
    since socket paths are limited to about 100 characters)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        here = os.getcwd()
        os.chdir(path.parent)
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path.name)
        finally:
            os.chdir(here)
        _SOCKETS.append(sock)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


_SOCKETS: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets():
    yield
    while _SOCKETS:
        _SOCKETS.pop().close()


def _is(kind: str, path: Path) -> bool:
    mode = os.lstat(path).st_mode
    return {"fifo": stat.S_ISFIFO, "socket": stat.S_ISSOCK, "directory": stat.S_ISDIR}[kind](mode)


def _no_hang(call, fifo: Path | None = None, seconds: float = 10.0):
    """Run ``call()``; if it is still running after ``seconds`` (blocked opening ``fifo``),
    release it by opening the FIFO's other end, and fail."""
    result: dict = {}

    def run():
        try:
            result["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:
            for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
                try:
                    os.close(os.open(fifo, flags))
                except OSError:
                    pass
        thread.join(5)
        pytest.fail(f"{call} blocked for {seconds} s (it opened the FIFO)")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temp_name(target: str, pid: int, host: str | None = None, suffix: str = ".tmp") -> str:
    return f".{target}.convscope-{host or files._HOST}-{pid}-0123abcd{suffix}"


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------
# atomic_write
# ---------------------------------------------------------------------------------------
def test_writes_binary_and_text_and_returns_the_path(tmp_path):
    assert atomic_write(tmp_path / "a.bin", lambda f: f.write(b"\x00\x01")) == tmp_path / "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    write_text(tmp_path / "t.txt", "é\nx\n")
    assert (tmp_path / "t.txt").read_bytes() == "é\nx\n".encode()
    assert _names(tmp_path) == ["a.bin", "t.txt"]


def test_write_json_converts_numpy_and_tuples(tmp_path):
    path = write_json(tmp_path / "m.json", {"acc": np.float32(0.5), "shape": (1, 8, 8), "w": np.arange(2)})
    text = path.read_text()
    assert text.endswith("}\n") and "\n  " in text  # indent 2 by default, final newline
    assert json.loads(text) == {"acc": 0.5, "shape": [1, 8, 8], "w": [0, 1]}
    with pytest.raises(ArgumentTypeError, match=r"value\['s'\] is a set"):
        write_json(tmp_path / "bad.json", {"s": {1}})
    assert not (tmp_path / "bad.json").exists()


@posix_only
@pytest.mark.parametrize("kind", ["fifo", "socket", "directory"])
def test_non_regular_target_is_refused_before_anything_is_written(tmp_path, kind):
    target = _make(kind, tmp_path / "target.npz")
    calls = []
    with pytest.raises(ConfigError, match="not a regular file") as info:
        atomic_write(target, calls.append)
    assert kind.replace("fifo", "FIFO") in str(info.value) and "nothing was written" in str(info.value)
    assert calls == []  # never opened a temporary file, never called write
    assert _is(kind, target) and _names(tmp_path) == ["target.npz"]


@posix_only
@pytest.mark.parametrize("kind", ["fifo", "socket", "directory"])
def test_every_writer_refuses_a_non_regular_target_and_leaves_it(tmp_path, kind):
    model = _model()
    history = convscope.train.History([{"epoch": 1, "train_loss": 0.5}])
    writers = {
        "save": lambda p: convscope.save(model, p),
        "save_checkpoint": lambda p: save_checkpoint(p, {"a": np.zeros(2)}),
        "History.save": history.save,
        "write_json": lambda p: write_json(p, {"a": 1}),
    }
    try:
        import onnx  # noqa: F401

        from convscope.export import to_onnx
        writers["to_onnx"] = lambda p: to_onnx(model, p, (1, 4, 4))
    except ImportError:
        pass
    try:
        import matplotlib  # noqa: F401

        from convscope.viz import plot_curves
        writers["plot_curves"] = lambda p: plot_curves(history, p)
    except ImportError:
        pass
    for name, write in writers.items():
        target = _make(kind, tmp_path / f"{name}.npz")
        with pytest.raises(ConfigError, match="not a regular file|is a directory"):
            _no_hang(lambda: write(target), target if kind == "fifo" else None)
        assert _is(kind, target), name
    assert not [n for n in _names(tmp_path) if "convscope-" in n]


@posix_only
def test_link_to_a_fifo_is_refused_and_both_stay(tmp_path):
    fifo = _make("fifo", tmp_path / "pipe")
    (tmp_path / "link.npz").symlink_to(fifo)
    with pytest.raises(ConfigError, match="a link to .*FIFO"):
        save_checkpoint(tmp_path / "link.npz", {"a": np.zeros(1)})
    assert (tmp_path / "link.npz").is_symlink() and _is("fifo", fifo)


def test_symlinked_model_path_is_written_through(tmp_path):
    real_dir, link_dir = tmp_path / "store", tmp_path / "runs"
    real_dir.mkdir()
    link_dir.mkdir()
    first = _model()
    convscope.save(first, real_dir / "model.npz")
    link = link_dir / "model.npz"
    link.symlink_to(real_dir / "model.npz")
    second = nn.Sequential(nn.Linear(3, 2, rng=5))
    assert convscope.save(second, link) == link
    assert link.is_symlink() and os.readlink(link) == str(real_dir / "model.npz")
    again = convscope.load(real_dir / "model.npz")
    x = np.ones((1, 3), dtype=np.float32)
    np.testing.assert_array_equal(again(x), second(x))
    assert _names(link_dir) == ["model.npz"] and _names(real_dir) == ["model.npz"]


def test_dangling_link_creates_the_file_it_points_to(tmp_path):
    link = tmp_path / "latest.json"
    link.symlink_to(tmp_path / "v1.json")
    write_json(link, [1])
    assert link.is_symlink() and json.loads((tmp_path / "v1.json").read_text()) == [1]


def test_exception_mid_write_leaves_no_temporary_and_the_old_file(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old contents")

    def half_then_fail(f):
        f.write(b"new, half written")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old contents" and _names(tmp_path) == ["f.bin"]

    def interrupted(f):
        f.write(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "new.txt", interrupted)
    assert _names(tmp_path) == ["f.bin"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_existing_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "private.json"
    write_json(target, {"v": 1})
    os.chmod(target, 0o600)
    write_json(target, {"v": 2})
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and json.loads(target.read_text()) == {"v": 2}


def test_missing_folder_and_bad_paths(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; create it first"):
        write_text(tmp_path / "nope" / "a.txt", "x")
    for bad in (None, b"a", "", "a\0b", 3):
        with pytest.raises(ArgumentTypeError, match="path must be"):
            atomic_write(bad, lambda f: None)
    with pytest.raises(ArgumentTypeError, match="text must be a str"):
        write_text(tmp_path / "a.txt", b"bytes")


def test_folder_that_refuses_new_files_is_a_config_error(tmp_path, monkeypatch):
    real_open = os.open

    def refusing(path, flags, *args):
        if ".convscope-" in os.fspath(path):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing)
    with pytest.raises(ConfigError, match="cannot create a file in the folder .*Permission denied"):
        write_text(tmp_path / "a.txt", "x")
    monkeypatch.undo()
    assert _names(tmp_path) == []


def test_concurrent_writers_of_one_target_never_mix(tmp_path):
    target = tmp_path / "shared.bin"
    versions = [bytes([i]) * 200_000 for i in range(1, 5)]
    errors = []

    def writer(blob):
        try:
            for _ in range(15):
                atomic_write(target, lambda f: f.write(blob))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert target.read_bytes() in versions  # one whole version: the live writers' temporaries were kept
    assert _names(tmp_path) == ["shared.bin"]


# ---------------------------------------------------------------------------------------
# stale temporary files
# ---------------------------------------------------------------------------------------
def test_next_save_removes_stale_temporaries_and_keeps_live_ones(tmp_path):
    dead = _dead_pid()
    names = {
        "dead writer": _temp_name("model.npz", dead),
        "dead download": _temp_name("model.npz", dead, suffix=".part"),
        "live, but untouched for two days": _temp_name("model.npz", os.getpid()).replace("0123abcd", "0123abce"),
        "live writer (this process)": _temp_name("model.npz", os.getpid()),
        "other machine, recent": _temp_name("model.npz", dead, host="ffffffff"),
        "other target": _temp_name("other.npz", dead),
        "not ours": ".model.npz.backup",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x" * 1000)
    two_days_ago = time.time() - 2 * 86400
    os.utime(tmp_path / names["live, but untouched for two days"], (two_days_ago, two_days_ago))
    convscope.save(_model(), tmp_path / "model.npz")
    left = set(_names(tmp_path))
    for what in ("dead writer", "dead download", "live, but untouched for two days"):
        assert names[what] not in left, what
    for what in ("live writer (this process)", "other machine, recent", "other target", "not ours"):
        assert names[what] in left, what
    convscope.load(tmp_path / "model.npz")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_writer_killed_mid_write_is_cleaned_up_by_the_next_save(tmp_path):
    target = tmp_path / "ckpt.npz"
    save_checkpoint(target, {"v": np.zeros(3)}, {"version": 0})
    script = textwrap.dedent(f"""
        import sys, time
        from convscope.files import atomic_write
        def write(f):
            f.write(b"x" * 3_000_000)
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        atomic_write({str(target)!r}, write)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "writing"
    finally:
        child.kill()
        child.wait(10)
    leftovers = [n for n in _names(tmp_path) if n != "ckpt.npz"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".ckpt.npz.convscope-"), leftovers
    assert (tmp_path / leftovers[0]).stat().st_size == 3_000_000
    assert load_checkpoint(target)[1] == {"version": 0}  # the killed write changed nothing
    save_checkpoint(target, {"v": np.ones(3)}, {"version": 1})
    assert _names(tmp_path) == ["ckpt.npz"]
    assert load_checkpoint(target)[1] == {"version": 1}


# ---------------------------------------------------------------------------------------
# to_jsonable
# ---------------------------------------------------------------------------------------
def test_to_jsonable_converts():
    state = np.random.default_rng(0).bit_generator.state
    assert json.loads(json.dumps(to_jsonable(state, arrays=True))) == to_jsonable(state, arrays=True)
    mt = to_jsonable(np.random.MT19937(0).state, arrays=True)
    assert isinstance(mt["state"]["key"], list) and len(mt["state"]["key"]) == 624
    value = to_jsonable({"p": ((1, 2), (np.int64(3), 4)), "f": np.float32(0.25), "b": np.bool_(True),
                         "n": None, "nan": float("nan")})
    assert value["p"] == [[1, 2], [3, 4]] and type(value["p"][1][0]) is int
    assert value["f"] == 0.25 and value["b"] is True and value["n"] is None and value["nan"] != value["nan"]


@pytest.mark.parametrize("value, arrays, words", [
    ({"a": np.zeros(2)}, False, ["header['a']", "ndarray", "arrays dict"]),
    ({"a": np.array(["x"])}, True, ["header['a']", "ndarray"]),
    ({1: "x"}, True, ["key 1", "str"]),
    ({"s": {1}}, True, ["header['s']", "set"]),
    ({"c": 1j}, True, ["header['c']", "complex"]),
    ({"c": np.complex64(1)}, True, ["header['c']", "complex64"]),
    ({"o": object()}, True, ["header['o']", "object"]),
    ({"i": 1 << 5000}, True, ["header['i']", "5001 bits"]),
])
def test_to_jsonable_refuses_with_the_place(value, arrays, words):
    with pytest.raises(ArgumentTypeError) as info:
        to_jsonable(value, where="header", op="save", arrays=arrays)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_to_jsonable_refuses_cycles_and_deep_nesting():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ArgumentTypeError, match="nested more than 100 levels deep"):
        to_jsonable(loop)
    deep: list = []
    for _ in range(150):
        deep = [deep]
    with pytest.raises(ArgumentTypeError, match="nested more than 100"):
        to_jsonable(deep)
    assert to_jsonable(deep, max_depth=200) == deep


# ---------------------------------------------------------------------------------------
# check_readable, and every reader that uses it
# ---------------------------------------------------------------------------------------
@posix_only
@pytest.mark.parametrize("kind, words", [
    ("fifo", r"is a FIFO \(named pipe\), not a regular file"),
    ("socket", "is a socket, not a regular file"),
    ("directory", "is a directory, not a regular file"),
])
def test_check_readable_refuses_non_regular_files(tmp_path, kind, words):
    path = _make(kind, tmp_path / "x")
    with pytest.raises(DataError, match=words):
        _no_hang(lambda: check_readable(path, "data file"), path if kind == "fifo" else None)
    (tmp_path / "link").symlink_to(path)
    with pytest.raises(CheckpointError, match=f"load: model file .* {words}"):
        check_readable(tmp_path / "link", "model file", error=CheckpointError, op="load")


def test_check_readable_accepts_regular_files_and_names_missing_ones(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    assert check_readable(str(tmp_path / "a.json"), "spec") == tmp_path / "a.json"
    with pytest.raises(DataError, match="spec .* does not exist"):
        check_readable(tmp_path / "b.json", "spec")
    with pytest.raises(DataError, match="cannot look up"):
        check_readable(tmp_path / ("x" * 300), "spec")


@posix_only
def test_readers_refuse_a_fifo_without_opening_it(tmp_path):
    from convscope.data import read_cifar_tar, read_idx
    from convscope.data.formats import open_data_file
    from convscope.explain import parse_array
    from convscope.models import build_model
    from convscope.train import History
    from convscope.train.checkpoint import load_training_checkpoint

    readers = {
        "load": (lambda p: convscope.load(p), CheckpointError),
        "load_checkpoint": (lambda p: load_checkpoint(p), CheckpointError),
        "load_training_checkpoint": (lambda p: load_training_checkpoint(p), CheckpointError),
        "History.load": (lambda p: History.load(p), DataError),
        "read_idx": (lambda p: read_idx(p), DataError),
        "open_data_file": (lambda p: open_data_file(p).__enter__(), DataError),
        "read_cifar_tar": (lambda p: read_cifar_tar(p, ["test_batch.bin"]), DataError),
        "build_model (summary/train --arch)": (lambda p: build_model(str(p)), ConfigError),
        "parse_array": (lambda p: parse_array(str(p)), DataError),
    }
    for i, (_name, (read, error)) in enumerate(readers.items()):
        fifo = _make("fifo", tmp_path / f"pipe{i}.png")
        with pytest.raises(error, match="FIFO"):
            _no_hang(lambda: read(fifo), fifo)


@posix_only
def test_fit_resume_from_a_fifo_is_refused(tmp_path):
    from convscope.train import fit

    fifo = _make("fifo", tmp_path / "checkpoint.npz")
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0))
    x, y = np.zeros((4, 1, 2, 2), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(CheckpointError, match="FIFO"):
        _no_hang(lambda: fit(model, nn.CrossEntropyLoss(), convscope.optim.SGD(model.parameters(), lr=0.1),
                             (x, y), epochs=1, resume=fifo, progress=False), fifo)


@posix_only
def test_cli_refuses_fifos_for_summary_and_export(tmp_path, capsys):
    from convscope.cli import main

    fifo = _make("fifo", tmp_path / "spec.json")
    assert _no_hang(lambda: main(["summary", "--arch", str(fifo)]), fifo) != 0
    assert "FIFO" in capsys.readouterr().err
    assert _no_hang(lambda: main(["summary", str(fifo)]), fifo) != 0
    assert "FIFO" in capsys.readouterr().err
    convscope.save(_model(), tmp_path / "m.npz", {"image_shape": [1, 4, 4]})
    out = _make("fifo", tmp_path / "out.onnx")
    pytest.importorskip("onnx")
    assert _no_hang(lambda: main(["export", str(tmp_path / "m.npz"), "--format", "onnx", "--out", str(out)]),
                    out) != 0
    assert "not a regular file" in capsys.readouterr().err and _is("fifo", out)
