"""PyTorch as the training engine: the same recipe on one GPU or on many processes.

``fit(model, train, ..., engine="torch", device="cpu"|"cuda", nproc=N)`` (or
:func:`fit_torch` with the same arguments) trains a convscope model with PyTorch and puts
the trained weights back into ``model``, so everything after training (``evaluate``,
``predict``, ``convscope.save``, the explainer, ``export``) works unchanged. What stays
convscope's and what becomes PyTorch's:

=========================  ===============================================================
convscope (unchanged)      the data: the Dataset, the seeded :class:`~convscope.data.DataLoader`
                           (shuffle order) and the transforms (augmentation) make every
                           global batch exactly as ``fit`` makes it; the History, the
                           callbacks, the progress bar, the resume checkpoint format
PyTorch                    the model (:func:`convscope.export.to_torch`), the forward and
                           backward pass, the optimizer (``torch.optim.SGD`` / ``Adam`` /
                           ``AdamW`` with the same hyperparameters and state), the schedule
                           (``torch.optim.lr_scheduler.StepLR`` / ``CosineAnnealingLR`` /
                           ``OneCycleLR``), gradient clipping, DistributedDataParallel
=========================  ===============================================================

The batches. A ``torch.utils.data.DataLoader`` iterates :class:`ShardedBatches`, an
``IterableDataset`` over convscope's own loader (same seed stream as ``fit``: the first
child of ``numpy.random.SeedSequence(seed)``). Every process draws the same global batch
of ``batch_size`` images and keeps its share, ``batch[rank::nproc]`` (the strided split
``torch.utils.data.DistributedSampler`` makes of an index list, without its padding), so
the global batch stays ``batch_size`` whatever ``nproc`` is and the order of samples
equals a one-process run. The loss of a step is the sum over the process's share times
``nproc / global batch``: after DDP averages the gradients over the processes they are
the gradients of the mean loss over the global batch, also for a last batch that does
not split evenly.

Processes. ``nproc=N`` (N > 1) runs N processes joined by ``torch.distributed`` (gloo on
the CPU, NCCL on GPUs, one GPU per process) and wraps the model in
``DistributedDataParallel``. convscope starts them itself: the calling process is rank 0
and ``torch.multiprocessing`` spawns ranks 1..N-1, which meet on ``127.0.0.1`` at a free
port (``MASTER_ADDR``/``MASTER_PORT`` as a ``tcp://`` address). Launched by ``torchrun``
instead (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the
environment), every process runs the same script and ``fit`` joins the group torchrun
set up (``nproc`` may then be left out, or must equal ``WORLD_SIZE``)::

    torchrun --standalone --nproc-per-node 2 -m convscope.cli train --engine torch --out runs/x

Rank 0 runs the callbacks, the validation and the progress bar and writes every file;
all ranks end with the same weights in ``model`` and the same training losses in the
History (the other ranks' History lacks the validation scores). ``threads`` is
``torch.set_num_threads`` in every process (default: the CPU count shared among the
processes).

Resume. Checkpoints are convscope's own training checkpoints (:mod:`.checkpoint`): at
the end of an epoch rank 0 copies the PyTorch state back (weights through
:func:`convscope.export.from_torch`, the optimizer's moment or momentum buffers and step
counters, the schedule's position, momentum included for one-cycle) into the convscope
objects and writes them with the callbacks as ``fit`` does. So both directions work:
a checkpoint of ``engine="torch"`` resumes with either engine, and so does one of
convscope's engine. ``history.info["engines"]`` records which engine ran which epochs.

What differs from convscope's engine:

* rounding: PyTorch's convolution and matrix kernels (oneDNN, its BLAS) add in another
  order than NumPy's, so losses agree to float rounding, not bit for bit (measured: every
  step loss of the digits recipe's first epoch within 3e-7 relative in float32, 3e-16 in
  float64; the CIFAR-10 recipe's parts in float64 within 4e-15; see the tests);
* Dropout draws its masks from PyTorch's generator (seeded from ``seed`` and the rank),
  not from the module's NumPy generator; with ``nproc > 1`` BatchNorm normalises with each
  process's share of the batch (DDP's default; rank 0's running statistics are kept);
* only :class:`~convscope.nn.CrossEntropyLoss`, convscope's SGD / Adam / AdamW and
  StepLR / CosineAnnealingLR / OneCycleLR are mapped; a true convolution
  (``flip=True``) is refused (export it after training instead).

``torch`` is optional: without it the engine raises
:class:`~convscope.errors.MissingDependencyError` saying ``pip install "convscope[torch]"``.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import math
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import DataLoader
from ..errors import ArgumentTypeError, ConfigError, NumericalError, import_optional
from ..nn import CrossEntropyLoss, Module
from .callbacks import Callback
from .checkpoint import load_training_checkpoint, restore_run
from .history import History
from .loop import OTHER_ENGINES, Run, _check_positive_int, _loader, _pick_loss
from .progress import EpochProgress

__all__ = ["ENGINES", "fit_torch", "wants_torch", "evaluate_torch", "ShardedBatches", "torchrun_env", "resolve_device",
           "import_torch_engine"]

#: The training engines ``fit`` and ``convscope train --engine`` know.
ENGINES = ("convscope", "torch")
#: What to install for ``engine="torch"`` (the ``torch`` extra in pyproject.toml).
TORCH_INSTALL = 'pip install "convscope[torch]"'


def import_torch_engine(what: str = "engine='torch'") -> Any:
    """The ``torch`` module with ``torch.distributed``, or a MissingDependencyError naming the extra."""
    return import_optional("torch", what, TORCH_INSTALL, submodules=("distributed", "utils.data"))


def wants_torch(engine: Any, device: Any, nproc: Any) -> bool:
    """Whether ``fit(engine=, device=, nproc=)`` asks for the PyTorch engine.

    Raises:
        ConfigError: an unknown engine, or ``device``/``nproc`` other than the CPU and one
            process with convscope's own engine (it runs on the CPU in this process).

    >>> wants_torch("torch", None, None), wants_torch("convscope", "cpu", 1)
    (True, False)
    """
    if engine not in ENGINES:
        raise ConfigError(f"fit: engine must be one of {list(ENGINES)}; got {engine!r}.")
    if engine == "torch":
        return True
    if device not in (None, "cpu") or nproc not in (None, 1):
        raise ConfigError(
            f"fit: device={device!r}, nproc={nproc!r} are options of engine='torch' (PyTorch on a GPU or "
            f"several processes); convscope's own engine trains on the CPU in this process (threads= "
            f"sets its threads). Pass engine='torch' (--engine torch)."
        )
    return False


def torchrun_env() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` when this process was started by ``torchrun`` (or
    any launcher that sets ``RANK`` and ``WORLD_SIZE``), else None.

    Raises:
        ConfigError: the variables are set but are not integers with 0 <= RANK < WORLD_SIZE.

    >>> torchrun_env() is None or len(torchrun_env()) == 3
    True
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ConfigError(
            f"the environment sets RANK={os.environ['RANK']!r} and WORLD_SIZE={os.environ['WORLD_SIZE']!r} "
            f"(as torchrun does) but they are not integers."
        ) from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"the environment sets RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}; expected "
                          f"0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0.")
    return rank, world, local


def resolve_device(torch: Any, device: Any, nproc: int = 1) -> str:
    """Check ``device`` (``"cpu"``, ``"cuda"`` or ``"cuda:K"``) against what torch sees.

    Returns:
        ``"cpu"`` or ``"cuda"`` (the device kind; with ``"cuda:K"`` a single process uses GPU K,
        and ``nproc`` processes use GPUs 0..nproc-1, one each).

    Raises:
        ConfigError: an unknown device, CUDA asked for but not available (a CPU-only build of
            torch, or no GPU visible), or more processes than GPUs.
    """
    if not isinstance(device, str) or not (device in ("cpu", "cuda") or (
            device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:K' (GPU number K); got {device!r}.")
    if device == "cpu":
        return device
    if not torch.cuda.is_available():
        why = ("this torch is a CPU-only build (torch.version.cuda is None)" if torch.version.cuda is None
               else "torch.cuda.is_available() is False: no GPU is visible (driver, CUDA_VISIBLE_DEVICES)")
        raise ConfigError(
            f"device={device!r}: torch {torch.__version__} has no CUDA device: {why}. Train on the CPU "
            f"(device='cpu', --device cpu, with nproc for several processes), or install a CUDA build of "
            f"torch on a machine with a GPU."
        )
    count = torch.cuda.device_count()
    index = int(device[5:]) if ":" in device else 0
    need = max(nproc, index + 1) if nproc == 1 else nproc
    if need > count:
        raise ConfigError(
            f"device={device!r} with {nproc} process{'es' if nproc > 1 else ''} needs {need} GPU"
            f"{'s' if need > 1 else ''} (one per process); torch sees {count}."
        )
    return "cuda"


# ----------------------------------------------------------------------------- the batches


class _Batches:
    """A convscope loader's global batches, each cut to one process's share (see ShardedBatches)."""

    def __init__(self, loader: DataLoader, rank: int, world: int) -> None:
        self.loader, self.rank, self.world = loader, rank, world

    def __len__(self) -> int:
        return len(self.loader)

    def shards(self) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        for x, y in self.loader:
            yield x[self.rank :: self.world], np.asarray(y)[self.rank :: self.world], int(x.shape[0])


def ShardedBatches(loader: DataLoader, rank: int = 0, world: int = 1) -> Any:  # noqa: N802 (a class factory)
    """A ``torch.utils.data.IterableDataset`` of one process's share of ``loader``'s batches.

    Each item is ``(x, y, n)``: the images and labels ``batch[rank::world]`` of the next
    global batch (as tensors) and the global batch's size ``n``. Every process iterates
    a loader with the same seed, so they all see the same global batches in the same order
    (convscope's order: the loader's shuffle and transform draw from its one generator).
    Feed it to ``torch.utils.data.DataLoader(..., batch_size=None)``.

    Raises:
        MissingDependencyError: torch is not installed.
        ConfigError: ``rank`` outside ``0..world-1``.

    Example:
        >>> torch = import_torch_engine()
        >>> x, y = np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10)
        >>> shards = ShardedBatches(DataLoader((x, y), batch_size=4), rank=1, world=2)
        >>> [(xb.flatten().tolist(), n) for xb, yb, n in torch.utils.data.DataLoader(shards, batch_size=None)]
        [([1.0, 3.0], 4), ([5.0, 7.0], 4), ([9.0], 2)]
    """
    torch = import_torch_engine("ShardedBatches")
    world = _check_positive_int(world, "world")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world:
        raise ConfigError(f"ShardedBatches: rank must be an int in 0..{world - 1}; got {rank!r}.")
    batches = _Batches(loader, int(rank), world)

    class _Sharded(torch.utils.data.IterableDataset):  # type: ignore[name-defined]
        def __iter__(self) -> Iterator[Any]:
            for x, y, n in batches.shards():
                yield torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)), n

        def __len__(self) -> int:
            return len(batches)

    return _Sharded()


# ----------------------------------------------------------------------------- optimizer, schedule


def _torch_optimizer(torch: Any, opt: Any, params: dict[str, Any]) -> Any:
    """torch.optim's twin of a convscope optimizer over the torch parameters of the same names,
    with its hyperparameters and its state (buffers, step counters)."""
    from ..optim import SGD, Adam, AdamW

    h = opt.hyperparameters()
    tparams = [params[name] for name in opt.param_names]
    if isinstance(opt, (Adam, AdamW)):
        cls = torch.optim.AdamW if isinstance(opt, AdamW) else torch.optim.Adam
        topt = cls(tparams, lr=h["lr"], betas=tuple(h["betas"]), eps=h["eps"], weight_decay=h["weight_decay"],
                   foreach=False)
    elif isinstance(opt, SGD):
        topt = torch.optim.SGD(tparams, lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                               nesterov=h["nesterov"], weight_decay=h["weight_decay"], foreach=False)
    else:
        raise ConfigError(f"engine='torch' maps convscope's SGD, Adam and AdamW to torch.optim; got "
                          f"{type(opt).__name__}.")
    for name, state in opt.state.items():
        p = params[name]
        tstate: dict[str, Any] = {}
        for key in opt._buffers:
            if state.get(key) is not None:
                tstate[key] = torch.from_numpy(np.array(state[key], copy=True)).to(p.device)
        if "step" in state:
            tstate["step"] = torch.tensor(float(state["step"]))
        if tstate:
            topt.state[p] = tstate
    return topt


def _torch_scheduler(torch: Any, sched: Any, topt: Any) -> Any:
    """torch.optim.lr_scheduler's twin of a convscope schedule, at the same position."""
    if sched is None:
        return None
    from ..optim import CosineAnnealingLR, OneCycleLR, StepLR

    ls = torch.optim.lr_scheduler
    group = topt.param_groups[0]
    now = {key: group[key] for key in ("lr", "momentum", "betas") if key in group}
    group["lr"] = sched.base_lr  # the schedule starts from its base learning rate, as it did
    if isinstance(sched, OneCycleLR):
        cfg = sched.state_dict()["config"]
        tsched = ls.OneCycleLR(topt, **cfg)
    elif isinstance(sched, CosineAnnealingLR):
        tsched = ls.CosineAnnealingLR(topt, T_max=sched.T_max, eta_min=sched.eta_min)
    elif isinstance(sched, StepLR):
        tsched = ls.StepLR(topt, step_size=sched.step_size, gamma=sched.gamma)
    else:
        raise ConfigError(f"engine='torch' maps StepLR, CosineAnnealingLR and OneCycleLR to "
                          f"torch.optim.lr_scheduler; got {type(sched).__name__}.")
    if sched.last_epoch > 0:  # resumed: continue where the convscope schedule is
        tsched.last_epoch = sched.last_epoch
        group.update(now)
        tsched._last_lr = [group["lr"]]
    return tsched


