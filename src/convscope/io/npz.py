"""Model and checkpoint files: one ``.npz`` archive, no pickle, written atomically.

File layout. A convscope file is a zip archive of ``.npy`` members (what ``numpy.savez``
writes, stored uncompressed), readable by ``numpy.load(path, allow_pickle=False)``:

- ``__convscope__.npy``: a uint8 array holding UTF-8 JSON::

      {"format": "convscope-model" | "convscope-checkpoint", "version": 1,
       "arrays": {name: {"dtype": "<f4", "shape": [8, 1, 5, 5]}, ...},
       "header": {...caller's JSON...}, "sha256": "..."}

- one ``<name>.npy`` member per array (names may contain ``/``, e.g. ``optim/fc.weight/exp_avg``).

The SHA-256 covers the JSON header (without the digest itself) and every array's name,
dtype, shape and bytes, so a flipped bit anywhere is detected even where the zip's own
CRC-32 would not look (or was recomputed by a tool).

Reading trusts nothing: the file must be a zip whose members are exactly the header and
the arrays the header lists, every member stored (no compression, so no decompression
bomb), every array of a numeric or boolean dtype (object arrays are refused before any
data is read, nothing is ever unpickled or evaluated), each array's byte count must equal
what its ``.npy`` header promises before memory is allocated, the format version must be
one this convscope reads, and the digest must match. Any failure raises
:class:`~convscope.errors.CheckpointError` naming the file and the reason.

Writing is atomic, through :func:`convscope.files.atomic_write`: the archive goes to a
temporary file beside the target, is flushed and ``fsync``-ed, then ``os.replace``-d over
the target, and the directory is ``fsync``-ed. A reader therefore sees the old file or the
new one, never a mixture, even if the writer is killed; the hidden temporary file a killed
writer leaves behind is removed by the next save of the same path. If writing fails the
temporary file is removed and an existing target stays as it was. Only a regular file is
replaced (a directory, FIFO, socket or device is refused before anything is written), and a
symbolic link is written through: the file it points to gets the new contents.

Suffix. As ``numpy.savez``, saving appends ``.npz`` to a path that does not already end
in ``.npz`` (``"model"`` -> ``"model.npz"``; the functions return the path written).
Loading uses the path as given and, if no such file exists and the name does not end in
``.npz``, tries the name with ``.npz`` appended.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> written = save_checkpoint(folder / "run", {"w": np.arange(3.0)}, {"epoch": 2})
    >>> written.name
    'run.npz'
    >>> arrays, header = load_checkpoint(folder / "run")
    >>> arrays["w"], header
    (array([0., 1., 2.]), {'epoch': 2})
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from .. import schema as sc
from ..errors import ArgumentTypeError, CheckpointError, ConfigError, DTypeError
from ..files import as_path, atomic_write, check_readable, to_jsonable
from ..settings import check_allocation

__all__ = [
    "FORMAT_VERSION",
    "MODEL_FORMAT",
    "CHECKPOINT_FORMAT",
    "CheckpointNotFoundError",
    "save_checkpoint",
    "load_checkpoint",
    "save",
    "load",
]

#: The newest file layout this convscope writes and reads.
FORMAT_VERSION = 1
#: Format name of files written by :func:`save` (a model: architecture + weights).
MODEL_FORMAT = "convscope-model"
#: Default format name of :func:`save_checkpoint` files (training resume state).
CHECKPOINT_FORMAT = "convscope-checkpoint"

_HEADER_KEY = "__convscope__"
_HEADER_MEMBER = _HEADER_KEY + ".npy"
_ALLOWED_KINDS = "biufc"  # bool, signed and unsigned ints, floats, complex
_MAX_NAME_LENGTH = 1000
_MAX_FILE_NAME = 200  # bytes; the temporary ".<name>.convscope-<host>-<pid>-<hex>.tmp" must stay under 255
_MAX_HEADER_DEPTH = 100
#: Most members (arrays plus the header) one file may hold; counted from the zip's end
#: record before its directory is parsed. A checkpoint of a 1,000-layer model with Adam
#: buffers and best weights holds about 8,000.
MAX_MEMBERS = 20_000


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist (both a CheckpointError and a FileNotFoundError)."""


