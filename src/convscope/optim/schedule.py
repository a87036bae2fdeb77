"""Learning-rate schedules: step decay, cosine annealing and the one-cycle policy.

A schedule owns an optimizer and rewrites its ``lr`` attribute. As in PyTorch, building a
schedule sets the learning rate for step 0 immediately, and each :meth:`step` (called
after ``optimizer.step()``, once per epoch or once per batch as the schedule intends)
moves to the next value. The sequences equal PyTorch's ``torch.optim.lr_scheduler``
classes of the same names, computed with the same (recursive where PyTorch's is)
formulas.

Example:
    >>> import numpy as np
    >>> from convscope.optim import SGD, StepLR
    >>> from convscope.nn import Parameter
    >>> opt = SGD([Parameter(np.zeros(2))], lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(opt.lr)
    ...     opt.step()
    ...     sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25]
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ArgumentTypeError, ConfigError, StateError
from ..shapes import normalize_int
from .optimizer import Optimizer, check_bool, check_real

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "OneCycleLR"]


class LRScheduler:
    """Base class: holds the optimizer, the step counter and the last learning rate.

    Attributes:
        optimizer: the optimizer whose ``lr`` this schedule sets.
        base_lr (float): the optimizer's learning rate when the schedule was built
            (PyTorch's ``initial_lr``; for :class:`OneCycleLR`, ``max_lr / div_factor``).
        last_epoch (int): how many times :meth:`step` ran (0 right after construction).
    """

    #: Names of the constructor arguments saved in state_dict()["config"].
    _config: tuple[str, ...] = ()

    def __init__(self, optimizer: Any, **config: Any) -> None:
        op = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise ArgumentTypeError(
                f"{op}: optimizer must be a convscope optimizer (SGD, Adam, AdamW); got "
                f"{type(optimizer).__name__}."
            )
        self.optimizer = optimizer
        for key, value in self._check_config(config).items():
            setattr(self, key, value)
        self.base_lr = self._initial_lr()
        self.last_epoch = 0
        self._is_initial = True
        self._apply(self.get_lr())
        self._is_initial = False

    # -- subclass hooks -------------------------------------------------------------------
    def _check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _initial_lr(self) -> float:
        return self.optimizer.lr

    def get_lr(self) -> float:
        """The learning rate for the current ``last_epoch`` (may read the optimizer's lr)."""
        raise NotImplementedError

    # -- stepping -------------------------------------------------------------------------
    def _apply(self, lr: float) -> None:
        self.optimizer.lr = lr
        self.last_lr = self.optimizer.lr

    def step(self) -> None:
        """Advance one step (an epoch or a batch) and set the optimizer's learning rate."""
        self.last_epoch += 1
        try:
            lr = self.get_lr()
        except BaseException:
            self.last_epoch -= 1
            raise
        self._apply(lr)

    def get_last_lr(self) -> float:
        """The learning rate this schedule set last (a float; PyTorch returns a 1-item list)."""
        return self.last_lr

    # -- saving ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The schedule's position and configuration; every entry is JSON-safe."""
        return {
            "scheduler": type(self).__name__,
            "config": {key: getattr(self, key) for key in self._config},
            "last_epoch": self.last_epoch,
            "base_lr": self.base_lr,
            "last_lr": self.last_lr,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue from a saved position; also puts the saved ``last_lr`` into the optimizer.

        (PyTorch leaves the optimizer's lr to the optimizer's own state; setting it here
        too means a schedule restored before or after the optimizer gives the same lr.)
        """
        op = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict):
            raise ArgumentTypeError(
                f"{op}: expected a dict from state_dict(); got {type(state_dict).__name__}."
            )
        keys = {"scheduler", "config", "last_epoch", "base_lr", "last_lr"} | set(self._extra_state())
        if set(state_dict) != keys:
            raise ConfigError(f"{op}: expected the keys {sorted(keys)}; got {sorted(map(str, state_dict))}.")
        if state_dict["scheduler"] != type(self).__name__:
            raise ConfigError(
                f"{op}: the state was saved by a {state_dict['scheduler']!r} schedule, this is a "
                f"{type(self).__name__}."
            )
        config = state_dict["config"]
        if not isinstance(config, dict) or set(config) != set(self._config):
            raise ConfigError(f"{op}: config must have the keys {list(self._config)}; got {config!r}.")
        config = self._check_config(config)
        last_epoch = normalize_int(state_dict["last_epoch"], "last_epoch", op, minimum=0)
        base_lr = check_real(state_dict["base_lr"], "base_lr", op, minimum=0.0)
        last_lr = check_real(state_dict["last_lr"], "last_lr", op, minimum=0.0)
        extra = {key: state_dict[key] for key in self._extra_state()}
        for key, value in config.items():
            setattr(self, key, value)
        self.last_epoch, self.base_lr = last_epoch, base_lr
        self._load_extra(extra)
        self._apply(last_lr)

    def _extra_state(self) -> tuple[str, ...]:
        return ()

    def _load_extra(self, extra: dict[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        config = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._config)
        return f"{type(self).__name__}({config}, last_epoch={self.last_epoch}, lr={self.last_lr!r})"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    ``lr(t) = base_lr * gamma ** (t // step_size)`` (computed by repeated multiplication,
    as PyTorch does).

    Args:
        optimizer: a convscope optimizer.
        step_size (int): period of the decay, >= 1.
        gamma (float): decay factor, > 0. Default 0.1.

    Raises:
        ConfigError, ArgumentTypeError: bad ``step_size`` or ``gamma``.

    Example:
        >>> import numpy as np
        >>> from convscope.optim import SGD
        >>> from convscope.nn import Parameter
        >>> opt = SGD([Parameter(np.zeros(1))], lr=0.5)
        >>> sched = StepLR(opt, step_size=1, gamma=0.5)
        >>> sched.step(); sched.step()
        >>> opt.lr
        0.125
    """

    _config = ("step_size", "gamma")
    step_size: int
    gamma: float

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer, step_size=step_size, gamma=gamma)

    def _check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {
            "step_size": normalize_int(config["step_size"], "step_size", "StepLR", minimum=1),
            "gamma": check_real(config["gamma"], "gamma", "StepLR", minimum=0.0, minimum_inclusive=False),
        }

    def get_lr(self) -> float:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate from ``base_lr`` to ``eta_min`` along half a cosine.

    ``lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``, computed
    with PyTorch's recursive form (each value from the previous one), which also
    continues past ``T_max`` back up the cosine as PyTorch does.

    Args:
        optimizer: a convscope optimizer.
        T_max (int): number of steps of the half cosine, >= 1.
        eta_min (float): the lowest learning rate, >= 0. Default 0.

    Example:
        >>> import numpy as np
        >>> from convscope.optim import SGD
        >>> from convscope.nn import Parameter
        >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
        >>> sched = CosineAnnealingLR(opt, T_max=4)
        >>> lrs = []
        >>> for _ in range(4):
        ...     sched.step()
        ...     lrs.append(round(opt.lr, 6))
        >>> lrs
        [0.853553, 0.5, 0.146447, 0.0]
    """

    _config = ("T_max", "eta_min")
    T_max: int
    eta_min: float

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer, T_max=T_max, eta_min=eta_min)

    def _check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {
            "T_max": normalize_int(config["T_max"], "T_max", "CosineAnnealingLR", minimum=1),
            "eta_min": check_real(config["eta_min"], "eta_min", "CosineAnnealingLR", minimum=0.0),
        }

    def get_lr(self) -> float:
        lr, t, T = self.optimizer.lr, self.last_epoch, self.T_max
        if self._is_initial:
            return lr
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - self.eta_min) * (1 - math.cos(math.pi / T)) / 2
        return (
            (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
            * (lr - self.eta_min)
            + self.eta_min
        )


class OneCycleLR(LRScheduler):
    """The one-cycle policy: warm up to ``max_lr``, then anneal far below the start.

    The learning rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of ``total_steps`` and then falls to ``max_lr / div_factor /
    final_div_factor`` at the last step (with ``three_phase=True``: up, back down to the
    start, then down to the minimum). Momentum (SGD's ``momentum``, Adam's ``beta1``) moves
    the opposite way between ``max_momentum`` and ``base_momentum`` when
    ``cycle_momentum`` is True, as in PyTorch (where it is also the default). Call
    :meth:`step` once per batch.

    The values equal PyTorch's, except one: with ``anneal_strategy="linear"``, the value
    after the final step (step ``total_steps``, which no optimizer step uses in a normal
    loop) stays at the minimum, where PyTorch continues the line below it (negative for
    short cycles, which convscope's optimizers refuse).

    Args:
        optimizer: a convscope optimizer.
        max_lr (float): the peak learning rate, > 0.
        total_steps (int): number of steps in the cycle, >= 1. Alternatively give
            ``epochs`` and ``steps_per_epoch`` (their product).
        pct_start (float): fraction of the cycle spent rising, in [0, 1). Default 0.3.
        anneal_strategy (str): ``"cos"`` or ``"linear"``. Default ``"cos"``.
        cycle_momentum (bool): cycle the momentum inversely to the lr. Default True.
        base_momentum, max_momentum (float): momentum bounds, in [0, 1). Default 0.85, 0.95.
        div_factor (float): initial lr = max_lr / div_factor, > 0. Default 25.
        final_div_factor (float): minimum lr = initial lr / final_div_factor, > 0. Default 1e4.
        three_phase (bool): use the paper's three phases. Default False.

    Raises:
        ConfigError, ArgumentTypeError: bad arguments.
        StateError: :meth:`step` called more than ``total_steps`` times.

    Example:
        >>> import numpy as np
        >>> from convscope.optim import SGD
        >>> from convscope.nn import Parameter
        >>> opt = SGD([Parameter(np.zeros(1))], lr=0.1, momentum=0.9)
        >>> sched = OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.5,
        ...                    anneal_strategy="linear", div_factor=10, final_div_factor=10)
        >>> lrs = [opt.lr]
        >>> for _ in range(9):
        ...     sched.step()
        ...     lrs.append(round(opt.lr, 4))
        >>> lrs  # up over steps 0..4, down over 4..9
        [0.1, 0.325, 0.55, 0.775, 1.0, 0.802, 0.604, 0.406, 0.208, 0.01]
        >>> round(opt.momentum, 4)  # momentum went down and back up
        0.95
    """

    _config = (
        "max_lr", "total_steps", "pct_start", "anneal_strategy", "cycle_momentum",
        "base_momentum", "max_momentum", "div_factor", "final_div_factor", "three_phase",
    )
    max_lr: float
    total_steps: int
    pct_start: float
    anneal_strategy: str
    cycle_momentum: bool
    base_momentum: float
    max_momentum: float
    div_factor: float
    final_div_factor: float
    three_phase: bool

    def __init__(
        self,
        optimizer: Any,
        max_lr: float,
        total_steps: int | None = None,
        *,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        op = "OneCycleLR"
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ConfigError(
                    f"{op}: give total_steps, or both epochs and steps_per_epoch; got "
                    f"total_steps=None, epochs={epochs!r}, steps_per_epoch={steps_per_epoch!r}."
                )
            total_steps = normalize_int(epochs, "epochs", op, minimum=1) * normalize_int(
                steps_per_epoch, "steps_per_epoch", op, minimum=1
            )
        super().__init__(
            optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start,
            anneal_strategy=anneal_strategy, cycle_momentum=cycle_momentum,
            base_momentum=base_momentum, max_momentum=max_momentum, div_factor=div_factor,
            final_div_factor=final_div_factor, three_phase=three_phase,
        )

    def _check_config(self, config: dict[str, Any]) -> dict[str, Any]:
        op = "OneCycleLR"
        out = {
            "max_lr": check_real(config["max_lr"], "max_lr", op, minimum=0.0, minimum_inclusive=False),
            "total_steps": normalize_int(config["total_steps"], "total_steps", op, minimum=1),
            "pct_start": check_real(config["pct_start"], "pct_start", op, minimum=0.0, below=1.0),
            "cycle_momentum": check_bool(config["cycle_momentum"], "cycle_momentum", op),
            "base_momentum": check_real(config["base_momentum"], "base_momentum", op, minimum=0.0, below=1.0),
            "max_momentum": check_real(config["max_momentum"], "max_momentum", op, minimum=0.0, below=1.0),
            "div_factor": check_real(
                config["div_factor"], "div_factor", op, minimum=0.0, minimum_inclusive=False
            ),
            "final_div_factor": check_real(
                config["final_div_factor"], "final_div_factor", op, minimum=0.0, minimum_inclusive=False
            ),
            "three_phase": check_bool(config["three_phase"], "three_phase", op),
        }
        strategy = config["anneal_strategy"]
        if strategy not in ("cos", "linear"):
            raise ConfigError(f"{op}: anneal_strategy must be 'cos' or 'linear'; got {strategy!r}.")
        out["anneal_strategy"] = strategy
        if out["three_phase"] and out["pct_start"] >= 0.5:
            raise ConfigError(
                f"{op}: with three_phase=True, pct_start must be < 0.5 (the rise and the fall "
                f"back each take pct_start of the cycle); got {out['pct_start']!r}."
            )
        if out["cycle_momentum"] and not hasattr(self.optimizer, "momentum") and not hasattr(
            self.optimizer, "betas"
        ):
            raise ConfigError(
                f"{op}: cycle_momentum=True needs an optimizer with momentum or betas; "
                f"{type(self.optimizer).__name__} has neither. Pass cycle_momentum=False."
            )
        return out

    def _initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    def _phases(self) -> list[tuple[float, str, str, str, str]]:
        """(end_step, start_lr, end_lr, start_momentum, end_momentum) per phase, as PyTorch."""
        n, pct = self.total_steps, self.pct_start
        if self.three_phase:
            return [
                (float(pct * n) - 1, "initial", "max", "max_m", "base_m"),
                (float(2 * pct * n) - 2, "max", "initial", "base_m", "max_m"),
                (n - 1, "initial", "min", "max_m", "max_m"),
            ]
        return [
            (float(pct * n) - 1, "initial", "max", "max_m", "base_m"),
            (n - 1, "max", "min", "base_m", "max_m"),
        ]

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> float:
        step = self.last_epoch
        if step > self.total_steps:
            raise StateError(
                f"OneCycleLR.step: called {step} times but the cycle has total_steps="
                f"{self.total_steps}. Build the schedule with the number of optimizer steps of the "
                "whole run (epochs * batches per epoch)."
            )
        initial = self.max_lr / self.div_factor
        values = {
            "initial": initial, "max": self.max_lr, "min": initial / self.final_div_factor,
            "max_m": self.max_momentum, "base_m": self.base_momentum,
        }
        start_step = 0.0
        phases = self._phases()
        for i, (end_step, lr0, lr1, m0, m1) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                if self.anneal_strategy == "linear":
                    # Deliberate deviation: at step total_steps PyTorch extrapolates the line
                    # past its end (a negative lr or a momentum >= 1 for short cycles).
                    pct = min(pct, 1.0)
                lr = self._anneal(values[lr0], values[lr1], pct)
                momentum = self._anneal(values[m0], values[m1], pct)
                break
            start_step = end_step
        if self.cycle_momentum:
            self._set_momentum(momentum)
        return lr

    def _set_momentum(self, momentum: float) -> None:
        opt = self.optimizer
        if hasattr(opt, "betas"):
            opt.betas = (momentum, opt.betas[1])
        else:
            opt.momentum = momentum
        self.last_momentum = momentum

    def _extra_state(self) -> tuple[str, ...]:
        return ("last_momentum",)

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["last_momentum"] = getattr(self, "last_momentum", None)
        return out

    def _load_extra(self, extra: dict[str, Any]) -> None:
        momentum = extra["last_momentum"]
        if self.cycle_momentum:
            momentum = check_real(
                momentum, "last_momentum", "OneCycleLR.load_state_dict", minimum=0.0, below=1.0
            )
            self._set_momentum(momentum)
