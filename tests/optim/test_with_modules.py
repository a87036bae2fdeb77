"""The optimizers on real convscope.nn models: names from named_parameters(), dtype kept."""

from __future__ import annotations

import numpy as np
import pytest

from convscope import nn
from convscope.optim import SGD, Adam, OneCycleLR, clip_grad_norm_

torch = pytest.importorskip("torch")


def test_named_parameters_key_the_state_and_training_reduces_the_loss():
    rng = np.random.default_rng(0)
    def make(seed):
        return nn.Sequential(nn.Conv1d(1, 3, 3, rng=seed), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 2, rng=seed + 1))

    model, teacher = make(0), make(10)  # the teacher's outputs are reachable targets
    loss_fn = nn.MSELoss()
    x = rng.standard_normal((16, 1, 8)).astype(np.float32)
    target = teacher(x)
    opt = Adam(model.named_parameters(), lr=1e-2)
    sched = OneCycleLR(opt, max_lr=3e-2, total_steps=40)
    losses = []
    for _ in range(40):
        model.zero_grad()
        losses.append(loss_fn(model(x), target))
        model.backward(loss_fn.backward())
        clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
    assert losses[-1] < 0.5 * losses[0]
    assert set(opt.state) == {name for name, _ in model.named_parameters()}
    assert all(p.data.dtype == np.float32 for p in model.parameters())
    assert set(opt.state_dict()["arrays"]) == {
        f"{name}/{buf}" for name, _ in model.named_parameters() for buf in ("exp_avg", "exp_avg_sq")
    }


def test_sgd_on_a_linear_layer_matches_torch():
    rng = np.random.default_rng(1)
    layer = nn.Linear(4, 3, rng=2, dtype=np.float64)
    twin = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.data))
        twin.bias.copy_(torch.from_numpy(layer.bias.data))
    opt = SGD(layer.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    for _ in range(10):
        x = rng.standard_normal((5, 4))
        layer.zero_grad()
        y = layer(x)
        layer.backward(2 * y)  # d(sum y^2)/dy
        opt.step()
        topt.zero_grad()
        (twin(torch.from_numpy(x)) ** 2).sum().backward()
        topt.step()
    np.testing.assert_allclose(layer.weight.data, twin.weight.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.bias.data, twin.bias.detach().numpy(), rtol=1e-10, atol=1e-12)
