"""Resume files: everything a training run needs to continue as if it never stopped.

A resume checkpoint is one ``.npz`` written by :func:`convscope.io.save_checkpoint`
(atomic, no pickle, SHA-256 checked on load). It holds, after a whole epoch:

=====================  =================================================================
arrays                 ``model/<name>``: every parameter and buffer (``state_dict``);
                       ``optimizer/<param>/<buffer>``: momentum / moment estimates;
                       ``callbacks/<i>/<name>``: arrays a callback keeps (best weights)
header (JSON)          ``epoch`` (epochs completed), ``spec`` (architecture, when the
                       model can be described), the optimizer's hyperparameters and step
                       counters, the scheduler's position, the training DataLoader's
                       position (its generator state: shuffling and augmentation), the
                       state of every module generator (Dropout masks), the History, the
                       callbacks' states, the seed
=====================  =================================================================

:func:`save_training_checkpoint` writes one from a running :class:`~convscope.train.loop.Run`
(what :class:`~convscope.train.callbacks.ModelCheckpoint` does every epoch), and
``fit(..., resume=path)`` reads it with :func:`load_training_checkpoint` and
:func:`restore_run`. Every part is checked before anything is changed: a checkpoint of
another architecture, optimizer, schedule or data size raises
:class:`~convscope.errors.CheckpointError` or :class:`~convscope.errors.ConfigError`
naming the part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError, ConvscopeError
from ..files import to_jsonable
from ..io import load_checkpoint, save_checkpoint
from .history import History

__all__ = [
    "CHECKPOINT_KIND",
    "CHECKPOINT_VERSION",
    "TrainingCheckpoint",
    "module_generators",
    "save_training_checkpoint",
    "load_training_checkpoint",
    "restore_run",
]

CHECKPOINT_KIND = "convscope-training-run"
CHECKPOINT_VERSION = 1


def module_generators(model: Any) -> dict[str, np.random.Generator]:
    """Every ``numpy.random.Generator`` a module of ``model`` draws from while training.

    Modules keep theirs in a ``generator`` attribute (Dropout does); the key is the
    module's dotted name (``""`` for the model itself).
    """
    found: dict[str, np.random.Generator] = {}
    for name, module in model.named_modules():
        gen = getattr(module, "generator", None)
        if isinstance(gen, np.random.Generator):
            found[name] = gen
    return found


def _spec_or_none(model: Any) -> dict | None:
    from ..nn import to_spec

    try:
        return to_spec(model)
    except ConvscopeError:
        return None  # an unregistered custom module: the weights' names still get checked


def save_training_checkpoint(path: str | Path, run: Any) -> Path:
    """Write the state of ``run`` (a :class:`~convscope.train.loop.Run`) to ``path``.

    Returns:
        The path written (``.npz`` appended when missing).
    """
    arrays: dict[str, np.ndarray] = {}
    for name, value in run.model.state_dict().items():
        arrays[f"model/{name}"] = value
    opt_state = run.optimizer.state_dict()
    for key, value in opt_state.pop("arrays").items():
        arrays[f"optimizer/{key}"] = value
    callback_states = []
    for i, cb in enumerate(run.callbacks):
        state = dict(cb.state_dict())
        for key, value in dict(state.pop("arrays", {}) or {}).items():
            arrays[f"callbacks/{i}/{key}"] = np.asarray(value)
        callback_states.append({"type": type(cb).__name__, "state": state})
    header = {
        "kind": CHECKPOINT_KIND,
        "version": CHECKPOINT_VERSION,
        "epoch": int(run.epoch),
        "seed": run.seed,
        "spec": _spec_or_none(run.model),
        "optimizer": opt_state,
        "scheduler": None if run.scheduler is None else run.scheduler.state_dict(),
        "loader": run.loader.state,
        "generators": {
            name: to_jsonable(gen.bit_generator.state, arrays=True, where=f"generators[{name!r}]")
            for name, gen in module_generators(run.model).items()
        },
        "history": run.history.to_dict(),
        "callbacks": callback_states,
    }
    return save_checkpoint(path, arrays, header)


@dataclass
class TrainingCheckpoint:
    """A resume checkpoint as read from disk (see the module docstring for the parts)."""

    path: Path
    epoch: int
    seed: int | None
    spec: dict | None
    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, Any]
    scheduler_state: dict | None
    loader_state: dict
    generator_states: dict[str, dict]
    history: dict
    callbacks: list[dict]
    callback_arrays: dict[int, dict[str, np.ndarray]]


def load_training_checkpoint(path: str | Path) -> TrainingCheckpoint:
    """Read and check a resume checkpoint written by :func:`save_training_checkpoint`.

    Raises:
        CheckpointNotFoundError: no such file.
        CheckpointError: not a convscope file, damaged, or not a training checkpoint (a
            model file from ``convscope.save`` cannot resume a run: it has no optimizer or
            data position).
    """
    arrays, header = load_checkpoint(path)
    p = Path(path)
    if header.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(
            f"{str(p)!r} is a convscope checkpoint but not a training-run checkpoint (kind "
            f"{header.get('kind')!r}, expected {CHECKPOINT_KIND!r}); resume needs one written by "
            f"ModelCheckpoint or save_training_checkpoint."
        )
    if header.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{str(p)!r} is a training checkpoint of version {header.get('version')!r}; this "
            f"convscope reads version {CHECKPOINT_VERSION}."
        )
    needed = ("epoch", "seed", "spec", "optimizer", "scheduler", "loader", "generators", "history", "callbacks")
    missing = [k for k in needed if k not in header]
    if missing:
        raise CheckpointError(f"{str(p)!r}: the training checkpoint's header lacks {missing}.")
    model_state: dict[str, np.ndarray] = {}
    opt_arrays: dict[str, np.ndarray] = {}
    cb_arrays: dict[int, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        group, _, rest = key.partition("/")
        if group == "model":
            model_state[rest] = value
        elif group == "optimizer":
            opt_arrays[rest] = value
        elif group == "callbacks" and rest.partition("/")[0].isdigit():
            index, _, name = rest.partition("/")
            cb_arrays.setdefault(int(index), {})[name] = value
        else:
            raise CheckpointError(f"{str(p)!r}: unexpected array {key!r} in a training checkpoint.")
    optimizer_state = dict(header["optimizer"])
    optimizer_state["arrays"] = opt_arrays
    return TrainingCheckpoint(
        path=p, epoch=int(header["epoch"]), seed=header["seed"], spec=header["spec"],
        model_state=model_state, optimizer_state=optimizer_state,
        scheduler_state=header["scheduler"], loader_state=header["loader"],
        generator_states=dict(header["generators"]), history=dict(header["history"]),
        callbacks=list(header["callbacks"]), callback_arrays=cb_arrays,
    )


def restore_run(run: Any, ckpt: TrainingCheckpoint) -> None:
    """Put the state of ``ckpt`` into ``run`` (model, optimizer, schedule, data, callbacks).

    Raises:
        CheckpointError: the checkpoint's architecture or weights do not fit the model.
        ConfigError: optimizer, scheduler, data loader or generators that do not match.
    """
    where = f"resume from {str(ckpt.path)!r}"
    spec = _spec_or_none(run.model)
    if ckpt.spec is not None and spec is not None and spec != ckpt.spec:
        raise CheckpointError(
            f"{where}: the checkpoint was written for another architecture than the model given "
            f"to fit; build the same model (e.g. the same --arch) to resume."
        )
    if (ckpt.scheduler_state is None) != (run.scheduler is None):
        raise ConfigError(
            f"{where}: the checkpoint was written "
            f"{'without' if ckpt.scheduler_state is None else 'with'} a learning-rate scheduler but "
            f"fit got {'one' if run.scheduler is not None else 'none'}; resume with the same setup."
        )
    try:
        history = History.from_dict(ckpt.history)
    except ConfigError as exc:
        raise CheckpointError(f"{where}: the saved history is malformed: {exc}") from None
    gens = module_generators(run.model)
    if set(gens) != set(ckpt.generator_states):
        raise ConfigError(
            f"{where}: the checkpoint has random generators for the modules "
            f"{sorted(ckpt.generator_states)} but the model has {sorted(gens)}."
        )
    backup = run.model.state_dict()
    try:
        run.model.load_state_dict(ckpt.model_state)
    except ConvscopeError as exc:
        raise CheckpointError(f"{where}: the saved weights do not fit the model: {exc}") from None
    try:
        run.optimizer.load_state_dict(ckpt.optimizer_state)
        if run.scheduler is not None:
            run.scheduler.load_state_dict(ckpt.scheduler_state)
        run.loader.load_state(ckpt.loader_state)
        for name, state in ckpt.generator_states.items():
            bitgen = gens[name].bit_generator
            if state.get("bit_generator") != type(bitgen).__name__:
                raise ConfigError(
                    f"the generator of module {name!r} is a {type(bitgen).__name__}; the "
                    f"checkpoint holds a {state.get('bit_generator')!r} state."
                )
            bitgen.state = state
    except ConvscopeError as exc:
        run.model.load_state_dict(backup)
        raise type(exc)(f"{where}: {exc}") from None
    for i, cb in enumerate(run.callbacks):
        if i < len(ckpt.callbacks) and ckpt.callbacks[i].get("type") == type(cb).__name__:
            state = dict(ckpt.callbacks[i].get("state", {}))
            if i in ckpt.callback_arrays:
                state["arrays"] = ckpt.callback_arrays[i]
            cb.load_state_dict(state)
    run.history = history
    run.epoch = ckpt.epoch
