"""Why training blew up or goes nowhere: the layer where NaN or Inf first appeared, and
divergence with a finite loss.

The training loop calls :func:`loss_error` when the loss is NaN/Inf and
:func:`gradient_error` after every backward pass (it returns None when every gradient is
finite). Both build a :class:`~convscope.errors.NumericalError` whose message names the
epoch and batch, the layer (its dotted name and its repr) and what to try.

* A non-finite loss: the batch is checked first (NaN in the data is the data's fault),
  then the model runs once more on it with every leaf module watched; the first layer
  whose input is finite but whose output is not is the culprit, and its parameters'
  largest values are shown (weights that grew huge point to a too-large learning rate).
  Batch-norm statistics and module generators are put back afterwards.
* A non-finite gradient with a finite loss: backward runs from the output to the input,
  so the parameter closest to the output with a non-finite gradient is where the
  overflow started; the others are listed too.

A finite loss can still diverge: at a learning rate of 1e10 SGD and Adam settle at a loss
around 1e10 and chance accuracy without ever overflowing. After every epoch the loop
calls :func:`progress_warning`, which compares the epoch's mean loss with the loss of the
run's first batch: more than :data:`EXPLODED` times it, or more than :data:`STALLED` times
it with accuracy at chance, is reported as a
:class:`~convscope.errors.TrainingWarning` naming the learning rate and the layer whose
weights the first step of the epoch changed most relative to their size
(``|update| / |weight|``, :func:`update_ratios`; about 1e-3 is typical of healthy SGD).
A validation loss that is not finite is reported the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import NumericalError
from ..nn import Module
from .checkpoint import module_generators

__all__ = [
    "loss_error", "gradient_error", "update_ratios", "progress_warning", "validation_warning",
    "EXPLODED", "STALLED",
]

#: An epoch's mean loss above this many times the first batch's loss has diverged.
EXPLODED = 10.0
#: Above this many times the first loss with accuracy at chance, training has stalled.
STALLED = 1.5


def _one_line(module: Module) -> str:
    text = repr(module)
    return text if "\n" not in text else f"{type(module).__name__}(...)"


def _nonfinite_text(a: np.ndarray) -> str:
    nan = int(np.count_nonzero(np.isnan(a)))
    inf = int(np.count_nonzero(np.isinf(a)))
    return f"{nan} NaN and {inf} Inf of {a.size} entries"


def _largest(a: np.ndarray) -> str:
    finite = a[np.isfinite(a)]
    return f"{float(np.abs(finite).max()):.3g}" if finite.size else "none finite"


def _find_first_nonfinite_layer(model: Module, x: np.ndarray) -> tuple[Any, np.ndarray | None]:
    """Run ``model(x)`` once, watching every leaf module; the first with non-finite output.

    Returns ``((name, module, its input, its output) or None, the model's output or None)``.

    Buffers (batch-norm statistics) and module generators are put back afterwards, so the
    diagnosis leaves no trace in the model.
    """
    leaves = [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None]
    found: list[tuple[str, Module, np.ndarray, np.ndarray]] = []
    buffers = [(v, np.array(v, copy=True)) for _, v in model.named_buffers() if isinstance(v, np.ndarray)]
    gens = [(g.bit_generator, g.bit_generator.state) for g in module_generators(model).values()]

    def watch(name: str, module: Module) -> Callable[..., Any]:
        def forward(*args: Any, **kwargs: Any) -> Any:
            y = type(module).forward(module, *args, **kwargs)
            if not found and isinstance(y, np.ndarray) and y.dtype.kind == "f" and not np.isfinite(y).all():
                found.append((name, module, np.asarray(args[0]), y))
            return y
        return forward

    for name, module in leaves:
        module.forward = watch(name, module)  # type: ignore[method-assign]
    output = None
    try:
        with np.errstate(all="ignore"):  # the overflow is what we are looking for
            output = np.asarray(model(x))
    except Exception:  # noqa: BLE001 - the diagnosis must not hide the original problem
        pass
    finally:
        for _, module in leaves:
            vars(module).pop("forward", None)
        for live, saved in buffers:
            np.copyto(live, saved)
        for bitgen, state in gens:
            bitgen.state = state
    return (found[0] if found else None), output


def loss_error(model: Module, x: np.ndarray, value: float, where: str, advice: str) -> NumericalError:
    head = f"{where}: the loss is {value}."
    if not np.isfinite(x).all():
        return NumericalError(
            f"{head} The input batch itself holds {_nonfinite_text(x)}; check the data files and "
            f"the transforms."
        )
    hit, output = _find_first_nonfinite_layer(model, x)
    if hit is None:
        largest = "unknown" if output is None else _largest(output)
        return NumericalError(
            f"{head} Every layer's output is finite, so the loss itself overflowed (its input: "
            f"largest |value| {largest}). {advice}"
        )
    name, module, inp, out = hit
    params = [
        f"{pname} holds {_nonfinite_text(p.data)}" if not np.isfinite(p.data).all()
        else f"{pname} largest |value| {_largest(p.data)}"
        for pname, p in module._own_parameters()
    ]
    detail = f" Its parameters: {'; '.join(params)}." if params else ""
    return NumericalError(
        f"{head} The first layer whose output is not finite is layer {name!r} "
        f"({_one_line(module)}): its input was finite (largest |value| {_largest(inp)}), its output "
        f"holds {_nonfinite_text(out)}.{detail} {advice}"
    )


def gradient_error(params: list[tuple[str, Any]], owners: dict[str, tuple[str, Module]],
                    value: float, where: str, advice: str) -> NumericalError | None:
    bad = [(name, p) for name, p in params if not np.isfinite(p.grad).all()]
    if not bad:
        return None
    # backward runs from the output to the input: the last layer with a bad gradient is
    # where the blow-up started
    name, p = bad[-1]
    layer, module = owners[name]
    others = [n for n, _ in bad[:-1]]
    also = f" Also non-finite: {', '.join(others)}." if others else ""
    return NumericalError(
        f"{where}: the gradient of parameter {name!r} of layer {layer!r} ({_one_line(module)}) "
        f"holds {_nonfinite_text(p.grad)} although the loss {value:.6g} is finite; the backward "
        f"pass overflowed there.{also} {advice}"
    )


def update_ratios(params: Sequence[tuple[str, Any]], before: Sequence[np.ndarray]) -> dict[str, float]:
    """``|new - old| / |old|`` (2-norms) per parameter, after one optimizer step.

    Args:
        params: ``(name, Parameter)`` pairs, after the step.
        before: each parameter's ``data`` copied before the step, in the same order.
    """
    ratios = {}
    with np.errstate(all="ignore"):
        for (name, p), old in zip(params, before):
            size = float(np.linalg.norm(old))
            change = float(np.linalg.norm(p.data - old))
            ratios[name] = change / size if size > 0 else (math.inf if change > 0 else 0.0)
    return ratios


def progress_warning(record: dict[str, Any], first_loss: float | None, classes: int | None,
                     ratios: dict[str, float], owners: dict[str, tuple[str, Module]],
                     lr: Any) -> str | None:
    """The message of a :class:`~convscope.errors.TrainingWarning` for this epoch, or None.

    Args:
        record: the epoch's History record (``epoch``, ``train_loss``, ``train_accuracy``).
        first_loss: the loss of the run's first batch.
        classes: the number of classes of a classifier (None otherwise).
        ratios: :func:`update_ratios` of the epoch's first step.
        owners: parameter name -> (layer name, layer).
        lr: the optimizer's learning rate.
    """
    loss, epoch = record.get("train_loss"), record["epoch"]
    if first_loss is None or not first_loss > 0 or loss is None or not math.isfinite(loss):
        return None
    accuracy = record.get("train_accuracy")
    chance = None if not classes or accuracy is None else 1.0 / classes
    at_chance = chance is not None and accuracy is not None and accuracy <= 1.1 * chance
    if loss > EXPLODED * first_loss:
        what = "diverged"
    elif loss > STALLED * first_loss and at_chance:
        what = "stalled"
    else:
        return None
    facts = (f"epoch {epoch}: the mean training loss {loss:.4g} is {loss / first_loss:.3g} times "
             f"the first batch's loss {first_loss:.4g}")
    if at_chance:
        facts += f" and the training accuracy {accuracy:.3f} is at chance (1/{classes})"
    cause = f"The likely cause is a learning rate too large for this model (lr={lr})."
    finite = {k: v for k, v in ratios.items() if v == v}
    if finite:
        name = max(finite, key=lambda k: finite[k])
        layer, module = owners.get(name, (name.rpartition(".")[0], None))
        shown = _one_line(module) if module is not None else "?"
        cause += (
            f" The first step of the epoch changed parameter {name!r} of layer {layer!r} "
            f"({shown}) by {finite[name]:.3g} times its size (|update| / |weight|, the largest "
            f"of all layers; about 1e-3 is typical)."
        )
    return (
        f"training has {what} at {facts}. {cause} Lower the learning rate (e.g. 10x), clip the "
        f"gradients (clip_grad_norm=1.0, --clip) or use a schedule with warm-up."
    )


def validation_warning(record: dict[str, Any]) -> str | None:
    """The message of a :class:`~convscope.errors.TrainingWarning` for a non-finite val_loss."""
    value = record.get("val_loss")
    if value is None or math.isfinite(value):
        return None
    return (
        f"epoch {record['epoch']}: the validation loss is {value} although the training loss "
        f"{record.get('train_loss', float('nan')):.4g} is finite. The model's outputs on the "
        f"validation data overflowed, or the validation data holds NaN/Inf (check it and its "
        f"transform, e.g. a normalisation with std 0), or the BatchNorm running statistics "
        f"used in eval mode are not finite."
    )
