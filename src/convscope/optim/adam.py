"""Adam and AdamW: per-parameter step sizes from running moment estimates, bias-corrected.

Both follow PyTorch's ``torch.optim.Adam`` / ``torch.optim.AdamW`` (single-tensor path)
formula by formula, so a run can be compared with PyTorch step for step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentTypeError
from .optimizer import Optimizer, check_real

__all__ = ["Adam", "AdamW"]


def _lerp_(a: np.ndarray, b: np.ndarray, weight: float) -> None:
    """``a += weight * (b - a)`` in place, written as PyTorch's ``lerp_`` writes it.

    PyTorch switches form at weight 0.5 for accuracy: ``a + w (b - a)`` below,
    ``b - (b - a)(1 - w)`` from 0.5 on.
    """
    diff = b - a
    if abs(weight) < 0.5:
        diff *= weight
        a += diff
    else:
        diff *= 1.0 - weight
        np.subtract(b, diff, out=a)


class Adam(Optimizer):
    """Adam: gradient descent scaled by bias-corrected first and second moment estimates.

    For each parameter ``w`` with gradient ``g``, step ``t = 1, 2, ...`` computes (as
    PyTorch)::

        g = g + weight_decay * w                        (Adam, if weight_decay != 0)
        w = w * (1 - lr * weight_decay)                 (AdamW instead: decoupled decay)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: ``model.parameters()`` or ``model.named_parameters()``.
        lr (float): learning rate, >= 0. Default 1e-3.
        betas (tuple of 2 floats): decay rates ``(beta1, beta2)`` of the moment estimates,
            each in [0, 1). Default (0.9, 0.999).
        eps (float): added to the denominator for stability, >= 0. Default 1e-8.
        weight_decay (float): >= 0; Adam adds it to the gradient (L2 penalty). Default 0.

    Raises:
        ConfigError: a hyperparameter out of range.
        ArgumentTypeError: a hyperparameter of the wrong type.

    Notes:
        State per parameter: ``"step"`` (int counter) and the arrays ``"exp_avg"`` (m) and
        ``"exp_avg_sq"`` (v), in the parameter's dtype.

    Example:
        >>> import numpy as np
        >>> from convscope.nn import Parameter
        >>> p = Parameter(np.array([1.0, 1.0]))
        >>> opt = Adam([p], lr=0.1)
        >>> p.grad[:] = [3.0, -0.5]
        >>> opt.step()  # the first step moves each entry by about lr, against its gradient
        >>> np.round(p.data, 6)
        array([0.9, 1.1])
    """

    _hyperparameters = ("lr", "betas", "eps", "weight_decay")
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    _buffers = ("exp_avg", "exp_avg_sq")
    _counters = ("step",)
    _decoupled = False

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _check_hyperparameter(self, name: str, value: Any) -> Any:
        op = type(self).__name__
        if name == "betas":
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise ArgumentTypeError(
                    f"{op}: betas must be a tuple of 2 numbers (beta1, beta2), each in [0, 1); "
                    f"got {value!r}."
                )
            return tuple(
                check_real(b, f"betas[{i}]", op, minimum=0.0, below=1.0) for i, b in enumerate(value)
            )
        return check_real(value, name, op, minimum=0.0)

    def _update(self, name: str, data: np.ndarray, grad: np.ndarray, state: dict) -> None:
        beta1, beta2 = self.betas
        lr, wd = self.lr, self.weight_decay
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(data)
            state["exp_avg_sq"] = np.zeros_like(data)
        state["step"] += 1
        step = state["step"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        g = grad
        if wd != 0:
            if self._decoupled:
                data *= 1.0 - lr * wd
            else:
                g = grad + wd * data
        _lerp_(exp_avg, g, 1.0 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1.0 - beta2) * g * g
        # Scalars in Python floats (float64), as PyTorch computes them on the host.
        bias_correction1 = 1.0 - beta1**step
        bias_correction2 = 1.0 - beta2**step
        step_size = lr / bias_correction1
        denom = np.sqrt(exp_avg_sq)
        denom /= bias_correction2**0.5
        denom += self.eps
        update = exp_avg / denom
        update *= step_size
        data -= update


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as ``torch.optim.AdamW``.

    The decay shrinks the weights directly, ``w = w * (1 - lr * weight_decay)``, before the
    Adam step, instead of entering the gradient and so the moment estimates (see
    :class:`Adam` for the full rule).

    Args:
        params: ``model.parameters()`` or ``model.named_parameters()``.
        lr (float): learning rate, >= 0. Default 1e-3.
        betas (tuple of 2 floats): each in [0, 1). Default (0.9, 0.999).
        eps (float): >= 0. Default 1e-8.
        weight_decay (float): decoupled decay coefficient, >= 0. Default 0.01.

    Example:
        >>> import numpy as np
        >>> from convscope.nn import Parameter
        >>> p = Parameter(np.array([2.0]))
        >>> opt = AdamW([p], lr=0.1, weight_decay=0.5)
        >>> opt.step()  # zero gradient: only the decay acts, 2 * (1 - 0.1 * 0.5)
        >>> p.data
        array([1.9])
    """

    _decoupled = True

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
