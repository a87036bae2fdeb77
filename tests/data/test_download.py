"""Downloads against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from functools import partial

import numpy as np
import pytest

import convscope.files as cfiles
from convscope.data import download as dl
from convscope.data import load_dataset
from convscope.errors import ArgumentTypeError, ConfigError, DataError

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
    assert dl.download_file([url + "nolength/big.bin"], tmp_path / "c", sha256=sha,
                            max_bytes=5000).read_bytes() == payload


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


# ---------------------------------------------------------------------------------------
# slow servers: a deadline and a minimum rate (issue 16)
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _raw_server(respond, tls=None):
    """A TCP server on 127.0.0.1 whose every connection gets ``respond(conn, stop)`` after
    the request was read; yields its base URL. ``respond`` must end by itself (bounded).
    With ``tls`` (a server-side SSLContext) it speaks HTTPS."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def handle(conn):
        with conn:
            conn.settimeout(5)
            try:
                if tls is not None:
                    conn = tls.wrap_socket(conn, server_side=True)
                conn.recv(65536)
                respond(conn, stop)
            except OSError:  # the client cut the connection: what the tests want
                pass

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _trickle(data: bytes, pause: float):
    def respond(conn, stop):
        for i in range(len(data)):
            if stop.is_set():
                return
            conn.sendall(data[i:i + 1])
            time.sleep(pause)
    return respond


def test_headers_sent_slowly_are_cut_off_after_the_timeout(tmp_path):
    headers = b"HTTP/1.0 200 OK\r\nX-Slow: " + b"a" * 60 + b"\r\n\r\n"   # 15 s at 0.2 s per byte
    with _raw_server(_trickle(headers, 0.2)) as url:
        start = time.monotonic()
        with pytest.raises(DataError, match="no complete response headers within the timeout of 1 s"):
            dl.download_file([url + "f"], tmp_path / "f", sha256="0" * 64, max_bytes=100, timeout=1)
        assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_body_sent_one_byte_every_half_second_is_cut_off(tmp_path):
    def respond(conn, stop):
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n")
        _trickle(b"x" * 30, 0.5)(conn, stop)   # 15 s if never cut off

    with _raw_server(respond) as url:
        start = time.monotonic()
        with pytest.raises(DataError, match=r"slower than the minimum rate of 4096 bytes/s"):
            dl.download_file([url + "f"], tmp_path / "f", sha256="0" * 64, max_bytes=1000, timeout=1)
        assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []   # no .part file left behind


def test_stalled_https_download_is_cut_off_at_the_deadline(tmp_path, monkeypatch):
    # TLS wraps the socket the watchdog watches; shutting the connection down must still
    # end a read blocked inside the TLS layer, at the deadline.
    ssl = pytest.importorskip("ssl")
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(ssl, "_create_default_https_context", lambda *a, **k: client_tls)

    def respond(conn, stop):   # ten bytes, then silence for 8 s: a read blocks inside TLS
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        stop.wait(8)

    with _raw_server(respond, tls=server_tls) as url:
        assert url.startswith("https://")
        start = time.monotonic()
        with pytest.raises(DataError, match="deadline of 1.2 s"):   # not the 5 s read timeout
            dl.download_file([url + "f"], tmp_path / "f", sha256="0" * 64, max_bytes=1000, timeout=5,
                             deadline=1.2)
        assert time.monotonic() - start < 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "key.pem"]


def test_the_whole_download_has_a_deadline(tmp_path):
    def respond(conn, stop):   # fast enough for min_rate, far too long for the deadline
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        for _ in range(150):
            if stop.is_set():
                return
            conn.sendall(b"y" * 2000)
            time.sleep(0.05)

    with _raw_server(respond) as url:
        start = time.monotonic()
        with pytest.raises(DataError, match=r"deadline of 1.5 s") as info:
            dl.download_file([url + "a", url + "b"], tmp_path / "f", sha256="0" * 64, max_bytes=10**6,
                             timeout=1, min_rate=1000, deadline=1.5)
        assert time.monotonic() - start < 5
        assert f"{url}b: not tried, the deadline of 1.5 s had passed" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_deadline_also_bounds_the_wait_for_headers(tmp_path):
    with _raw_server(_trickle(b"HTTP/1.0 200 OK\r\n" + b"X: y\r\n" * 20, 0.2)) as url:
        start = time.monotonic()
        with pytest.raises(DataError, match="deadline of 0.6 s"):
            dl.download_file([url + "f"], tmp_path / "f", sha256="0" * 64, max_bytes=100, timeout=5,
                             deadline=0.6)
        assert time.monotonic() - start < 4


