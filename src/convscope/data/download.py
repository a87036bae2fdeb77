"""Download the standard dataset files into a cache folder, each verified by SHA-256.

Only the Python standard library is used (``urllib``). Every download

* tries the mirrors in order (:data:`MIRRORS`, or the ``mirrors`` argument),
* cuts off a server that answers too slowly, however it trickles its bytes: the response
  headers must be complete within ``timeout`` seconds, every read of the body must
  return within ``timeout`` seconds, the body must arrive at ``min_rate`` bytes per
  second or more over every span of ``timeout`` seconds, and the whole file must be in
  within ``deadline`` seconds, all mirrors together (a watchdog shuts the connection
  down at that moment, so no blocked read outlives it),
* refuses to read more than a known ceiling of bytes (the ``Content-Length`` is checked
  first, then the running count),
* streams into a hidden ``.part`` file beside the target (through
  :func:`convscope.files.atomic_write`), verifies the SHA-256, fsyncs and only then
  renames it into place, so the cache never holds a partial or unverified file under its
  real name; the ``.part`` file a killed download leaves behind is removed by the next
  download of the same file.

Which bytes are hashed: for Fashion-MNIST and CIFAR-10 the file as published (the
widely published SHA-256 of ``fashion-mnist/*.gz`` and of ``cifar-10-binary.tar.gz``);
for MNIST the *decompressed* IDX content, because mirrors re-compress the files (the
gzip bytes differ, the content does not) and the decompressed hashes are the widely
published ones. Decompression for that check is capped at the known size.

Files already in the cache are verified against the expected SHA-256 every time they
are used, so a file admitted under one caller's ``checksums=`` is never served to a call
that expects the built-in hash (or other checksums) without that check; a cached file
that does not match is downloaded again (or, with ``download=False``, refused).

The cache folder is, in order of precedence: the ``cache_dir`` argument, the
environment variable ``CONVSCOPE_CACHE``, ``~/.cache/convscope``. Each dataset gets a
sub-folder named after it (``mnist``, ``fashion-mnist``, ``cifar10``).

Example:
    >>> [f.name for f in files_for("mnist", "test")]
    ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import math
import numbers
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ArgumentTypeError, ConfigError, ConvscopeError, DataError
from ..files import as_path, atomic_write, check_readable
from ._http import Limits, fetch
from .formats import _STREAM_ERRORS, _decompressed

__all__ = [
    "ENV_CACHE",
    "MIRRORS",
    "REMOTE_FILES",
    "RemoteFile",
    "default_cache_dir",
    "dataset_cache_dir",
    "files_for",
    "download_file",
    "download_dataset",
    "verify_cache",
    "DEFAULT_DEADLINE",
    "DEFAULT_MIN_RATE",
]

#: Environment variable that overrides the default cache folder.
ENV_CACHE = "CONVSCOPE_CACHE"

#: Base URLs tried in order for each dataset; a file's URL is base + file name.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}

#: Seconds one file may take to download, all mirrors together (one hour).
DEFAULT_DEADLINE = 3600.0
#: Bytes per second below which a download is cut off (measured over spans of ``timeout``).
DEFAULT_MIN_RATE = 4096.0

_MIB = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One standard file of a dataset and how to verify it.

    Attributes:
        name: file name on the mirrors and in the cache.
        sha256: expected SHA-256 (lowercase hex).
        hashed: ``"file"`` (the bytes as downloaded) or ``"content"`` (the bytes after
            gzip/xz decompression; plain files are hashed as they are).
        max_bytes: the largest download accepted.
        max_content_bytes: for ``"content"``, the largest decompressed size accepted.
        splits: the splits that need this file.
    """

    name: str
    sha256: str
    hashed: str
    max_bytes: int
    max_content_bytes: int | None = None
    splits: tuple[str, ...] = ("train", "test")


def _idx_files(hashes: Mapping[str, str], hashed: str) -> tuple[RemoteFile, ...]:
    # Decompressed sizes of the four MNIST-format files (Fashion-MNIST has the same).
    sizes = {
        "train-images-idx3-ubyte.gz": 47_040_016,
        "train-labels-idx1-ubyte.gz": 60_008,
        "t10k-images-idx3-ubyte.gz": 7_840_016,
        "t10k-labels-idx1-ubyte.gz": 10_008,
    }
    return tuple(
        RemoteFile(
            name=name,
            sha256=hashes[name],
            hashed=hashed,
            # gzip never grows data by more than a few bytes per 64 KiB block.
            max_bytes=size + _MIB,
            max_content_bytes=size if hashed == "content" else None,
            splits=("train",) if name.startswith("train") else ("test",),
        )
        for name, size in sizes.items()
    )


