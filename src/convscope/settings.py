"""Process-wide settings of convscope, in one place.

Every setting that holds for the whole process lives here, and nowhere else:

* **threads**: how many threads convscope's own work runs on (:func:`set_num_threads`,
  :func:`get_num_threads`, :func:`num_threads`; default: the machine's cores, as PyTorch
  does, see :func:`default_num_threads`; see :mod:`convscope.parallel` and
  :mod:`convscope.train.data_parallel` for what runs side by side), with the worker pool and
  the BLAS controllers that go with it;
* **workspace budget**: the bytes one window matrix (im2col buffer) may take
  (:func:`set_workspace_budget`, :func:`get_workspace_budget`; default 256 MiB). Work is
  cut into chunks so that no window matrix grows beyond it;
* **array limit**: the bytes the arrays of one operation may take together
  (:func:`set_array_limit`, :func:`get_array_limit`, checked by :func:`check_allocation`;
  default 2 GiB). Larger work is refused with a :class:`~convscope.errors.ResourceError`
  that shows the arithmetic before anything is allocated;
* **caches**: the geometries, plans and index tables that layers reuse every step
  (:func:`cache` makes a named, bounded one; :func:`clear_caches` empties them all);
* **forced paths**: which of two equivalent implementations an op takes, for tests and
  measurements (:func:`force_path`; by default each op chooses by its measured rule);
* **freed memory**: whether the C allocator keeps freed arrays for reuse instead of giving
  them back to the system (:func:`retain_freed_memory`; glibc only; the ``convscope``
  command does it, a program that imports convscope decides for itself).

This module is the bottom layer: it imports only :mod:`convscope.errors`, the standard
library and NumPy (and threadpoolctl, the optional dependency that holds BLAS to one thread,
only when more than one thread is asked for).

The state is one object per process, even when this file is imported a second time under
another module name (pytest's ``--doctest-modules`` in importlib mode can do that): such a
copy uses the state of ``convscope.settings``.

Example:
    >>> from convscope import settings
    >>> old = settings.set_workspace_budget(64 * 2**20)
    >>> settings.get_workspace_budget() // 2**20
    64
    >>> _ = settings.set_workspace_budget(old)
    >>> with settings.force_path(transposed_dx=False):
    ...     settings.forced("transposed_dx")
    False
    >>> settings.forced("transposed_dx") is None
    True
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import importlib
import importlib.util
import math
import os
import platform
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .errors import ArgumentTypeError, ConfigError, MissingDependencyError, ResourceError

__all__ = [
    "set_num_threads",
    "default_num_threads",
    "get_num_threads",
    "num_threads",
    "blas_controllers",
    "get_workspace_budget",
    "set_workspace_budget",
    "get_array_limit",
    "set_array_limit",
    "check_allocation",
    "cache",
    "clear_caches",
    "retain_freed_memory",
    "force_path",
    "forced",
    "PATHS",
]

#: The switches of :func:`force_path` and the values each accepts (None: the op's own rule).
PATHS: dict[str, tuple[Any, ...]] = {
    # Convolution: the window-matrix layout (see convscope.functional.conv_plan.Plan);
    # "flat" and "batch_last" need stride 1 (other geometries keep "strided").
    "conv_layout": (None, "flat", "batch_last", "strided"),
    # Convolution backward: dx as a transposed convolution (True, where stride 1, one group
    # and zero padding of at most d*(k-1) allow it) or by adding each window's gradient back
    # (col2im, False).
    "transposed_dx": (None, True, False),
    # Convolution forward: the bias as one more row of the matrix product (True, one group)
    # or added while copying the products out (False).
    "fold_bias": (None, True, False),
    # Convolution called on its own with several threads: split its sample groups over them
    # (True) or run serially (False) regardless of its size (None: split only where the
    # measured rule of conv_plan.Plan.split_threads says it pays).
    "conv_split": (None, True, False),
    # Convolution forward: one sample per matrix product written straight into y (True),
    # the chunked layouts (False), or the measured rule (None, conv_plan.use_direct_forward).
    "conv_direct": (None, True, False),
    # Blur pooling: one matrix product per axis (True, planes up to 64 per axis) or one
    # slice pass per filter tap (False).
    "blur_matrix": (None, True, False),
    # Training steps and inference with several threads: shards of the batch on worker
    # processes (Linux), on threads, or the whole batch serially (None: the rule of
    # convscope.train.data_parallel.plan, which weighs the shard's work).
    "data_parallel": (None, "processes", "threads", "serial"),
}


class Cache(dict):
    """A remembered-results table that empties itself when it reaches ``limit`` entries.

    Read with ``get`` (a plain dict lookup, fast on every call), fill with :meth:`put`.
    """

    def __init__(self, name: str, limit: int) -> None:
        super().__init__()
        self.name = name
        self.limit = limit

    def put(self, key: Any, value: Any) -> Any:
        """Remember ``value`` under ``key`` (emptying the table first when full); return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


