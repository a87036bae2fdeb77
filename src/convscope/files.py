"""Files on disk: the one atomic writer, the one JSON encoder and the one read-side check.

Every file convscope writes (models, checkpoints, ONNX files, history and metrics JSON,
pictures, downloads) goes through :func:`atomic_write`, and every file it reads is first
passed to :func:`check_readable`.

Writing. :func:`atomic_write` hands ``write`` a temporary file beside the target, then
flushes and ``fsync``-s it, renames it over the target with ``os.replace`` and ``fsync``-s
the folder, so a reader (or a crash) sees the old file or the new one, never a mixture.
It replaces only regular files:

* a target that exists and is not a regular file (a directory, FIFO, socket or device)
  is refused with a :class:`~convscope.errors.ConfigError` before anything is written;
* a symbolic link is written *through*: the file it points to is replaced (its temporary
  file is made beside that file, on the same file system) and the link stays a link;
* an existing target keeps its permission bits (a private file stays private); a new
  file gets ``0o666`` less the umask, as ``open`` gives;
* on any exception (including ``KeyboardInterrupt``) the temporary file is removed and
  the target is as it was.

Temporary files are named ``.NAME.convscope-HOST-PID-RANDOM.tmp`` (``.part`` for
downloads): ``HOST`` is 8 hex digits of a hash of the machine's name, ``PID`` the
writer's process id. A process killed while writing cannot clean up, so every write of
``NAME`` first removes the temporary files of ``NAME`` that are stale: those written on
this machine by a process that no longer exists, and any not modified for
:data:`STALE_SECONDS`. The temporary files of a writer still at work (another process,
or another thread of this one) are left alone.

JSON. :func:`to_jsonable` turns NumPy scalars (and, on request, arrays) and tuples into
plain JSON values and refuses everything else, naming where the bad value sits.

Reading. :func:`check_readable` refuses anything but an existing regular file (links
followed): opening a FIFO or a character device for reading can wait forever.

Example:
    >>> import tempfile, pathlib, json
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = write_json(folder / "m.json", {"accuracy": 0.98, "shape": (1, 8, 8)})
    >>> json.loads(path.read_text())
    {'accuracy': 0.98, 'shape': [1, 8, 8]}
    >>> check_readable(path, "metrics file") == path
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArgumentTypeError, ConfigError, ConvscopeError, DataError
from .schema import path_or_none

__all__ = [
    "STALE_SECONDS",
    "MAX_JSON_DEPTH",
    "as_path",
    "atomic_write",
    "write_text",
    "write_json",
    "to_jsonable",
    "check_readable",
]

#: A temporary file not modified for this long is stale whoever wrote it (one day).
STALE_SECONDS = 24 * 3600.0
#: :func:`to_jsonable` refuses data nested deeper than this (or containing itself).
MAX_JSON_DEPTH = 100

_MAX_INT_BITS = 4096  # about 1233 digits, well under Python's 4300-digit str() limit
_TAG = "convscope"
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_TEMP_TAIL = re.compile(r"(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}\.(?:tmp|part)")
_TEMP_SUFFIXES = (".tmp", ".part")


# ----------------------------------------------------------------------------------------
# Paths and what kind of file they name
# ----------------------------------------------------------------------------------------
def as_path(path: Any, op: str) -> Path:
    """``path`` as a Path, or ArgumentTypeError for what no system call could look up.

    Args:
        path: a str or ``os.PathLike``.
        op: the operation, for the message.

    Raises:
        ArgumentTypeError: None, bytes, numbers, ``""`` or text with a NUL character.

    Example:
        >>> as_path("model.npz", "save").name
        'model.npz'
    """
    checked = path_or_none(path)
    if checked is None:
        raise ArgumentTypeError(
            f"{op}: path must be a non-empty str or pathlib.Path without NUL characters; got {path!r}."
        )
    return checked


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _why(kind: str) -> str:
    if kind == "a directory":
        return "give the path of a file"
    return "reading it could wait forever, so it is not opened"


def check_readable(path: Any, what: str, *, error: type[ConvscopeError] = DataError,
                   op: str | None = None) -> Path:
    """``path`` as a Path if it names an existing regular file (links followed).

    Call it before opening a path for reading: opening a FIFO waits for a writer that may
    never come, and a device may never end.

    Args:
        path: the path (str or ``os.PathLike``).
        what: what the file is, for the message (``"model file"``, ``"image"``).
        error: the convscope error class to raise. Default :class:`DataError`.
        op: the operation, put in front of the message when given.

    Returns:
        Path: the path as given.

    Raises:
        ArgumentTypeError: ``path`` is not a path.
        error: the path does not exist, cannot be looked up, or is a directory, FIFO,
            socket or device.

    Example:
        >>> import tempfile, os, pathlib
        >>> fifo = pathlib.Path(tempfile.mkdtemp()) / "pipe"
        >>> os.mkfifo(fifo)
        >>> try:
        ...     check_readable(fifo, "image")
        ... except DataError as exc:
        ...     print(str(exc).partition(" is ")[2])
        a FIFO (named pipe), not a regular file; reading it could wait forever, so it is not opened.
    """
    lead = f"{op}: " if op else ""
    p = as_path(path, op or what)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{lead}{what} {str(p)!r} does not exist.") from None
    except OSError as exc:  # a name too long, a loop of links, a folder we may not enter
        raise error(f"{lead}cannot look up {what} {str(p)[:200]!r}: {exc.strerror or exc}.") from None
    kind = _kind(st.st_mode)
    if kind is not None:
        raise error(f"{lead}{what} {str(p)!r} is {kind}, not a regular file; {_why(kind)}.")
    return p


# ----------------------------------------------------------------------------------------
# Temporary files and their clean-up
# ----------------------------------------------------------------------------------------
def _temp_prefix(name: str) -> str:
    return f".{name}.{_TAG}-"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (True when it cannot be told)."""
    if pid <= 0 or os.name != "posix":  # os.kill(pid, 0) would terminate it on Windows
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, another user's
        return True
    return True