#: The standard files of each dataset with their expected SHA-256.
REMOTE_FILES: dict[str, tuple[RemoteFile, ...]] = {
    # Decompressed-content hashes of the original MNIST files (widely published; also
    # listed in the project's shared/data/mnist/SOURCE.md).
    "mnist": _idx_files(
        {
            "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        "content",
    ),
    # SHA-256 of the published .gz files (the same files whose MD5 the Fashion-MNIST
    # README lists).
    "fashion-mnist": _idx_files(
        {
            "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
            "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
            "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
            "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
        },
        "file",
    ),
    # The official binary archive (170,052,171 bytes).
    "cifar10": (
        RemoteFile(
            name="cifar-10-binary.tar.gz",
            sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            hashed="file",
            max_bytes=170_052_171,
        ),
    ),
}


def default_cache_dir() -> Path:
    """The cache folder: ``$CONVSCOPE_CACHE`` if set, else ``~/.cache/convscope``.

    Example:
        >>> default_cache_dir().name in ("convscope", Path(os.environ.get(ENV_CACHE, "x")).name)
        True
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "convscope"


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise ArgumentTypeError(f"dataset name must be a str; got {type(name).__name__}.")
    if name not in REMOTE_FILES:
        raise ConfigError(
            f"expected a downloadable dataset name, one of {sorted(REMOTE_FILES)}; got {name!r}."
        )
    return name


def dataset_cache_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    """The folder that holds (or will hold) ``name``'s downloaded files.

    Example:
        >>> dataset_cache_dir("mnist", "/tmp/c").as_posix()
        '/tmp/c/mnist'
    """
    root = as_path(cache_dir, "cache_dir").expanduser() if cache_dir is not None else default_cache_dir()
    return root / _check_name(name)


def files_for(name: str, split: str | None = None) -> tuple[RemoteFile, ...]:
    """The standard files of dataset ``name`` that ``split`` needs (all when None).

    Example:
        >>> [f.name for f in files_for("cifar10", "train")]
        ['cifar-10-binary.tar.gz']
    """
    files = REMOTE_FILES[_check_name(name)]
    if split is None:
        return files
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test'; got {split!r}.")
    return tuple(f for f in files if split in f.splits)


def _check_sha256(value: object, what: str) -> str:
    text = str(value).lower() if isinstance(value, str) else None
    if text is None or len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError(f"{what} must be a SHA-256 as 64 hex digits; got {value!r}.")
    return text


def _sha256(raw: BinaryIO, hashed: str, cap: int | None) -> str:
    """SHA-256 of an open binary file: its bytes, or (``"content"``) its decompressed
    content, of which at most ``cap`` bytes are read."""
    digest = hashlib.sha256()
    total = 0
    raw.seek(0)
    with _decompressed(raw) if hashed == "content" else contextlib.nullcontext(raw) as stream:
        try:
            while chunk := stream.read(_MIB):
                total += len(chunk)
                if hashed == "content" and cap is not None and total > cap:
                    raise DataError(
                        f"decompressed content exceeds {cap} bytes, the size of the standard "
                        f"file; refusing to decompress further (wrong file or a bomb)."
                    )
                digest.update(chunk)
        except _STREAM_ERRORS as exc:
            raise DataError(
                f"the downloaded file does not decompress ({type(exc).__name__}: {exc})."
            ) from None
    return digest.hexdigest()


def _content_sha256(path: Path, cap: int | None) -> str:
    """SHA-256 of the decompressed content of ``path``, reading at most ``cap`` bytes."""
    with open(check_readable(path, "data file"), "rb") as raw:
        return _sha256(raw, "content", cap)


def _fetch_verified(url: str, out: BinaryIO, limits: Limits, expected: str, hashed: str,
                    max_content_bytes: int | None) -> None:
    """Stream ``url`` into ``out``; DataError unless its hash is ``expected``."""
    got = fetch(url, out, limits)
    if hashed == "content":
        out.flush()
        got = _sha256(out, "content", max_content_bytes)
    if got != expected:
        what = "decompressed content" if hashed == "content" else "file"
        raise DataError(
            f"SHA-256 mismatch of the {what}: expected {expected}, got {got} (a "
            f"corrupt download or a different file on this mirror)"
        )


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within the timeout of {timeout:g} s"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return f"no answer within the timeout of {timeout:g} s"
        return f"cannot connect ({reason})"
    return f"{type(exc).__name__}: {exc}"


def _check_bytes(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be an int number of bytes; got {value!r} of type {type(value).__name__}.")
    if value < 1:
        raise ConfigError(f"{name} must be at least 1 byte; got {value!r}.")
    return int(value)


def _check_seconds(value: Any, name: str, *, zero: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        bound = "a finite number >= 0" if zero else "a positive finite number"
        raise ConfigError(f"{name} must be {bound}; got {value!r}.")
    return float(value)


def _make_folder(folder: Path, op: str) -> None:
    """Create the download folder, or a ConfigError saying why it cannot be used."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        in_the_way = isinstance(exc, (FileExistsError, NotADirectoryError))
        reason = "a file that is not a folder is in the way" if in_the_way else getattr(exc, "strerror", None) or exc
        raise ConfigError(
            f"{op}: cannot use {str(folder)!r} as the download folder ({reason}); pass another "
            f"cache_dir (or set {ENV_CACHE})."
        ) from None


def download_file(
    urls: Sequence[str],
    dest: str | Path,
    *,
    sha256: str,
    hashed: str = "file",
    max_bytes: int,
    max_content_bytes: int | None = None,
    timeout: float = 30.0,
    deadline: float = DEFAULT_DEADLINE,
    min_rate: float = DEFAULT_MIN_RATE,
    quiet: bool = True,
) -> Path:
    """Download one file from the first mirror that serves it correctly; verify; rename.

    Args:
        urls: full URLs, tried in order.
        dest: the final path; its folder is created if needed.
        sha256: the expected SHA-256 (hex).
        hashed: ``"file"`` to hash the downloaded bytes, ``"content"`` to hash them after
            gzip/xz decompression.
        max_bytes: the largest download accepted (checked against Content-Length and while
            reading).
        max_content_bytes: for ``"content"``, the largest decompressed size accepted.
        timeout: seconds to wait for a connection, for the complete response headers and
            for each read of the body; also the span over which ``min_rate`` is measured.
        deadline: seconds the whole download may take, all mirrors together.
            Default :data:`DEFAULT_DEADLINE`.
        min_rate: bytes per second the body must keep up over every span of ``timeout``
            seconds (0 accepts any rate). Default :data:`DEFAULT_MIN_RATE`.
        quiet: when False, print one line per attempt to stderr.

    Returns:
        ``dest`` as a Path; the file there has the expected hash.

    Raises:
        DataError: every mirror failed (unreachable, HTTP error, too slow, past the
            deadline, too large, hash mismatch); the message lists each URL with its
            reason and suggests ``--data-dir``.
        ConfigError: malformed ``sha256``, ``hashed``, sizes or times, no URLs, or a
            ``dest`` whose folder cannot be created or written to, or that is not a
            regular file.
        ArgumentTypeError: ``dest`` is not a path, or a size is not an int.

    Example:
        >>> import tempfile, pathlib, hashlib
        >>> src = pathlib.Path(tempfile.mkdtemp()) / "f.bin"
        >>> _ = src.write_bytes(b"abc")
        >>> out = download_file([src.as_uri()], src.parent / "copy.bin",
        ...                     sha256=hashlib.sha256(b"abc").hexdigest(), max_bytes=10)
        >>> out.read_bytes()
        b'abc'
    """
    op = "download_file"
    expected = _check_sha256(sha256, "sha256")
    if hashed not in ("file", "content"):
        raise ConfigError(f"hashed must be 'file' or 'content'; got {hashed!r}.")
    max_bytes = _check_bytes(max_bytes, "max_bytes")
    if max_content_bytes is not None:
        max_content_bytes = _check_bytes(max_content_bytes, "max_content_bytes")
    if isinstance(urls, str):
        urls = [urls]
    if not urls or not all(isinstance(u, str) and u for u in urls):
        raise ConfigError(f"download_file needs at least one URL (non-empty str); got {urls!r}.")
    timeout = _check_seconds(timeout, "timeout (seconds)")
    deadline = _check_seconds(deadline, "deadline (seconds)")
    min_rate = _check_seconds(min_rate, "min_rate (bytes per second)", zero=True)
    dest = as_path(dest, op)
    _make_folder(dest.parent, op)
    limits = Limits(max_bytes, timeout, min_rate, deadline, time.monotonic() + deadline)
    failures: list[str] = []
    for url in urls:
        if time.monotonic() >= limits.deadline_at:
            failures.append(f"  {url}: not tried, the deadline of {deadline:g} s had passed")
            continue
        if not quiet:
            print(f"convscope: downloading {url} -> {dest}", file=sys.stderr, flush=True)
        attempt = functools.partial(
            _fetch_verified, url, limits=limits, expected=expected, hashed=hashed,
            max_content_bytes=max_content_bytes,
        )
        try:
            return atomic_write(dest, attempt, op=op, suffix=".part")
        except DataError as exc:
            failures.append(f"  {url}: {str(exc).rstrip('.')}")
        except ConvscopeError:  # the destination itself is unusable: no mirror can help
            raise
        except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"  {url}: {_reason(exc, timeout)}")
    raise DataError(
        f"could not download {dest.name} from any mirror:\n" + "\n".join(failures) + "\n"
        "If this machine is offline, fetch the file elsewhere (from one of the URLs above) "
        "into a folder and pass it with --data-dir DIR (data_dir=DIR in Python)."
    )