def default_num_threads() -> int:
    """The thread count convscope starts with: the cores this process may run on
    (``os.sched_getaffinity``, else ``os.cpu_count()``), as PyTorch does; 1 when
    threadpoolctl (needed to hold BLAS to one thread per worker) is not installed.

    :func:`set_num_threads` (and ``--threads`` on the command line) override it.

    >>> default_num_threads() >= 1
    True
    """
    if importlib.util.find_spec("threadpoolctl") is None:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores)


class _State:
    """Everything process-wide (see the module docstring)."""

    def __init__(self) -> None:
        self.threads = default_num_threads()
        self.pool: Any = None  # concurrent.futures.ThreadPoolExecutor, made on first use
        self.blas: list | None = None  # threadpoolctl controllers of the BLAS libraries
        self.lock = threading.Lock()
        self.active = threading.local()  # .on inside a parallel region
        self.workspace_budget = 256 * 2**20
        self.array_limit = 2 * 2**30
        self.caches: dict[str, Cache] = {}
        self.paths: dict[str, Any] = dict.fromkeys(PATHS)
        # The allocation plan of the innermost ``convscope.nn.init.dry_run`` block (None outside).
        self.allocation_plan: contextvars.ContextVar[Any] = contextvars.ContextVar(
            "convscope_allocation_plan", default=None
        )


def _shared_state() -> _State:
    if __name__ == "convscope.settings":
        return _State()
    return importlib.import_module("convscope.settings")._STATE


_STATE = _shared_state()

#: The allocation plan of the innermost ``convscope.nn.init.dry_run`` block (None outside);
#: one object even when a module is imported twice.
ALLOCATION_PLAN = _STATE.allocation_plan


# ----------------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------------
def _check_threads(n: Any, op: str) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"{op}: the number of threads must be a positive int (1 = serial); got {n!r}.")
    return int(n)


def blas_controllers(refresh: bool = False) -> list:
    """The BLAS libraries NumPy (and whatever else is loaded) uses, via threadpoolctl.

    Args:
        refresh: look the loaded libraries up again (a library loaded since the last look,
            such as the BLAS that comes with ``import torch``, is then held too).

    Raises:
        MissingDependencyError: threadpoolctl is not installed.
    """
    if _STATE.blas is None or refresh:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            raise MissingDependencyError(
                "set_num_threads: running convscope's work on several threads needs threadpoolctl "
                "to hold BLAS to one thread per worker (pip install threadpoolctl, or pip install "
                '"convscope[train]"); without it only 1 thread is available.'
            ) from None
        _STATE.blas = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _STATE.blas


def set_num_threads(n: int) -> None:
    """Run convscope's work on ``n`` threads (1 = serially; the default is the machine's
    cores, :func:`default_num_threads`).

    Training steps and inference (``fit``, ``evaluate``, ``predict``) cut the batch into ``n``
    shards run side by side (:mod:`convscope.train.data_parallel`); a single operation called
    on its own splits its batch chunks where that pays (:mod:`convscope.parallel`).

    Args:
        n: positive int. More threads than cores only adds switching.

    Raises:
        ConfigError: ``n`` is not a positive int.
        MissingDependencyError: ``n > 1`` and threadpoolctl is not installed.
    """
    n = _check_threads(n, "set_num_threads")
    if n > 1:
        blas_controllers(refresh=True)
    with _STATE.lock:
        if _STATE.pool is not None and n != _STATE.threads:
            _STATE.pool.shutdown(wait=True)
            _STATE.pool = None
        _STATE.threads = n


def get_num_threads() -> int:
    """The number of threads convscope's own parallel work uses (see :func:`set_num_threads`)."""
    return _STATE.threads


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """:func:`set_num_threads` for the ``with`` block only; the previous value comes back after."""
    n = _check_threads(n, "num_threads")
    before = _STATE.threads
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(before)


# ----------------------------------------------------------------------------------------
# Workspace budget and array limit
# ----------------------------------------------------------------------------------------
def _check_bytes(nbytes: Any, what: str) -> int:
    if isinstance(nbytes, (bool, np.bool_)) or not isinstance(nbytes, (int, np.integer)) or nbytes < 1:
        raise ConfigError(f"{what} must be a positive int of bytes; got {nbytes!r}.")
    return int(nbytes)


def get_workspace_budget() -> int:
    """Bytes a single window matrix (im2col buffer) may take; default 256 MiB."""
    return _STATE.workspace_budget


