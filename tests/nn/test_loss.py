"""CrossEntropyLoss and MSELoss modules against PyTorch and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError, ShapeError, StateError
from convscope.testing import assert_close, numerical_vjp


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("targets", ["indices", "probabilities"])
def test_cross_entropy_matches_torch(torch, dtype, targets):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((5, 4)) * 3).astype(dtype)
    if targets == "indices":
        target = np.array([0, 3, 1, 1, 2])
        ttarget = torch.from_numpy(target)
    else:
        target = rng.dirichlet(np.ones(4), size=5).astype(dtype)
        ttarget = torch.from_numpy(target)
    loss = nn.CrossEntropyLoss()
    value = loss(logits, target)
    assert isinstance(value, float)
    lt = torch.from_numpy(logits).requires_grad_(True)
    ref = torch.nn.CrossEntropyLoss()(lt, ttarget)
    ref.backward()
    assert abs(value - ref.item()) <= 1e-5 * max(1.0, abs(ref.item()))
    assert_close(loss.backward(), lt.grad.numpy(), kind="backward")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mse_matches_torch_mean_over_all_elements(torch, dtype):
    rng = np.random.default_rng(1)
    out = rng.standard_normal((3, 2, 4)).astype(dtype)
    target = rng.standard_normal((3, 2, 4)).astype(dtype)
    loss = nn.MSELoss()
    value = loss(out, target)
    ot = torch.from_numpy(out).requires_grad_(True)
    ref = torch.nn.MSELoss()(ot, torch.from_numpy(target))
    ref.backward()
    assert abs(value - ref.item()) <= 1e-6 * max(1.0, ref.item())
    assert_close(loss.backward(), ot.grad.numpy(), kind="backward")


def test_loss_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4, 3))
    labels = np.array([2, 0, 1, 2])
    ce = nn.CrossEntropyLoss()
    ce(logits, labels)
    num = numerical_vjp(lambda z: np.array(nn.CrossEntropyLoss()(z, labels)), [logits], np.array(1.0))[0]
    assert_close(ce.backward(), num, kind="gradcheck")
    target = rng.standard_normal((4, 3))
    mse = nn.MSELoss()
    mse(logits, target)
    num = numerical_vjp(lambda z: np.array(nn.MSELoss()(z, target)), [logits], np.array(1.0))[0]
    assert_close(mse.backward(2.0), 2.0 * num, kind="gradcheck")


def test_loss_errors():
    with pytest.raises(StateError, match="backward called before forward on MSELoss"):
        nn.MSELoss().backward()
    with pytest.raises(ShapeError, match=r"target must have the shape of output \(2, 3\)"):
        nn.MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))
    mse = nn.MSELoss()
    mse(np.zeros(2), np.ones(2))
    with pytest.raises(ArgumentTypeError, match="dy must be a number"):
        mse.backward(np.ones(2))
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
