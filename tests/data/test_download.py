"""Downloads against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
import time
from functools import partial

import numpy as np
import pytest

from convscope.data import download as dl
from convscope.data import load_dataset
from convscope.errors import ConfigError, DataError

from ._helpers import fake_cifar_tar, fake_mnist


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """Any test that forgets mirrors= hits a closed local port, never the real mirrors."""
    dead = _closed_port_url()
    monkeypatch.setattr(dl, "MIRRORS", {name: (dead,) for name in dl.MIRRORS})


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.startswith("/nolength/"):
            body = (self.directory_path / self.path.removeprefix("/nolength/")).read_bytes()
            self.send_response(200)
            self.end_headers()  # no Content-Length: the body ends when the connection closes
            self.wfile.write(body)
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """(base URL, served folder, list of request paths) of a server in a thread."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []
    handler = type("H", (_Handler,), {"requests": requests, "directory_path": root})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root, requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def _content_sha(path) -> str:
    return hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()


def _file_sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mnist_checksums(root, split="test"):
    prefix = "t10k" if split == "test" else "train"
    return {
        f"{prefix}-images-idx3-ubyte.gz": _content_sha(root / f"{prefix}-images-idx3-ubyte.gz"),
        f"{prefix}-labels-idx1-ubyte.gz": _content_sha(root / f"{prefix}-labels-idx1-ubyte.gz"),
    }


def test_mnist_download_verify_load_and_reuse_cache(server, tmp_path):
    url, root, requests = server
    written = fake_mnist(root)
    cache = tmp_path / "cache"
    kwargs = dict(cache_dir=cache, mirrors=[url], checksums=_mnist_checksums(root), quiet=True)
    ds = load_dataset("mnist", split="test", **kwargs)
    np.testing.assert_array_equal(ds.pixels[:, 0], written["test"][0])
    np.testing.assert_array_equal(ds.labels, written["test"][1])
    assert sorted(requests) == ["/t10k-images-idx3-ubyte.gz", "/t10k-labels-idx1-ubyte.gz"]
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    # Second time: read from the cache, no request.
    again = load_dataset("mnist", split="test", **kwargs)
    np.testing.assert_array_equal(again.pixels, ds.pixels)
    assert len(requests) == 2


def test_mnist_content_hash_survives_recompression(server, tmp_path):
    # Mirrors re-gzip MNIST: the compressed bytes differ, the verified content does not.
    url, root, _ = server
    fake_mnist(root)
    checksums = _mnist_checksums(root)
    for name in checksums:
        path = root / name
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=123))
    folder = dl.download_dataset("mnist", "test", tmp_path / "c", mirrors=[url], checksums=checksums, quiet=True)
    assert (folder / "t10k-labels-idx1-ubyte.gz").is_file()


def test_hash_mismatch_leaves_nothing_behind(server, tmp_path):
    url, root, _ = server
    fake_mnist(root)
    bad = {name: "0" * 64 for name in _mnist_checksums(root)}
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", split="test", cache_dir=cache, mirrors=[url], checksums=bad, quiet=True)
    message = str(info.value)
    assert "SHA-256 mismatch" in message and "expected " + "0" * 64 in message
    assert url + "t10k-images-idx3-ubyte.gz" in message and "--data-dir" in message
    assert list((cache / "mnist").iterdir()) == []  # no partial or unverified file


def test_falls_back_to_the_next_mirror(server, tmp_path):
    url, root, requests = server
    fake_mnist(root)
    folder = dl.download_dataset(
        "mnist", "test", tmp_path / "c", mirrors=[url + "missing", url], checksums=_mnist_checksums(root), quiet=True
    )
    assert (folder / "t10k-images-idx3-ubyte.gz").is_file()
    assert "/missing/t10k-images-idx3-ubyte.gz" in requests


def test_every_mirror_failing_lists_each_reason(server, tmp_path):
    url, _, _ = server
    dead = _closed_port_url()
    with pytest.raises(DataError) as info:
        dl.download_dataset("mnist", "test", tmp_path / "c", mirrors=[url, dead], quiet=True)
    message = str(info.value)
    assert f"{url}t10k-images-idx3-ubyte.gz: HTTP 404" in message
    assert f"{dead}t10k-images-idx3-ubyte.gz: cannot connect" in message
    assert "offline" in message and "--data-dir" in message