# ----------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------
def _exists(check: Callable[[], bool], p: Path, op: str) -> bool:
    """``check()`` (p.exists, p.is_dir, ...), with the system's refusals as a clean error."""
    try:
        return check()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ConfigError(f"{op}: cannot use the path {str(p)[:200]!r}: {exc.strerror or exc}.") from None


def _save_path(path: Any, op: str) -> Path:
    p = as_path(path, op)
    if not p.name.endswith(".npz"):
        p = p.with_name(p.name + ".npz")
    if len(os.fsencode(p.name)) > _MAX_FILE_NAME:
        raise ConfigError(
            f"{op}: the file name {p.name[:40]!r}... has {len(os.fsencode(p.name))} bytes; at most "
            f"{_MAX_FILE_NAME} are allowed (file systems allow 255, and the temporary file "
            f"written beside it first needs room for a suffix)."
        )
    if _exists(p.is_dir, p, op):
        raise ConfigError(f"{op}: {p} is a directory; give the path of the file to write.")
    directory = p.parent
    if not _exists(directory.is_dir, directory, op):
        raise ConfigError(
            f"{op}: the directory {directory} of {p.name!r} does not exist; create it first "
            "(os.makedirs) or choose another path."
        )
    return p


def _load_path(path: Any, op: str) -> Path:
    p = as_path(path, op)
    if _exists(p.exists, p, op):
        return p
    if not p.name.endswith(".npz"):
        alt = p.with_name(p.name + ".npz")
        if _exists(alt.exists, alt, op):
            return alt
        raise CheckpointNotFoundError(
            f"{op}: no such file: {str(p)!r} (also tried {str(alt)!r}). Check the path; a "
            "model is written by convscope.save(model, path)."
        )
    raise CheckpointNotFoundError(f"{op}: no such file: {str(p)!r}. Check the path.")


# ----------------------------------------------------------------------------------------
# Validation of what is written
# ----------------------------------------------------------------------------------------
def _check_name(name: Any, op: str) -> str:
    if not isinstance(name, str):
        raise ArgumentTypeError(f"{op}: array names must be str; got {name!r} of type {type(name).__name__}.")
    parts = name.split("/")
    bad = (
        not name or len(name) > _MAX_NAME_LENGTH or name == _HEADER_KEY
        or any(p in ("", ".", "..") for p in parts)
        or any(c in name for c in "\\\0") or not name.isprintable()
    )
    if bad:
        raise ConfigError(
            f"{op}: array name {name!r} is not allowed. Names are non-empty printable text of at "
            f"most {_MAX_NAME_LENGTH} characters, parts separated by single '/', no '.' or '..' "
            f"parts, no backslash, and not the reserved {_HEADER_KEY!r}."
        )
    return name