def _wanted(name: str, split: str | None, checksums: Mapping[str, str] | None) -> list[RemoteFile]:
    """The files ``split`` needs, with the caller's checksums in place of the built-in ones."""
    files = files_for(name, split)
    overrides = dict(checksums or {})
    known = {f.name for f in REMOTE_FILES[name]}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"checksums names files {unknown} that {name} does not have; its files are "
            f"{sorted(known)}."
        )
    return [
        replace(f, sha256=_check_sha256(overrides[f.name], f"checksums[{f.name!r}]")) if f.name in overrides else f
        for f in files
    ]


def _cached_matches(path: Path, spec: RemoteFile) -> bool | None:
    """None when ``path`` is absent; else whether it holds the file ``spec`` expects."""
    try:
        if not path.exists():
            return None
    except OSError:
        return None
    check_readable(path, "the cached file", op="download_dataset")
    with open(path, "rb") as raw:
        if os.fstat(raw.fileno()).st_size > spec.max_bytes:
            return False
        try:
            return _sha256(raw, spec.hashed, spec.max_content_bytes) == spec.sha256
        except DataError:  # does not decompress, or decompresses past the cap
            return False


def verify_cache(
    name: str, split: str | None = None, cache_dir: str | Path | None = None,
    *, checksums: Mapping[str, str] | None = None,
) -> Path:
    """Check the cached files of ``name`` that are present against their SHA-256.

    Nothing is downloaded; files not in the cache are left for the reader to report.

    Args:
        name, split, cache_dir, checksums: as for :func:`download_dataset`.

    Returns:
        The dataset's cache folder.

    Raises:
        DataError: a cached file does not have the expected hash (it was admitted under
            other ``checksums=``, or changed since), or is not a regular file.

    Example:
        >>> import tempfile
        >>> verify_cache("mnist", "test", tempfile.mkdtemp()).name
        'mnist'
    """
    files = _wanted(name, split, checksums)
    folder = dataset_cache_dir(name, cache_dir)
    for spec in files:
        if _cached_matches(folder / spec.name, spec) is False:
            raise DataError(
                f"the cached file {folder / spec.name} does not have the expected SHA-256 "
                f"{spec.sha256} (it was admitted under other checksums=, or changed since); "
                f"download it again (download=True) or delete it."
            )
    return folder


