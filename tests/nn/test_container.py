"""Sequential and Residual: chaining, indexing, gradients, PyTorch parity of a whole network."""

from __future__ import annotations

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError, ShapeError, StateError
from convscope.testing import assert_close


def lenet(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, rng=rng, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, rng=rng, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120, rng=rng, dtype=dtype), nn.ReLU(),
        nn.Linear(120, 84, rng=rng, dtype=dtype), nn.ReLU(), nn.Linear(84, 10, rng=rng, dtype=dtype),
    )


def torch_twin(torch, model):
    """The same architecture in torch.nn with our weights copied in."""
    tnn = torch.nn
    layers = []
    for m in model:
        if isinstance(m, nn.Conv2d):
            t = tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                           tuple(b for b, _ in m.padding), bias=m.bias is not None)
        elif isinstance(m, nn.Linear):
            t = tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        elif isinstance(m, nn.BatchNorm2d):
            t = tnn.BatchNorm2d(m.num_features)
        elif isinstance(m, nn.MaxPool2d):
            t = tnn.MaxPool2d(m.kernel_size)
        elif isinstance(m, nn.Residual):
            inner = torch_twin(torch, m.block)

            class Res(tnn.Module):
                def __init__(self, block):
                    super().__init__()
                    self.block = block

                def forward(self, x):
                    return x + self.block(x)

            t = Res(inner)
        else:
            t = {"ReLU": tnn.ReLU, "Flatten": tnn.Flatten, "Tanh": tnn.Tanh}[type(m).__name__]()
        layers.append(t)
    twin = tnn.Sequential(*layers).double() if model[0].dtype == np.float64 else tnn.Sequential(*layers)
    state = {k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()}
    twin.load_state_dict(state)
    return twin


def test_sequential_indexing_and_iteration():
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 2, rng=1))
    assert len(model) == 3
    assert isinstance(model[0], nn.Linear) and model[-1] is model[2]
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
    head = model[1:]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[1] is model[2]
    model.append(nn.Softmax())
    assert len(model) == 4 and [n for n, _ in model.named_children()] == ["0", "1", "2", "3"]
    with pytest.raises(IndexError, match="out of range for 4 modules"):
        model[4]
    with pytest.raises(ArgumentTypeError, match="Sequential argument 1 must be a convscope Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    x = np.ones((2, 3), dtype=np.float32)
    assert np.array_equal(nn.Sequential()(x), x)


def test_sequential_backward_is_the_reverse_chain():
    rng = np.random.default_rng(0)
    a, b = nn.Linear(3, 4, rng=0, dtype=np.float64), nn.Tanh()
    model = nn.Sequential(a, b)
    x = rng.standard_normal((5, 3))
    dy = rng.standard_normal((5, 4))
    model(x)
    dx = model.backward(dy)
    a2, b2 = nn.Linear(3, 4, rng=0, dtype=np.float64), nn.Tanh()
    b2(a2(x))
    assert np.array_equal(dx, a2.backward(b2.backward(dy)))
    assert np.array_equal(a.weight.grad, a2.weight.grad)


def test_residual_forward_backward(gradcheck_module):
    block = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, rng=0, dtype=np.float64), nn.Tanh())
    res = nn.Residual(block)
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 4))
    assert_close(res(x), x + block(x))
    errors = gradcheck_module(res, x)
    assert set(errors) == {"x", "block.0.weight", "block.0.bias"}
    assert max(errors.values()) < 1e-7, errors
    with pytest.raises(ShapeError, match=r"Residual: the block must keep the shape.*\(1, 2, 4, 4\).*\(1, 2, 2, 2\)"):
        nn.Residual(nn.Conv2d(2, 2, 3, rng=0, dtype=np.float64))(np.zeros((1, 2, 4, 4)))
    with pytest.raises(StateError, match="backward called before forward on Conv2d"):
        nn.Residual(nn.Conv2d(1, 1, 1)).backward(np.zeros((1, 1, 2, 2)))


def test_small_network_gradients_match_finite_differences(gradcheck_module):
    rng = np.random.default_rng(2)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, rng=rng, dtype=np.float64), nn.BatchNorm2d(2, dtype=np.float64),
        nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3, rng=rng, dtype=np.float64),
    )
    x = rng.standard_normal((3, 1, 4, 4))
    errors = gradcheck_module(model, x)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lenet_matches_torch_forward_and_every_gradient(torch, dtype):
    model = lenet(dtype)
    twin = torch_twin(torch, model)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 1, 28, 28)).astype(dtype)
    labels = np.array([1, 7, 3, 3])
    loss = nn.CrossEntropyLoss()
    value = loss(model(x), labels)
    dx = model.backward(loss.backward())
    xt = torch.from_numpy(x).requires_grad_(True)
    tloss = torch.nn.functional.cross_entropy(twin(xt), torch.from_numpy(labels))
    tloss.backward()
    assert abs(value - tloss.item()) < (1e-10 if dtype == np.float64 else 1e-5)
    # whole-network gradients: relative L2 norm (max-pool choices may flip in float32)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    tparams = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        ref = tparams[name].grad.numpy()
        assert np.linalg.norm(p.grad - ref) <= tol * max(np.linalg.norm(ref), 1e-30), name
    assert np.linalg.norm(dx - xt.grad.numpy()) <= tol * np.linalg.norm(xt.grad.numpy())


def test_residual_network_matches_torch(torch):
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, rng=0, dtype=np.float64), nn.ReLU(),
        nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, rng=1, dtype=np.float64), nn.Tanh())),
        nn.Flatten(), nn.Linear(4 * 5 * 5, 3, rng=2, dtype=np.float64),
    )
    twin = torch_twin(torch, model)
    x = np.random.default_rng(4).standard_normal((2, 2, 5, 5))
    xt = torch.from_numpy(x).requires_grad_(True)
    y, yt = model(x), twin(xt)
    assert_close(y, yt.detach().numpy())
    dy = np.random.default_rng(5).standard_normal(y.shape)
    yt.backward(torch.from_numpy(dy))
    assert_close(model.backward(dy), xt.grad.numpy(), kind="backward")
    tparams = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        assert_close(p.grad, tparams[name].grad.numpy(), kind="backward", context=name)


def test_repr_nested():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Residual(nn.Sequential(nn.ReLU())))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 2, kernel_size=(3, 3))\n"
        "  (1): Residual(\n"
        "    (block): Sequential(\n"
        "      (0): ReLU()\n"
        "    )\n"
        "  )\n"
        ")"
    )