def set_workspace_budget(nbytes: int) -> int:
    """Set the window-matrix budget in bytes; returns the previous value.

    Work is split into chunks (over the batch, then over output rows) so that no window
    matrix exceeds this many bytes. A budget smaller than one output row of one sample is
    exceeded by that row (the smallest unit of work).

    >>> old = set_workspace_budget(64 * 2**20); _ = set_workspace_budget(old)
    """
    new = _check_bytes(nbytes, "workspace budget")
    old, _STATE.workspace_budget = _STATE.workspace_budget, new
    return old


def get_array_limit() -> int:
    """Bytes the arrays one operation allocates may take together; default 2 GiB."""
    return _STATE.array_limit


def set_array_limit(nbytes: int) -> int:
    """Set the bytes one operation's arrays may take together; returns the previous value.

    Ops refuse work whose arrays (outputs, padded inputs, index arrays) would exceed it with
    a :class:`~convscope.errors.ResourceError` that shows the arithmetic, instead of trying
    a huge allocation.

    >>> old = set_array_limit(8 * 2**30); _ = set_array_limit(old)
    """
    new = _check_bytes(nbytes, "array limit")
    old, _STATE.array_limit = _STATE.array_limit, new
    return old


def _nbytes(shape: Sequence[int], dtype: Any) -> int:
    # Python ints: a product of NumPy ints could wrap around and pass the check.
    return math.prod(map(int, shape)) * np.dtype(dtype).itemsize


def _size(nbytes: int) -> str:
    """``nbytes`` for a message: GiB or MiB with two decimals, or plain bytes.

    >>> _size(4 * 10**9), _size(3 * 2**20), _size(12000)
    ('3.73 GiB', '3.00 MiB', '12000 bytes')
    """
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.2f} GiB"
    if nbytes >= 2**20:
        return f"{nbytes / 2**20:.2f} MiB"
    return f"{nbytes} bytes"


def check_allocation(shape: Sequence[int], dtype: Any, what: str, op: str,
                     *more: tuple[Sequence[int], Any, str]) -> None:
    """Raise :class:`ResourceError` if the arrays would exceed the array limit together.

    Args:
        shape, dtype, what: the array (its description goes into the message).
        op: the operation's name, for the message.
        more: further ``(shape, dtype, what)`` arrays the operation allocates at the same
            time (e.g. max pooling's argmax indices beside its output); the limit is on
            their sum.

    >>> check_allocation((10**9,), np.float32, "output", "relu")
    Traceback (most recent call last):
    ...
    convscope.errors.ResourceError: relu: the output would need 1000000000 x 4 bytes = 3.73 GiB, over the array limit of 2.00 GiB (convscope.settings.get_array_limit()). Use a smaller batch or input, or raise the limit with convscope.settings.set_array_limit(nbytes).
    """
    total = _nbytes(shape, dtype)
    for s, d, _ in more:
        total += _nbytes(s, d)
    limit = _STATE.array_limit
    if total <= limit:
        return
    arrays = ((shape, dtype, what),) + more
    parts = [
        f"the {w} would need {' x '.join(str(int(v)) for v in s)} x {np.dtype(d).itemsize} bytes"
        for s, d, w in arrays
    ]
    if len(arrays) == 1:
        need = f"{parts[0]} = {_size(total)}"
    else:
        need = f"{', '.join(parts)}: {_size(total)} together"
    raise ResourceError(
        f"{op}: {need}, over the array limit of {_size(limit)} "
        f"(convscope.settings.get_array_limit()). Use a smaller batch or input, or raise the "
        f"limit with convscope.settings.set_array_limit(nbytes)."
    )


