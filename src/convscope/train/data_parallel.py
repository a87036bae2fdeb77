"""Data parallelism: each core runs a whole forward and backward of a shard of the batch.

Splitting inside every operation (:mod:`convscope.parallel`) hands the threads many small
NumPy calls, and between them the threads queue for the interpreter lock: a LeNet step
gained nothing from a second core that way. Here the unit of work is a whole shard: with
``n`` threads (:func:`convscope.set_num_threads`, by default the machine's cores) the batch
is cut into ``n`` consecutive shards of nearly equal size and shard ``i`` runs the model's
forward, the loss and the backward on its rows. Inside a shard every operation runs
serially and BLAS is held to one thread (no oversubscription: one shard per core).

**Where the shards run.** On Linux, shard 0 runs in the calling process and shards
``1 .. n-1`` on worker processes forked once per model and thread count
(:mod:`convscope.train.process_group`: weights go to them through shared memory every step,
gradients come back the same way), so no shard waits for another's interpreter lock. Where
processes are not available (macOS, Windows), and for models with random layers (Dropout),
whose draws the shards share, the shards run on threads, which overlap only inside NumPy's
large calls.

**Measured choice.** A sharded step has fixed costs (a hand-off per shard, a pass over every
layer in Python, the weights' copy) that a small step does not repay, and whether it does is
a property of the machine as much as of the model. So a step runs serially below
``MIN_SHARD_MACS`` multiply-adds per shard, and above it the first fourteen steps of each
(model, batch shape, dtype, thread count) are trials: a block of serial steps, then a block of
sharded ones, after warm-ups (``_TRIALS``), and the faster is kept, the sharded one only if its best trial
beats the best serial trial by 5% (:func:`tuning` shows the trials). Both give the same result up to the rounding
of the sums (below), so the choice changes speed, never what is learnt.
``convscope.settings.force_path(data_parallel="processes" | "threads" | "serial")`` skips the
trials.

**Replicas.** Layers keep what their backward needs on themselves, so each shard needs its
own copy of the model: a *replica* shares the master model's weight arrays
(``Parameter.data``) and buffers (running statistics) but has its own gradients and its own
saved forward state. Replicas are built once per model and thread count (a deep copy that
shares those arrays) and re-synchronised with the master before every step (train/eval mode,
and rebuilt if the master's arrays were replaced, e.g. by ``model.to``).

**Gradients** are reduced in a fixed order: ``master.grad = shard 0 + shard 1 + ...``, the
same for any thread scheduling, so a run repeats bit for bit for a given thread count. Each
shard's loss gradient is scaled by ``n_i / N`` (the losses are means over the batch), so the
result equals the serial step's up to the rounding of the sums: the per-shard partial sums
are added in another order (relative differences near 1e-7 in float32, 1e-16 in float64;
:mod:`tests.train.test_data_parallel` checks them).

**Batch normalisation** in training mode still normalises with the statistics of the whole
batch (a synchronised batch norm, as PyTorch's ``SyncBatchNorm``): in every replica the
batch-norm layers meet at a barrier three times per step: to add up the per-shard channel sums
(mean), the centred squares (variance) and, backward, ``sum(dy)`` and ``sum(dy * xhat)``;
each sum is added in shard order. The running statistics are updated once, by shard 0, with
the whole batch's mean and unbiased variance.

**Dropout** (and any layer with a ``generator``): the shards share the master layer's
generator through :class:`_ShardDraws`: the first shard to ask draws the whole batch's
random numbers in one call, exactly as the serial layer would, and each shard takes its own
rows. The masks, and the generator's state afterwards, are those of the serial run, whatever
the thread count.

**When it applies** (:func:`plan`). The loss must be a :class:`~convscope.nn.CrossEntropyLoss` or
:class:`~convscope.nn.MSELoss` (means over the batch) and every module of the model one of
convscope's own (a module defined elsewhere might mix samples); the batch must have at
least ``MIN_SHARD_SAMPLES`` samples per shard. Otherwise the step runs serially on the
master model, with the operations' own splitting.

Example:
    >>> import numpy as np
    >>> from convscope import nn, num_threads
    >>> model = nn.Sequential(nn.Linear(4, 3, rng=0))
    >>> x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    >>> y = np.arange(8) % 3
    >>> loss = nn.CrossEntropyLoss()
    >>> with num_threads(1):
    ...     serial, _ = training_step(model, loss, x, y)
    ...     g1 = model[0].weight.grad.copy()
    >>> model.zero_grad()
    >>> with num_threads(2):
    ...     sharded, out = training_step(model, loss, x, y)
    >>> bool(np.allclose(model[0].weight.grad, g1, rtol=1e-5)), out.shape, abs(serial - sharded) < 1e-6
    (True, (8, 3), True)
"""