def _copy_back(torch: Any, net: Any, run: Run, topt: Any, tsched: Any, names: dict[Any, str]) -> None:
    """Put the PyTorch state into the convscope model, optimizer and schedule of ``run``."""
    from ..export import from_torch

    run.model.load_state_dict(from_torch(net).state_dict())
    opt = run.optimizer
    group = topt.param_groups[0]
    hyper = {key: (list(group[key]) if key == "betas" else group[key]) for key in opt._hyperparameters}
    counters: dict[str, dict[str, int]] = {}
    arrays: dict[str, np.ndarray] = {}
    for p, tstate in topt.state.items():
        name = names[p]
        if "step" in tstate and "step" in opt._counters:
            counters[name] = {"step": int(float(tstate["step"]))}
        for key in opt._buffers:
            if tstate.get(key) is not None:
                arrays[f"{name}/{key}"] = tstate[key].detach().cpu().numpy().copy()
    opt.load_state_dict({"optimizer": type(opt).__name__, "hyperparameters": hyper,
                         "param_names": list(opt.param_names), "counters": counters, "arrays": arrays})
    if tsched is not None:
        state = run.scheduler.state_dict()
        state["last_epoch"], state["last_lr"] = int(tsched.last_epoch), float(group["lr"])
        if "last_momentum" in state and state["config"].get("cycle_momentum"):
            state["last_momentum"] = float(group["betas"][0] if "betas" in group else group["momentum"])
        run.scheduler.load_state_dict(state)