# ----------------------------------------------------------------------------------------
# Caches
# ----------------------------------------------------------------------------------------
#: What :func:`retain_freed_memory` sets: arrays up to ``mmap`` bytes come from the heap, and
#: the heap keeps up to ``trim`` free bytes at its top instead of returning them.
_RETAIN = {"mmap": 32 << 20, "trim": 256 << 20}
_MALLOPT = {"trim": -1, "mmap": -3}  # glibc's M_TRIM_THRESHOLD and M_MMAP_THRESHOLD
_MALLOC_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def retain_freed_memory() -> bool:
    """Let glibc keep freed memory in the process for the next allocation, instead of
    handing it back to the system; True if it was set, False where it cannot be (not
    glibc, or ``MALLOC_*`` variables of the environment already decide).

    A training step allocates the same arrays every step (layer outputs, gradients). By
    default glibc returns large freed blocks to the system and the next step's arrays
    arrive as fresh pages, each zero-filled by the kernel on first touch: on the 2-vCPU
    Xeon a LeNet b64 step paid about 1,500 page faults (8.8 ms instead of 7.0) and a
    CIFAR net b128 step about 16,800 (437 ms instead of 406). This sets glibc's
    ``M_MMAP_THRESHOLD`` to 32 MiB (arrays up to that size come from the reusable heap)
    and ``M_TRIM_THRESHOLD`` to 256 MiB (that much free memory may stay with the process),
    the same as the environment variables ``MALLOC_MMAP_THRESHOLD_=33554432
    MALLOC_TRIM_THRESHOLD_=268435456``. The cost: the process's resident memory does not
    shrink below its peak by less than 256 MiB after a large computation. It is process
    wide, so convscope never does it on import; the ``convscope`` command does it for its
    own process (``CONVSCOPE_MALLOC=default`` turns that off).

    Example (a training script, before the first step)::

        convscope.settings.retain_freed_memory()
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _MALLOC_VARIABLES):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(_MALLOPT[key], _RETAIN[key]) == 1 for key in ("mmap", "trim"))


def cache(name: str, limit: int = 1024) -> Cache:
    """The process-wide cache called ``name`` (made on first use, emptied when it holds
    ``limit`` entries). Ops remember what depends only on their arguments' geometry there;
    a cached entry never skips a validation (errors are raised before anything is put)."""
    table = _STATE.caches.get(name)
    if table is None:
        table = _STATE.caches.setdefault(name, Cache(name, limit))
    return table


def clear_caches() -> None:
    """Empty every cache made by :func:`cache` (results do not change; only the next call
    of each geometry works its tables out again)."""
    for table in list(_STATE.caches.values()):
        table.clear()


# ----------------------------------------------------------------------------------------
# Forced paths
# ----------------------------------------------------------------------------------------
def forced(name: str) -> Any:
    """The value :func:`force_path` set for switch ``name`` (None: the op's own rule)."""
    return _STATE.paths[name]


@contextlib.contextmanager
def force_path(**switches: Any) -> Iterator[None]:
    """Make ops take the given implementation paths inside the ``with`` block.

    Each op with two (or more) equivalent implementations picks one by a rule measured on
    the benchmarks; this forces the choice, so tests can run every path on any shape and
    measurements can compare them. Results agree between paths up to rounding. The
    setting is process-wide (every thread sees it) and the previous one comes back after
    the block; the caches are emptied on the way in and out (plans depend on the choice).

    Args:
        **switches: names from :data:`PATHS` with one of their values, None meaning the
            op's own rule:

            * ``conv_layout``: "flat", "batch_last" or "strided" window matrices (the first
              two only where the stride is 1);
            * ``transposed_dx``: the convolution's input gradient as a transposed
              convolution (True, where the geometry allows it) or by col2im (False);
            * ``fold_bias``: the convolution's bias inside the matrix product (True) or
              added on the copy out (False);
            * ``conv_direct``: a convolution's forward one sample per matrix product,
              written straight into the output (True), or in the chunked layouts (False);
            * ``blur_matrix``: blur pooling by matrix products (True, planes up to 64 per
              axis) or by filter-tap passes (False);
            * ``data_parallel``: a training step's (or inference's) shards on worker
              "processes", on "threads", or the batch run "serial".

    Raises:
        ConfigError: an unknown switch or value.

    Example:
        >>> import numpy as np
        >>> from convscope.functional import conv, conv_backward
        >>> x, w = np.ones((1, 2, 5, 5)), np.ones((2, 2, 3, 3))
        >>> with force_path(transposed_dx=False):
        ...     dx = conv_backward(np.ones((1, 2, 3, 3)), x, w)[0]
        >>> bool(np.array_equal(dx, conv_backward(np.ones((1, 2, 3, 3)), x, w)[0]))
        True
    """
    for name, value in switches.items():
        if name not in PATHS:
            raise ConfigError(
                f"force_path: unknown switch {name!r}; the switches are {', '.join(PATHS)}."
            )
        allowed = PATHS[name]
        if isinstance(value, (bool, np.bool_)) != isinstance(allowed[1], bool) and value is not None:
            raise ArgumentTypeError(
                f"force_path: {name} must be one of {allowed}; got {value!r}."
            )
        if value not in allowed:
            raise ConfigError(f"force_path: {name} must be one of {allowed}; got {value!r}.")
    before = dict(_STATE.paths)
    _STATE.paths.update({name: (None if v is None else type(PATHS[name][1])(v)) for name, v in switches.items()})
    clear_caches()
    try:
        yield
    finally:
        _STATE.paths.clear()
        _STATE.paths.update(before)
        clear_caches()
