"""backward_params: parameter gradients without the first layer's input gradient."""

from __future__ import annotations

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError
from convscope.functional import conv_backward
from convscope.models import build_model


def _grads(model):
    return [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("arch, shape", [("lenet", (5, 1, 28, 28)), ("cifar", (3, 3, 32, 32)),
                                         ("digits", (4, 1, 8, 8))])
def test_same_parameter_gradients_as_full_backward(arch, shape):
    model = build_model(arch, seed=1, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal(shape)
    dy = np.random.default_rng(3).standard_normal(model.output_shape(shape))
    model.zero_grad()
    model.forward(x)
    dx = model.backward(dy)
    assert dx.shape == shape
    full = _grads(model)
    model.zero_grad()
    model.forward(x)
    assert model.backward_params(dy) is None
    for got, want in zip(_grads(model), full):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_first_linear_and_plain_modules():
    model = nn.Sequential(nn.ReLU(), nn.Linear(3, 2, rng=0, dtype=np.float64))
    x = np.array([[1.0, -2.0, 3.0]])
    model.forward(x)
    model.backward(np.ones((1, 2)))
    full = _grads(model)
    model.zero_grad()
    model.forward(x)
    model.backward_params(np.ones((1, 2)))  # ReLU first: its default backward_params runs
    np.testing.assert_array_equal(_grads(model)[0], full[0])
    lin = nn.Linear(3, 2, rng=0, dtype=np.float64)
    lin.forward(x)
    assert lin.backward_params(np.ones((1, 2))) is None
    np.testing.assert_array_equal(lin.weight.grad, np.ones((2, 1)) * x)
    np.testing.assert_array_equal(lin.bias.grad, [1.0, 1.0])


def test_conv_backward_without_input_gradient():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 7, 6))
    w = rng.standard_normal((4, 2, 3, 3))
    dy = rng.standard_normal((3, 4, 7, 3))
    dx, dw, db = conv_backward(dy, x, w, stride=(1, 2), padding=1)
    none, dw2, db2 = conv_backward(dy, x, w, stride=(1, 2), padding=1, input_grad=False)
    assert none is None and dx.shape == x.shape
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)
    with pytest.raises(ArgumentTypeError, match="input_grad must be True or False"):
        conv_backward(dy, x, w, stride=(1, 2), padding=1, input_grad="no")
