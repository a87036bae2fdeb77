"""Streaming one URL into a file, cut off when the server is too slow or sends too much.

:func:`fetch` reads through :mod:`urllib` (so proxies, redirects and ``file://`` work),
with every HTTP(S) connection handed to a watchdog that shuts its socket down at the
deadline: a per-read timeout alone never fires while a server trickles a byte now and
then, and a read blocked in the socket only returns when the socket is shut down.
:mod:`convscope.data.download` verifies and places the result.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import DataError

__all__ = ["Limits", "fetch"]

_READ = 1 << 16  # bytes asked of one read; a read returns what has arrived, up to this


class _Watchdog:
    """Cuts a download off at a set moment by shutting its connection down.

    A per-read timeout never fires while a server trickles a byte now and then; shutting
    the socket down (which, unlike closing it, wakes a read blocked in another thread)
    ends any read at once. The watchdog holds a duplicate of each socket, so the
    connection is reached even after TLS has wrapped the original.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None

    def adopt(self, sock: socket.socket) -> None:
        dup = sock.dup()
        with self._lock:
            self._sockets.append(dup)
            fired = self.reason is not None
        if fired:
            self._shut(dup)

    def arm(self, seconds: float, reason: str) -> None:
        self.disarm()
        self._timer = threading.Timer(max(seconds, 0.0), self.fire, (reason,))
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def fire(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.disarm()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


class _Watched:
    """An HTTP(S) connection whose sockets are handed to a :class:`_Watchdog`."""

    def __init__(self, *args: Any, watchdog: _Watchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        create = self._create_connection  # type: ignore[has-type]

        def create_watched(*a: Any, **k: Any) -> socket.socket:
            sock = create(*a, **k)
            watchdog.adopt(sock)
            return sock

        self._create_connection = create_watched


class _WatchingHandler:
    """A urllib handler whose connections are :class:`_Watched` by ``watchdog``."""

    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self.watchdog = watchdog


class _WatchedHTTP(_Watched, http.client.HTTPConnection):
    pass


class _HTTPHandler(_WatchingHandler, urllib.request.HTTPHandler):
    def http_open(self, req: Any) -> Any:
        return self.do_open(_WatchedHTTP, req, watchdog=self.watchdog)  # type: ignore[arg-type]


if hasattr(http.client, "HTTPSConnection"):  # Python built with ssl
    class _WatchedHTTPS(_Watched, http.client.HTTPSConnection):
        pass

    class _HTTPSHandler(_WatchingHandler, urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            context = self._context  # type: ignore[attr-defined]
            return self.do_open(_WatchedHTTPS, req, context=context, watchdog=self.watchdog)  # type: ignore[arg-type]


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [_HTTPHandler(watchdog)]
    if hasattr(http.client, "HTTPSConnection"):
        handlers.append(_HTTPSHandler(watchdog))
    return urllib.request.build_opener(*handlers)


@dataclass(frozen=True)
class Limits:
    """What one download may take.

    Attributes:
        max_bytes: the most bytes accepted (Content-Length, then the running count).
        timeout: seconds for the complete response headers, for each read of the body,
            and the span over which ``min_rate`` is measured.
        min_rate: bytes per second the body must keep up over every span of ``timeout``.
        deadline: seconds the download may take in all (for the message).
        deadline_at: the ``time.monotonic()`` moment it must be over.
    """

    max_bytes: int
    timeout: float
    min_rate: float
    deadline: float
    deadline_at: float  # time.monotonic() value

    @property
    def too_late(self) -> str:
        return (
            f"the download did not finish within the deadline of {self.deadline:g} s (pass a "
            f"larger deadline= to download_file or download_dataset)"
        )


def fetch(url: str, out: BinaryIO, limits: Limits) -> str:
    """Stream ``url`` into ``out`` within ``limits``; return the SHA-256 of the bytes."""
    request = urllib.request.Request(url, headers={"User-Agent": "convscope"})
    digest = hashlib.sha256()
    total = 0
    dog = _Watchdog()
    left = limits.deadline_at - time.monotonic()
    if limits.timeout < left:
        dog.arm(limits.timeout, f"no complete response headers within the timeout of {limits.timeout:g} s")
    else:
        dog.arm(left, limits.too_late)
    try:
        with _opener(dog).open(request, timeout=limits.timeout) as response:
            dog.arm(limits.deadline_at - time.monotonic(), limits.too_late)
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > limits.max_bytes:
                raise DataError(
                    f"the server announces {int(length)} bytes, more than the {limits.max_bytes} "
                    f"the standard file can have"
                )
            read = getattr(response, "read1", None) or response.read
            span_start, span_bytes = time.monotonic(), 0
            while True:
                chunk = read(_READ)
                if not chunk or dog.reason:
                    break
                total += len(chunk)
                if total > limits.max_bytes:
                    raise DataError(
                        f"the server sent more than {limits.max_bytes} bytes, more than the "
                        f"standard file can have; stopped reading"
                    )
                digest.update(chunk)
                out.write(chunk)
                now = time.monotonic()
                if now >= limits.deadline_at:
                    dog.fire(limits.too_late)
                    break
                span_bytes += len(chunk)
                if now - span_start >= limits.timeout:
                    if span_bytes < limits.min_rate * (now - span_start):
                        raise DataError(
                            f"the server sent {span_bytes} bytes in {now - span_start:.1f} s, "
                            f"slower than the minimum rate of {limits.min_rate:g} bytes/s; cut off "
                            f"(pass a smaller min_rate= to accept slower servers)"
                        )
                    span_start, span_bytes = now, 0
    except DataError:
        raise
    except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError):
        if dog.reason is not None:  # the watchdog's shutdown surfaced as a broken read
            raise DataError(dog.reason) from None
        raise
    finally:
        dog.close()
    if dog.reason is not None:  # a shut-down socket reads as a clean end of data
        raise DataError(dog.reason)
    return digest.hexdigest()
