"""Shared pieces of the optimizer tests: a duck-typed parameter and a torch twin runner."""

from __future__ import annotations

import numpy as np

SHAPES = [(3, 4), (5,), (2, 3, 2, 2)]


class FakeParam:
    """The smallest parameter an optimizer accepts: ``data`` and ``grad`` arrays."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.grad = np.zeros_like(data)


def make_params(dtype, seed: int = 0, shapes=SHAPES) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def fake_gradient(data: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise plus the gradient of 0.5*|w|^2, so errors in the update feed back as in training."""
    return (rng.standard_normal(data.shape) + data).astype(data.dtype)


def run_twins(make_ours, make_torch, dtype, steps: int = 20, seed: int = 0, after_step=None):
    """Run our optimizer and its torch twin on the same start and gradients; yield both states.

    ``after_step(t, ours_opt, torch_opt)`` runs after each pair of steps (for schedules).
    Yields ``(t, our_arrays, torch_arrays)`` after every step.
    """
    import torch

    init = make_params(dtype, seed)
    ours = [FakeParam(x.copy()) for x in init]
    twins = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    opt = make_ours([(f"p{i}", p) for i, p in enumerate(ours)])
    topt = make_torch(twins)
    rng = np.random.default_rng(seed + 1)
    for t in range(steps):
        for p, q in zip(ours, twins):
            g = fake_gradient(p.data, rng)
            p.grad[...] = g
            q.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        if after_step is not None:
            after_step(t, opt, topt)
        yield t, [p.data for p in ours], [q.detach().numpy() for q in twins]