def _check_mappable(model: Module, net: Any, torch: Any) -> dict[str, Any]:
    """The torch parameters by convscope parameter name (to_torch keeps the order); refuses
    models whose round trip through PyTorch would change them."""
    for name, m in model.named_modules():
        if getattr(m, "flip", False):
            raise ConfigError(
                f"engine='torch': layer {name!r} is a true convolution (flip=True), which PyTorch trains as "
                f"a cross-correlation of reversed filters; train it with convscope's engine, or build it "
                f"with flip=False."
            )
    ours = list(model.named_parameters())
    theirs = list(net.parameters())
    if len(ours) != len(theirs) or any(tuple(p.data.shape) != tuple(t.shape) for (_, p), t in zip(ours, theirs)):
        raise ConfigError("engine='torch': the PyTorch model's parameters do not line up with the convscope "
                          "model's; train this model with convscope's engine.")
    return {name: t for (name, _), t in zip(ours, theirs)}


# ----------------------------------------------------------------------------- one process


@dataclass
class _Job:
    """What every process needs to train its share (pickled to the spawned processes)."""

    model: Module
    optimizer: Any
    scheduler: Any
    interval: str
    train: Any
    transform: Any
    loader_state: dict
    batch_size: int
    shuffle: bool
    drop_last: bool
    epochs: int
    start_epoch: int
    clip: float | None
    check_finite: bool
    device: str
    device_index: int
    world: int
    threads: int
    seed: int | None
    timeout: float
    init_method: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class _Rank0:
    """What only rank 0 does: callbacks, validation, progress, the gradient hook."""

    run: Run
    val_loader: DataLoader | None
    progress: Any
    gradient_hook: Callable[[int, dict[str, np.ndarray]], None] | None