@pytest.mark.parametrize("kwargs, error, words", [
    ({"max_bytes": "10"}, ArgumentTypeError, "max_bytes must be an int"),
    ({"max_bytes": 0}, ConfigError, "max_bytes must be at least 1"),
    ({"max_bytes": 10, "max_content_bytes": 2.5}, ArgumentTypeError, "max_content_bytes"),
    ({"max_bytes": 10, "deadline": 0}, ConfigError, "deadline"),
    ({"max_bytes": 10, "deadline": float("inf")}, ConfigError, "deadline"),
    ({"max_bytes": 10, "min_rate": -1}, ConfigError, "min_rate"),
    ({"max_bytes": 10, "timeout": "5"}, ConfigError, "timeout"),
])
def test_download_argument_types(tmp_path, kwargs, error, words):
    with pytest.raises(error, match=words):
        dl.download_file(["http://127.0.0.1:9/x"], tmp_path / "x", sha256="0" * 64, **kwargs)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------
# the cache: verified on every use, stale .part files removed (issue 16)
# ---------------------------------------------------------------------------------------
def test_file_admitted_under_custom_checksums_is_rechecked_for_a_default_call(server, tmp_path):
    url, root, requests = server
    fake_mnist(root)
    cache = tmp_path / "cache"
    custom = dict(cache_dir=cache, mirrors=[url], quiet=True)
    load_dataset("mnist", split="test", checksums=_mnist_checksums(root), **custom)
    assert len(requests) == 2
    # The built-in hashes are those of the real MNIST: the fake files in the cache fail
    # them, so a default call re-downloads (and the mirror serves the fake again: refused).
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        load_dataset("mnist", split="test", **custom)
    assert len(requests) == 3
    with pytest.raises(DataError, match="does not have the expected SHA-256"):
        load_dataset("mnist", split="test", cache_dir=cache, download=False)
    # The refused download replaced nothing: under the checksums it was admitted with, the
    # cached file still loads, without a request.
    load_dataset("mnist", split="test", checksums=_mnist_checksums(root), download=False, cache_dir=cache)
    load_dataset("mnist", split="test", checksums=_mnist_checksums(root), **custom)
    assert len(requests) == 3


def test_cached_file_changed_after_admission_is_downloaded_again(server, tmp_path):
    url, root, requests = server
    written = fake_mnist(root)
    kwargs = dict(cache_dir=tmp_path / "c", mirrors=[url], checksums=_mnist_checksums(root), quiet=True)
    load_dataset("mnist", split="test", **kwargs)
    labels = tmp_path / "c" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:8] + bytes(20)))  # all-zero labels
    ds = load_dataset("mnist", split="test", **kwargs)
    np.testing.assert_array_equal(ds.labels, written["test"][1])
    assert requests.count("/t10k-labels-idx1-ubyte.gz") == 2 and requests.count("/t10k-images-idx3-ubyte.gz") == 1


def test_next_download_removes_stale_part_files(server, tmp_path):
    url, root, _ = server
    fake_mnist(root)
    folder = tmp_path / "c" / "mnist"
    folder.mkdir(parents=True)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    name = "t10k-labels-idx1-ubyte.gz"
    stale = folder / f".{name}.convscope-{cfiles._HOST}-{child.pid}-0123abcd.part"
    stale.write_bytes(b"partial download of a killed process")
    dl.download_dataset("mnist", "test", tmp_path / "c", mirrors=[url], checksums=_mnist_checksums(root), quiet=True)
    assert sorted(p.name for p in folder.iterdir()) == ["t10k-images-idx3-ubyte.gz", name]


def test_cache_dir_problems_are_convscope_errors(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    mirrors = ["http://127.0.0.1:9/"]
    with pytest.raises(ConfigError, match="cannot use .* as the download folder .*not a folder"):
        dl.download_dataset("mnist", "test", blocker, mirrors=mirrors, quiet=True)
    with pytest.raises(ConfigError, match="cannot use"):
        dl.download_dataset("mnist", "test", blocker / "below", mirrors=mirrors, quiet=True)
    with pytest.raises(ArgumentTypeError, match="cache_dir: path must be .* without NUL"):
        dl.download_dataset("mnist", "test", str(tmp_path / "a\0b"), mirrors=mirrors, quiet=True)
    with pytest.raises(ArgumentTypeError, match="without NUL"):
        load_dataset("mnist", split="test", cache_dir=str(tmp_path / "a\0b"), mirrors=mirrors, quiet=True)
    real_open = os.open

    def read_only(path, flags, *args):   # what a read-only folder answers (root ignores chmod)
        if ".convscope-" in os.fspath(path):
            raise OSError(30, "Read-only file system")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(ConfigError, match="cannot create a file in the folder .*Read-only file system"):
        dl.download_dataset("mnist", "test", tmp_path / "ro", mirrors=mirrors, quiet=True)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions as non-root")
def test_read_only_cache_dir_is_a_config_error(tmp_path):
    folder = tmp_path / "ro" / "mnist"
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="cannot create a file in the folder"):
            dl.download_dataset("mnist", "test", tmp_path / "ro", mirrors=["http://127.0.0.1:9/"], quiet=True)
    finally:
        folder.chmod(0o700)