def _check_array(name: str, value: Any, op: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ArgumentTypeError(f"{op}: array {name!r} could not be made an ndarray ({exc}).") from None
    if array.dtype.kind not in _ALLOWED_KINDS or array.dtype.fields is not None:
        raise DTypeError(
            f"{op}: array {name!r} has dtype {array.dtype}; checkpoints hold only bool, integer, "
            "float and complex arrays (no object, string or structured dtypes, which would need "
            "pickle or could not be verified). Put text and other metadata in the header."
        )
    if not array.flags.c_contiguous:
        # The digest reads a contiguous copy; a zero-stride view (np.broadcast_to) of
        # trillions of entries must be refused, not copied.
        check_allocation(array.shape, array.dtype, f"contiguous copy of array {name!r}", op)
    return array


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _digest(header_without_digest: dict, arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(b"convscope-checkpoint-digest-v1\0")
    h.update(_canonical_json(header_without_digest))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        meta = f"\0{name}\0{a.dtype.str}\0{','.join(map(str, a.shape))}\0".encode()
        h.update(len(meta).to_bytes(8, "little"))
        h.update(meta)
        h.update(a.nbytes.to_bytes(8, "little"))
        h.update(a.reshape(-1).view(np.uint8).data if a.size else b"")
    return h.hexdigest()


def _write_member(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with zf.open(name + ".npy", "w", force_zip64=True) as member:
        npy_format.write_array(member, array, allow_pickle=False)


def save_checkpoint(
    path: Any, arrays: Mapping[str, Any], header: Mapping[str, Any] | None = None,
    *, format: str = CHECKPOINT_FORMAT,
) -> Path:
    """Write named arrays and a JSON header to one ``.npz`` file, atomically.

    Args:
        path (str or Path): the file; ``.npz`` is appended if the name lacks it.
        arrays (dict[str, ndarray]): the arrays (bool, int, float or complex dtypes). Names
            are ``/``-separated parts, e.g. ``"model/fc.weight"``.
        header (dict): JSON data (NumPy scalars are converted, tuples become lists; NaN and
            infinities are kept, as Python's json module writes them). Default ``{}``.
        format (str): the format name written in the file and checked by
            :func:`load_checkpoint`. Default ``"convscope-checkpoint"``.

    Returns:
        Path: the path written (with the ``.npz`` suffix).

    Raises:
        ConfigError: a bad name, a directory that does not exist, or a target that exists
            and is not a regular file (directory, FIFO, socket, device).
        DTypeError: an object, string or structured array.
        ArgumentTypeError: a header that is not JSON data.
        OSError: the disk refused the write (the old file, if any, is intact).
    """
    op = "save_checkpoint"
    target = _save_path(path, op)
    if not isinstance(arrays, Mapping):
        raise ArgumentTypeError(
            f"{op}: arrays must be a dict of name -> ndarray; got {type(arrays).__name__}."
        )
    if not isinstance(format, str) or not format.startswith("convscope-"):
        raise ConfigError(f"{op}: format must be a str starting with 'convscope-'; got {format!r}.")
    if len(arrays) >= MAX_MEMBERS:
        raise ConfigError(
            f"{op}: {len(arrays)} arrays; a convscope file holds at most {MAX_MEMBERS - 1} (and "
            f"its header), which is what load_checkpoint reads. Combine small arrays into larger ones."
        )
    checked = {_check_name(k, op): _check_array(k, v, op) for k, v in arrays.items()}
    user_header = to_jsonable({} if header is None else header, where="header", op=op)
    if not isinstance(user_header, dict):
        raise ArgumentTypeError(f"{op}: header must be a dict; got {type(header).__name__}.")
    outer = {
        "format": format,
        "version": FORMAT_VERSION,
        "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in checked.items()},
        "header": user_header,
    }
    outer["sha256"] = _digest(outer, checked)
    header_bytes = json.dumps(outer, ensure_ascii=False).encode("utf-8")
    header_array = np.frombuffer(header_bytes, dtype=np.uint8)

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            _write_member(zf, _HEADER_KEY, header_array)
            for name, array in checked.items():
                _write_member(zf, name, array)

    atomic_write(target, write, op=op)
    return target


# ----------------------------------------------------------------------------------------
# Defensive reading
# ----------------------------------------------------------------------------------------
def _sniff(first: bytes) -> str | None:
    """What a non-zip file probably is, for the error message."""
    if not first:
        return None
    if first[:1] == b"\x80" and len(first) > 1 and first[1] <= 5:
        return (
            "it looks like a Python pickle (pickle.dump, or torch.save's legacy format); "
            "convscope never unpickles files, because unpickling can run arbitrary code"
        )
    if first.startswith(b"\x93NUMPY"):
        return "it is a single .npy array (np.save), not a convscope checkpoint archive"
    if first.startswith(b"\x89HDF"):
        return "it is an HDF5 file (e.g. a Keras .h5 model), not a convscope checkpoint"
    if first[:2] == b"\x1f\x8b":
        return "it is gzip-compressed data, not a convscope checkpoint archive"
    return None


#: The outer header of every convscope file: format, version, array manifest, digest.
_OUTER_SCHEMA = sc.Object({
    "format": sc.Str(),
    "version": sc.Int(min=1),
    "arrays": sc.Map(sc.Object({"dtype": sc.Str(max_length=40), "shape": sc.List(sc.Int(min=0), max_items=64)}),
                     max_items=MAX_MEMBERS),
    "header": sc.Map(sc.JSON(_MAX_HEADER_DEPTH)),
    "sha256": sc.Str(pattern="[0-9a-f]{64}"),
})


class _Reader:
    """Reads and checks one archive; every failure becomes a CheckpointError."""

    def __init__(self, path: Path, op: str) -> None:
        self.path, self.op = path, op

    def fail(self, reason: str) -> CheckpointError:
        end = "" if reason.endswith(".") else "."
        return CheckpointError(f"{self.op}: {str(self.path)!r} is not a valid convscope file: {reason}{end}")

    def read(self, expected_format: str | None) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
        what = "model file" if expected_format == MODEL_FORMAT else "checkpoint file"
        check_readable(self.path, what, error=CheckpointError, op=self.op)
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            raise CheckpointNotFoundError(f"{self.op}: no such file: {str(self.path)!r}.") from None
        except OSError as exc:
            raise CheckpointError(f"{self.op}: cannot open {str(self.path)!r}: {exc}.") from exc
        with f:
            size = os.fstat(f.fileno()).st_size
            first = f.read(8)
            f.seek(0)
            if size == 0:
                raise self.fail("the file is empty (0 bytes); convscope's atomic saves never leave an "
                                "empty file, so it was written by something else or truncated")
            if not first.startswith(b"PK"):
                what = _sniff(first) or f"it is not a zip archive (first bytes {first!r})"
                raise self.fail(what + ". Only files written by convscope.save or save_checkpoint load.")
            self._check_member_count(f, size)
            try:
                zf = zipfile.ZipFile(f, "r")
            except zipfile.BadZipFile as exc:
                raise self.fail(
                    f"the zip archive is truncated or corrupted ({exc}); the file has {size} bytes"
                ) from None
            except Exception as exc:  # noqa: BLE001 - zipfile raises many kinds on garbage
                raise self.fail(f"the zip archive is corrupted ({type(exc).__name__}: {exc})") from None
            with zf:
                try:
                    return self._read_archive(zf, expected_format)
                except CheckpointError:
                    raise
                except MemoryError:
                    raise self.fail("an array is larger than the available memory") from None
                except Exception as exc:  # noqa: BLE001 - corrupt bytes surface as many error kinds
                    raise self.fail(f"corrupted data ({type(exc).__name__}: {exc})") from None

    def _too_many(self, count: int) -> CheckpointError:
        return self.fail(
            f"the archive holds {count} members; a convscope file holds at most {MAX_MEMBERS} "
            f"(save_checkpoint refuses more), so it was not written by convscope"
        )

    def _check_member_count(self, f: Any, size: int) -> None:
        """Refuse an archive whose end record announces more than MAX_MEMBERS entries.

        Reads only the end-of-central-directory record (and its zip64 counterpart), so a
        directory of millions of entries is refused before zipfile parses any of it.
        """
        tail_size = min(size, 22 + 0xFFFF + 20)
        f.seek(size - tail_size)
        tail = f.read(tail_size)
        f.seek(0)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return  # zipfile reports the damage
        count = int.from_bytes(tail[at + 10 : at + 12], "little")
        locator = at - 20
        if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
            offset = int.from_bytes(tail[locator + 8 : locator + 16], "little")
            if offset + 56 <= size:
                f.seek(offset)
                record = f.read(56)
                f.seek(0)
                if record[:4] == b"PK\x06\x06":
                    count = int.from_bytes(record[32:40], "little")
        if count > MAX_MEMBERS:
            raise self._too_many(count)

    def _read_archive(self, zf: zipfile.ZipFile, expected_format: str | None):
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise self._too_many(len(infos))
        names = [i.filename for i in infos]
        seen: set[str] = set()
        dup: list[str] = []
        for name in names:
            if name in seen:
                dup.append(name)
            seen.add(name)
        if dup:
            raise self.fail(f"the archive holds duplicate members {sorted(set(dup))[:5]}")
        if _HEADER_MEMBER not in names:
            if any(n.endswith(".pkl") or n.endswith("/version") for n in names):
                raise self.fail(
                    "it looks like a PyTorch file (torch.save), which holds pickled data; convscope "
                    "never unpickles. Convert the model with convscope.export.from_torch instead"
                )
            raise self.fail(
                f"the archive has no {_HEADER_MEMBER!r} member (members: {sorted(names)[:8]}"
                f"{' ...' if len(names) > 8 else ''}); it was not written by convscope.save or "
                "save_checkpoint"
            )
        by_name = {i.filename: i for i in infos}
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                raise self.fail(
                    f"member {info.filename!r} is compressed (method {info.compress_type}); convscope "
                    "writes stored members only, and refuses others so that no decompression can "
                    "grow without bound"
                )
            if info.flag_bits & 0x1:
                raise self.fail(f"member {info.filename!r} is encrypted")
            if info.file_size != info.compress_size:
                raise self.fail(
                    f"member {info.filename!r} claims {info.file_size} bytes but stores "
                    f"{info.compress_size}"
                )
        raw = self._read_npy(zf, by_name[_HEADER_MEMBER], "the header")
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise self.fail(f"the header member must be a 1-D uint8 array; got {raw.dtype} {raw.shape}")
        outer = sc.parse_json(raw.tobytes(), "the header (UTF-8 JSON)", self.fail,
                              max_depth=_MAX_HEADER_DEPTH + 2)
        if not isinstance(outer, dict):
            raise self.fail(f"the header must be a JSON object; got {type(outer).__name__}")
        fmt, version = outer.get("format"), outer.get("version")
        if not isinstance(fmt, str) or not fmt.startswith("convscope-"):
            raise self.fail(f"the header names the format {fmt!r}, not a convscope format")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self.fail(f"the header has an unknown format version {version!r}")
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{self.op}: {str(self.path)!r} was written by a newer convscope (format version "
                f"{version}; this convscope reads versions up to {FORMAT_VERSION}). Upgrade convscope "
                "(pip install -U convscope) to load it."
            )
        if expected_format is not None and fmt != expected_format:
            hint = {
                MODEL_FORMAT: " It is a model file: load it with convscope.load(path).",
                CHECKPOINT_FORMAT: " It is a training checkpoint: load it with "
                "convscope.io.load_checkpoint(path) or resume training from it.",
            }.get(fmt, "")
            raise CheckpointError(
                f"{self.op}: {str(self.path)!r} is a {fmt!r} file, expected {expected_format!r}.{hint}"
            )
        expected_keys = {"format", "version", "arrays", "header", "sha256"}
        if set(outer) != expected_keys:
            raise self.fail(f"the header must have the keys {sorted(expected_keys)}; got {sorted(outer)}")
        manifest, user_header, digest = outer["arrays"], outer["header"], outer["sha256"]
        if not isinstance(manifest, dict) or not isinstance(user_header, dict) or not isinstance(digest, str):
            raise self.fail("the header's 'arrays', 'header' or 'sha256' entry has the wrong type")
        sc.validate(outer, _OUTER_SCHEMA, "the header", self.fail)
        for key in manifest:
            try:
                _check_name(key, self.op)
            except ConfigError:
                raise self.fail(f"the header lists the array name {key[:80]!r}, which save never writes") from None
        expected_members = {_HEADER_MEMBER} | {f"{k}.npy" for k in manifest}
        if set(names) != expected_members:
            missing = sorted(expected_members - set(names))
            unexpected = sorted(set(names) - expected_members)
            raise self.fail(
                "the archive's members do not match its header"
                + (f"; missing {missing[:8]}" if missing else "")
                + (f"; unexpected {unexpected[:8]}" if unexpected else "")
            )
        arrays: dict[str, np.ndarray] = {}
        for key, meta in manifest.items():
            array = self._read_npy(zf, by_name[f"{key}.npy"], f"array {key!r}")
            if not isinstance(meta, dict) or meta.get("dtype") != array.dtype.str or meta.get(
                "shape"
            ) != list(array.shape):
                raise self.fail(
                    f"array {key!r} is {array.dtype.str} {list(array.shape)} but the header lists {meta!r}"
                )
            arrays[key] = array
        del outer["sha256"]
        if _digest(outer, arrays) != digest:
            raise self.fail(
                "the SHA-256 digest does not match the contents (the file was modified or damaged "
                "after it was written)"
            )
        return arrays, user_header, fmt

    def _read_npy(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> np.ndarray:
        with zf.open(info) as fp:
            version = npy_format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(fp)
            else:
                raise self.fail(f"{what} uses .npy format version {version}, which convscope does not write")
            if dtype.hasobject:
                raise self.fail(
                    f"{what} is an object array (dtype {dtype}); loading it would need pickle, "
                    "which convscope never uses"
                )
            if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None:
                raise self.fail(f"{what} has dtype {dtype}, which convscope checkpoints never hold")
            count = math.prod(int(n) for n in shape)
            nbytes = count * dtype.itemsize
            available = info.file_size - fp.tell()
            if nbytes != available:
                raise self.fail(
                    f"{what} promises {nbytes} bytes of data (shape {tuple(shape)}, "
                    f"{dtype}) but its member holds {max(available, 0)} bytes"
                )
            data = fp.read(nbytes)
            if len(data) != nbytes or fp.read(1):
                raise self.fail(f"{what} is truncated")
        array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
        return array.copy()


def load_checkpoint(
    path: Any, *, format: str | None = CHECKPOINT_FORMAT,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_checkpoint`, verifying everything first.

    Args:
        path (str or Path): the file (``.npz`` is tried appended if the name lacks it and
            the path does not exist).
        format (str or None): the format name the file must have; ``None`` accepts any
            convscope format. Default ``"convscope-checkpoint"``.

    Returns:
        ``(arrays, header)``: the arrays (writeable copies, in the order saved) and the
        header dict as saved (tuples come back as lists).

    Raises:
        CheckpointNotFoundError: no such file (also a FileNotFoundError).
        CheckpointError: not a regular file (a directory, FIFO, socket or device is refused
            without being opened), empty, truncated, corrupted, foreign (pickle, plain .npz, PyTorch),
            object arrays, unexpected or missing members, a newer format version (the
            message says to upgrade convscope), or another format than ``format``.
    """
    op = "load_checkpoint"
    if format is not None and (not isinstance(format, str) or not format.startswith("convscope-")):
        raise ConfigError(
            f"{op}: format must be None or a str starting with 'convscope-'; got {format!r}."
        )
    p = _load_path(path, op)
    arrays, header, _ = _Reader(p, op).read(format)
    return arrays, header


# ----------------------------------------------------------------------------------------
# Models: architecture spec + weights
# ----------------------------------------------------------------------------------------
def save(model: Any, path: Any, metadata: Mapping[str, Any] | None = None, *,
         input_shape: Any = None, classes: Any = None) -> Path:
    """Save a model (architecture and weights) to one ``.npz`` file, atomically.

    The file holds ``model.state_dict()`` as arrays and, in its JSON header, the
    architecture spec from ``convscope.nn.to_spec(model)`` (so :func:`load` rebuilds the
    model without user code), the input the model takes (``input_shape``, ``classes``),
    the convscope version and ``metadata``. The input's preprocessing is part of the
    model itself: an :class:`~convscope.nn.Normalize` layer first
    (:func:`convscope.models.add_input_normalization`) is saved as any layer.

    Args:
        model: a convscope ``Module`` whose classes are registered with
            ``convscope.nn.spec.register`` (all built-in modules are).
        path (str or Path): the file; ``.npz`` is appended if the name lacks it.
        metadata (dict, optional): JSON data kept with the model, e.g. training history,
            dataset name, test accuracy.
        input_shape (tuple of int, optional): the shape of one input without the batch
            axis, e.g. ``(1, 28, 28)``; default ``model.input_shape`` if the model has
            one (:func:`load` sets it), else ``metadata["image_shape"]``. ``convscope
            predict`` and ``evaluate`` read images at this shape.
        classes (list of str, optional): the class names, one per output; default
            ``model.classes``, else ``metadata["classes"]``.

    Returns:
        Path: the path written.

    Raises:
        ArgumentTypeError: ``model`` is not a Module, or metadata is not JSON data.
        ConfigError: a module class that cannot be described by a spec, an
            ``input_shape`` that is not positive ints, or ``classes`` that are not names.
        ShapeError: the model does not take inputs of ``input_shape``, or gives another
            number of outputs than there are ``classes``.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from convscope import nn
        >>> model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU())
        >>> path = save(model, pathlib.Path(tempfile.mkdtemp()) / "tiny", {"note": "demo"})
        >>> again, info = load(path, return_metadata=True)
        >>> x = np.ones((1, 3), dtype=np.float32)
        >>> bool(np.array_equal(model(x), again(x))), info
        (True, {'note': 'demo'})
    """
    from .._version import __version__
    from ..nn import Module, to_spec

    op = "save"
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"{op}: model must be a convscope.nn.Module; got {type(model).__name__}.")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ArgumentTypeError(f"{op}: metadata must be a dict or None; got {type(metadata).__name__}.")
    spec = to_spec(model)
    checked_metadata = to_jsonable(dict(metadata or {}), where="metadata", op=op)
    sc.validate(checked_metadata, MODEL_METADATA_SCHEMA, f"{op}: metadata", ArgumentTypeError)
    header = {
        "spec": spec,
        "metadata": checked_metadata,
        "input": _model_input(model, dict(metadata or {}), input_shape, classes, op),
        "convscope_version": __version__,
    }
    return save_checkpoint(path, model.state_dict(), header, format=MODEL_FORMAT)


def _numbers(positive: bool = False) -> sc.Schema:
    return sc.OneOf(sc.Float(positive=positive), sc.List(sc.Float(positive=positive), 1, 4096))


#: The metadata entries convscope's own tools read (``convscope train`` writes them; predict,
#: summary, evaluate, explain and export use them). Other entries are free JSON data.
MODEL_METADATA_SCHEMA = sc.Object(
    {
        "image_shape": sc.List(sc.Int(min=1), min_items=3, max_items=3),
        "classes": sc.List(sc.Str(max_length=1000), max_items=1_000_000),
        "normalize": sc.Nullable(sc.OneOf(
            sc.Object({}), sc.Object({"mean": _numbers(), "std": _numbers(positive=True)}))),
        "dataset": sc.Nullable(sc.Str()),
        "arch": sc.Nullable(sc.Str()),
    },
    optional=("image_shape", "classes", "normalize", "dataset", "arch"),
    extra=sc.JSON(_MAX_HEADER_DEPTH),
)

_MODEL_HEADER_SCHEMA = sc.Object(
    {"spec": sc.Map(sc.JSON(_MAX_HEADER_DEPTH)), "metadata": MODEL_METADATA_SCHEMA,
     "convscope_version": sc.Str(max_length=100),
     "input": sc.Object(
         {"shape": sc.Nullable(sc.List(sc.Int(min=1), min_items=1, max_items=64)),
          "classes": sc.Nullable(sc.List(sc.Str(max_length=1000), max_items=1_000_000))},
         optional=("shape", "classes"))},
    optional=("convscope_version", "input"),
)


def _state_mismatch(expected: Mapping[str, tuple], arrays: Mapping[str, np.ndarray]) -> str:
    """How the arrays of a file differ from the state a spec builds ('' when they fit)."""
    missing = [k for k in expected if k not in arrays]
    unexpected = [k for k in arrays if k not in expected]
    shapes = [
        f"{k}: the architecture has shape {tuple(expected[k][0])}, the file {arrays[k].shape}"
        for k in expected if k in arrays and tuple(expected[k][0]) != arrays[k].shape
    ]
    parts = []
    if missing:
        parts.append(f"missing from the file: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        parts.append(f"not in the architecture: {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    parts.extend(shapes[:5])
    return "; ".join(parts)


def _model_input(model: Any, metadata: dict, input_shape: Any, classes: Any, op: str) -> dict[str, Any]:
    """``{"shape": [C, H, W] | None, "classes": [names] | None}``, checked against the model."""
    from ..errors import ConvscopeError, ShapeError

    if input_shape is None:
        input_shape = getattr(model, "input_shape", None) or metadata.get("image_shape")
    if classes is None:
        classes = getattr(model, "classes", None) or metadata.get("classes")
    shape = None
    if input_shape is not None:
        try:
            shape = [int(v) for v in input_shape]
            ok = bool(shape) and all(v >= 1 and v == w for v, w in zip(shape, input_shape))
        except (TypeError, ValueError):
            ok = False
        if not ok or isinstance(input_shape, (str, bytes)):
            raise ConfigError(
                f"{op}: input_shape must be the shape of one input without the batch axis, positive "
                f"ints such as (1, 28, 28); got {input_shape!r}."
            )
    names = None
    if classes is not None:
        if isinstance(classes, (str, bytes)) or not all(isinstance(c, (str, int)) for c in classes):
            raise ConfigError(f"{op}: classes must be a list of class names (str); got {classes!r}.")
        names = [str(c) for c in classes]
    if shape is not None:
        try:
            out = model.output_shape((1, *shape))
        except ShapeError as exc:
            raise ShapeError(f"{op}: the model does not take inputs of input_shape {tuple(shape)}: {exc}") from None
        except ConvscopeError:  # a module that does not say how it changes shapes
            out = None
        if names is not None and out is not None and len(out) == 2 and out[1] != len(names):
            raise ShapeError(
                f"{op}: the model gives {out[1]} outputs per input but {len(names)} classes were "
                f"given ({names[:5]}{' ...' if len(names) > 5 else ''}); give one name per output."
            )
    return {"shape": shape, "classes": names}


def load(path: Any, *, return_metadata: bool = False) -> Any:
    """Rebuild a model saved by :func:`save`: architecture from the spec, then the weights.

    Args:
        path (str or Path): the file (``.npz`` is tried appended if needed).
        return_metadata (bool): also return the saved metadata dict. Default False.

    Returns:
        The model (built fresh, in training mode as any new model; call ``model.eval()``
        for inference), or ``(model, metadata)`` with ``return_metadata=True``. The model
        has the attributes ``input_shape`` (one input without the batch axis, or None when
        the file does not record it) and ``classes`` (the class names, or None). A model
        that standardises its inputs does it itself (its first layer is an
        :class:`~convscope.nn.Normalize`): feed it raw pixels. A file written by an
        older ``convscope train`` keeps the statistics in ``metadata["normalize"]`` and
        loads as it was saved, with a warning that says how to make them part of the
        model (:func:`convscope.nn.with_input_normalization`).

    Before any layer is built, the header is checked against a schema (the spec, and
    the metadata entries of :data:`MODEL_METADATA_SCHEMA`), and the spec is built as a dry
    run (:func:`convscope.nn.state_shapes`): its parameters must fit the array limit and
    match the names and shapes of the arrays in the file.

    Raises:
        CheckpointNotFoundError: no such file.
        CheckpointError: everything :func:`load_checkpoint` rejects, a training checkpoint
            instead of a model file, a header entry of the wrong type, or a spec/weights
            that do not rebuild a model.
        ResourceError: the stored architecture would need more memory than the array
            limit (:func:`convscope.settings.set_array_limit` raises it).
    """
    from ..errors import ConvscopeError, ResourceError
    from ..nn import from_spec, state_shapes

    op = "load"
    p = _load_path(path, op)
    arrays, header, _ = _Reader(p, op).read(MODEL_FORMAT)
    spec, metadata = header.get("spec"), header.get("metadata")
    if not isinstance(spec, dict) or not isinstance(metadata, dict):
        raise CheckpointError(
            f"{op}: {str(p)!r} is not a valid convscope model file: its header lacks the "
            "architecture 'spec' or the 'metadata' dict."
        )
    sc.validate(header, _MODEL_HEADER_SCHEMA, "the header", _Reader(p, op).fail)
    try:
        expected = state_shapes(spec)
        mismatch = "" if expected is None else _state_mismatch(expected, arrays)
        if not mismatch:
            model = from_spec(spec)
    except ResourceError as exc:
        raise ResourceError(f"{op}: the architecture stored in {str(p)!r} is too large: {exc}") from None
    except ConvscopeError as exc:
        raise CheckpointError(
            f"{op}: the architecture stored in {str(p)!r} could not be rebuilt: {exc}"
        ) from exc
    if mismatch:
        raise CheckpointError(
            f"{op}: the weights stored in {str(p)!r} do not fit the stored architecture: {mismatch}."
        )
    try:
        model.load_state_dict(arrays)
    except ConvscopeError as exc:
        raise CheckpointError(
            f"{op}: the weights stored in {str(p)!r} do not fit the stored architecture: {exc}"
        ) from exc
    model = _with_input(model, header.get("input"), metadata)
    return (model, metadata) if return_metadata else model


def _with_input(model: Any, stored: Any, metadata: dict) -> Any:
    """Set ``model.input_shape`` / ``model.classes``; warn about an old file's normalisation.

    Files written before the input travelled with the model keep the shape and class
    names in ``metadata["image_shape"]`` / ``["classes"]`` and, from ``convscope train``,
    the normalisation in ``metadata["normalize"]``, which such a model does not apply.
    """
    import warnings

    from ..nn import input_normalization

    stored = stored if isinstance(stored, dict) else {}
    shape = stored.get("shape") or metadata.get("image_shape")
    classes = stored.get("classes") or metadata.get("classes")
    norm = metadata.get("normalize")
    if isinstance(norm, dict) and input_normalization(model) is None:
        warnings.warn(
            "this model file (from an earlier convscope train) keeps its input normalisation in "
            "metadata['normalize'], and the model does not apply it: feed it normalised images, or "
            "make it part of the model with model = convscope.nn.with_input_normalization(model, "
            "**metadata['normalize']) and save it again.", UserWarning, stacklevel=3,
        )
    model.input_shape = tuple(int(v) for v in shape) if shape else None
    model.classes = [str(c) for c in classes] if classes else None
    return model
