"""Gradient clipping by the global norm, as ``torch.nn.utils.clip_grad_norm_``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, NumericalError, ShapeError
from .optimizer import check_bool, check_real

__all__ = ["clip_grad_norm_"]


def _grads(params: Any) -> list[np.ndarray]:
    if hasattr(params, "data") and hasattr(params, "grad"):
        params = [params]
    if isinstance(params, (str, bytes, np.ndarray)):
        raise ArgumentTypeError(
            f"clip_grad_norm_: params must be a parameter or an iterable of parameters or "
            f"(name, parameter) pairs; got {type(params).__name__}."
        )
    try:
        items = list(params)
    except TypeError:
        raise ArgumentTypeError(
            f"clip_grad_norm_: params must be a parameter or an iterable of parameters or "
            f"(name, parameter) pairs; got {type(params).__name__}."
        ) from None
    grads = []
    for i, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            item = item[1]
        if not (hasattr(item, "data") and hasattr(item, "grad")):
            raise ArgumentTypeError(
                f"clip_grad_norm_: params entry {i} must be a parameter (with .data and .grad) "
                f"or a (name, parameter) pair; got {type(item).__name__}."
            )
        if item.grad is None:
            continue
        if not isinstance(item.grad, np.ndarray) or item.grad.dtype not in (np.float32, np.float64):
            raise ArgumentTypeError(
                f"clip_grad_norm_: params entry {i} must hold a float32/float64 NumPy array in "
                f".grad; got {type(item.grad).__name__} "
                f"{getattr(item.grad, 'dtype', '')}".rstrip() + "."
            )
        if np.shape(item.data) != item.grad.shape:
            raise ShapeError(
                f"clip_grad_norm_: params entry {i} has a gradient of shape {item.grad.shape} for "
                f"data of shape {np.shape(item.data)}."
            )
        grads.append(item.grad)
    return grads


def clip_grad_norm_(
    params: Any, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> float:
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of the vector of every gradient entry (the
    norm of the per-parameter norms). Gradients are multiplied in place by
    ``min(1, max_norm / (total_norm + 1e-6))``, exactly as PyTorch does; parameters whose
    ``grad`` is ``None`` are skipped.

    Args:
        params: a parameter, or an iterable of parameters or ``(name, parameter)`` pairs.
        max_norm (float): the largest allowed total norm, >= 0.
        norm_type (float): p of the p-norm, > 0, or ``math.inf`` for the largest absolute
            entry. Default 2.
        error_if_nonfinite (bool): raise instead of clipping when the total norm is NaN or
            infinite. Default False (PyTorch's default: the gradients become NaN).

    Returns:
        float: the total norm of the gradients before clipping.

    Raises:
        NumericalError: the norm is NaN/Inf and ``error_if_nonfinite`` is True.
        ConfigError, ArgumentTypeError: bad ``max_norm``/``norm_type`` or params.

    Example:
        >>> import numpy as np
        >>> from convscope.nn import Parameter
        >>> a, b = Parameter(np.zeros(1)), Parameter(np.zeros(1))
        >>> a.grad[:], b.grad[:] = 3.0, 4.0
        >>> clip_grad_norm_([a, b], max_norm=1.0)
        5.0
        >>> np.round(a.grad, 6), np.round(b.grad, 6)
        (array([0.6]), array([0.8]))
    """
    op = "clip_grad_norm_"
    max_norm = check_real(max_norm, "max_norm", op, minimum=0.0)
    if isinstance(norm_type, (int, float)) and not isinstance(norm_type, bool) and norm_type == math.inf:
        norm_type = math.inf
    else:
        norm_type = check_real(norm_type, "norm_type", op, minimum=0.0, minimum_inclusive=False)
    error_if_nonfinite = check_bool(error_if_nonfinite, "error_if_nonfinite", op)
    grads = _grads(params)
    if not grads:
        return 0.0
    # Per-parameter norms, then the norm of those (PyTorch's order), accumulated in float64.
    if norm_type == math.inf:
        norms = [float(np.max(np.abs(g))) if g.size else 0.0 for g in grads]
        total = max(norms)
    else:
        norms = [
            float(np.linalg.norm(g.reshape(-1).astype(np.float64, copy=False), ord=norm_type))
            if g.size else 0.0
            for g in grads
        ]
        total = float(np.linalg.norm(np.array(norms), ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise NumericalError(
            f"{op}: the total gradient norm is {total} (norm_type={norm_type}); a gradient holds "
            "NaN or Inf. Lower the learning rate or check the loss; pass error_if_nonfinite=False "
            "to clip anyway."
        )
    coef = min(max_norm / (total + 1e-6), 1.0) if not math.isnan(total) else math.nan
    for g in grads:
        g *= coef
    return total
