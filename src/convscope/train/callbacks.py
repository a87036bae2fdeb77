"""Callbacks: code that :func:`~convscope.train.fit` runs at fixed points of training.

A callback subclasses :class:`Callback` and overrides any of the hooks; each receives the
:class:`~convscope.train.loop.Run` (model, optimizer, scheduler, loader, history, ``epoch``
= epochs completed, ``epochs`` = the target) and may set ``run.stop_training = True``
(with ``run.stop_reason``) to end training after the current epoch::

    on_train_begin(run)
    on_epoch_begin(run, epoch)            # epoch: 1-based number of the epoch starting
    on_batch_end(run, batch, logs)        # logs: {"loss", "size", "correct"?}
    on_epoch_end(run, epoch, logs)        # logs: the epoch's History record
    on_train_end(run)

The loop calls every callback's ``on_epoch_end`` first and only then writes the
checkpoints asked for with ``run.request_checkpoint(path)``, so a checkpoint holds the
end-of-epoch state of every callback (EarlyStopping's counters included) whatever the
order of the list. A callback that must survive a resume returns its state from
``state_dict()`` (JSON data, plus arrays under ``"arrays"``) and takes it back in
``load_state_dict``.

Example:
    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, run, epoch, logs):
    ...         print(epoch, round(logs["train_loss"], 1))
    >>> PrintLoss().on_epoch_end(None, 1, {"train_loss": 0.25})
    1 0.2
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LambdaCallback"]


class Callback:
    """Base class: every hook does nothing; the state is empty."""

    def on_train_begin(self, run: Any) -> None:
        """Before the first epoch (after a resume has restored the state)."""

    def on_epoch_begin(self, run: Any, epoch: int) -> None:
        """Before epoch ``epoch`` (1-based)."""

    def on_batch_end(self, run: Any, batch: int, logs: dict[str, Any]) -> None:
        """After each optimizer step; ``batch`` counts from 1 within the epoch."""

    def on_epoch_end(self, run: Any, epoch: int, logs: dict[str, Any]) -> None:
        """After the epoch's validation; ``logs`` is the record added to the history."""

    def on_train_end(self, run: Any) -> None:
        """After the last epoch (also after an early stop)."""

    def state_dict(self) -> dict[str, Any]:
        """What a resume checkpoint must keep of this callback (JSON data, ``"arrays"``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda run, e, logs: ...)``.

    Example:
        >>> seen = []
        >>> cb = LambdaCallback(on_epoch_end=lambda run, epoch, logs: seen.append(epoch))
        >>> cb.on_epoch_end(None, 3, {}); seen
        [3]
    """

    _HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")

    def __init__(self, **hooks: Any) -> None:
        unknown = sorted(set(hooks) - set(self._HOOKS))
        if unknown:
            raise ConfigError(f"LambdaCallback: unknown hooks {unknown}; expected some of {list(self._HOOKS)}.")
        for name, fn in hooks.items():
            if not callable(fn):
                raise ArgumentTypeError(f"LambdaCallback: {name} must be callable; got {type(fn).__name__}.")
            setattr(self, name, fn)


def _resolve_mode(monitor: str, mode: str, op: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"{op}: mode must be 'auto', 'min' or 'max'; got {mode!r}.")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def _monitored(logs: dict[str, Any], monitor: str, op: str) -> float:
    if monitor not in logs:
        hint = " Pass val= to fit to get val_* metrics." if monitor.startswith("val_") else ""
        raise ConfigError(
            f"{op}: monitor {monitor!r} is not among this epoch's metrics "
            f"{sorted(k for k, v in logs.items() if isinstance(v, (int, float)))}.{hint}"
        )
    return float(logs[monitor])


class _Best:
    """The best value seen of a monitored metric, with ``min_delta``."""

    def __init__(self, mode: str, min_delta: float) -> None:
        self.mode, self.min_delta = mode, float(min_delta)
        self.value: float | None = None

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.value is None:
            return True
        if self.mode == "min":
            return value < self.value - self.min_delta
        return value > self.value + self.min_delta