def test_unreachable_server_is_a_clear_data_error(tmp_path):
    dead = _closed_port_url()
    with pytest.raises(DataError, match=r"could not download t10k-images-idx3-ubyte.gz from any mirror"):
        load_dataset("mnist", split="test", cache_dir=tmp_path, mirrors=[dead], timeout=2, quiet=True)
    # Without mirrors= the (patched) defaults are used: same clear failure, no internet.
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("cifar10", split="test", cache_dir=tmp_path, quiet=True)


def test_silent_server_times_out(tmp_path):
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        start = time.monotonic()
        with pytest.raises(DataError, match="timeout of 0.5 s"):
            dl.download_file([url + "f"], tmp_path / "f", sha256="0" * 64, max_bytes=10, timeout=0.5)
        assert time.monotonic() - start < 10


def test_size_limits_with_and_without_content_length(server, tmp_path):
    url, root, _ = server
    payload = bytes(5000)
    (root / "big.bin").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    with pytest.raises(DataError, match="announces 5000 bytes, more than the 1000"):
        dl.download_file([url + "big.bin"], tmp_path / "a", sha256=sha, max_bytes=1000)
    with pytest.raises(DataError, match="sent more than 1000 bytes"):
        dl.download_file([url + "nolength/big.bin"], tmp_path / "b", sha256=sha, max_bytes=1000)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert dl.download_file([url + "nolength/big.bin"], tmp_path / "c", sha256=sha, max_bytes=5000).read_bytes() == payload


def test_content_hash_caps_decompression(server, tmp_path):
    url, root, _ = server
    (root / "bomb.gz").write_bytes(gzip.compress(bytes(1 << 20)))  # 1 MiB of zeros in ~1 KiB
    with pytest.raises(DataError, match="exceeds 4096 bytes"):
        dl.download_file([url + "bomb.gz"], tmp_path / "x", sha256="0" * 64, hashed="content",
                         max_bytes=1 << 20, max_content_bytes=4096)


def test_fashion_mnist_file_hash_and_env_cache(server, tmp_path, monkeypatch):
    url, root, _ = server
    written = fake_mnist(root, seed=3)
    checksums = {name: _file_sha(root / name) for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")}
    monkeypatch.setenv(dl.ENV_CACHE, str(tmp_path / "envcache"))
    ds = load_dataset("fashion-mnist", split="train", mirrors=[url], checksums=checksums, quiet=True)
    np.testing.assert_array_equal(ds.labels, written["train"][1])
    assert (tmp_path / "envcache" / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file()
    assert dl.default_cache_dir() == tmp_path / "envcache"


def test_cifar_archive_download_and_load(server, tmp_path):
    url, root, _ = server
    written = fake_cifar_tar(root / "cifar-10-binary.tar.gz", n=4)
    checksums = {"cifar-10-binary.tar.gz": _file_sha(root / "cifar-10-binary.tar.gz")}
    ds = load_dataset("cifar10", split="test", cache_dir=tmp_path / "c", mirrors=[url], checksums=checksums, quiet=True)
    np.testing.assert_array_equal(ds.pixels, written["test_batch"][0])


def test_download_false_reads_only_the_cache(tmp_path):
    with pytest.raises(DataError, match="not an existing folder|not found"):
        load_dataset("mnist", split="test", cache_dir=tmp_path, download=False)


def test_argument_checks(tmp_path):
    with pytest.raises(ConfigError, match="does not have"):
        dl.download_dataset("mnist", "test", tmp_path, mirrors=["http://127.0.0.1:9/"], checksums={"x.gz": "0" * 64})
    with pytest.raises(ConfigError, match="64 hex digits"):
        dl.download_dataset("mnist", "test", tmp_path, mirrors=["http://127.0.0.1:9/"],
                            checksums={"t10k-images-idx3-ubyte.gz": "abc"})
    with pytest.raises(ConfigError, match="downloadable dataset"):
        dl.download_dataset("digits")
    with pytest.raises(ConfigError, match="timeout"):
        dl.download_file(["http://127.0.0.1:9/x"], tmp_path / "x", sha256="0" * 64, max_bytes=1, timeout=0)


def test_builtin_hash_table_is_well_formed():
    for name, files in dl.REMOTE_FILES.items():
        assert files and name in dl.MIRRORS
        for f in files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0
            assert f.hashed in ("file", "content") and f.max_bytes > 0