def _device_of(torch: Any, job: _Job, local_rank: int) -> Any:
    if job.device == "cpu":
        return torch.device("cpu")
    index = job.device_index if job.world == 1 else local_rank
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


@contextlib.contextmanager
def _torch_threads(torch: Any, threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_rank(rank: int, local_rank: int, job: _Job, main: _Rank0 | None) -> History:
    """Train on one process: this rank's share of every global batch, DDP over ``job.world``."""
    torch = import_torch_engine()
    from ..export import to_torch

    dist = torch.distributed
    with _torch_threads(torch, job.threads):
        device = _device_of(torch, job, local_rank)
        if job.seed is not None:  # Dropout's masks: PyTorch's generator, one stream per rank
            torch.manual_seed(int(np.random.SeedSequence([int(job.seed), rank]).generate_state(1)[0]))
        net = to_torch(job.model).to(device)
        net.train()
        params = _check_mappable(job.model, net, torch)
        names = {p: n for n, p in params.items()}
        topt = _torch_optimizer(torch, job.optimizer, params)
        tsched = _torch_scheduler(torch, job.scheduler, topt)
        stepper = net
        if job.world > 1:
            stepper = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None)
        if main is not None:
            loader = main.run.loader
        else:
            loader = DataLoader(job.train, job.batch_size, shuffle=job.shuffle, drop_last=job.drop_last,
                                rng=np.random.default_rng(0), transform=job.transform)
            loader.load_state(job.loader_state)
        batches = torch.utils.data.DataLoader(ShardedBatches(loader, rank, job.world), batch_size=None)
        dtype = next(net.parameters()).dtype
        history = main.run.history if main is not None else History()
        return _epochs(torch, dist, job, rank, device, dtype, net, stepper, topt, tsched, batches, history,
                       names, main)