class EarlyStopping(Callback):
    """Stop training after ``patience`` epochs in a row without improvement of a metric.

    Args:
        monitor: a History key, e.g. ``"val_loss"`` (default), ``"val_accuracy"``,
            ``"train_loss"``.
        patience: epochs in a row without improvement after which training stops (>= 0;
            as Keras, 0 stops at the first epoch that does not improve).
        min_delta: how much better than the best a value must be to count.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for names containing "acc").
        restore_best_weights: at the end of training, put back the weights of the best
            epoch (kept in memory, and in resume checkpoints).

    Attributes:
        best, best_epoch, wait, stopped_epoch: the tracking state (saved for resume).

    Example:
        >>> class FakeRun:
        ...     stop_training, stop_reason, model = False, "", None
        >>> es, run = EarlyStopping("val_loss", patience=1), FakeRun()
        >>> for epoch, v in enumerate([0.5, 0.4, 0.45, 0.41], start=1):
        ...     es.on_epoch_end(run, epoch, {"val_loss": v})
        ...     if run.stop_training: break
        >>> epoch, es.best, es.best_epoch
        (3, 0.4, 2)
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        op = "EarlyStopping"
        if not isinstance(monitor, str):
            raise ArgumentTypeError(f"{op}: monitor must be a metric name (str); got {monitor!r}.")
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ConfigError(f"{op}: patience must be an int >= 0; got {patience!r}.")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ConfigError(f"{op}: min_delta must be a number >= 0; got {min_delta!r}.")
        self.monitor = monitor
        self.patience = int(patience)
        self.mode = _resolve_mode(monitor, mode, op)
        self.restore_best_weights = bool(restore_best_weights)
        self._best = _Best(self.mode, float(min_delta))
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None

    @property
    def best(self) -> float | None:
        return self._best.value

    def on_epoch_end(self, run: Any, epoch: int, logs: dict[str, Any]) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self._best.improved(value):
            self._best.value, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = run.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            run.stop_training = True
            run.stop_reason = (
                f"early stopping: {self.monitor} has not improved on {self.best:.6g} (epoch "
                f"{self.best_epoch}) for {self.wait} epoch{'' if self.wait == 1 else 's'} "
                f"(patience {self.patience})"
            )

    def on_train_end(self, run: Any) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch is not None:
            run.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                                 "stopped_epoch": self.stopped_epoch}
        if self.best_weights is not None:
            state["arrays"] = dict(self.best_weights)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._best.value = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
        self.stopped_epoch = state.get("stopped_epoch")
        arrays = state.get("arrays")
        self.best_weights = {k: np.array(v) for k, v in arrays.items()} if arrays else None

    def __repr__(self) -> str:
        return f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, mode={self.mode!r})"


class ModelCheckpoint(Callback):
    """Write a resume checkpoint (weights, optimizer, schedule, data position, history).

    Every ``every`` epochs (default: every epoch) the whole training state goes to
    ``path`` atomically (a crash mid-write leaves the previous file intact); continue
    with ``fit(..., resume=path)``. ``path`` may contain ``{epoch}`` (e.g.
    ``"ckpt-{epoch:03d}.npz"``) to keep one file per epoch; otherwise the file is
    replaced each time.

    Args:
        path: the file (``.npz`` is appended if missing).
        every: write every this many epochs (>= 1); the last epoch is always written.
        save_best_only: write only when ``monitor`` improves.
        monitor, mode: as :class:`EarlyStopping` (only with ``save_best_only``).

    Attributes:
        last_path: the file written last (None before the first).
        best: best monitored value so far (``save_best_only``).
    """

    def __init__(self, path: str | Path, every: int = 1, save_best_only: bool = False,
                 monitor: str = "val_loss", mode: str = "auto") -> None:
        op = "ModelCheckpoint"
        if not isinstance(path, (str, Path)):
            raise ArgumentTypeError(f"{op}: path must be a str or Path; got {type(path).__name__}.")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ConfigError(f"{op}: every must be an int >= 1; got {every!r}.")
        self.path = str(path)
        try:
            self.path.format(epoch=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{op}: path may only use the field {{epoch}} (e.g. 'ckpt-{{epoch:03d}}.npz'); "
                f"got {self.path!r} ({exc})."
            ) from None
        self.every = int(every)
        self.save_best_only = bool(save_best_only)
        self.monitor = monitor
        self.mode = _resolve_mode(monitor, mode, op)
        self._best = _Best(self.mode, 0.0)
        self.last_path: Path | None = None

    @property
    def best(self) -> float | None:
        return self._best.value

    def on_epoch_end(self, run: Any, epoch: int, logs: dict[str, Any]) -> None:
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not self._best.improved(value):
                return
            self._best.value = value
        elif epoch % self.every and epoch < run.epochs and not run.stop_training:
            return
        target = Path(self.path.format(epoch=epoch))
        # the loop writes it after every callback's on_epoch_end (see the module doc)
        run.request_checkpoint(target, self._written)

    def _written(self, path: Path) -> None:
        self.last_path = path

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._best.value = state.get("best")

    def __repr__(self) -> str:
        return f"ModelCheckpoint({self.path!r}, every={self.every}, save_best_only={self.save_best_only})"