from __future__ import annotations

import copy
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from .. import parallel, settings
from ..errors import ShapeError
from ..functional import norm
from ..nn import BatchNorm1d, BatchNorm2d, CrossEntropyLoss, Module, MSELoss, Parameter
from ..nn.walk import walk
from ..shapes import format_shape
from . import process_group

__all__ = ["training_step", "sharded_forward", "shards_for", "plan", "tuning", "MIN_SHARD_SAMPLES", "MIN_SHARD_MACS"]

#: Fewer samples per shard than this and the step runs serially (a shard's fixed costs,
#: the thread hand-off and a Python pass over every layer, then outweigh its work).
MIN_SHARD_SAMPLES = 4
#: Fewer multiply-adds in a shard's forward than this and the step runs serially, untimed
#: (LeNet: 0.42 M per sample; on the 2-vCPU Xeon its sharded step lost at 4 samples a shard,
#: 1.7 M, and won at 8, 3.3 M).
MIN_SHARD_MACS = 2_000_000

_LOSSES = (CrossEntropyLoss, MSELoss)
_REPLICAS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GROUPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (ProcessGroup, signature)
_MACS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------- replicas


class _Rendezvous:
    """Where the shards' batch-norm layers exchange their per-channel sums."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.barrier = threading.Barrier(shards)
        self.slots: dict[tuple[int, str], list] = {}

    def gather(self, layer: int, phase: str, shard: int, value: Any) -> list:
        """Every shard's ``value`` for this layer and phase, in shard order.

        Each (layer, phase) is used once per step, and between two uses of it every shard
        passes other barriers after reading it, so a list is never overwritten early.
        """
        slots = self.slots[(layer, phase)]
        slots[shard] = value
        self.barrier.wait()
        return list(slots)


def _ordered_sum(parts: Sequence[np.ndarray]) -> np.ndarray:
    total = np.array(parts[0], copy=True)
    for part in parts[1:]:
        total += part
    return total


class _SyncedBatchNorm:
    """Mixed into a replica's batch-norm layer: training-mode statistics over all shards."""

    _sync: _Rendezvous
    _sync_layer: int
    _sync_shard: int
    _sync_master: Any  # the master's layer (its running statistics are updated, once)

    def _normalise(self: Any, x: np.ndarray, op: Callable) -> np.ndarray:
        if not self.training and self.track_running_stats:  # eval: running statistics, per shard
            return super()._normalise(x, op)  # type: ignore[misc]
        name = type(self).__mro__[2].__name__
        x = self._check_input(x)
        self._check_shape(x.shape)
        axes = (0, *range(2, x.ndim))
        gather = self._sync.gather
        layer, shard = self._sync_layer, self._sync_shard
        parts = gather(layer, "sum", shard, (x.sum(axis=axes, dtype=np.float64), x.size // x.shape[1]))
        m = sum(count for _, count in parts)
        if m < 2:
            raise ShapeError(
                f"{name}: training needs more than one value per channel to estimate a "
                f"variance; got a batch of shape {format_shape((m, *x.shape[1:]))} in all."
            )
        mean = _ordered_sum([s for s, _ in parts]) / m
        squares = norm._centred_squares(x, mean.astype(x.dtype), list(norm._chunks(x)))
        var = _ordered_sum(gather(layer, "squares", shard, squares.astype(np.float64))) / m
        tracked = self.num_batches_tracked
        if self.training and shard == 0 and tracked is not None:  # the running statistics, once per step
            momentum = 1.0 / float(tracked + 1) if self.momentum is None else self.momentum
            self.running_mean *= 1.0 - momentum
            self.running_mean += (momentum * mean).astype(x.dtype)
            self.running_var *= 1.0 - momentum
            self.running_var += (momentum * var * (m / (m - 1))).astype(x.dtype)
            tracked += 1
        gamma = self.weight.data if self.weight is not None else None
        beta = self.bias.data if self.bias is not None else None
        y, mean_x, invstd = op(x, gamma, beta, mean.astype(x.dtype), var.astype(x.dtype), training=False,
                               eps=self.eps, return_stats=True)
        self._save(x=x, mean=mean_x, invstd=invstd, gamma=gamma, batch_stats=True, synced=m)
        return y

    def backward(self: Any, dy: np.ndarray) -> np.ndarray:
        saved = self._saved
        if not isinstance(saved, dict) or "synced" not in saved:
            return super().backward(dy)  # type: ignore[misc]
        saved = self._pop_saved()
        x, m = saved["x"], saved["synced"]
        dy = self._check_dy(dy, x.shape, x.dtype)
        invstd = saved["invstd"]
        dbeta_local, dot = norm._grad_sums(dy, x, saved["mean"], invstd)
        dgamma_local = dot * invstd
        parts = self._sync.gather(self._sync_layer, "grad", self._sync_shard, (dbeta_local, dgamma_local))
        dbeta = _ordered_sum([p[0] for p in parts])
        dgamma = _ordered_sum([p[1] for p in parts])
        dx = norm._grad_input(dy, x, saved["mean"], invstd, saved["gamma"], dgamma, dbeta, m)
        if self.weight is not None and self.bias is not None:  # this shard's share
            self.weight.accumulate(dgamma_local, "weight")
            self.bias.accumulate(dbeta_local, "bias")
        return dx


_SYNCED_CLASSES: dict[type, type] = {}


def _synced_class(cls: type) -> type:
    synced = _SYNCED_CLASSES.get(cls)
    if synced is None:
        synced = _SYNCED_CLASSES[cls] = type(f"_Synced{cls.__name__}", (_SyncedBatchNorm, cls), {})
    return synced


def _survey(model: Module) -> tuple[tuple, bool, bool]:
    """One walk over the model (every step takes one): ``(signature, own, random)``.

    ``signature`` is what a replica is built from: the modules, their weight arrays and
    buffers (a replaced layer or array, e.g. after ``model.to``, means new replicas);
    ``own``: every module is one of convscope's own, and its batch-norm layers the plain
    BatchNorm1d/2d (the only ones that mix samples), so sharding is safe; ``random``: some
    module has a ``generator`` (Dropout), whose draws shards share.
    """
    modules: list[int] = []
    arrays: list[int] = []
    own, random = True, False
    stack = [model]
    while stack:  # depth first, children in definition order (as Module.modules)
        m = stack.pop()
        modules.append(id(m))
        for name, value in vars(m).items():
            if isinstance(value, Parameter) and not name.startswith("_"):
                arrays.append(id(value.data))
        for name in m._buffer_names:
            value = getattr(m, name, None)
            if value is not None:
                arrays.append(id(value))
        cls = type(m)
        if not cls.__module__.startswith("convscope.") or (
                m.layer_kind == "batch_norm" and cls not in (BatchNorm1d, BatchNorm2d)):
            own = False
        if isinstance(getattr(m, "generator", None), np.random.Generator):
            random = True
        stack.extend(reversed(list(m.children())))
    return tuple(modules) + tuple(arrays), own, random


def _supported(model: Module, loss: Any, own: bool | None = None) -> bool:
    """Data parallelism is safe: a batch-mean loss and only convscope's own modules (see
    :func:`_survey`; ``own`` is its answer, if taken already)."""
    if loss is not None and type(loss) not in _LOSSES:
        return False
    return _survey(model)[1] if own is None else own


def _replicate(model: Module, shard: int, rendezvous: Any) -> Module:
    """A copy of ``model`` sharing its weight arrays and buffers, with its own gradients and
    no saved forward state; its batch-norm layers exchange their sums through
    ``rendezvous`` (anything with the ``gather`` of :class:`_Rendezvous`)."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p.data)] = p.data  # shared weights; the gradient is copied (own)
    for b in model.buffers():
        memo[id(b)] = b  # shared running statistics
    for m in model.modules():
        memo[id(m._saved)] = None  # no saved forward state travels
    replica = copy.deepcopy(model, memo)
    layer = 0
    for master, rep in zip(model.modules(), replica.modules()):
        if type(rep) in (BatchNorm1d, BatchNorm2d):
            rep.__class__ = _synced_class(type(rep))
            synced: Any = rep
            synced._sync, synced._sync_layer, synced._sync_shard = rendezvous, layer, shard
            synced._sync_master = master
            if isinstance(rendezvous, _Rendezvous):
                for phase in ("sum", "squares", "grad"):
                    rendezvous.slots.setdefault((layer, phase), [None] * rendezvous.shards)
            layer += 1
    replica.zero_grad()
    return replica


class _Replicas:
    """``shards`` copies of a model sharing its weights and buffers (see the module doc)."""

    def __init__(self, model: Module, shards: int, signature: tuple) -> None:
        self.shards = shards
        self.signature = signature
        self.rendezvous = _Rendezvous(shards)
        self.models = [_replicate(model, i, self.rendezvous) for i in range(shards)]
        self.master_modules = list(model.modules())
        self.master_params = list(model.parameters())
        self.params = [list(rep.parameters()) for rep in self.models]
        self.modules = [list(rep.modules()) for rep in self.models]

    def sync(self, reseed: bool, cuts: list[slice] | None = None) -> None:
        """Mode from the master; with ``reseed``, this step's shared draws (Dropout)."""
        for modules in self.modules:
            for master, rep in zip(self.master_modules, modules):
                rep.training = master.training
        if not reseed or cuts is None:
            return
        for j, master in enumerate(self.master_modules):
            gen = getattr(master, "generator", None)
            if isinstance(gen, np.random.Generator) and master.training:
                draws = _ShardDraws(gen, cuts)
                for i, modules in enumerate(self.modules):
                    layer: Any = modules[j]
                    layer.generator = draws.for_shard(i)

    def reduce_gradients(self) -> None:
        """``master.grad += shard 0 + shard 1 + ...``, in that order; the shards' gradients
        are zeroed for the next step."""
        for j, p in enumerate(self.master_params):
            for params in self.params:
                p.accumulate(params[j].grad)
                params[j].grad.fill(0)


def _replicas(model: Module, shards: int, signature: tuple) -> _Replicas:
    reps = _REPLICAS.get(model)
    if reps is None or reps.shards != shards or reps.signature != signature:
        reps = _REPLICAS[model] = _Replicas(model, shards, signature)
    return reps


def _macs_per_sample(model: Module, sample_shape: tuple[int, ...], signature: tuple) -> int:
    """Multiply-adds of one sample's forward through the model's convolutions and linear
    layers (what the cut into shards is weighed by); 0 where the walk cannot tell."""
    table = _MACS.setdefault(model, {})
    key = (signature, sample_shape)
    macs = table.get(key)
    if macs is None:
        macs = 0
        try:
            for record in walk(model, (1, *sample_shape)):
                weight = getattr(record.module, "weight", None)
                if record.kind in ("conv", "linear") and weight is not None and record.out_shape:
                    macs += int(weight.size) * int(np.prod(record.out_shape[2:], dtype=np.int64))
        except Exception:  # noqa: BLE001 - the model's own call will report a bad shape
            macs = 0
        if len(table) > 8:
            table.clear()
        table[key] = macs
    return macs


def plan(model: Module, loss: Any, x: Any) -> tuple[str, int]:
    """How a batch ``x`` runs: ``(backend, shards)``, the backend one of "serial",
    "processes" and "threads".

    The rule (``convscope.settings.force_path(data_parallel=...)`` overrides it): with
    ``n`` threads (:func:`convscope.get_num_threads`) the batch is cut into ``n`` shards of at
    least ``MIN_SHARD_SAMPLES`` samples if the model is supported (see the module doc) and
    each shard's forward has at least ``MIN_SHARD_MACS`` multiply-adds; the shards run on
    worker processes on Linux (:mod:`convscope.train.process_group`), on threads elsewhere or
    for models with random layers (Dropout), whose draws the threads share. A sharded plan is
    then confirmed by timing (the module doc's *measured choice*; see :func:`tuning`).

    >>> import numpy as np
    >>> from convscope import nn, num_threads
    >>> tiny = nn.Sequential(nn.Linear(2, 2))
    >>> with num_threads(2):
    ...     plan(tiny, nn.CrossEntropyLoss(), np.zeros((64, 2)))
    ('serial', 1)
    """
    return _plan(model, loss, x, _survey(model))


def _shard_count(model: Module, loss: Any, batch: int, own: bool | None = None) -> int:
    """Shards the thread count and ``MIN_SHARD_SAMPLES`` allow (1: serial), work not weighed."""
    shards = min(parallel.workers(), batch // MIN_SHARD_SAMPLES)
    return 1 if shards < 2 or not _supported(model, loss, own) else shards


def _plan(model: Module, loss: Any, x: Any, survey: tuple[tuple, bool, bool]) -> tuple[str, int]:
    """:func:`plan` with the model's :func:`_survey` already taken (once per step)."""
    signature, own, random = survey
    batch = int(x.shape[0]) if getattr(x, "ndim", 0) else 0
    shards = _shard_count(model, loss, batch, own)
    forced = settings.forced("data_parallel")
    if shards == 1 or forced == "serial":
        return "serial", 1
    use_processes = process_group.available() and not (model.training and random)
    if forced is None:
        work = _macs_per_sample(model, tuple(int(v) for v in x.shape[1:]), signature) * (batch // shards)
        if work < MIN_SHARD_MACS:
            return "serial", 1
    elif forced == "threads":
        use_processes = False
    return ("processes" if use_processes else "threads"), shards


def shards_for(model: Module, loss: Any, batch: int, sample_shape: Sequence[int] | None = None) -> int:
    """How many shards a batch of ``batch`` samples is cut into (1: run serially); without
    ``sample_shape`` the work is not weighed (the count the thread count allows).

    >>> from convscope import nn, num_threads
    >>> with num_threads(2):
    ...     shards_for(nn.Sequential(nn.Linear(2, 2)), nn.CrossEntropyLoss(), 64)
    2
    """
    if sample_shape is None:
        return _shard_count(model, loss, batch)
    return plan(model, loss, np.empty((batch, *sample_shape), dtype=np.uint8))[1]


def _group(model: Module, shards: int, signature: tuple) -> process_group.ProcessGroup:
    entry = _GROUPS.get(model)
    if entry is not None and (entry[0].shards != shards or entry[1] != signature):
        entry[0].close()
        entry = None
    if entry is None:
        entry = _GROUPS[model] = (process_group.ProcessGroup(model, shards, _replicate), signature)
    return entry[0]


def _drop_group(model: Module) -> None:
    entry = _GROUPS.pop(model, None)
    if entry is not None:
        entry[0].close()


def _run_shards(reps: _Replicas, tasks: list[Callable[[], Any]]) -> list:
    """Run one task per shard side by side; the first real error is raised (a failing shard
    breaks the batch-norm barrier so the others stop too)."""
    errors: list[BaseException | None] = [None] * len(tasks)

    def guarded(i: int) -> Any:
        try:
            return tasks[i]()
        except BaseException as exc:
            errors[i] = exc
            reps.rendezvous.barrier.abort()
            return None

    results = parallel.run_parallel([partial(guarded, i) for i in range(len(tasks))])
    if any(e is not None for e in errors):
        reps.rendezvous.barrier.reset()
        first = next((e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)), None)
        raise first or next(e for e in errors if e is not None)
    return results


class _ShardDraws:
    """One layer's random numbers for one step, drawn once for the whole batch from the
    master's generator (as the serial layer draws them) and handed out by rows."""

    def __init__(self, generator: np.random.Generator, cuts: list[slice]) -> None:
        self.generator, self.cuts = generator, cuts
        self.lock = threading.Lock()
        self.drawn: list[np.ndarray] = []  # one per call, in call order
        self.calls = [0] * len(cuts)

    def for_shard(self, i: int) -> Any:
        outer = self

        class _View:
            def random(self, shape: Any) -> np.ndarray:
                shape = tuple(int(v) for v in shape)
                with outer.lock:
                    k = outer.calls[i]
                    outer.calls[i] += 1
                    if k == len(outer.drawn):
                        total = outer.cuts[-1].stop
                        outer.drawn.append(outer.generator.random((total, *shape[1:])))
                    full = outer.drawn[k]
                return full[outer.cuts[i]]

        return _View()


def _shard_step(rep: Module, loss: Any, x: np.ndarray, y: np.ndarray, s: slice,
                batch: int) -> tuple[float, np.ndarray]:
    out = rep(x[s])
    value = loss(out, y[s])
    dy = loss.backward()
    dy *= dy.dtype.type((s.stop - s.start) / batch)
    rep.backward_params(dy)
    return value, out


# ----------------------------------------------------------------------------- measured choice
#: The trial steps of a new (model, batch shape, thread count): four serial steps (the first
#: warms up: workspaces), then ten sharded ones of which the first seven warm up (the fork,
#: after which both processes pay a copy-on-write fault for every page they write first, and
#: the second core coming back from idle). Blocks, not alternation, and the sharded block
#: last: a sharded step after serial ones measured up to 2x its steady time for about ten
#: steps (LeNet b64 on the 2-vCPU Xeon, quiet: sharded steps 41.8, 14.5, 11.5, 19.0, 12.9, 13.9,
#: 6.3, then 5.1-5.4 ms; serial 9.6-10.0 ms). The previous schedule, five warm-ups then
#: alternating, timed the sharded step at 9.3 ms and kept the serial one.
_TRIALS = ("serial",) * 4 + ("sharded",) * 10
_WARM_UP = frozenset({0, 4, 5, 6, 7, 8, 9, 10})
#: The sharded step is kept only if its best trial beats the best serial trial by this factor.
_MARGIN = 0.95
_clock = time.perf_counter  # (tests replace it)
_TUNING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {key: _Tuning}


class _Tuning:
    """The trial steps of one (model, batch shape, dtype, thread count, task) and the choice."""

    def __init__(self, key: tuple, backend: str, shards: int) -> None:
        self.key, self.backend, self.shards = key, backend, shards
        self.seconds: dict[str, list[float]] = {"serial": [], "sharded": []}
        self.steps = 0
        self.choice: str | None = None

    def next(self) -> str:
        return self.choice or _TRIALS[self.steps]

    def record(self, kind: str, seconds: float) -> None:
        if self.choice is not None:
            return
        if self.steps not in _WARM_UP:
            self.seconds[kind].append(seconds)
        self.steps += 1
        if self.steps == len(_TRIALS):
            fast = min(self.seconds["sharded"]) < _MARGIN * min(self.seconds["serial"])
            self.choice = "sharded" if fast else "serial"

    def report(self) -> dict[str, Any]:
        shape, dtype, threads, task = self.key[1:]
        best = {k: (min(v) * 1e3 if v else None) for k, v in self.seconds.items()}
        return {"task": task, "input": format_shape(shape), "dtype": dtype, "threads": threads,
                "backend": self.backend, "shards": self.shards, "serial_ms": best["serial"],
                "sharded_ms": best["sharded"], "choice": self.choice}


def _tuning(model: Module, x: np.ndarray, signature: tuple, task: str, backend: str, shards: int) -> _Tuning | None:
    """The trial record for this call, or None when the path is forced (no trials)."""
    if settings.forced("data_parallel") is not None:
        return None
    table = _TUNING.setdefault(model, {})
    key = (signature, tuple(int(v) for v in x.shape), str(x.dtype), parallel.workers(), task)
    entry = table.get(key)
    if entry is None or entry.backend != backend or entry.shards != shards:
        if len(table) >= 16:
            table.clear()
        entry = table[key] = _Tuning(key, backend, shards)
    return entry


def tuning(model: Module) -> list[dict[str, Any]]:
    """What the measured choice found for ``model``: one dict per (task, input shape, dtype,
    thread count) with the backend tried, its shard count, the best serial and sharded trial
    step in milliseconds and the choice (``None`` while the trials run).

    >>> from convscope import nn
    >>> tuning(nn.Sequential(nn.ReLU()))
    []
    """
    return [t.report() for t in _TUNING.get(model, {}).values()]


def _cuts(batch: int, shards: int) -> list[slice]:
    """The shards' rows: ``shards`` consecutive runs of nearly equal size."""
    return [slice(run[0], run[-1] + 1) for run in parallel.split_evenly(range(batch), shards)]


def _step(model: Module, loss: Any, x: np.ndarray, y: Any, signature: tuple, backend: str,
          shards: int) -> tuple[float, np.ndarray]:
    if backend == "serial":
        output = model(x)
        value = loss(output, y)
        model.backward_params(loss.backward())
        return value, output
    batch = int(x.shape[0])
    cuts = _cuts(batch, shards)
    y_arr = np.asarray(y)
    if backend == "processes":
        group = _group(model, shards, signature)
        try:
            results = group.step(copy.copy(loss), x, y_arr, cuts, batch,
                                 lambda rep, shard_loss, s: _shard_step(rep, shard_loss, x, y_arr, s, batch))
        except BaseException:
            _drop_group(model)  # its workers may be anywhere in the step: start afresh next time
            raise
    else:
        reps = _replicas(model, shards, signature)
        reps.sync(reseed=True, cuts=cuts)
        losses = [copy.copy(loss) for _ in cuts]
        results = _run_shards(reps, [partial(_shard_step, reps.models[i], losses[i], x, y_arr, cuts[i], batch)
                                     for i in range(shards)])
        reps.reduce_gradients()
    value = sum(v * (s.stop - s.start) for (v, _), s in zip(results, cuts)) / batch
    output = np.concatenate([out for _, out in results], axis=0)
    return float(value), output


def _forward(model: Module, x: np.ndarray, signature: tuple, backend: str, shards: int) -> np.ndarray:
    if backend == "serial":
        return model(x)
    batch = int(x.shape[0])
    cuts = _cuts(batch, shards)
    if backend == "processes":
        try:
            results = _group(model, shards, signature).forward(x, cuts)
        except BaseException:
            _drop_group(model)
            raise
    else:
        reps = _replicas(model, shards, signature)
        reps.sync(reseed=False)
        results = _run_shards(reps, [partial(m, x[s]) for s, m in zip(cuts, reps.models)])
    return np.concatenate([np.asarray(r) for r in results], axis=0)


def _measured(model: Module, x: np.ndarray, signature: tuple, task: str, backend: str, shards: int,
              run: Callable[[str, int], Any]) -> Any:
    """Run ``run(backend, shards)``, or serially while the trials say so; time the trials."""
    trial = _tuning(model, x, signature, task, backend, shards) if backend != "serial" else None
    if trial is None:
        return run(backend, shards)
    kind = trial.next()
    start = _clock()
    result = run(backend, shards) if kind == "sharded" else run("serial", 1)
    trial.record(kind, _clock() - start)
    if trial.choice == "serial" and backend == "processes":
        _drop_group(model)  # no idle workers for a model that runs serially
    return result


def training_step(model: Module, loss: Any, x: np.ndarray, y: Any) -> tuple[float, np.ndarray]:
    """Forward, loss and backward of one batch: ``(loss value, model output)``; the
    parameter gradients are ADDED to ``model``'s (call ``zero_grad`` first), as
    ``model.backward_params(loss.backward())`` after ``loss(model(x), y)`` would.

    With several threads the batch runs as shards on worker processes or threads with
    replicas of the model (see :func:`plan` and the module docstring); else exactly the
    serial calls.
    """
    survey = _survey(model)
    signature = survey[0]
    backend, shards = _plan(model, loss, x, survey)
    return _measured(model, x, signature, "train", backend, shards,
                     lambda b, n: _step(model, loss, x, y, signature, b, n))


def sharded_forward(model: Module, x: np.ndarray) -> np.ndarray:
    """``model(x)`` with the batch cut into shards run side by side (inference: call it in
    eval mode; the result equals ``model(x)`` up to rounding, bit for bit for layers whose
    per-sample results do not depend on the batch they come in)."""
    if model.training or not hasattr(x, "shape"):
        return model(x)
    survey = _survey(model)
    signature = survey[0]
    backend, shards = _plan(model, None, x, survey)
    return _measured(model, x, signature, "infer", backend, shards,
                     lambda b, n: _forward(model, x, signature, b, n))