def _epochs(torch: Any, dist: Any, job: _Job, rank: int, device: Any, dtype: Any, net: Any, stepper: Any,
            topt: Any, tsched: Any, batches: Any, history: History, names: dict[Any, str],
            main: _Rank0 | None) -> History:
    F = torch.nn.functional
    run = main.run if main is not None else None
    callbacks = run.callbacks if run is not None else []
    for cb in callbacks:
        cb.on_train_begin(run)
    epoch = job.start_epoch
    stop = False
    step = 0
    while epoch < job.epochs and not stop:
        epoch += 1
        for cb in callbacks:
            cb.on_epoch_begin(run, epoch)
        net.train()
        lr = float(topt.param_groups[0]["lr"])
        bar = EpochProgress(main.progress if main is not None else False, epoch, job.epochs, len(batches))
        total, correct, seen = 0.0, 0, 0
        start = time.perf_counter()
        try:
            for b, (xb, yb, n) in enumerate(batches, start=1):
                xb = xb.to(device=device, dtype=dtype, non_blocking=True)
                yb = yb.to(device=device, dtype=torch.long, non_blocking=True)
                topt.zero_grad(set_to_none=False)
                out = stepper(xb)
                loss_sum = F.cross_entropy(out, yb, reduction="sum")
                (loss_sum * (job.world / n)).backward()  # DDP's average: d(mean over the global batch)
                stats = torch.stack([loss_sum.detach().double(), (out.detach().argmax(1) == yb).sum().double()])
                if job.world > 1:
                    dist.all_reduce(stats)  # on the device: NCCL reduces GPU tensors only
                stats = stats.cpu()
                value, hits = float(stats[0]) / n, int(round(float(stats[1])))
                if job.check_finite and not math.isfinite(value):
                    raise NumericalError(
                        f"engine='torch': training stopped at epoch {epoch}, batch {b}: the loss is {value}. "
                        f"Lower the learning rate (now {float(topt.param_groups[0]['lr']):g}), clip the "
                        f"gradients (clip_grad_norm=1.0, --clip), or check the data.")
                step += 1
                if main is not None and main.gradient_hook is not None:
                    main.gradient_hook(step, {names[p]: p.grad.detach().cpu().numpy().copy()
                                              for p in net.parameters() if p.grad is not None})
                if job.clip is not None:
                    torch.nn.utils.clip_grad_norm_(list(net.parameters()), job.clip)
                topt.step()
                if tsched is not None and job.interval == "batch":
                    tsched.step()
                total += value * n
                seen += n
                correct += hits
                bar.update(n, total / seen, correct / seen, seen / max(time.perf_counter() - start, 1e-9))
                for cb in callbacks:
                    cb.on_batch_end(run, b, {"loss": value, "size": n, "correct": hits})
        except BaseException:
            bar.close()
            raise
        train_seconds = time.perf_counter() - start
        if tsched is not None and job.interval == "epoch":
            tsched.step()
        record: dict[str, Any] = {"epoch": epoch, "train_loss": total / max(seen, 1),
                                  "train_accuracy": correct / max(seen, 1)}
        extra = ""
        if main is not None and main.val_loader is not None:
            scores = _score(torch, net, main.val_loader, device, dtype)
            record["val_loss"], record["val_accuracy"] = scores["loss"], scores["accuracy"]
            extra = f"val_loss {scores['loss']:.4f} val_acc {scores['accuracy']:.4f}"
        record["lr"] = lr
        record["seconds"] = time.perf_counter() - start
        record["train_seconds"] = train_seconds
        record["images_per_second"] = seen / max(train_seconds, 1e-9)
        bar.close(f"{extra} {record['seconds']:.1f}s".strip())
        history.append(record)
        if run is not None:
            if callbacks:  # they may read or save the run: give them the state as it is now
                _copy_back(torch, net, run, topt, tsched, names)
            run.epoch = epoch
            for cb in callbacks:
                cb.on_epoch_end(run, epoch, history.last)
            run._write_requested()
            stop = run.stop_training
        if job.world > 1:  # a callback on rank 0 may stop the run: every rank stops with it
            flag = torch.tensor([1.0 if stop else 0.0], device=device)
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
    if run is not None:
        _copy_back(torch, net, run, topt, tsched, names)
        if run.stop_training:
            history.info["stopped_early"] = True
            history.info["stop_reason"] = run.stop_reason
        for cb in callbacks:
            cb.on_train_end(run)
    else:
        from ..export import from_torch

        job.model.load_state_dict(from_torch(net).state_dict())
    return history