def _remove_stale(folder: Path, name: str) -> None:
    """Remove the temporary files of target ``name`` left by writers that are gone."""
    prefix = _temp_prefix(name)
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = _TEMP_TAIL.fullmatch(entry.name[len(prefix):])
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        dead = match["host"] == _HOST and not _alive(int(match["pid"]))
        if dead or now - st.st_mtime > STALE_SECONDS:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _create_temp(folder: Path, name: str, suffix: str, op: str) -> tuple[int, Path]:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        candidate = folder / f"{_temp_prefix(name)}{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            # 0o666 less the umask: the usual permissions (mkstemp's 0o600 would follow the
            # file through the rename).
            return os.open(candidate, flags, 0o666), candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise ConfigError(
                f"{op}: cannot create a file in the folder {str(folder)!r} ({exc.strerror or exc}); "
                f"choose a folder you can write to, or a shorter file name."
            ) from None
    raise ConfigError(f"{op}: could not create a temporary file next to {str(folder / name)!r}.")


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable. Not every platform or file system allows it: best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _target(p: Path, op: str) -> tuple[Path, int | None]:
    """The file to replace (links followed) and its permission bits (None when new)."""
    real = Path(os.path.realpath(p))
    shown = f"{str(p)!r} (a link to {str(real)!r})" if os.path.islink(p) else repr(str(p))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ConfigError(f"{op}: cannot use the path {str(p)[:200]!r}: {exc.strerror or exc}.") from None
    if st is not None:
        kind = _kind(st.st_mode)
        if kind is not None:
            raise ConfigError(
                f"{op}: {shown} is {kind}, not a regular file; convscope replaces only regular "
                f"files, so nothing was written. Give the path of a file to write."
            )
    folder = real.parent
    try:
        is_dir = folder.is_dir()
    except OSError:
        is_dir = False
    if not is_dir:
        raise ConfigError(
            f"{op}: the folder {str(folder)!r} of {real.name!r} does not exist; create it first "
            "(os.makedirs) or choose another path."
        )
    return real, None if st is None else stat.S_IMODE(st.st_mode)


def _still_replaceable(real: Path, op: str) -> None:
    """Refuse if the target turned into a non-regular file while we were writing."""
    try:
        mode = os.lstat(real).st_mode
    except FileNotFoundError:
        return
    kind = _kind(mode) if not stat.S_ISLNK(mode) else None
    if kind is not None:
        raise ConfigError(
            f"{op}: {str(real)!r} became {kind} while it was being written; nothing was written."
        )


# ----------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------
def atomic_write(path: Any, write: Callable[[Any], Any], *, binary: bool = True,
                 op: str = "atomic_write", suffix: str = ".tmp") -> Path:
    """Write a file through ``write(fileobj)``, atomically (see the module docstring).

    Args:
        path: the file to write (str or ``os.PathLike``); a link is written through.
        write: called once with the open temporary file: binary (readable too, so a
            writer may check what it wrote) or, with ``binary=False``, text in UTF-8
            (no newline translation).
        binary: whether ``write`` gets a binary file. Default True.
        op: the operation, for messages.
        suffix: ``".tmp"`` or ``".part"`` (downloads), the end of the temporary name.

    Returns:
        Path: ``path`` as given.

    Raises:
        ArgumentTypeError: ``path`` is not a path.
        ConfigError: the target is a directory, FIFO, socket or device; its folder does
            not exist; no file can be created in the folder (read-only, permissions, a
            name too long).
        OSError: the disk refused the write (the old file, if any, is intact).
        Anything ``write`` raises, after the temporary file is removed.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
        >>> atomic_write(target, lambda f: f.write(b"abc")).read_bytes()
        b'abc'
    """
    p = as_path(path, op)
    if suffix not in _TEMP_SUFFIXES:
        raise ConfigError(f"{op}: suffix must be one of {_TEMP_SUFFIXES}; got {suffix!r}.")
    real, mode = _target(p, op)
    folder = real.parent
    _remove_stale(folder, real.name)
    fd, tmp = _create_temp(folder, real.name, suffix, op)
    try:
        with os.fdopen(fd, "w+b") as f:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            if binary:
                write(f)
            else:
                text = io.TextIOWrapper(f, encoding="utf-8", newline="")
                write(text)
                text.flush()
                text.detach()
            f.flush()
            os.fsync(f.fileno())
        _still_replaceable(real, op)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(folder)
    return p


