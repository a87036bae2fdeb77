"""Threads for convscope's own work: the batch chunks of a convolution run side by side.

NumPy's matrix product (BLAS) can use several cores, but it is only part of a convolution:
gathering the windows (im2col), adding their gradients back (col2im) and copying the
products out are plain NumPy copies that run on one core. With ``set_num_threads(n)``
(``n > 1``) convscope instead hands the batch's sample groups to ``n`` threads, each doing
the whole pipeline (copies *and* its own one-thread matrix products) for its share; NumPy
releases the interpreter lock inside copies, ufuncs and BLAS, so the threads really run at
once. During such a region the BLAS library is held to one thread (through
``threadpoolctl``, which ``convscope[train]`` installs), so the two levels of threading do not
fight over the cores; it is restored right after.

The default is 1: convscope runs serially and BLAS keeps whatever thread count it has
(that was the fastest setting on a busy two-core machine, see ``BENCHMARKS.md``).
Results depend on the thread count only through rounding: the batch is cut into more
groups (so BLAS blocks its products differently) and the filter gradient's partial sums
are added in another order (relative differences near 1e-7 in float32).

Example:
    >>> import convscope
    >>> convscope.get_num_threads()
    1
    >>> with convscope.num_threads(1):
    ...     convscope.get_num_threads()
    1
    >>> convscope.set_num_threads(0)
    Traceback (most recent call last):
    ...
    convscope.errors.ConfigError: set_num_threads: the number of threads must be a positive int (1 = serial); got 0.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .errors import ConfigError, MissingDependencyError

__all__ = ["set_num_threads", "get_num_threads", "num_threads", "run_parallel", "split_evenly"]

_threads = 1
_pool: ThreadPoolExecutor | None = None
_blas: list | None = None  # threadpoolctl controllers of the loaded BLAS libraries
_lock = threading.Lock()
_active = threading.local()  # set inside a parallel region (nested regions run serially)


def _blas_controllers() -> list:
    """The BLAS libraries NumPy (and whatever else is loaded) uses, via threadpoolctl."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            raise MissingDependencyError(
                "set_num_threads: running convscope's work on several threads needs threadpoolctl "
                "to hold BLAS to one thread per worker (pip install threadpoolctl, or pip install "
                '"convscope[train]"); without it only 1 thread is available.'
            ) from None
        _blas = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _blas


def _check(n: Any, op: str) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"{op}: the number of threads must be a positive int (1 = serial); got {n!r}.")
    return int(n)


def set_num_threads(n: int) -> None:
    """Run convscope's batch chunks on ``n`` threads (1 = serially, the default).

    Args:
        n: positive int. More threads than cores only adds switching.

    Raises:
        ConfigError: ``n`` is not a positive int.
        MissingDependencyError: ``n > 1`` and threadpoolctl is not installed.
    """
    global _threads, _pool
    n = _check(n, "set_num_threads")
    if n > 1:
        _blas_controllers()
    with _lock:
        if _pool is not None and n != _threads:
            _pool.shutdown(wait=True)
            _pool = None
        _threads = n


def get_num_threads() -> int:
    """The number of threads convscope's own parallel work uses (see :func:`set_num_threads`)."""
    return _threads


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """:func:`set_num_threads` for the ``with`` block only; the previous value comes back after."""
    n = _check(n, "num_threads")
    before = _threads
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(before)


def split_evenly(items: Sequence, parts: int) -> list[list]:
    """``items`` cut into at most ``parts`` consecutive runs of nearly equal length.

    >>> split_evenly(list(range(5)), 2)
    [[0, 1, 2], [3, 4]]
    >>> split_evenly([1], 3)
    [[1]]
    """
    items = list(items)
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    runs, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        runs.append(items[start:stop])
        start = stop
    return runs


def workers() -> int:
    """How many threads a parallel region would use right now (1 inside a region)."""
    return 1 if getattr(_active, "on", False) else _threads


def run_parallel(tasks: Sequence[Callable[[], Any]]) -> list:
    """Run the callables side by side (the first on the calling thread) and return their
    results in order; BLAS is held to one thread until all have finished.

    A task's exception is raised here after every task has stopped.

    >>> run_parallel([lambda: 1, lambda: 2])
    [1, 2]
    """
    if len(tasks) <= 1 or workers() == 1:
        return [task() for task in tasks]
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, _threads - 1), thread_name_prefix="convscope")
        pool = _pool
    blas = _blas_controllers()
    saved = [lib.get_num_threads() for lib in blas]
    for lib in blas:
        lib.set_num_threads(1)
    _active.on = True
    try:
        futures = [pool.submit(_in_region, task) for task in tasks[1:]]
        first_error = None
        try:
            results = [tasks[0]()]
        except BaseException as exc:  # still wait for the others before restoring BLAS
            first_error, results = exc, [None]
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return results
    finally:
        _active.on = False
        for lib, n in zip(blas, saved):
            lib.set_num_threads(n)


def _in_region(task: Callable[[], Any]) -> Any:
    _active.on = True
    try:
        return task()
    finally:
        _active.on = False