def _score(torch: Any, net: Any, loader: DataLoader, device: Any, dtype: Any) -> dict[str, Any]:
    """Mean cross-entropy and accuracy of ``net`` over ``loader``, in eval mode, no gradients."""
    was_training = net.training
    net.eval()
    total, correct, seen = 0.0, 0, 0
    try:
        with torch.no_grad():
            for x, y in loader:
                xb = torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)
                yb = torch.from_numpy(np.asarray(y)).to(device=device, dtype=torch.long)
                out = net(xb)
                total += float(torch.nn.functional.cross_entropy(out, yb, reduction="sum"))
                correct += int((out.argmax(1) == yb).sum())
                seen += int(xb.shape[0])
    finally:
        net.train(was_training)
    if seen == 0:
        raise ConfigError("evaluate_torch: the data holds no samples.")
    return {"loss": total / seen, "accuracy": correct / seen, "samples": seen}


def evaluate_torch(model: Module, data: Any, *, batch_size: int = 256, transform: Any = None,
                   device: str = "cpu") -> dict[str, Any]:
    """Score a convscope classifier with PyTorch (:func:`convscope.export.to_torch`), as
    :func:`convscope.train.evaluate` scores it with convscope: ``{"loss", "accuracy", "samples"}``.

    What the torch engine reports of a model; the two agree to float rounding.

    Raises:
        MissingDependencyError: torch is not installed.
        ConfigError: no CUDA for ``device="cuda"``, empty data.
    """
    torch = import_torch_engine("evaluate_torch")
    from ..export import to_torch

    if not isinstance(model, Module):
        raise ArgumentTypeError(f"evaluate_torch: model must be a convscope Module; got {type(model).__name__}.")
    kind = resolve_device(torch, device)
    dev = torch.device(device if kind == "cuda" else "cpu")
    net = to_torch(model).to(dev)
    loader = _loader(data, _check_positive_int(batch_size, "batch_size"), shuffle=False, drop_last=False,
                     rng=np.random.default_rng(0), transform=transform, name="evaluate_torch: data")
    return _score(torch, net, loader, dev, next(net.parameters()).dtype)


# ----------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _join_group(torch: Any, job: _Job, rank: int) -> None:
    backend = "nccl" if job.device == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=job.timeout)
    if job.init_method is None:  # torchrun: MASTER_ADDR and MASTER_PORT in the environment
        torch.distributed.init_process_group(backend, timeout=timeout)
    else:
        torch.distributed.init_process_group(backend, init_method=job.init_method, rank=rank,
                                             world_size=job.world, timeout=timeout)


def _worker_main(index: int, job: _Job) -> None:
    """A process spawned by :func:`fit_torch`: rank ``index + 1`` of ``job.world``."""
    torch = import_torch_engine()
    rank = index + 1
    _join_group(torch, job, rank)
    try:
        _train_rank(rank, rank, job, None)
    finally:
        torch.distributed.destroy_process_group()


