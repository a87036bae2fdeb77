"""Worker processes for the data-parallel step: shards that share no interpreter lock.

Threads running shards of a batch (:mod:`convscope.train.data_parallel`) only overlap
inside NumPy's large calls; between those calls they queue for the interpreter lock, and a
step made of many small calls (LeNet at batch 64: a few hundred NumPy calls of tens of
microseconds) gains nothing from a second thread, or loses. A process has its own
interpreter, so ``n`` threads' worth of shards run as shard 0 on the calling process and
shards ``1 .. n-1`` on ``n - 1`` worker processes, each with its own copy of the model.

**Start.** Workers are forked from the calling process (Linux only; elsewhere the step
uses threads) when a model first takes a sharded step with a given thread count, so they
inherit the model with nothing serialised, and they live as long as the model (or until
the thread count or the model's arrays change, or a step fails). Each worker holds BLAS to
one thread, ignores Ctrl-C (the calling process handles it) and exits when the calling
process closes its pipe or dies (it checks twice a second).

**Every step** the calling process writes the current weights and buffers into one block
of shared memory (an anonymous ``mmap`` made before the fork, so only the two processes see
it), writes each worker's rows of the batch (and targets) into that worker's own exchange
block, and sends it the loss, the modules' train/eval modes and where the rows lie through a
pipe (arrays too large for the block, or of Python objects, travel in the message itself);
a worker's model reads its weights and buffers straight from that block (its parameters'
arrays are views of it, set once after the fork) and adds its gradients straight into its
own block of shared memory (its gradient arrays are views of that), runs forward, loss and
backward on its rows, writes its output into its exchange block, and answers with the loss
value. The calling process adds the gradients in shard order (its own shard's while the
workers finish), so a step repeats bit for bit for a thread count, and equals the threads'
step (the same shards, the same arithmetic).

**Batch normalisation** stays synchronised (statistics of the whole batch): a worker's
batch-norm layer sends its per-channel sums to the calling process and waits; the calling
process, as shard 0, collects every shard's sums in shard order and sends the list back,
so every shard adds the same numbers in the same order (the exchange of
:class:`~convscope.train.data_parallel._SyncedBatchNorm`, over pipes instead of a barrier).

**Failure.** An exception in a worker travels back and is raised by the step; a worker that
dies is reported with its exit code. Either way the group is closed (its workers ended) and
the next step starts a new one. Every wait checks that the worker is still alive, so a step
never hangs on a dead process.

**Waiting.** A wait first polls its pipe for a short while (``_SPIN_S``) before it blocks:
a step's hand-offs are a fraction of a millisecond apart, and waking a process blocked in
the kernel measured 0.1-0.17 ms per hand-off on the 2-vCPU Xeon (LeNet b64: a 5 ms step).

Nothing here is a file a user loads: the messages are Python objects sent between a
process and its own forked children (``multiprocessing`` pipes).
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import signal
import sys
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import parallel, settings
from ..errors import StateError

__all__ = ["available", "ProcessGroup", "WorkerError"]

#: How long a wait sleeps between checks that the worker is still alive (seconds).
_POLL_S = 0.5
#: The calling process's ends of every worker's pipe (weak): a newly forked worker closes
#: its copies of the others', or a worker whose parent died would keep its siblings' pipes
#: open, and they would wait for a message forever.
_PARENT_ENDS: weakref.WeakSet = weakref.WeakSet()
_ALIGN = 64
#: Bytes of each worker's exchange block (rows, targets and output of a step). The block is
#: an anonymous shared mapping: only the pages a step writes are ever backed by memory.
_EXCHANGE_BYTES = 64 << 20
#: How long a wait polls its pipe before it blocks in the kernel (seconds).
_SPIN_S = 0.002


def _arrived(conn: Any, spin_s: float = _SPIN_S) -> bool:
    """Whether a message is waiting on ``conn``, polling for up to ``spin_s`` seconds."""
    if conn.poll(0):
        return True
    end = time.perf_counter() + spin_s
    while time.perf_counter() < end:
        if conn.poll(0):
            return True
    return False


class _Slot(NamedTuple):
    """Where one array of a message lies in an exchange block (picklable, a few bytes)."""

    offset: int
    shape: tuple[int, ...]
    dtype: str


class _Exchange:
    """Arrays handed between the calling process and one worker through shared memory:
    :meth:`pack` writes them into the block and returns what the message carries instead
    (a :class:`_Slot` per array that fits, the array itself otherwise), :meth:`unpack`
    turns that back into arrays (views of the block: valid until the next :meth:`pack`). A
    worker packs its answer over the rows it was sent: it no longer needs them."""

    def __init__(self, block: mmap.mmap) -> None:
        self.block = block

    def pack(self, arrays: Sequence[Any]) -> list:
        items: list[Any] = []
        offset = 0
        for a in arrays:
            a = np.asarray(a)
            end = offset + a.nbytes
            if a.dtype.hasobject or end > len(self.block):
                items.append(a)  # (through the pipe)
                continue
            np.copyto(np.ndarray(a.shape, dtype=a.dtype, buffer=self.block, offset=offset), a)
            items.append(_Slot(offset, a.shape, a.dtype.str))
            offset = -(-end // _ALIGN) * _ALIGN
        return items

    def unpack(self, items: Sequence[Any]) -> list:
        return [np.ndarray(i.shape, dtype=np.dtype(i.dtype), buffer=self.block, offset=i.offset)
                if isinstance(i, _Slot) else i for i in items]


class WorkerError(StateError):
    """A worker process of the data-parallel step died or could not answer."""


def available() -> bool:
    """Whether worker processes can be used here: Linux, where ``fork`` is the
    dependable way to start them (macOS and Windows take the threads' step)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


class _Layout:
    """Where each array lives in a block of shared memory (offsets aligned to 64 bytes)."""

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        self.entries: list[tuple[int, tuple[int, ...], np.dtype]] = []
        offset = 0
        for a in arrays:
            self.entries.append((offset, a.shape, a.dtype))
            offset += -(-a.nbytes // _ALIGN) * _ALIGN
        self.nbytes = max(offset, _ALIGN)

    def views(self, block: mmap.mmap) -> list[np.ndarray]:
        return [np.ndarray(shape, dtype=dtype, buffer=block, offset=off) for off, shape, dtype in self.entries]


class _Spoke:
    """A worker's side of the batch-norm exchange: send my sums, receive everyone's."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def gather(self, layer: int, phase: str, shard: int, value: Any) -> list:
        self.conn.send(("gather", layer, phase, value))
        _arrived(self.conn)
        reply = self.conn.recv()
        if reply[0] != "parts":  # the calling process gave up on this step
            raise _Abandoned()
        return reply[1]


class _Abandoned(BaseException):
    """Raised in a worker when the calling process abandons the step it is in."""


class _Hub:
    """The calling process's side (shard 0): collect every shard's sums, send the list back."""

    def __init__(self, group: ProcessGroup) -> None:
        self.group = group

    def gather(self, layer: int, phase: str, shard: int, value: Any) -> list:
        parts = [value]
        for i in range(1, self.group.shards):
            msg = self.group.receive(i)
            if msg[0] != "gather" or msg[1] != layer or msg[2] != phase:
                raise WorkerError(
                    f"data-parallel step: shard {i} sent {msg[0]!r} for layer {msg[1]!r} while shard 0 "
                    f"waited for the {phase!r} sums of batch-norm layer {layer}; the shards' models differ."
                )
            parts.append(msg[3])
        for i in range(1, self.group.shards):
            self.group.send(i, ("parts", parts))
        return parts


def _worker_main(conn: Any, model: Any, weights: mmap.mmap, grads: mmap.mmap,
                 w_layout: _Layout, g_layout: _Layout, exchange_block: mmap.mmap) -> None:
    """A worker's loop: one message in, one answer out, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    for other in list(_PARENT_ENDS):  # copies inherited through the fork: not ours to hold
        try:
            other.close()
        except OSError:
            pass
    state = settings._STATE
    state.pool, state.threads = None, 1  # the parent's thread pool did not come along
    for lib in settings.blas_controllers(refresh=True):
        lib.set_num_threads(1)
    params = list(model.parameters())
    modules = list(model.modules())
    shared_w = w_layout.views(weights)
    shared_g = g_layout.views(grads)
    # the model reads its weights and buffers straight from the shared block the calling
    # process writes, and adds its gradients straight into its own block: no copies a step
    slots = [(m, name) for m in modules for name in m._buffer_names if getattr(m, name, None) is not None]
    for p, view in zip(params, shared_w):
        p.data = view
    for (m, name), view in zip(slots, shared_w[len(params):]):
        setattr(m, name, view)
    for p, view in zip(params, shared_g):
        p.grad = view
    exchange = _Exchange(exchange_block)
    for m in modules:
        if hasattr(m, "_sync"):
            m._sync = _Spoke(conn)
    while True:
        try:
            if not _arrived(conn):
                while not conn.poll(_POLL_S):
                    if os.getppid() != parent:  # the calling process is gone: so is our work
                        return
            msg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            kind = msg[0]
            for p, view in zip(params, shared_w):
                if p.data is not view:  # (nothing here replaces them; should anything, it is undone)
                    p.data = view
            for m, mode in zip(modules, msg[1]):
                m.training = mode
            if kind == "step":
                _, _, loss, rows, scale = msg
                x, y = exchange.unpack(rows)
                for p, view in zip(params, shared_g):
                    p.grad = view
                    view.fill(0)
                out = model(x)
                value = loss(out, y)
                dy = loss.backward()
                dy *= dy.dtype.type(scale)
                model.backward_params(dy)
                for p, view in zip(params, shared_g):
                    if p.grad is not view:  # a layer that replaced its gradient array
                        np.copyto(view, p.grad)
                conn.send(("done", value, exchange.pack([out])[0]))
            elif kind == "forward":
                out = model(exchange.unpack(msg[2])[0])
                conn.send(("done", None, exchange.pack([out])[0]))
            else:
                conn.send(("error", WorkerError(f"worker: unknown message {kind!r}")))
        except _Abandoned:
            for m in modules:
                m._saved = None
        except BaseException as exc:  # noqa: BLE001 - every error goes back to the caller
            for m in modules:
                m._saved = None
            try:
                conn.send(("error", exc))
            except Exception:  # an exception that cannot be sent: its text can
                conn.send(("error", WorkerError(f"{type(exc).__name__}: {exc}")))


def _run_worker(conn: Any, *args: Any) -> None:
    try:
        _worker_main(conn, *args)
    finally:
        os._exit(0)  # no inherited exit handlers (the parent's atexit, pytest's) run here


class ProcessGroup:
    """Shard 0 on a local replica, shards ``1 .. n-1`` on forked workers (see the module doc).

    Args:
        model: the master model (its weights and buffers are written to the workers
            before every step).
        shards: number of shards (>= 2).
        replicate: ``replicate(model, shard, rendezvous)`` returns a replica sharing the
            master's weight arrays whose batch-norm layers exchange through ``rendezvous``.
    """

    def __init__(self, model: Any, shards: int, replicate: Callable[[Any, int, Any], Any]) -> None:
        self.shards = shards
        self.master_params = list(model.parameters())
        self.master_modules = list(model.modules())
        self.local = replicate(model, 0, _Hub(self))
        self.local_params = list(self.local.parameters())
        self.local_modules = list(self.local.modules())
        arrays = [p.data for p in self.master_params] + list(model.buffers())
        self.master_arrays = arrays
        w_layout, g_layout = _Layout(arrays), _Layout([p.data for p in self.master_params])
        self.weights = mmap.mmap(-1, w_layout.nbytes)
        self.shared_w = w_layout.views(self.weights)
        ctx = multiprocessing.get_context("fork")
        self.conns: list[Any] = [None]
        self.procs: list[Any] = [None]
        self.grads: list[list[np.ndarray]] = [[]]
        self.exchanges: list[Any] = [None]
        self._blocks = [self.weights]
        try:
            for i in range(1, shards):
                block = mmap.mmap(-1, g_layout.nbytes)
                self._blocks.append(block)
                self.grads.append(g_layout.views(block))
                exchange_block = mmap.mmap(-1, _EXCHANGE_BYTES)
                self._blocks.append(exchange_block)
                self.exchanges.append(_Exchange(exchange_block))
                replica = replicate(model, i, None)
                ours, theirs = ctx.Pipe(duplex=True)
                _PARENT_ENDS.add(ours)  # (the child closes its copy of this end too)
                proc = ctx.Process(target=_run_worker, name=f"convscope-shard-{i}", daemon=True,
                                   args=(theirs, replica, self.weights, block, w_layout, g_layout, exchange_block))
                with warnings.catch_warnings():
                    # Python 3.12+ warns on every fork from a process with threads (BLAS has
                    # some): the child runs only NumPy and this module's loop, and OpenBLAS
                    # resets its threads across a fork (pthread_atfork).
                    warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
                    proc.start()
                theirs.close()
                self.conns.append(ours)
                self.procs.append(proc)
        except BaseException:
            self.close()
            raise
        self._finalizer = weakref.finalize(self, _close, self.conns, self.procs)

    # ------------------------------------------------------------------ messages
    def send(self, i: int, msg: tuple) -> None:
        """Send worker ``i`` a message; a worker that is gone is reported."""
        try:
            self.conns[i].send(msg)
        except (BrokenPipeError, EOFError, OSError) as exc:
            proc = self.procs[i]
            proc.join(timeout=0.1)
            raise WorkerError(
                f"data-parallel step: the worker process of shard {i} (pid {proc.pid}) is gone "
                f"(exit code {proc.exitcode}, {type(exc).__name__}); the step is abandoned and the next "
                f"one starts new workers (or run with convscope.set_num_threads(1))."
            ) from None

    def receive(self, i: int) -> tuple:
        """The next message from worker ``i``; a worker's error is raised here."""
        conn, proc = self.conns[i], self.procs[i]
        try:
            while not _arrived(conn) and not conn.poll(_POLL_S):
                if not proc.is_alive():
                    raise WorkerError(
                        f"data-parallel step: the worker process of shard {i} (pid {proc.pid}) died "
                        f"with exit code {proc.exitcode} in the middle of a step; the step is abandoned "
                        f"and the next one starts new workers (or run with convscope.set_num_threads(1))."
                    )
            msg = conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerError(
                f"data-parallel step: lost the pipe to the worker process of shard {i} ({exc!r})."
            ) from None
        if msg[0] == "error":
            raise msg[1]
        return msg

    def _publish(self) -> tuple:
        for dst, src in zip(self.shared_w, self.master_arrays):
            np.copyto(dst, src)
        modes = tuple(m.training for m in self.master_modules)
        for m, mode in zip(self.local_modules, modes):
            m.training = mode
        return modes

    def _collect(self, pending: Sequence[int]) -> list:
        """Every worker's answer; on any failure the other answers are still read (so no
        worker is left mid-message) and the first error is raised."""
        results: list[Any] = []
        error: BaseException | None = None
        for i in pending:
            try:
                results.append(self.receive(i))
            except BaseException as exc:  # noqa: BLE001
                error = error or exc
                results.append(None)
        if error is not None:
            raise error
        # each output copied out of its exchange block (the next step writes there)
        return [(*answer[:2], np.array(self.exchanges[i].unpack([answer[2]])[0]))
                for i, answer in zip(pending, results)]

    def step(self, loss: Any, x: np.ndarray, y: np.ndarray, cuts: list[slice], batch: int,
             local_step: Callable[[Any, Any, slice], tuple]) -> list[tuple[float, np.ndarray]]:
        """One training step; the master's gradients get shard 0's, then worker 1's, ... added
        (shard 0's while the workers finish: a step that fails in a worker leaves the master's
        gradients holding shard 0's share, as any failed step leaves them half done)."""
        modes = self._publish()
        for i in range(1, self.shards):
            s = cuts[i]
            rows = self.exchanges[i].pack([x[s], y[s]])
            self.send(i, ("step", modes, loss, rows, (s.stop - s.start) / batch))
        with parallel.serial_region():
            first = local_step(self.local, loss, cuts[0])
        for p, local in zip(self.master_params, self.local_params):  # (while the workers finish)
            p.accumulate(local.grad)
            local.grad.fill(0)
        answers = self._collect(range(1, self.shards))
        for j, p in enumerate(self.master_params):  # then shard 1's, 2's, ...: the same order
            for i in range(1, self.shards):
                p.accumulate(self.grads[i][j])
        return [first] + [(a[1], a[2]) for a in answers]

    def forward(self, x: np.ndarray, cuts: list[slice]) -> list[np.ndarray]:
        """Inference: each shard's output, in order."""
        modes = self._publish()
        for i in range(1, self.shards):
            self.send(i, ("forward", modes, self.exchanges[i].pack([x[cuts[i]]])))
        with parallel.serial_region():
            first = self.local(x[cuts[0]])
        return [first] + [a[2] for a in self._collect(range(1, self.shards))]

    def close(self) -> None:
        """End the workers (they exit when their pipe closes; stragglers are killed)."""
        _close(self.conns, self.procs)


def _close(conns: list, procs: list) -> None:
    for conn in conns[1:]:
        try:
            conn.close()
        except OSError:
            pass
    for proc in procs[1:]:
        proc.join(timeout=1.0)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=1.0)
    del conns[1:], procs[1:]
