"""Helpers for the module tests: finite-difference checks and PyTorch twins."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.nn import Module
from convscope.testing import max_relative_error, numerical_vjp


def module_gradcheck(module: Module, x: np.ndarray, seed: int = 0, eps: float = 1e-6) -> dict[str, float]:
    """Max relative error of dx and of every parameter gradient vs central differences.

    Uses a random upstream gradient dy (the full vector-Jacobian product is checked).
    Returns {"x": err, "<param name>": err, ...}.
    """
    rng = np.random.default_rng(seed)
    y = module(x)
    dy = rng.standard_normal(y.shape)
    module.zero_grad()
    module(x)
    dx = module.backward(dy)
    errors = {"x": max_relative_error(dx, numerical_vjp(lambda a: module(a), [x], dy, eps)[0])}
    for name, param in module.named_parameters():
        analytic = param.grad.copy()
        original = param.data

        def f(w, param=param):
            param.data = w
            return module(x)

        numeric = numerical_vjp(f, [original], dy, eps)[0]
        param.data = original
        errors[name] = max_relative_error(analytic, numeric)
    return errors


@pytest.fixture
def gradcheck_module():
    return module_gradcheck


def torch_or_skip():
    return pytest.importorskip("torch")


@pytest.fixture
def torch():
    return torch_or_skip()
