"""Bounded readers for the on-disk dataset formats: IDX and the CIFAR-10 binary version.

Every reader here knows, before it reads, the largest number of bytes it will accept,
and never reads past it: an IDX header states its item count (checked against a limit
before any data is read), a CIFAR-10 batch holds at most ``max_records`` records of
3,073 bytes. A decompression bomb, a header that promises more items than the file holds,
a truncated or padded file, or out-of-range labels all raise :class:`DataError` with the
file name, what was expected and what was found. Compression is recognised by the file's
first bytes (gzip ``1f 8b``, xz ``fd 37 7a 58 5a 00``), not by its name. Nothing is
unpickled.

Formats:
    IDX (MNIST, Fashion-MNIST): big-endian; bytes 0-1 are zero, byte 2 the element
    type (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64),
    byte 3 the number of dimensions; then one big-endian uint32 per dimension; then
    the elements in row-major order.

    CIFAR-10 binary version: records of 1 label byte (0..9) followed by 3,072 pixel
    bytes (1,024 red, 1,024 green, 1,024 blue, each a 32x32 plane row-major), so a
    record reshapes directly to channels-first (3, 32, 32).

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> _ = path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9]))
    >>> read_idx(path)
    array([7, 0, 9], dtype=uint8)
"""

from __future__ import annotations

import gzip
import io
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, cast

import numpy as np

from ..errors import DataError, ResourceError
from ..files import as_path, check_readable
from ..shapes import normalize_int

__all__ = [
    "IDX_DTYPES",
    "CIFAR_RECORD_BYTES",
    "CIFAR_BATCH_RECORDS",
    "DEFAULT_MAX_BYTES",
    "open_data_file",
    "read_idx",
    "parse_cifar_records",
    "read_cifar_binary",
    "read_cifar_tar",
]

#: IDX element type codes and their big-endian NumPy dtypes.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

#: Bytes of one CIFAR-10 binary record: 1 label byte + 3 * 32 * 32 pixel bytes.
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32

#: Records in one file of the official distribution (data_batch_1..5, test_batch).
CIFAR_BATCH_RECORDS = 10_000

#: Default ceiling on the data bytes any one IDX file may declare (1 GiB).
DEFAULT_MAX_BYTES = 1 << 30

_GZIP_MAGIC = b"\x1f\x8b"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_CHUNK = 1 << 22
# Read buffers start at most this large (64 MiB: every MNIST/CIFAR file fits) and double.
_FIRST_BUFFER = 1 << 26
# Errors a damaged compressed stream raises while it is being read.
_STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, tarfile.TarError)


def _compression(head: bytes) -> str:
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    return "none"


@contextmanager
def open_data_file(path: str | Path) -> Iterator[BinaryIO]:
    """Open a data file for reading, decompressing gzip or xz as its first bytes say.

    Args:
        path: the file. Plain, gzip (``.gz``) or xz (``.xz``) content is recognised by
            its magic bytes, so a misnamed file still opens correctly.

    Yields:
        A binary stream of the (decompressed) content. Reading it may raise the
        decompressor's own errors; :func:`read_idx` and :func:`read_cifar_binary` turn
        those into :class:`DataError`.

    Raises:
        DataError: the path does not exist, is not a regular file (a FIFO or device is
            refused without being opened), or cannot be opened.

    Example:
        >>> import tempfile, pathlib, gzip
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "misnamed.bin"
        >>> _ = path.write_bytes(gzip.compress(b"hello"))
        >>> with open_data_file(path) as f:
        ...     f.read()
        b'hello'
    """
    path = check_readable(path, "data file")
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise DataError(f"could not open {path}: {exc}.") from None
    with raw, _decompressed(raw) as stream:
        yield stream


@contextmanager
def _decompressed(raw: BinaryIO) -> Iterator[BinaryIO]:
    """``raw`` (a binary file at its start) decompressed as its first bytes say."""
    kind = _compression(raw.read(6))
    raw.seek(0)
    if kind == "gzip":
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    elif kind == "xz":
        stream = lzma.LZMAFile(raw, mode="rb")  # type: ignore[assignment]
    else:
        stream = raw
    try:
        yield stream
    finally:
        if stream is not raw:
            stream.close()