def _spawned(torch: Any, job: _Job, main: _Rank0) -> History:
    """Rank 0 here, ranks 1..world-1 in processes spawned by torch.multiprocessing."""
    job.init_method = f"tcp://127.0.0.1:{_free_port()}"
    context = torch.multiprocessing.spawn(_worker_main, args=(job,), nprocs=job.world - 1, join=False)
    try:
        _join_group(torch, job, 0)
        try:
            history = _train_rank(0, 0, job, main)
        finally:
            torch.distributed.destroy_process_group()
        deadline = time.monotonic() + job.timeout
        while not context.join(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise ConfigError(f"engine='torch': a training process did not finish within {job.timeout:g} s "
                                  f"of rank 0 (timeout=).")
    except BaseException as exc:
        for p in context.processes:
            if p.is_alive():
                p.terminate()
        worker_error: BaseException | None = None
        try:
            context.join(timeout=5)
        except Exception as err:  # a worker's own traceback says more than rank 0's timeout
            worker_error = err
        if worker_error is not None and not isinstance(exc, KeyboardInterrupt):
            raise ConfigError(f"engine='torch': a training process failed: {worker_error}") from exc
        raise
    return history


def fit_torch(
    model: Module,
    *data: Any,
    device: str = "cpu",
    nproc: int | None = None,
    gradient_hook: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    timeout: float = 300.0,
    **options: Any,
) -> History:
    """Train ``model`` with PyTorch on ``device`` over ``nproc`` processes; returns the History.

    ``options`` are the keyword arguments of :func:`convscope.train.fit` (``train``, ``val``,
    ``epochs``, ``optimizer``, ``loss``, ``batch_size``, ``seed``, ``callbacks``, ``scheduler``,
    ``scheduler_interval``, ``resume``, ``progress``, ``transform``, ``eval_transform``,
    ``shuffle``, ``drop_last``, ``clip_grad_norm``, ``check_finite``, ``eval_batch_size``,
    ``threads``), with fit's defaults and meaning and the same batches
    (``fit(..., engine="torch")`` calls this); see the module docstring for what PyTorch
    does and how the processes are started. The trained weights are put back into ``model``
    (and the optimizer's and schedule's state into ``optimizer`` and ``scheduler``).

    Args:
        device: ``"cpu"`` (default), ``"cuda"`` or ``"cuda:K"``.
        nproc: processes (default 1; under ``torchrun`` its ``WORLD_SIZE``); the global batch
            stays ``batch_size``, each process takes ``batch_size / nproc`` of it.
        threads: ``torch.set_num_threads`` per process (default: CPUs / processes).
        gradient_hook: for tests and debugging: called on rank 0 after each backward pass as
            ``hook(step, {parameter name: gradient})``, the gradients already averaged over
            the processes (before clipping and the optimizer step).
        timeout: seconds a process waits for the others (joining, every all-reduce) before
            the run fails, instead of hanging.

    Raises:
        MissingDependencyError: torch is not installed (``pip install "convscope[torch]"``).
        ConfigError: a CUDA device that is not there, ``nproc`` not matching torchrun's
            ``WORLD_SIZE``, a loss, optimizer or schedule without a PyTorch twin, or what
            ``fit`` refuses.
        NumericalError: the loss became NaN/Inf.
    """
    torch = import_torch_engine()
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"fit: model must be a convscope Module; got {type(model).__name__}.")
    if len(data) > 2 or (data and callable(getattr(data[0], "backward", None))):
        raise ArgumentTypeError("fit(engine='torch') takes the model, the training data and optionally the "
                                "validation data by position (fit(model, train, val)); the rest by name.")
    if options.pop("engine", "torch") != "torch":
        raise ConfigError("fit_torch trains with engine='torch'; call fit for another engine.")
    from .loop import fit  # the module OTHER_ENGINES comes from: no new import edge

    try:  # fit's own arguments and defaults, so the two engines cannot drift apart
        bound = inspect.signature(fit).bind(model, **options)
    except TypeError as exc:
        raise ArgumentTypeError(f"fit(engine='torch'): {exc}.") from None
    bound.apply_defaults()
    a = bound.arguments
    train = data[0] if data else a["train"]
    val = data[1] if len(data) > 1 else a["val"]
    epochs, optimizer, batch_size, seed, callbacks, scheduler = (
        a[k] for k in ("epochs", "optimizer", "batch_size", "seed", "callbacks", "scheduler"))
    scheduler_interval, clip_grad_norm, threads = a["scheduler_interval"], a["clip_grad_norm"], a["threads"]
    if train is None:
        raise ArgumentTypeError("fit: give the training data: fit(model, train, engine='torch').")
    if not isinstance(_pick_loss("fit", a["loss"], a["loss_fn"]), CrossEntropyLoss):
        raise ConfigError("fit(engine='torch') trains with cross-entropy (nn.CrossEntropyLoss, the default), "
                          "which it maps to torch.nn.functional.cross_entropy; other losses have no mapping.")
    if optimizer is None:
        from ..optim import Adam

        optimizer = Adam(model.named_parameters(), lr=1e-3)
    if scheduler_interval not in ("epoch", "batch"):
        raise ConfigError(f"fit: scheduler_interval must be 'epoch' or 'batch'; got {scheduler_interval!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ConfigError(f"fit: seed must be a non-negative int or None; got {seed!r}.")
    if clip_grad_norm is not None and not (isinstance(clip_grad_norm, (int, float)) and clip_grad_norm > 0):
        raise ConfigError(f"fit: clip_grad_norm must be a positive number or None; got {clip_grad_norm!r}.")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigError(f"fit: timeout must be a positive number of seconds; got {timeout!r}.")
    epochs = _check_positive_int(epochs, "epochs")
    env = torchrun_env()
    world = env[1] if env is not None else 1
    if nproc is not None:
        nproc = _check_positive_int(nproc, "nproc")
        if env is not None and nproc != world:
            raise ConfigError(f"fit: nproc={nproc} but torchrun started {world} processes (WORLD_SIZE); leave "
                              f"nproc out under torchrun, or make them equal.")
        world = nproc
    kind = resolve_device(torch, device, world)
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // world)
    threads = _check_positive_int(threads, "threads")
    if isinstance(train, DataLoader):
        if world > 1:
            raise ConfigError("fit(engine='torch', nproc>1) needs the data as a Dataset or (x, y) (every "
                              "process builds its own loader with the same seed), not a DataLoader.")
        loader = train
    else:
        data_rng = None
        if seed is not None:  # the stream fit draws the training batches from
            data_rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(2)[0])
        size = _check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        loader = _loader(train, size, shuffle=bool(a["shuffle"]), drop_last=bool(a["drop_last"]), rng=data_rng,
                         transform=a["transform"], name="fit: train")
    if len(loader) == 0:
        raise ConfigError(f"fit: the training data gives no batches ({loader.num_samples} samples, batch_size "
                          f"{loader.batch_size}, drop_last={loader.drop_last}).")
    if any(not isinstance(cb, Callback) for cb in callbacks):
        raise ArgumentTypeError("fit: every callback must subclass convscope.train.Callback.")
    run = Run(model, CrossEntropyLoss(), optimizer, scheduler, loader, list(callbacks), epochs,
              None if seed is None else int(seed))
    resume = a["resume"]
    if resume is not None:
        ckpt = load_training_checkpoint(resume)
        if ckpt.epoch > epochs:
            raise ConfigError(f"fit: the checkpoint {str(resume)!r} already has {ckpt.epoch} epochs but "
                              f"epochs={epochs}; epochs is the total.")
        restore_run(run, ckpt)
        run.history.info.setdefault("resumed", []).append({"path": str(resume), "epoch": ckpt.epoch})
    run.history.info.setdefault("engines", []).append({
        "engine": "torch", "torch": str(torch.__version__), "device": device, "nproc": world,
        "threads": threads, "from_epoch": run.epoch,
    })
    val_loader = None
    if val is not None:
        val_loader = _loader(val, _check_positive_int(a["eval_batch_size"], "eval_batch_size"), shuffle=False,
                             drop_last=False, rng=np.random.default_rng(0), transform=a["eval_transform"],
                             name="fit: val")
    job = _Job(model=model, optimizer=optimizer, scheduler=scheduler, interval=scheduler_interval,
               train=None if world == 1 else train, transform=a["transform"], loader_state=loader.state,
               batch_size=loader.batch_size, shuffle=loader.shuffle, drop_last=loader.drop_last, epochs=epochs,
               start_epoch=run.epoch, clip=None if clip_grad_norm is None else float(clip_grad_norm),
               check_finite=bool(a["check_finite"]), device=kind,
               device_index=int(device[5:]) if device.startswith("cuda:") else 0, world=world,
               threads=threads, seed=None if seed is None else int(seed), timeout=float(timeout))
    if env is None:
        main = _Rank0(run, val_loader, a["progress"], gradient_hook)
        return _train_rank(0, 0, job, main) if world == 1 else _spawned(torch, job, main)
    rank, _, local_rank = env  # torchrun: this process is one rank; rank 0 runs the callbacks
    if rank == 0:
        main = _Rank0(run, val_loader, a["progress"], gradient_hook)
    else:
        run.callbacks = []
        main = _Rank0(run, None, False, None)
    if world == 1:
        return _train_rank(0, local_rank, job, main)
    _join_group(torch, job, rank)
    try:
        return _train_rank(rank, local_rank, job, main)
    finally:
        torch.distributed.destroy_process_group()


OTHER_ENGINES["torch"] = (wants_torch, fit_torch)
