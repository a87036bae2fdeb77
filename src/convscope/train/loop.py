"""The training loop (notes 9.4): forward, loss, backward, step, over and over.

:func:`fit` trains a model by mini-batch gradient descent and returns a
:class:`~convscope.train.history.History`; :func:`evaluate` scores a model on data;
:func:`predict` gives class probabilities. One step of :func:`fit` is exactly the notes'
data flow::

    model.zero_grad()
    output = model(x)                       # each module keeps what its backward needs
    value = loss(output, y)                 # a float; stop if NaN/Inf (names the layer)
    model.backward(loss.backward())         # dLoss/d(parameter) into every .grad
    check every .grad is finite             # else stop, naming the layer
    optimizer.step(); scheduler.step()      # (the scheduler per batch or per epoch)

Determinism. ``fit(seed=s)`` draws two independent streams from
``numpy.random.SeedSequence(s)``: one for the training DataLoader (shuffle order and the
randomness of ``transform``: shifts, crops, flips) and one that reseeds the generator of
every module that has one (Dropout masks). The initial weights come from the model's
construction: build it with a seed too (``build_model(name, seed=s)``, or ``rng=`` for
each layer; ``convscope train --seed S`` does both). Then the whole run repeats bit for
bit, limited by:

* the same machine (CPU kind) and the same NumPy / BLAS build: the BLAS kernel picked
  for the CPU fixes the order of floating-point additions in every matrix product;
* the same number of BLAS threads (``threads=``, ``--threads``): how a product is split
  over threads may change rounding;
* the same inputs in the same order: the same data files, batch size, epochs, transforms.

Resume. ``fit(..., resume=path)`` reads a checkpoint written by
:class:`~convscope.train.callbacks.ModelCheckpoint` (weights, optimizer buffers, scheduler
position, the DataLoader's generator, module generators, history, callback states) and
continues from the epoch after it up to ``epochs`` (the total, not a further count): the
weights after resuming at N and training to N+M equal those of an uninterrupted run of
N+M epochs, bit for bit, within the limits above. Build the model, optimizer and
scheduler exactly as for the original run, and pass the same data and settings.

Call forms. ``fit(model, train, val=None, *, epochs=..., optimizer=..., loss=...)``: the
loss defaults to :class:`~convscope.nn.CrossEntropyLoss` and the optimizer to
:class:`~convscope.optim.Adam` (lr 1e-3) over the model's parameters; ``loss_fn=`` is
accepted as another name of ``loss=`` (PyTorch scripts call it so).
``evaluate(model, data, *, loss=None)`` scores with cross-entropy unless told otherwise.
The earlier forms with the loss first, ``fit(model, loss, optimizer, train, val)`` and
``evaluate(model, loss, data)``, still work in this release and raise a
:class:`DeprecationWarning`.

Example:
    >>> import numpy as np
    >>> from convscope import nn, optim
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((64, 2)).astype(np.float32)
    >>> y = (x[:, 0] > x[:, 1]).astype(np.int64)          # a linearly separable toy task
    >>> model = nn.Sequential(nn.Linear(2, 2, rng=0))
    >>> history = fit(model, (x, y), epochs=20, batch_size=16, seed=0, progress=False,
    ...               optimizer=optim.SGD(model.named_parameters(), lr=0.5))
    >>> len(history), history[-1]["train_accuracy"] > 0.9
    (20, True)
    >>> round(evaluate(model, (x, y))["accuracy"], 2) > 0.9
    True
    >>> result = predict(model, x[:2])
    >>> result.probabilities.sum(axis=1).round(6), result.classes.shape  # a row per image
    (array([1., 1.], dtype=float32), (2,))
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..data import DataLoader
from ..errors import (
    ArgumentTypeError,
    ConfigError,
    DTypeError,
    MissingDependencyError,
    ShapeError,
    TrainingWarning,
)
from ..functional import softmax
from ..models import inference_twin
from ..nn import Module
from ..nn.layer_types import RandomLayer
from ..optim import clip_grad_norm_
from ..shapes import as_array
from .callbacks import Callback
from .checkpoint import (
    load_training_checkpoint,
    module_generators,
    restore_run,
    save_training_checkpoint,
)
from .data_parallel import sharded_forward, training_step
from .diagnose import gradient_error, loss_error, progress_warning, update_ratios, validation_warning
from .history import History
from .metrics import correct_count, is_classification
from .progress import EpochProgress

__all__ = ["fit", "evaluate", "predict", "Prediction", "Run", "blas_threads"]


# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` threads: BLAS (OpenBLAS/MKL behind NumPy's matmul) and convscope's own.

    ``None`` changes nothing. Uses ``threadpoolctl`` (installed with scikit-learn, part of
    ``convscope[train]``). Small models often train faster on one thread: their matrix
    products are too small to share, and idle threads spin while another process holds a
    core.

    Raises:
        ConfigError: ``threads`` is not a positive int.
        MissingDependencyError: threadpoolctl is missing.
    """
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ConfigError(f"threads must be a positive int or None; got {threads!r}.")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise MissingDependencyError(
            "limiting the BLAS threads needs threadpoolctl (pip install threadpoolctl, or "
            'pip install "convscope[train]"); or leave threads unset.'
        ) from None
    from ..parallel import num_threads

    # BLAS gets the threads between layers; inside a convolution convscope's own threads
    # take the batch chunks (BLAS held to one thread each): convscope.set_num_threads.
    with threadpool_limits(limits=int(threads), user_api="blas"), num_threads(int(threads)):
        yield