def download_dataset(
    name: str,
    split: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    deadline: float = DEFAULT_DEADLINE,
    min_rate: float = DEFAULT_MIN_RATE,
    quiet: bool = False,
) -> Path:
    """Make sure the standard files of ``name`` (for ``split``) are in the cache, verified.

    A file already in the cache is used only if it has the expected SHA-256 (checked on
    every call); otherwise it is downloaded again.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"``.
        split: ``"train"``, ``"test"`` or None for every file.
        cache_dir: the cache root (default: see the module docstring).
        mirrors: base URLs to try instead of ``MIRRORS[name]`` (``file://`` works too).
        checksums: ``{file name: sha256}`` replacing the built-in hashes for those files
            (same kind of hash as the built-in one: see :data:`REMOTE_FILES`).
        timeout, deadline, min_rate: as for :func:`download_file`, per file.
        quiet: when False, announce each download on stderr.

    Returns:
        The dataset's cache folder, holding every file the split needs.

    Raises:
        DataError: a file could not be downloaded and verified from any mirror.
        ConfigError: unknown name or split, malformed checksums or mirrors, or a cache
            folder that cannot be created or written to.

    Example:
        >>> download_dataset("mnist", cache_dir="/tmp/x", mirrors=[], quiet=True)
        Traceback (most recent call last):
        ...
        convscope.errors.ConfigError: mirrors must be a non-empty list of base URLs; got [].
    """
    files = _wanted(name, split, checksums)
    bases = MIRRORS[name] if mirrors is None else mirrors
    if isinstance(bases, str):
        bases = [bases]
    if not bases or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"mirrors must be a non-empty list of base URLs; got {mirrors!r}.")
    folder = dataset_cache_dir(name, cache_dir)
    urls = [b if b.endswith("/") else b + "/" for b in bases]
    for spec in files:
        dest = folder / spec.name
        cached = _cached_matches(dest, spec)
        if cached:
            continue
        if cached is False and not quiet:
            print(f"convscope: the cached {dest} does not have the expected SHA-256; downloading it again",
                  file=sys.stderr, flush=True)
        download_file(
            [b + spec.name for b in urls],
            dest,
            sha256=spec.sha256,
            hashed=spec.hashed,
            max_bytes=spec.max_bytes,
            max_content_bytes=spec.max_content_bytes,
            timeout=timeout,
            deadline=deadline,
            min_rate=min_rate,
            quiet=quiet,
        )
    return folder
