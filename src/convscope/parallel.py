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

The thread count is a setting of :mod:`convscope.settings` (where ``set_num_threads``,
``get_num_threads`` and ``num_threads`` live; they are re-exported here and by
``convscope``). The default is the machine's cores (:func:`convscope.settings.default_num_threads`),
as PyTorch does. Training steps and inference use the threads one level higher, a whole shard
of the batch per thread (:mod:`convscope.train.data_parallel`); inside a shard every operation
runs serially. This module's splitting is what a single operation called on its own does.
Results depend on the thread count only through rounding: the batch is cut into more
groups (so BLAS blocks its products differently) and the filter gradient's partial sums
are added in another order (relative differences near 1e-7 in float32).

Example:
    >>> import convscope
    >>> convscope.get_num_threads() >= 1
    True
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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np

from . import settings
from .settings import get_num_threads, num_threads, set_num_threads

__all__ = [
    "set_num_threads", "get_num_threads", "num_threads", "run_parallel", "split_evenly",
    "threads_for", "batch_slices", "over_batch", "serial_region",
]

#: Arrays smaller than this are not worth splitting (handing work to a thread costs tens
#: of microseconds; a pass over 1 MiB takes about a hundred).
MIN_PARALLEL_BYTES = 1 << 20

_state = settings._STATE  # thread count, worker pool, BLAS controllers (see convscope.settings)


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
    return 1 if getattr(_state.active, "on", False) else _state.threads


def threads_for(a: np.ndarray) -> int:
    """Threads worth using on a pass over ``a``: :func:`workers`, or 1 below
    ``MIN_PARALLEL_BYTES``.

    >>> threads_for(np.zeros(10))
    1
    """
    return workers() if a.nbytes >= MIN_PARALLEL_BYTES else 1


def batch_slices(x: np.ndarray) -> list:
    """Slices of ``x``'s first axis, one per thread; ``[...]`` (the whole array, 0-d
    included) when running serially or when ``x`` is too small to be worth splitting.

    >>> batch_slices(np.zeros((4, 3)))
    [Ellipsis]
    >>> with num_threads(2):
    ...     batch_slices(np.zeros((5, 1 << 18), dtype=np.float32))
    [slice(0, 3, None), slice(3, 5, None)]
    """
    n = threads_for(x)
    if n == 1 or x.ndim == 0 or x.shape[0] < 2:
        return [...]
    return [slice(run[0], run[-1] + 1) for run in split_evenly(range(x.shape[0]), n)]


def over_batch(fn: Callable[[slice], Any], x: np.ndarray) -> list:
    """``fn(s)`` for every slice ``s`` of :func:`batch_slices` ``(x)``, side by side; the
    results in order (elementwise layers write their slice of a preallocated output)."""
    return run_parallel([partial(fn, s) for s in batch_slices(x)])


def run_parallel(tasks: Sequence[Callable[[], Any]]) -> list:
    """Run the callables side by side (the first on the calling thread) and return their
    results in order; BLAS is held to one thread until all have finished.

    A task's exception is raised here after every task has stopped.

    >>> run_parallel([lambda: 1, lambda: 2])
    [1, 2]
    """
    if len(tasks) <= 1 or workers() == 1:
        return [task() for task in tasks]
    with _state.lock:
        if _state.pool is None:
            _state.pool = ThreadPoolExecutor(max_workers=max(1, _state.threads - 1),
                                             thread_name_prefix="convscope")
        pool = _state.pool
    with serial_region():
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


@contextlib.contextmanager
def serial_region() -> Iterator[None]:
    """Inside the block this thread runs as one worker of a parallel region: ops do not
    split (:func:`workers` is 1) and BLAS is held to one thread (restored afterwards).
    The data-parallel step runs its own shard this way while other threads or processes
    run theirs.

    >>> with serial_region():
    ...     workers()
    1
    """
    blas = settings.blas_controllers()
    saved = [lib.get_num_threads() for lib in blas]
    for lib in blas:
        lib.set_num_threads(1)
    was = getattr(_state.active, "on", False)
    _state.active.on = True
    try:
        yield
    finally:
        _state.active.on = was
        for lib, n in zip(blas, saved):
            lib.set_num_threads(n)


def _in_region(task: Callable[[], Any]) -> Any:
    _state.active.on = True
    try:
        return task()
    finally:
        _state.active.on = False