def write_text(path: Any, text: str, *, op: str = "write_text") -> Path:
    """Write ``text`` as UTF-8 to ``path`` with :func:`atomic_write`; return the path.

    Example:
        >>> import tempfile, pathlib
        >>> write_text(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hi\\n").read_text()
        'hi\\n'
    """
    if not isinstance(text, str):
        raise ArgumentTypeError(f"{op}: text must be a str; got {type(text).__name__}.")
    return atomic_write(path, lambda f: f.write(text), binary=False, op=op)


def write_json(path: Any, obj: Any, *, op: str = "write_json", **json_kwargs: Any) -> Path:
    """Write ``obj`` as JSON (with a final newline) via :func:`atomic_write`.

    ``obj`` goes through :func:`to_jsonable` first (NumPy scalars and arrays, tuples);
    ``json_kwargs`` go to ``json.dumps`` (``indent`` defaults to 2).

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> p = write_json(pathlib.Path(tempfile.mkdtemp()) / "a.json", {"n": np.int64(3)}, indent=None)
        >>> p.read_text()
        '{"n": 3}\\n'
    """
    json_kwargs.setdefault("indent", 2)
    text = json.dumps(to_jsonable(obj, arrays=True, op=op), **json_kwargs) + "\n"
    return write_text(path, text, op=op)


# ----------------------------------------------------------------------------------------
# JSON values
# ----------------------------------------------------------------------------------------
def to_jsonable(value: Any, *, arrays: bool = False, where: str = "value", op: str = "to_jsonable",
                max_depth: int = MAX_JSON_DEPTH, _depth: int = 0) -> Any:
    """``value`` as plain JSON data: NumPy scalars become Python scalars, tuples lists.

    Args:
        value: dicts with str keys, lists, tuples, str, int, float (NaN and infinities are
            kept, as Python's json module writes them), bool, None, NumPy bool/int/float
            scalars and, with ``arrays=True``, NumPy arrays of those (as nested lists).
        arrays: convert arrays instead of refusing them. Default False.
        where: the name of ``value`` in messages (``"header"``); nested places are
            written ``header['key'][0]``.
        op: the operation, for messages.
        max_depth: the deepest nesting accepted.

    Returns:
        A new value made of dict, list, str, int, float, bool and None only.

    Raises:
        ArgumentTypeError: anything else (sets, objects, complex numbers, non-str keys,
            arrays without ``arrays=True``), ints of more than 4096 bits, or nesting
            deeper than ``max_depth`` (or a value that contains itself).

    Example:
        >>> import numpy as np
        >>> to_jsonable({"pad": ((1, 2), (0, 0)), "lr": np.float32(0.5)})
        {'pad': [[1, 2], [0, 0]], 'lr': 0.5}
        >>> to_jsonable({"w": np.zeros(2)}, arrays=True)
        {'w': [0.0, 0.0]}
    """
    if _depth > max_depth:
        raise ArgumentTypeError(
            f"{op}: {where[:200]}... is nested more than {max_depth} levels deep (or "
            f"contains itself); it must be finite JSON data."
        )
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            raise ArgumentTypeError(
                f"{op}: {where[:200]} is an int of {value.bit_length()} bits; JSON data here holds "
                f"ints of at most {_MAX_INT_BITS} bits (Python refuses to print longer ones)."
            )
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArgumentTypeError(
                    f"{op}: {where} has the key {key!r} of type {type(key).__name__}; JSON object "
                    "keys must be str (JSON would turn it into a string and the data would not "
                    "load back equal)."
                )
            out[str(key)] = to_jsonable(item, arrays=arrays, where=f"{where}[{key!r}]", op=op,
                                        max_depth=max_depth, _depth=_depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, arrays=arrays, where=f"{where}[{i}]", op=op, max_depth=max_depth,
                            _depth=_depth + 1) for i, item in enumerate(value)]
    if arrays and isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.dtype.fields is None:
        return value.tolist()
    hint = " Put arrays in the arrays dict, not in the header." if isinstance(value, np.ndarray) else ""
    raise ArgumentTypeError(
        f"{op}: {where} is a {type(value).__name__}; it must be JSON data (dict with str "
        f"keys, list, tuple, str, int, float, bool, None, NumPy scalars).{hint}"
    )
