"""Parameter and Module: discovery of parameters, modes, state_dict round trips, errors."""

from __future__ import annotations

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Dropout(0.5, rng=rng))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features
            self.flatten = nn.Flatten()
            self.head = nn.Linear(4 * 2 * 2, 3, rng=rng)

        def forward(self, x):
            return self.head(self.flatten(self.features(x)))

        def backward(self, dy):
            return self.features.backward(self.flatten.backward(self.head.backward(dy)))

    return Net()


def test_parameter_holds_data_and_grad():
    p = nn.Parameter(np.arange(6.0).reshape(2, 3))
    assert p.grad.shape == p.data.shape == p.shape == (2, 3) and p.grad.dtype == p.dtype
    p.accumulate(np.ones((2, 3)))
    p.accumulate(np.ones((2, 3)))
    assert (p.grad == 2).all()
    with pytest.raises(ShapeError, match=r"gradient for parameter must have shape \(2, 3\)"):
        p.accumulate(np.ones(3))
    with pytest.raises(DTypeError):
        nn.Parameter(np.arange(3))


def test_named_parameters_use_dotted_names_in_definition_order():
    model = small_model()
    assert [n for n, _ in model.named_parameters()] == [
        "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
        "head.weight", "head.bias",
    ]
    assert [n for n, _ in model.named_buffers()] == [
        "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked",
    ]
    assert model.num_parameters() == 4 * 9 + 4 + 8 + 16 * 3 + 3
    assert [n for n, _ in model.named_modules()][:3] == ["", "features", "features.0"]


def test_train_eval_switch_every_module():
    model = small_model()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(ArgumentTypeError):
        model.train("no")


def test_zero_grad_clears_everything():
    model = small_model()
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    model.backward(np.ones_like(model(x)))
    assert any(p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert not any(p.grad.any() for p in model.parameters())


def test_state_dict_round_trip_reproduces_outputs():
    model, other = small_model(0), small_model(1)
    x = np.random.default_rng(0).standard_normal((3, 1, 4, 4)).astype(np.float32)
    model(x)  # move the running statistics away from their init
    model.eval()
    other.eval()
    state = model.state_dict()
    assert list(state) == [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    assert not np.array_equal(other(x), model(x))
    result = other.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert np.array_equal(other(x), model(x))
    state["head.bias"][...] = 99  # a copy: editing it does not touch the model
    assert not (model.head.bias.data == 99).any()


def test_load_state_dict_copies_in_place():
    model = small_model(0)
    weight = model.head.weight.data
    model.load_state_dict(small_model(1).state_dict())
    assert model.head.weight.data is weight  # optimizers holding the array see the new values
    assert np.array_equal(weight, small_model(1).head.weight.data)


def test_load_state_dict_errors_leave_model_unchanged():
    model = small_model(0)
    before = model.state_dict()
    state = small_model(1).state_dict()
    del state["head.bias"]
    state["head.extra"] = np.zeros(2)
    with pytest.raises(ConfigError, match=r"missing from the state dict: 'head.bias'.*not in the model: 'head.extra'"):
        model.load_state_dict(state)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["head.bias"] and result.unexpected_keys == ["head.extra"]
    model.load_state_dict(before)

    bad_shape = small_model(1).state_dict()
    bad_shape["head.weight"] = np.zeros((3, 15), dtype=np.float32)
    with pytest.raises(ShapeError, match=r"head.weight has shape \(3, 16\) in the model but \(3, 15\)"):
        model.load_state_dict(bad_shape)
    bad_dtype = small_model(1).state_dict()
    bad_dtype["features.0.weight"] = bad_dtype["features.0.weight"].astype(np.float64)
    with pytest.raises(DTypeError, match=r"features.0.weight has dtype float32 in the model but float64.*model.to"):
        model.load_state_dict(bad_dtype)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # nothing was half-loaded
    with pytest.raises(ArgumentTypeError, match="mapping"):
        model.load_state_dict([1, 2])


def test_to_converts_parameters_and_buffers():
    model = small_model().to(np.float64)
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in model.parameters())
    bn = model.features[1]
    assert bn.running_mean.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
    assert model.head.dtype == np.float64 and "dtype=float64" in repr(model.head)
    model(np.zeros((2, 1, 4, 4)))


def test_custom_module_repr_and_unsupported_spec():
    text = repr(small_model())
    assert text.startswith("Net(\n  (features): Sequential(\n    (0): Conv2d(1, 4, kernel_size=(3, 3), padding=(1, 1))")
    assert "  (head): Linear(in_features=16, out_features=3)\n)" in text
    with pytest.raises(ConfigError, match="Net, which is not registered"):
        nn.to_spec(small_model())
