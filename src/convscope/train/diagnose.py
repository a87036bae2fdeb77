"""Why training blew up: find the layer where NaN or Inf first appeared.

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
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import NumericalError
from ..nn import Module
from .checkpoint import module_generators

__all__ = ["loss_error", "gradient_error"]


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
        f"{pname} {('holds ' + _nonfinite_text(p.data)) if not np.isfinite(p.data).all() else 'largest |value| ' + _largest(p.data)}"
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