def _model_dtype(model: Module) -> np.dtype | None:
    for param in model.parameters():
        return param.data.dtype
    return None


def _as_batch(x: Any, dtype: np.dtype | None, op: str) -> np.ndarray:
    """A batch as the model's float dtype (float data only: ints would be unscaled pixels)."""
    x = as_array(x, "x", op)
    if x.dtype.kind != "f":
        raise DTypeError(
            f"{op}: images must be floats on the scale the model was trained on (e.g. [0, 1]); "
            f"got dtype {x.dtype}. Divide integer pixels by their maximum first."
        )
    if dtype is not None and x.dtype != dtype:
        x = x.astype(dtype)
    return x


def _loader(data: Any, batch_size: int, *, shuffle: bool, drop_last: bool, rng: Any,
            transform: Any, name: str) -> DataLoader:
    if isinstance(data, DataLoader):
        if transform is not None:
            raise ConfigError(
                f"{name} is a DataLoader, which brings its own transform; give the transform to "
                f"the DataLoader, not to fit/evaluate."
            )
        return data
    try:
        return DataLoader(data, batch_size, shuffle=shuffle, drop_last=drop_last, rng=rng,
                          transform=transform)
    except ArgumentTypeError as exc:
        raise ArgumentTypeError(
            f"{name} must be a Dataset, a pair of arrays (x, y) or a DataLoader: {exc}"
        ) from None


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"fit: {name} must be a positive int; got {value!r}.")
    return int(value)


def _is_loss(value: Any) -> bool:
    """A loss module: callable with a ``backward`` (what the first argument of the
    deprecated call forms is)."""
    return callable(value) and hasattr(value, "backward") and not isinstance(value, (tuple, list))


def _pick_loss(op: str, loss: Any, loss_fn: Any) -> Any:
    """``loss=`` or its other name ``loss_fn=``; cross-entropy when neither is given."""
    if loss is not None and loss_fn is not None:
        raise ConfigError(f"{op}: give the loss once, as loss= or as loss_fn= (the same argument); got both.")
    chosen = loss if loss is not None else loss_fn
    if chosen is None:
        from ..nn import CrossEntropyLoss

        return CrossEntropyLoss()
    if not _is_loss(chosen):
        raise ArgumentTypeError(
            f"{op}: loss must be a loss module such as nn.CrossEntropyLoss() (called with "
            f"(output, y), with a backward()); got {type(chosen).__name__}."
        )
    return chosen


def _deprecated_form(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; call {new} "
        f"(see the CHANGELOG).", DeprecationWarning, stacklevel=3,
    )


# ----------------------------------------------------------------------------- the run