def _read_up_to(stream: IO[bytes], n: int, what: str) -> tuple[np.ndarray, int]:
    """Read at most ``n`` bytes into a fresh uint8 buffer; return (buffer, bytes read).

    The buffer comes from ``np.empty``, whose pages are only committed as they are
    written, so a lying size costs nothing until data actually arrives. Beyond
    ``_FIRST_BUFFER`` bytes it grows by doubling as data arrives: a huge ``n`` (a generous
    limit) must not reserve more address space than the system has.
    """
    # Files, gzip/lzma streams and tar members are all buffered binary readers; typing's
    # IO[bytes] just does not declare readinto.
    reader = cast(io.BufferedIOBase, stream)
    buf = _buffer(min(n, _FIRST_BUFFER), n, what)
    pos = 0
    try:
        while pos < n:
            if pos == buf.size:
                grown = _buffer(min(n, 2 * buf.size), n, what)
                grown[:pos] = buf
                buf = grown
            got = reader.readinto(buf.data[pos : min(buf.size, pos + _CHUNK)])
            if not got:
                break
            pos += got
    except _STREAM_ERRORS as exc:
        raise DataError(
            f"{what}: the file is corrupt or truncated; reading failed after {pos} bytes "
            f"with {type(exc).__name__}: {exc}."
        ) from None
    return buf, pos


def _buffer(size: int, limit: int, what: str) -> np.ndarray:
    """``np.empty(size, uint8)``; an allocation the system refuses is a ResourceError.

    ``limit`` is the most bytes the read may take (what the header declares, bounded by
    the reader's ``max_bytes`` / ``max_records``), named in the message.
    """
    try:
        return np.empty(size, dtype=np.uint8)
    except MemoryError:
        raise ResourceError(
            f"{what}: reading its data (up to {limit} bytes, as its header declares and the "
            f"reader's limit allows) needs a buffer of {size} bytes, which the system refused "
            f"(a memory limit such as ulimit -v, or too little free memory). If the file is "
            f"genuine, give the process more memory; otherwise pass a smaller max_bytes= "
            f"(read_idx) or max_records= (CIFAR readers) to refuse such files at once."
        ) from None


def _at_end(stream: BinaryIO, what: str) -> bool:
    try:
        return stream.read(1) == b""
    except _STREAM_ERRORS as exc:
        raise DataError(
            f"{what}: the file is corrupt after its declared data ({type(exc).__name__}: {exc})."
        ) from None


def _raw_size(stream: BinaryIO) -> int | None:
    """Size in bytes of an uncompressed regular file, or None when it cannot be known."""
    if isinstance(stream, (gzip.GzipFile, lzma.LZMAFile)):
        return None
    try:
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
        return end
    except (OSError, AttributeError):
        return None


