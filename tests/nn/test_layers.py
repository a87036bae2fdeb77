"""Activations, Flatten, Linear and Dropout: shapes, gradients, PyTorch, errors."""

from __future__ import annotations

import numpy as np
import pytest

import convscope.functional as F
from convscope import nn
from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError, StateError
from convscope.testing import assert_close

# (module, input shape, expected output shape, parameter count)
SHAPE_TABLE = [
    (lambda: nn.ReLU(), (2, 3, 4), (2, 3, 4), 0),
    (lambda: nn.LeakyReLU(0.2), (5,), (5,), 0),
    (lambda: nn.Sigmoid(), (2, 2, 2, 2), (2, 2, 2, 2), 0),
    (lambda: nn.Tanh(), (3, 1), (3, 1), 0),
    (lambda: nn.Softmax(), (4, 10), (4, 10), 0),
    (lambda: nn.Softmax(dim=1), (2, 3, 4), (2, 3, 4), 0),
    (lambda: nn.Flatten(), (2, 3, 4, 5), (2, 60), 0),
    (lambda: nn.Flatten(start_dim=2), (2, 3, 4, 5), (2, 3, 20), 0),
    (lambda: nn.Linear(400, 120, rng=0), (8, 400), (8, 120), 400 * 120 + 120),
    (lambda: nn.Linear(25, 25, rng=0), (1, 25), (1, 25), 650),  # notes 9.1.18
    (lambda: nn.Linear(4, 3, bias=False, rng=0), (4,), (3,), 12),  # unbatched
    (lambda: nn.Linear(4, 3, rng=0), (2, 5, 4), (2, 5, 3), 15),  # extra leading axes
    (lambda: nn.Dropout(0.3, rng=0), (6, 7), (6, 7), 0),
]


@pytest.mark.parametrize("make,in_shape,out_shape,count", SHAPE_TABLE)
def test_shape_table(make, in_shape, out_shape, count):
    layer = make()
    y = layer(np.random.default_rng(0).standard_normal(in_shape).astype(np.float32))
    assert y.shape == out_shape == layer.output_shape(in_shape)
    assert layer.num_parameters() == count
    assert layer.backward(np.ones(out_shape, dtype=np.float32)).shape == in_shape


@pytest.mark.parametrize(
    "layer,fn,bwd",
    [
        (nn.ReLU(), F.relu, F.relu_backward),
        (nn.LeakyReLU(0.3), lambda x: F.leaky_relu(x, 0.3), lambda dy, x: F.leaky_relu_backward(dy, x, 0.3)),
        (nn.Sigmoid(), F.sigmoid, F.sigmoid_backward),
        (nn.Tanh(), F.tanh, F.tanh_backward),
        (nn.Softmax(dim=1), lambda x: F.softmax(x, axis=1), lambda dy, x: F.softmax_backward(dy, x, axis=1)),
        (nn.Flatten(), F.flatten, lambda dy, x: F.flatten_backward(dy, x.shape)),
    ],
)
def test_modules_delegate_to_functional(layer, fn, bwd):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5))
    y = layer(x)
    assert np.array_equal(y, fn(x))
    dy = rng.standard_normal(y.shape)
    assert np.array_equal(layer.backward(dy), bwd(dy, x))


def test_linear_delegates_to_functional():
    rng = np.random.default_rng(1)
    fc = nn.Linear(5, 3, rng=0, dtype=np.float64)
    x = rng.standard_normal((4, 5))
    y = fc(x)
    assert np.array_equal(y, F.linear(x, fc.weight.data, fc.bias.data))
    dy = rng.standard_normal(y.shape)
    dx = fc.backward(dy)
    rdx, rdw, rdb = F.linear_backward(dy, x, fc.weight.data)
    assert np.array_equal(dx, rdx) and np.array_equal(fc.weight.grad, rdw) and np.array_equal(fc.bias.grad, rdb)


@pytest.mark.parametrize(
    "make,in_shape",
    [
        (lambda: nn.ReLU(), (3, 4)),
        (lambda: nn.LeakyReLU(0.1), (3, 4)),
        (lambda: nn.Sigmoid(), (2, 5)),
        (lambda: nn.Tanh(), (2, 5)),
        (lambda: nn.Softmax(), (3, 4)),
        (lambda: nn.Softmax(dim=0), (3, 4)),
        (lambda: nn.Flatten(), (2, 2, 3)),
        (lambda: nn.Linear(4, 3, rng=0, dtype=np.float64), (5, 4)),
        (lambda: nn.Linear(4, 2, bias=False, rng=0, dtype=np.float64), (4,)),
        (lambda: nn.Linear(3, 2, rng=0, dtype=np.float64), (2, 2, 3)),
        (lambda: nn.Dropout(0.5, rng=0).eval(), (3, 4)),
    ],
)
def test_gradients_match_finite_differences(gradcheck_module, make, in_shape):
    x = np.random.default_rng(2).standard_normal(in_shape)
    x = np.where(np.abs(x) < 0.05, 0.1, x)  # away from the ReLU kink
    errors = gradcheck_module(make(), x)
    assert max(errors.values()) < 1e-7, errors