class Run:
    """The state of one :func:`fit` call, as callbacks and checkpoints see it.

    Attributes:
        model, loss, optimizer, scheduler: as given to fit.
        loader: the training :class:`~convscope.data.DataLoader`.
        callbacks: the callbacks, in order.
        history: the :class:`History` so far.
        epoch: epochs completed; ``epochs``: the target.
        seed: fit's seed.
        stop_training: set True (by a callback) to stop after this epoch;
            ``stop_reason`` says why.
    """

    def __init__(self, model: Module, loss: Any, optimizer: Any, scheduler: Any, loader: DataLoader,
                 callbacks: Sequence[Callback], epochs: int, seed: int | None) -> None:
        self.model, self.loss, self.optimizer, self.scheduler = model, loss, optimizer, scheduler
        self.loader = loader
        self.callbacks = list(callbacks)
        self.epochs = epochs
        self.seed = seed
        self.epoch = 0
        self.history = History()
        self.stop_training = False
        self.stop_reason = ""
        self._requests: list[tuple[Path, Callable[[Path], None] | None]] = []

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write a resume checkpoint of the current state now; returns the path written."""
        return save_training_checkpoint(path, self)

    def request_checkpoint(self, path: str | Path, on_written: Callable[[Path], None] | None = None) -> None:
        """Ask for a checkpoint at the end of this epoch, after every callback has run."""
        self._requests.append((Path(path), on_written))

    def _write_requested(self) -> None:
        requests, self._requests = self._requests, []
        for path, on_written in requests:
            written = self.save_checkpoint(path)
            if on_written is not None:
                on_written(written)


# ----------------------------------------------------------------------------- fit


#: Training engines besides convscope's own, by name: ``(wants(engine, device, nproc) -> bool,
#: fit)``. :mod:`convscope.train.torch_engine` registers ``"torch"`` when ``convscope.train``
#: is imported, so this module needs no import of the engine above it.
OTHER_ENGINES: dict[str, tuple[Callable[..., bool], Callable[..., Any]]] = {}


def fit(
    model: Module,
    *data: Any,
    train: Any = None,
    val: Any = None,
    epochs: int = 1,
    optimizer: Any = None,
    loss: Any = None,
    loss_fn: Any = None,
    batch_size: int | None = None,
    seed: int | None = None,
    callbacks: Sequence[Callback] = (),
    scheduler: Any = None,
    scheduler_interval: str = "epoch",
    resume: str | Path | None = None,
    progress: bool | str = True,
    transform: Any = None,
    eval_transform: Any = None,
    shuffle: bool = True,
    drop_last: bool = False,
    clip_grad_norm: float | None = None,
    check_finite: bool = True,
    eval_batch_size: int = 256,
    threads: int | None = None,
    engine: str = "convscope",
    device: str | None = None,
    nproc: int | None = None,
) -> History:
    """Train ``model`` by mini-batch gradient descent; returns the per-epoch History.

    Called as ``fit(model, train, val=None, *, epochs=1, optimizer=None, loss=None, ...)``
    (``train`` and ``val`` may be given by position or by name). The deprecated form
    ``fit(model, loss, optimizer, train, val)`` still works and warns.

    Args:
        model: a :class:`~convscope.nn.Module` giving raw scores (N, classes) for a
            classifier, or any output ``loss`` accepts.
        train: a :class:`~convscope.data.Dataset`, a pair of arrays ``(x, y)``, or a
            :class:`~convscope.data.DataLoader` (used as it is: its batch size, order and
            transform; ``seed`` then only reseeds the module generators).
        val: validation data in the same forms (scored after every epoch, in eval mode,
            adding ``val_loss`` / ``val_accuracy`` to the history).
        epochs: the total number of epochs (with ``resume``: the total including the
            epochs already done).
        optimizer: a :mod:`convscope.optim` optimizer over the model's parameters;
            default :class:`~convscope.optim.Adam` with lr 1e-3.
        loss: a loss module (``loss(output, y) -> float``, ``loss.backward() -> dLoss/doutput``);
            default :class:`~convscope.nn.CrossEntropyLoss`.
        loss_fn: another name of ``loss`` (give one of the two).
        batch_size: images per step (default 32; not with a DataLoader).
        seed: makes shuffling, augmentation and dropout repeatable (see the module doc).
        callbacks: :class:`~convscope.train.callbacks.Callback` objects, run in order.
        scheduler: a learning-rate schedule over ``optimizer`` (e.g. ``CosineAnnealingLR``).
        scheduler_interval: ``"epoch"`` (default) or ``"batch"``: when ``scheduler.step()`` runs.
        resume: a checkpoint written by ``ModelCheckpoint``: continue that run.
        progress: True: a tqdm bar (plain lines without tqdm); ``"plain"``: about ten
            lines per epoch; ``"epochs"``: one line per epoch; False: silent.
        transform: batch transform of the training images (``t(x, rng)``), e.g. random
            shifts and normalisation; applied with the loader's seeded generator.
        eval_transform: transform of the validation images (e.g. the same normalisation).
        shuffle, drop_last: of the training DataLoader.
        clip_grad_norm: clip the gradients' joint 2-norm to this value before each step.
        check_finite: stop with :class:`~convscope.errors.NumericalError` when the loss or
            a gradient is NaN/Inf (default True; the check reads every gradient once).
        eval_batch_size: batch size for validation.
        threads: BLAS threads during training (None: leave as is); see :func:`blas_threads`.
        engine: ``"convscope"`` (default) or ``"torch"``: the same recipe trained by PyTorch,
            the weights put back into ``model`` (:mod:`convscope.train.torch_engine`).
        device: with ``engine="torch"``: ``"cpu"`` (default), ``"cuda"`` or ``"cuda:K"``.
        nproc: with ``engine="torch"``: processes joined by ``torch.distributed`` (default 1).

    Returns:
        :class:`~convscope.train.history.History`: one record per epoch (``epoch``,
        ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``lr``,
        ``seconds``, ``train_seconds``, ``images_per_second``).

    Raises:
        NumericalError: the loss or a gradient became NaN/Inf; the message names the
            epoch, the batch and the layer, and what to try.
        ConfigError: invalid settings, or a ``resume`` checkpoint that does not match
            (other architecture, optimizer, schedule or data size) or already has more
            than ``epochs`` epochs.
        CheckpointError: a damaged or foreign ``resume`` file.
        ShapeError, DTypeError: data that does not fit the model.

    Warns:
        TrainingWarning: an epoch's loss diverged (more than 10 times the first batch's)
            or stalled far above it at chance accuracy, naming the learning rate and the
            layer the epoch's first step changed most; or the validation loss is not
            finite. Each kind once per call, also listed in ``history.info["warnings"]``
            (see :mod:`convscope.train.diagnose`).
    """
    if engine != "convscope" or device is not None or nproc is not None:  # another engine (issue 17)
        wants_other, fit_other = OTHER_ENGINES["torch"]
        if wants_other(engine, device, nproc):
            return fit_other(
                model, *data, train=train, val=val, epochs=epochs, optimizer=optimizer, loss=loss,
                loss_fn=loss_fn, batch_size=batch_size, seed=seed, callbacks=callbacks, scheduler=scheduler,
                scheduler_interval=scheduler_interval, resume=resume, progress=progress, transform=transform,
                eval_transform=eval_transform, shuffle=shuffle, drop_last=drop_last,
                clip_grad_norm=clip_grad_norm, check_finite=check_finite, eval_batch_size=eval_batch_size,
                threads=threads, device=device or "cpu", nproc=nproc,
            )
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"fit: model must be a convscope Module; got {type(model).__name__}.")
    if data and _is_loss(data[0]):  # fit(model, loss, optimizer, train, val)
        if len(data) > 4:
            raise ArgumentTypeError(f"fit(model, loss, optimizer, train, val) takes at most 4 data "
                                    f"arguments after the model; got {len(data)}.")
        _deprecated_form("fit(model, loss, optimizer, train, val)",
                         "fit(model, train, val=val, optimizer=optimizer, loss=loss)")
        if loss is not None or loss_fn is not None:
            raise ConfigError("fit: the loss was given twice, first by position and again as loss=/loss_fn=.")
        old = dict(zip(("loss", "optimizer", "train", "val"), data))
        loss = old["loss"]
        if "optimizer" in old:
            if optimizer is not None:
                raise ConfigError("fit: the optimizer was given twice, by position and as optimizer=.")
            optimizer = old["optimizer"]
        data = tuple(old[k] for k in ("train", "val") if k in old)
    if len(data) > 2:
        raise ArgumentTypeError(
            f"fit takes the model, then the training data and optionally the validation data by "
            f"position (fit(model, train, val)); got {len(data) + 1} positional arguments. Give "
            f"the rest by name: optimizer=, loss=, epochs=, ..."
        )
    for name, value in zip(("train", "val"), data):
        if (train if name == "train" else val) is not None:
            raise ConfigError(f"fit: {name} was given twice, by position and as {name}=.")
        if name == "train":
            train = value
        else:
            val = value
    if train is None:
        raise ArgumentTypeError("fit: give the training data: fit(model, train), train being a Dataset, "
                                "a pair of arrays (x, y) or a DataLoader.")
    loss = _pick_loss("fit", loss, loss_fn)
    if optimizer is None:
        from ..optim import Adam

        optimizer = Adam(model.named_parameters(), lr=1e-3)
    for attr in ("step", "zero_grad", "state_dict", "load_state_dict"):
        if not hasattr(optimizer, attr):
            raise ArgumentTypeError(
                f"fit: optimizer must be a convscope.optim optimizer (SGD, Adam, AdamW); got "
                f"{type(optimizer).__name__}, which has no {attr}()."
            )
    epochs = _check_positive_int(epochs, "epochs")
    eval_batch_size = _check_positive_int(eval_batch_size, "eval_batch_size")
    if isinstance(train, DataLoader):
        if batch_size is not None and batch_size != train.batch_size:
            raise ConfigError(
                f"fit: train is a DataLoader with batch_size {train.batch_size}; batch_size="
                f"{batch_size} would be ignored. Leave batch_size unset."
            )
        batch_size = train.batch_size
    batch_size = _check_positive_int(32 if batch_size is None else batch_size, "batch_size")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ConfigError(f"fit: seed must be a non-negative int or None; got {seed!r}.")
    if scheduler_interval not in ("epoch", "batch"):
        raise ConfigError(f"fit: scheduler_interval must be 'epoch' or 'batch'; got {scheduler_interval!r}.")
    if scheduler is not None and not (hasattr(scheduler, "step") and hasattr(scheduler, "state_dict")):
        raise ArgumentTypeError(f"fit: scheduler must be a convscope.optim schedule; got {type(scheduler).__name__}.")
    if clip_grad_norm is not None and (
        isinstance(clip_grad_norm, bool) or not isinstance(clip_grad_norm, numbers.Real) or not clip_grad_norm > 0
    ):
        raise ConfigError(f"fit: clip_grad_norm must be a positive number or None; got {clip_grad_norm!r}.")
    if progress not in (True, False, None, "plain", "epochs", "tqdm"):
        raise ConfigError(f"fit: progress must be True, False, 'plain', 'epochs' or 'tqdm'; got {progress!r}.")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise ArgumentTypeError(
                f"fit: every callback must subclass convscope.train.Callback; got {type(cb).__name__}."
            )

    # Two independent streams from one seed: the data (order, augmentation), the modules.
    data_rng = module_seeds = None
    if seed is not None:
        data_seq, module_seq = np.random.SeedSequence(int(seed)).spawn(2)
        data_rng = np.random.default_rng(data_seq)
        module_seeds = module_seq
    loader = _loader(train, batch_size, shuffle=bool(shuffle), drop_last=bool(drop_last), rng=data_rng,
                     transform=transform, name="fit: train")
    if len(loader) == 0:
        raise ConfigError(
            f"fit: the training data gives no batches ({loader.num_samples} samples, batch_size "
            f"{loader.batch_size}, drop_last={loader.drop_last})."
        )
    val_loader = None
    if val is not None:
        val_loader = _loader(val, eval_batch_size, shuffle=False, drop_last=False, rng=np.random.default_rng(0),
                             transform=eval_transform, name="fit: val")
    if module_seeds is not None:
        gens = module_generators(model)
        for (name, _), child in zip(sorted(gens.items()), module_seeds.spawn(len(gens))):
            module = dict(model.named_modules())[name]
            cast(RandomLayer, module).generator = np.random.default_rng(child)

    run = Run(model, loss, optimizer, scheduler, loader, callbacks, epochs, None if seed is None else int(seed))
    if resume is not None:
        ckpt = load_training_checkpoint(resume)
        if ckpt.epoch > epochs:
            raise ConfigError(
                f"fit: the checkpoint {str(resume)!r} already has {ckpt.epoch} "
                f"epoch{'' if ckpt.epoch == 1 else 's'} but epochs={epochs}; epochs is the total, so pass "
                f"epochs > {ckpt.epoch} to train further."
            )
        restore_run(run, ckpt)
        run.history.info.setdefault("resumed", []).append({"path": str(resume), "epoch": ckpt.epoch})
    with blas_threads(threads):
        _run_epochs(run, val_loader, progress, scheduler_interval, clip_grad_norm, bool(check_finite))
    return run.history


def _run_epochs(run: Run, val_loader: DataLoader | None, progress: Any, interval: str,
                clip: float | None, check_finite: bool) -> None:
    model, optimizer, scheduler = run.model, run.optimizer, run.scheduler
    dtype = _model_dtype(model)
    params = list(model.named_parameters())
    modules = dict(model.named_modules())
    owners = {}
    for pname, _ in params:
        layer = pname.rpartition(".")[0]
        owners[pname] = (layer, modules.get(layer, model))
    for cb in run.callbacks:
        cb.on_train_begin(run)
    first_loss: float | None = None
    classes: int | None = None
    warned: set[str] = set()
    while run.epoch < run.epochs and not run.stop_training:
        epoch = run.epoch + 1
        for cb in run.callbacks:
            cb.on_epoch_begin(run, epoch)
        model.train()
        lr = getattr(optimizer, "lr", None)
        bar = EpochProgress(progress, epoch, run.epochs, len(run.loader))
        total, correct, seen, classification = 0.0, 0, 0, None
        ratios: dict[str, float] = {}
        start = time.perf_counter()
        try:
            for b, (x, y) in enumerate(run.loader, start=1):
                where = f"training stopped at epoch {epoch}, batch {b}"
                x = _as_batch(x, dtype, "fit")
                model.zero_grad()
                optimizer.zero_grad()
                # forward, loss, backward (the images need no gradient): on several threads,
                # one shard of the batch per thread (convscope.train.data_parallel)
                value, output = training_step(model, run.loss, x, y)
                advice = (
                    f"Lower the learning rate (now {getattr(optimizer, 'lr', '?')}), clip the gradients "
                    f"(clip_grad_norm=1.0, --clip), or check the data."
                )
                if check_finite and not math.isfinite(value):
                    raise loss_error(model, x, value, where, advice)
                if check_finite:
                    error = gradient_error(params, owners, value, where, advice)
                    if error is not None:
                        raise error
                if clip is not None:
                    clip_grad_norm_([p for _, p in params], clip)
                if b == 1:  # the first step's |update| / |weight| per layer, for diagnosis
                    before = [p.data.copy() for _, p in params]
                    optimizer.step()
                    ratios = update_ratios(params, before)
                    del before
                else:
                    optimizer.step()
                if first_loss is None:
                    first_loss = value
                if scheduler is not None and interval == "batch":
                    scheduler.step()
                n = int(x.shape[0])
                total += value * n
                seen += n
                if classification is None:
                    classification = is_classification(output, y)
                    if classification:
                        classes = int(output.shape[-1])
                logs: dict[str, Any] = {"loss": value, "size": n}
                if classification:
                    logs["correct"] = correct_count(output, y)
                    correct += logs["correct"]
                bar.update(n, total / seen, correct / seen if classification else None,
                           seen / max(time.perf_counter() - start, 1e-9))
                for cb in run.callbacks:
                    cb.on_batch_end(run, b, logs)
        except BaseException:
            bar.close()
            raise
        train_seconds = time.perf_counter() - start
        if scheduler is not None and interval == "epoch":
            scheduler.step()
        record: dict[str, Any] = {"epoch": epoch, "train_loss": total / max(seen, 1)}
        if classification:
            record["train_accuracy"] = correct / seen
        extra = ""
        if val_loader is not None:
            scores = evaluate(model, val_loader, loss=run.loss)
            record["val_loss"] = scores["loss"]
            extra = f"val_loss {scores['loss']:.4f}"
            if "accuracy" in scores:
                record["val_accuracy"] = scores["accuracy"]
                extra += f" val_acc {scores['accuracy']:.4f}"
        if lr is not None:
            record["lr"] = lr
        record["seconds"] = time.perf_counter() - start
        record["train_seconds"] = train_seconds
        record["images_per_second"] = seen / max(train_seconds, 1e-9)
        bar.close(f"{extra} {record['seconds']:.1f}s".strip())
        for kind, message in (
            ("progress", progress_warning(record, first_loss, classes, ratios, owners, lr)),
            ("validation", validation_warning(record)),
        ):
            if message is not None and kind not in warned:
                warned.add(kind)  # once per fit: the history keeps the numbers of every epoch
                run.history.info.setdefault("warnings", []).append(message)
                warnings.warn(message, TrainingWarning, stacklevel=3)
        run.history.append(record)
        run.epoch = epoch
        for cb in run.callbacks:
            cb.on_epoch_end(run, epoch, run.history.last)
        run._write_requested()
    if run.stop_training:
        run.history.info["stopped_early"] = True
        run.history.info["stop_reason"] = run.stop_reason
    for cb in run.callbacks:
        cb.on_train_end(run)


# ----------------------------------------------------------------------------- evaluate / predict


def evaluate(model: Module, *args: Any, data: Any = None, loss: Any = None, loss_fn: Any = None,
             batch_size: int = 256, transform: Any = None) -> dict[str, Any]:
    """Score ``model`` on ``data`` in eval mode (Dropout off, BatchNorm running statistics).

    Called as ``evaluate(model, data, *, loss=None)``; the deprecated form
    ``evaluate(model, loss, data)`` still works and warns.

    Args:
        model: as for :func:`fit`.
        data: a Dataset, a pair ``(x, y)`` or a DataLoader.
        loss: the loss to report; default :class:`~convscope.nn.CrossEntropyLoss`.
            ``loss_fn`` is another name of it.
        batch_size: images per forward pass (memory, not results).
        transform: batch transform of the images (a model that starts with an
            :class:`~convscope.nn.Normalize` layer needs none: give it raw pixels).

    Returns:
        ``{"loss": mean loss, "accuracy": fraction correct (classifiers only),
        "samples": N}``. The model's train/eval mode is restored afterwards.
    """
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"evaluate: model must be a convscope Module; got {type(model).__name__}.")
    if args and _is_loss(args[0]):  # evaluate(model, loss, data)
        _deprecated_form("evaluate(model, loss, data)", "evaluate(model, data, loss=loss)")
        if loss is not None or loss_fn is not None:
            raise ConfigError("evaluate: the loss was given twice, first by position and again as loss=/loss_fn=.")
        loss, args = args[0], args[1:]
    if len(args) > 1:
        raise ArgumentTypeError(
            f"evaluate takes the model and the data by position (evaluate(model, data)); got "
            f"{len(args) + 1} positional arguments. Give the rest by name: loss=, batch_size=."
        )
    if args:
        if data is not None:
            raise ConfigError("evaluate: data was given twice, by position and as data=.")
        data = args[0]
    if data is None:
        raise ArgumentTypeError("evaluate: give the data to score: evaluate(model, data), data being a "
                                "Dataset, a pair of arrays (x, y) or a DataLoader.")
    loss = _pick_loss("evaluate", loss, loss_fn)
    batch_size = _check_positive_int(batch_size, "batch_size")
    loader = _loader(data, batch_size, shuffle=False, drop_last=False, rng=np.random.default_rng(0),
                     transform=transform, name="evaluate: data")
    dtype = _model_dtype(model)
    was_training = model.training
    model.eval()
    total, correct, seen, classification = 0.0, 0, 0, None
    try:
        # conv -> batch norm pairs as one convolution (kept per model, refreshed each call)
        runner = inference_twin(model)
        for x, y in loader:
            x = _as_batch(x, dtype, "evaluate")
            output = sharded_forward(runner, x)  # one shard of the batch per thread
            n = int(x.shape[0])
            total += float(loss(output, y)) * n
            seen += n
            if classification is None:
                classification = is_classification(output, y)
            if classification:
                correct += correct_count(output, y)
    finally:
        model.train(bool(was_training))
    if seen == 0:
        raise ConfigError("evaluate: the data holds no samples.")
    result: dict[str, Any] = {"loss": total / seen}
    if classification:
        result["accuracy"] = correct / seen
    result["samples"] = seen
    return result


def _ends_with_softmax(model: Module) -> bool:
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    return bool(leaves) and leaves[-1].layer_kind == "softmax"


class Prediction(np.ndarray):
    """What :func:`predict` returns: the probabilities (N, classes), with the answers.

    It is the probability array itself (a NumPy array subclass, so ``result.argmax(1)``,
    ``result[0]`` and ``np.save`` work as on any array), with three read-only views:

    Attributes:
        probabilities: the probabilities as a plain ``numpy.ndarray`` (N, classes).
        classes: the predicted class of each image, ``probabilities.argmax(axis=1)``
            (int64, shape (N,)).
        labels: the predicted class names (``model.classes``, which :func:`convscope.load`
            sets from the file), or None when the model has no class names.

    Example:
        >>> p = Prediction.of(np.array([[0.25, 0.75], [0.5, 0.5]], np.float32), ["cat", "dog"])
        >>> p.classes.tolist(), p.labels
        ([1, 0], ['dog', 'cat'])
    """

    _names: list[str] | None = None

    @classmethod
    def of(cls, probabilities: np.ndarray, names: Sequence[str] | None = None) -> Prediction:
        """Wrap a probability array (and the model's class names)."""
        result = np.asarray(probabilities).view(cls)
        result._names = list(names) if names else None
        return result

    def __array_finalize__(self, obj: Any) -> None:
        self._names = getattr(obj, "_names", None)

    @property
    def probabilities(self) -> np.ndarray:
        return self.view(np.ndarray)

    @property
    def classes(self) -> np.ndarray:
        plain = self.view(np.ndarray)
        if plain.ndim < 2:
            raise ShapeError(f"Prediction.classes needs scores of shape (N, classes); these have shape "
                             f"{plain.shape}.")
        return plain.argmax(axis=-1).astype(np.int64)

    @property
    def labels(self) -> list[str] | None:
        names = self._names
        if not names:
            return None
        picks = self.classes.reshape(-1).tolist()
        if any(i >= len(names) for i in picks):
            return None
        return [names[i] for i in picks]


def predict(model: Module, x: Any, *, batch_size: int = 256, transform: Any = None,
            probabilities: bool = True) -> Prediction:
    """Class probabilities (N, classes) for the images ``x``, in eval mode, with the answers.

    The model's raw scores go through a softmax (unless its last layer already is a
    :class:`~convscope.nn.Softmax`); ``probabilities=False`` returns the raw outputs.
    Feed the images as the model takes them: a model from ``convscope train`` (or
    :func:`convscope.models.add_input_normalization`) standardises them itself, so give
    it raw pixels in ``[0, 1]``.

    Args:
        x: images (N, C, *spatial) as floats on the training scale, or a Dataset (its
            labels are ignored).
        batch_size: images per forward pass.
        transform: batch transform (not needed for a model that normalises itself).

    Returns:
        A :class:`Prediction`: the probability array, with ``.classes`` (the predicted
        class per image), ``.probabilities`` (a plain array) and ``.labels`` (class
        names, when the model has ``classes``).

    Raises:
        DTypeError: integer images (scale them to floats first).
    """
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"predict: model must be a convscope Module; got {type(model).__name__}.")
    batch_size = _check_positive_int(batch_size, "batch_size")
    dtype = _model_dtype(model)
    if hasattr(x, "batch") and hasattr(x, "__len__"):
        batches: Any = (b for b, _ in DataLoader(x, batch_size, rng=np.random.default_rng(0)))
    else:
        arr = as_array(x, "x", "predict")
        if arr.ndim == 0:
            raise ArgumentTypeError("predict: x must be a batch of images (N, C, ...); got a scalar.")
        batches = (arr[i : i + batch_size] for i in range(0, arr.shape[0], batch_size))
    gen = np.random.default_rng(0)
    was_training = model.training
    model.eval()
    outputs = []
    try:
        for xb in batches:
            xb = _as_batch(xb, dtype, "predict")
            if transform is not None:
                xb = transform(xb, gen)
            outputs.append(np.asarray(sharded_forward(model, xb)))
    finally:
        model.train(bool(was_training))
    if not outputs:
        raise ConfigError("predict: x holds no images.")
    out = np.concatenate(outputs, axis=0)
    if probabilities and out.ndim == 2 and not _ends_with_softmax(model):
        out = softmax(out, axis=-1)
    return Prediction.of(out, getattr(model, "classes", None))