def read_idx(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read one IDX file (MNIST and Fashion-MNIST images or labels), plain or compressed.

    Args:
        path: the file (raw, gzip or xz).
        max_bytes: the largest data size (product of the dimensions times the element
            size) the header may declare; larger declarations are refused before any
            data is read. Default 1 GiB.

    Returns:
        An array with the header's dimensions in native byte order; uint8 for MNIST.

    Raises:
        DataError: wrong magic number, unknown element type, zero dimensions, a declared
            size above ``max_bytes``, fewer data bytes than the header promises
            (truncated), bytes after the declared data, or a corrupt compressed stream.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "images-idx3-ubyte"
        >>> header = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") * 3
        >>> _ = path.write_bytes(header + bytes(range(8)))
        >>> read_idx(path).shape
        (2, 2, 2)
    """
    max_bytes = normalize_int(max_bytes, "max_bytes", "read_idx", minimum=1)
    path = as_path(path, "read_idx")
    what = f"IDX file {path}"
    with open_data_file(path) as stream:
        head, got = _read_up_to(stream, 4, what)
        if got < 4:
            raise DataError(f"{what}: expected a 4-byte IDX header, but the file has {got} bytes.")
        zero0, zero1, code, ndim = (int(b) for b in head)
        if zero0 or zero1 or code not in IDX_DTYPES or not 1 <= ndim <= 8:
            raise DataError(
                f"{what}: not an IDX file. Expected the magic number 00 00 <type> <ndim> with "
                f"type one of {', '.join(f'{c:02x}' for c in IDX_DTYPES)} and 1 <= ndim <= 8; "
                f"got {zero0:02x} {zero1:02x} {code:02x} {ndim:02x}. MNIST images start "
                f"00 00 08 03, labels 00 00 08 01."
            )
        dims_raw, got = _read_up_to(stream, 4 * ndim, what)
        if got < 4 * ndim:
            raise DataError(
                f"{what}: the header declares {ndim} dimensions ({4 * ndim} bytes of sizes), "
                f"but the file ends after {4 + got} bytes: it is truncated."
            )
        dims = tuple(int(d) for d in dims_raw.view(">u4"))
        dtype = np.dtype(IDX_DTYPES[code])
        items = int(np.prod(dims, dtype=object))
        nbytes = items * dtype.itemsize
        if items == 0:
            raise DataError(f"{what}: the header declares dimensions {dims} with no items.")
        if nbytes > max_bytes:
            raise DataError(
                f"{what}: the header declares dimensions {dims} = {nbytes} bytes of data, "
                f"more than the limit max_bytes={max_bytes}. Refusing to read it: the header "
                f"is corrupt or the file is a decompression bomb."
            )
        size = _raw_size(stream)
        header_bytes = 4 + 4 * ndim
        if size is not None and size - header_bytes < nbytes:
            raise DataError(
                f"{what}: the header promises {dims[0]} items (dimensions {dims}, {nbytes} "
                f"data bytes), but the file holds only {size - header_bytes} data bytes: it "
                f"is truncated or the header is wrong."
            )
        data, got = _read_up_to(stream, nbytes, what)
        if got < nbytes:
            per_item = nbytes // dims[0]
            raise DataError(
                f"{what}: the header promises {dims[0]} items (dimensions {dims}, {nbytes} "
                f"data bytes), but the data ends after {got} bytes ({got // per_item} complete "
                f"items): the file is truncated."
            )
        if not _at_end(stream, what):
            raise DataError(
                f"{what}: the file continues after the {nbytes} data bytes its header "
                f"declares (dimensions {dims}); it is not a well-formed IDX file."
            )
    array = data.view(dtype).reshape(dims)
    if not dtype.isnative:  # swap in place: no second copy of a large file
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array


def parse_cifar_records(
    data: np.ndarray, what: str, *, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Split raw CIFAR-10 binary bytes into images (N, 3, 32, 32) uint8 and labels int64.

    Args:
        data: 1-D uint8 array of whole records (1 label byte + 3,072 pixel bytes each).
        what: how to name the source in error messages.
        num_classes: labels must lie in 0..num_classes-1.

    Raises:
        DataError: empty data, a size that is not a multiple of 3,073, or a label out of
            range.

    Example:
        >>> record = np.concatenate([[3], np.zeros(3072, np.uint8)]).astype(np.uint8)
        >>> images, labels = parse_cifar_records(record, "example")
        >>> images.shape, labels
        ((1, 3, 32, 32), array([3]))
    """
    n = data.size
    if n == 0:
        raise DataError(f"{what}: expected CIFAR-10 binary records, but the data is empty.")
    if n % CIFAR_RECORD_BYTES:
        hint = ""
        if n % (CIFAR_RECORD_BYTES + 1) == 0:
            hint = " Its size fits 3,074-byte records: CIFAR-100's binary version has 2 label bytes."
        raise DataError(
            f"{what}: size {n} bytes is not a multiple of {CIFAR_RECORD_BYTES} (1 label byte + "
            f"3,072 pixel bytes per record); {n // CIFAR_RECORD_BYTES} whole records and "
            f"{n % CIFAR_RECORD_BYTES} bytes left over. The file is truncated or not the "
            f"CIFAR-10 binary version.{hint}"
        )
    records = data.reshape(-1, CIFAR_RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise DataError(
            f"{what}: labels must lie in 0..{num_classes - 1}, but record {int(bad[0])} has "
            f"label {int(labels[bad[0]])} ({bad.size} records out of range). The file is "
            f"corrupt or not CIFAR-10."
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    return images, labels


def read_cifar_binary(
    path: str | Path, *, max_records: int = CIFAR_BATCH_RECORDS, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file (``.bin``, ``.bin.gz`` or ``.bin.xz``).

    Args:
        path: the file.
        max_records: the most records accepted (10,000 in the official batches); at most
            ``max_records * 3073`` bytes are decompressed.
        num_classes: labels must lie in 0..num_classes-1.

    Returns:
        (images, labels): uint8 (N, 3, 32, 32) channels-first, and int64 (N,).

    Raises:
        DataError: missing file, corrupt compressed stream, more than ``max_records``
            records, a size not a multiple of 3,073, or labels out of range.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "test_batch.bin"
        >>> _ = path.write_bytes(bytes([9]) + bytes(3072) + bytes([1]) + bytes(3072))
        >>> images, labels = read_cifar_binary(path)
        >>> images.shape, labels.tolist()
        ((2, 3, 32, 32), [9, 1])
    """
    max_records = normalize_int(max_records, "max_records", "read_cifar_binary", minimum=1)
    num_classes = normalize_int(num_classes, "num_classes", "read_cifar_binary", minimum=1)
    path = as_path(path, "read_cifar_binary")
    what = f"CIFAR-10 file {path}"
    cap = max_records * CIFAR_RECORD_BYTES
    with open_data_file(path) as stream:
        data, got = _read_up_to(stream, cap, what)
        if got == cap and not _at_end(stream, what):
            raise DataError(
                f"{what}: holds more than max_records={max_records} records "
                f"({cap} bytes); refusing to read further (official batches hold "
                f"{CIFAR_BATCH_RECORDS}). Raise max_records if the file is genuine."
            )
    return parse_cifar_records(data[:got], what, num_classes=num_classes)


#: The largest long-name or pax extended header accepted in a tar archive (tarfile reads
#: such a header's whole content into memory before showing the member it describes).
MAX_TAR_HEADER = 1 << 16

_TAR_HEADER_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                     tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


class _BoundedTarInfo(tarfile.TarInfo):
    """A tar header that refuses long-name and pax headers above :data:`MAX_TAR_HEADER`."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _BoundedTarInfo:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _TAR_HEADER_TYPES and info.size > MAX_TAR_HEADER:
            raise DataError(
                f"the archive has a long-name or extended header of {info.size} bytes, more "
                f"than the {MAX_TAR_HEADER} any genuine archive needs (the CIFAR-10 archive's "
                f"are under 1 KiB); refusing to read it into memory. The archive is corrupt or "
                f"hostile."
            )
        return info


def read_cifar_tar(
    path: str | Path,
    names: list[str],
    *,
    max_records: int = CIFAR_BATCH_RECORDS,
    num_classes: int = 10,
    extra_text: tuple[str, ...] = ("batches.meta.txt",),
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """Read CIFAR-10 batch files straight out of ``cifar-10-binary.tar.gz``, in one pass.

    Members are matched by base name inside ``cifar-10-batches-bin/`` (or at the top
    level). Nothing is extracted to disk, so member paths cannot escape anywhere.

    Args:
        path: the archive (gzip, xz, bz2 or plain tar).
        names: member base names wanted, e.g. ``["test_batch.bin"]``.
        max_records: the most records accepted per member.
        num_classes: labels must lie in 0..num_classes-1.
        extra_text: small text members to return too when present (at most 64 KiB each).

    Returns:
        (batches, texts): ``batches[name] = (images, labels)`` for every wanted name;
        ``texts[name]`` for the ``extra_text`` members found.

    Raises:
        DataError: not a readable archive, a wanted member missing, not a regular file
            or larger than ``max_records`` records, more archive content scanned than the
            official archive holds (a tar bomb), or any error of the records themselves.

    Example:
        >>> import tempfile, pathlib, tarfile, io
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "cifar-10-binary.tar.gz"
        >>> payload = bytes([4]) + bytes(3072)
        >>> with tarfile.open(path, "w:gz") as tar:
        ...     info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        ...     info.size = len(payload)
        ...     tar.addfile(info, io.BytesIO(payload))
        >>> batches, _ = read_cifar_tar(path, ["test_batch.bin"])
        >>> batches["test_batch.bin"][1]
        array([4])
    """
    max_records = normalize_int(max_records, "max_records", "read_cifar_tar", minimum=1)
    num_classes = normalize_int(num_classes, "num_classes", "read_cifar_tar", minimum=1)
    path = check_readable(path, "CIFAR-10 archive", op="read_cifar_tar")
    wanted = set(names)
    member_cap = max_records * CIFAR_RECORD_BYTES
    # The official archive unpacks to about 184 MB; anything far beyond the members we
    # could want is not CIFAR-10 and is not worth decompressing.
    scan_cap = (len(wanted) + 2) * member_cap + (1 << 20)
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    texts: dict[str, str] = {}
    scanned = 0
    seen: list[str] = []
    try:
        with tarfile.open(path, "r:*", tarinfo=_BoundedTarInfo) as tar:
            for member in tar:
                scanned += max(member.size, 0)
                if scanned > scan_cap:
                    raise DataError(
                        f"CIFAR-10 archive {path}: more than {scan_cap} bytes of content "
                        f"before all of {sorted(wanted - set(batches))} were found; the "
                        f"official archive is about 184 MB. Refusing to decompress further."
                    )
                name = member.name
                while name.startswith("./"):
                    name = name[2:]
                folder, base = posixpath.split(name)
                seen.append(member.name)
                if folder not in ("", "cifar-10-batches-bin"):
                    continue
                what = f"member {member.name} of CIFAR-10 archive {path}"
                if base in wanted or base in extra_text:
                    if not member.isfile():
                        raise DataError(f"{what}: expected a regular file, got a link or folder.")
                    limit = member_cap if base in wanted else 1 << 16
                    if member.size > limit:
                        raise DataError(
                            f"{what}: declares {member.size} bytes, more than the limit of "
                            f"{limit} ({max_records} records for a batch); refusing to read it."
                        )
                    stream = tar.extractfile(member)
                    if stream is None:
                        raise DataError(f"{what}: the archive gives no content for it.")
                    data, got = _read_up_to(stream, member.size, what)
                    if got < member.size:
                        raise DataError(
                            f"{what}: declares {member.size} bytes but only {got} could be "
                            f"read: the archive is truncated."
                        )
                    if base in wanted:
                        batches[base] = parse_cifar_records(data, what, num_classes=num_classes)
                    else:
                        texts[base] = data.tobytes().decode("utf-8", errors="replace")
                if wanted <= set(batches) and all(t in texts for t in extra_text):
                    break
    except DataError as exc:
        text = str(exc)
        raise DataError(text if str(path) in text else f"CIFAR-10 archive {path}: {text}") from None
    except _STREAM_ERRORS as exc:
        raise DataError(
            f"CIFAR-10 archive {path}: not a readable tar archive or corrupt "
            f"({type(exc).__name__}: {exc})."
        ) from None
    missing = sorted(wanted - set(batches))
    if missing:
        shown = ", ".join(seen[:10]) + (" ..." if len(seen) > 10 else "")
        raise DataError(
            f"CIFAR-10 archive {path}: expected members cifar-10-batches-bin/"
            f"{{{', '.join(missing)}}}, but they are not in it (found: {shown or 'nothing'})."
        )
    return batches, texts
