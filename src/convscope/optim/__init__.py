"""Optimizers, learning-rate schedules and gradient clipping (the notes' section 9.4).

All follow PyTorch's ``torch.optim`` formulas and argument names, so a convscope run can
be compared with a PyTorch run step for step:

- :class:`SGD` (momentum, dampening, Nesterov, weight decay), :class:`Adam`,
  :class:`AdamW`; their state is keyed by parameter name and saved with
  ``state_dict()`` / ``load_state_dict()``.
- :class:`StepLR`, :class:`CosineAnnealingLR`, :class:`OneCycleLR`.
- :func:`clip_grad_norm_`.

Example:
    >>> import numpy as np
    >>> from convscope import optim
    >>> from convscope.nn import Parameter
    >>> w = Parameter(np.array([4.0], dtype=np.float32))
    >>> opt = optim.SGD([("w", w)], lr=0.25)
    >>> for _ in range(3):        # minimise w**2: gradient 2w
    ...     w.grad[:] = 2 * w.data
    ...     opt.step()
    >>> w.data, w.data.dtype
    (array([0.5], dtype=float32), dtype('float32'))
"""

from .adam import Adam, AdamW
from .clip import clip_grad_norm_
from .optimizer import Optimizer
from .schedule import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "LRScheduler",
    "StepLR",
    "CosineAnnealingLR",
    "OneCycleLR",
    "clip_grad_norm_",
]