def test_dropout_gradient_with_fixed_mask(gradcheck_module):
    """In training mode the mask is random; with the generator reset before every forward
    the map is fixed and its derivative is checked like any other."""
    drop = nn.Dropout(0.4, rng=0)
    x = np.random.default_rng(3).standard_normal((4, 5))

    class Fixed(nn.Module):
        def forward(self, a):
            drop.generator = np.random.default_rng(11)
            return drop(a)

        def backward(self, dy):
            return drop.backward(dy)

    assert gradcheck_module(Fixed(), x)["x"] < 1e-8


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "ours,theirs_name,theirs_kwargs",
    [
        (nn.ReLU(), "ReLU", {}),
        (nn.LeakyReLU(0.2), "LeakyReLU", {"negative_slope": 0.2}),
        (nn.Sigmoid(), "Sigmoid", {}),
        (nn.Tanh(), "Tanh", {}),
        (nn.Softmax(dim=1), "Softmax", {"dim": 1}),
        (nn.Flatten(), "Flatten", {}),
        (nn.Dropout(0.5, rng=0).eval(), "Dropout", {"p": 0.5}),
    ],
)
def test_parameter_free_layers_match_torch(torch, ours, theirs_name, theirs_kwargs, dtype):
    theirs = getattr(torch.nn, theirs_name)(**theirs_kwargs).eval()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_(True)
    y = ours(x)
    yt = theirs(xt)
    assert_close(y, yt.detach().numpy(), context=f"{theirs_name} forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(dy))
    assert_close(ours.backward(dy), xt.grad.numpy(), kind="backward", context=f"{theirs_name} dx")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(torch, dtype, bias):
    ours = nn.Linear(6, 4, bias=bias, rng=0, dtype=dtype)
    theirs = torch.nn.Linear(6, 4, bias=bias).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data))
        if bias:
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6)).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_(True)
    y, yt = ours(x), theirs(xt)
    assert_close(y, yt.detach().numpy(), context="linear forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(dy))
    assert_close(ours.backward(dy), xt.grad.numpy(), kind="backward", context="dx")
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), kind="backward", context="dw")
    if bias:
        assert_close(ours.bias.grad, theirs.bias.grad.numpy(), kind="backward", context="db")


def test_linear_init_and_errors():
    fc = nn.Linear(16, 300, rng=0)
    assert np.abs(fc.weight.data).max() <= 0.25 and np.abs(fc.weight.data).max() > 0.24
    with pytest.raises(ShapeError, match=r"Linear expected 16 input features.*Flatten\(\) before Linear"):
        fc(np.zeros((2, 1, 4, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match="out_features"):
        nn.Linear(2, 0)
    with pytest.raises(DTypeError, match="float32"):
        fc(np.zeros((1, 16)))


def test_dropout_training_statistics_and_modes():
    drop = nn.Dropout(0.25, rng=0)
    x = np.ones((200, 200), dtype=np.float32)
    y = drop(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    assert np.allclose(y[kept], 1 / 0.75)
    assert abs(y.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation
    assert np.array_equal(drop.backward(np.full_like(x, 2.0)), 2.0 * y)
    drop.eval()
    assert np.array_equal(drop(x), x)
    assert np.array_equal(nn.Dropout(0.0, rng=0)(x), x)
    assert not nn.Dropout(1.0, rng=0)(x).any()


def test_dropout_randomness_comes_from_a_seeded_generator():
    x = np.ones((10, 10))
    a1, a2 = nn.Dropout(0.5, rng=3)(x), nn.Dropout(0.5, rng=3)(x)
    assert np.array_equal(a1, a2)
    d = nn.Dropout(0.5, rng=3)
    assert not np.array_equal(d(x), d(x))  # a new mask for every forward
    nn.init.manual_seed(5)
    b1 = nn.Dropout(0.5)(x)
    nn.init.manual_seed(5)
    assert np.array_equal(nn.Dropout(0.5)(x), b1)


def test_parameter_free_errors():
    with pytest.raises(StateError, match="backward called before forward on ReLU"):
        nn.ReLU().backward(np.ones(3))
    with pytest.raises(ConfigError, match="between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(ArgumentTypeError, match="negative_slope"):
        nn.LeakyReLU("0.1")
    with pytest.raises(ShapeError, match="dim=2"):
        nn.Softmax(dim=2)(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="start_dim=3"):
        nn.Flatten(3)(np.ones((2, 3)))
    relu = nn.ReLU()
    relu(np.ones((2, 3)))
    with pytest.raises(ShapeError, match=r"\(2, 3\)"):
        relu.backward(np.ones((3, 2)))
    with pytest.raises(DTypeError, match="integer"):
        nn.Tanh()(np.ones(3, dtype=int))


def test_reprs():
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.LeakyReLU()) == "LeakyReLU()"
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Softmax()) == "Softmax(dim=-1)"
    assert repr(nn.Flatten()) == "Flatten()" and repr(nn.Flatten(2)) == "Flatten(start_dim=2)"
    assert repr(nn.Linear(3, 4)) == "Linear(in_features=3, out_features=4)"
    assert repr(nn.Linear(3, 4, bias=False)) == "Linear(in_features=3, out_features=4, bias=False)"
    assert repr(nn.Dropout(0.1)) == "Dropout(p=0.1)"
