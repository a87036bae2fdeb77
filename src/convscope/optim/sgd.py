"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

The notes' gradient-descent step (section 9.4) is ``w <- w - lr * dL/dw``. Momentum keeps a
running direction ``v`` per parameter; this module follows PyTorch's ``torch.optim.SGD``
formula exactly, so a run can be compared with PyTorch step for step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .optimizer import Optimizer, check_bool, check_real

__all__ = ["SGD"]


class SGD(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum and L2 weight decay.

    For each parameter ``w`` with gradient ``g``, one :meth:`step` computes (as PyTorch)::

        g = g + weight_decay * w                    (if weight_decay != 0)
        v = g                                       (first step with momentum)
        v = momentum * v + (1 - dampening) * g      (later steps)
        g = g + momentum * v  if nesterov  else  v  (if momentum != 0)
        w = w - lr * g

    Args:
        params: ``model.parameters()`` or ``model.named_parameters()`` (any iterable of
            objects with ``.data`` and ``.grad`` NumPy arrays, or of ``(name, object)`` pairs).
        lr (float): learning rate, >= 0.
        momentum (float): momentum factor, >= 0. Default 0 (plain gradient descent).
        dampening (float): scales the new gradient in the momentum average from the second
            step on. Default 0.
        nesterov (bool): Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
        weight_decay (float): L2 penalty coefficient, >= 0, added to the gradient.

    Raises:
        ConfigError: a hyperparameter out of range, or Nesterov without momentum.
        ArgumentTypeError: a hyperparameter of the wrong type, or params that are not
            parameters.

    Notes:
        The state is one ``"momentum_buffer"`` array per parameter (only when momentum is
        used), in the parameter's dtype.

    Example:
        >>> import numpy as np
        >>> from convscope.nn import Parameter
        >>> p = Parameter(np.array([1.0]))
        >>> opt = SGD([p], lr=0.1, momentum=0.9)
        >>> for _ in range(3):
        ...     p.grad[:] = 1.0
        ...     opt.step()
        >>> p.data  # 1 - 0.1 * (1 + 1.9 + 2.71)
        array([0.439])
    """

    _hyperparameters = ("lr", "momentum", "dampening", "nesterov", "weight_decay")
    momentum: float
    dampening: float
    nesterov: bool
    weight_decay: float
    _buffers = ("momentum_buffer",)

    def __init__(
        self,
        params: Any,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(
            params, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
            weight_decay=weight_decay,
        )

    def _check_hyperparameter(self, name: str, value: Any) -> Any:
        if name == "nesterov":
            return check_bool(value, name, "SGD")
        if name == "dampening":
            return check_real(value, name, "SGD")
        return check_real(value, name, "SGD", minimum=0.0)

    def _check_together(self, hyperparameters: dict[str, Any]) -> None:
        if hyperparameters["nesterov"] and (
            hyperparameters["momentum"] <= 0 or hyperparameters["dampening"] != 0
        ):
            raise ConfigError(
                "SGD: nesterov=True needs momentum > 0 and dampening == 0; got momentum="
                f"{hyperparameters['momentum']!r}, dampening={hyperparameters['dampening']!r}. "
                "Nesterov's look-ahead is defined on an undamped momentum buffer."
            )

    def _update(self, name: str, data: np.ndarray, grad: np.ndarray, state: dict) -> None:
        # Python floats keep float32 arrays float32 (NumPy's weak scalar promotion).
        g = grad + self.weight_decay * data if self.weight_decay != 0 else grad
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, copy=True)
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        data -= self.lr * g
