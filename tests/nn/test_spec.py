"""to_spec / from_spec: every registered module type survives a JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError, ConfigError

# one instance per registered type, with non-default arguments where there are any,
# and the input shape used to check that the rebuilt module computes the same thing
EXAMPLES = {
    "Conv1d": (lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1, bias=False, rng=0), (2, 2, 7)),
    "Conv2d": (lambda: nn.Conv2d(4, 6, (3, 2), stride=(1, 2), padding=((0, 1), (1, 0)), dilation=2,
                                 groups=2, padding_mode="circular", flip=True, rng=0, dtype=np.float64),
               (1, 4, 6, 6)),
    "Conv3d": (lambda: nn.Conv3d(1, 2, 2, padding="same", rng=0), (1, 1, 3, 3, 3)),
    "ConvNd": (lambda: nn.ConvNd(1, 2, 2, 3, padding="valid", rng=0), (1, 2, 5)),
    "MaxPool1d": (lambda: nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True), (1, 2, 8)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2, stride=1, dilation=2), (1, 1, 5, 5)),
    "MaxPool3d": (lambda: nn.MaxPool3d((1, 2, 2)), (1, 1, 2, 4, 4)),
    "AvgPool1d": (lambda: nn.AvgPool1d(2, ceil_mode=True), (1, 1, 5)),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (1, 2, 5, 5)),
    "AvgPool3d": (lambda: nn.AvgPool3d(2), (1, 1, 4, 4, 4)),
    "BlurPool1d": (lambda: nn.BlurPool1d(2, filter_size=3, padding_mode="zeros"), (1, 2, 8)),
    "BlurPool2d": (lambda: nn.BlurPool2d(3, stride=(2, 1)), (1, 3, 6, 6)),
    "BlurPool3d": (lambda: nn.BlurPool3d(1, filter_size=2, stride=1), (1, 1, 3, 3, 3)),
    "ReLU": (lambda: nn.ReLU(), (2, 3)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.3), (2, 3)),
    "Sigmoid": (lambda: nn.Sigmoid(), (2, 3)),
    "Tanh": (lambda: nn.Tanh(), (2, 3)),
    "Softmax": (lambda: nn.Softmax(dim=0), (2, 3)),
    "Flatten": (lambda: nn.Flatten(start_dim=2), (2, 3, 4)),
    "Linear": (lambda: nn.Linear(3, 2, bias=False, rng=0), (4, 3)),
    "Dropout": (lambda: nn.Dropout(0.2, rng=0), (2, 3)),
    "Normalize": (lambda: nn.Normalize([0.1, 0.2], [0.3, 0.4], dtype=np.float64), (2, 2, 3, 3)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3, eps=1e-3, momentum=None, affine=False), (4, 3)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(2, momentum=0.2, track_running_stats=False,
                                           dtype=np.float64), (2, 2, 3, 3)),
    "Sequential": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(),
                                         nn.Sequential(nn.Flatten(), nn.Linear(18, 2, rng=1))),
                   (2, 1, 5, 5)),
    "Residual": (lambda: nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, rng=0), nn.Tanh())),
                 (1, 2, 4, 4)),
    "Add": (lambda: nn.Add(), None),
    "Concat": (lambda: nn.Concat(dim=2), None),
    "Mul": (lambda: nn.Mul(), None),
    "ChannelShuffle": (lambda: nn.ChannelShuffle(2), (1, 4, 2, 2)),
    "Split": (lambda: nn.Split((2, 2), dim=1), (1, 4, 3)),
    "Reshape": (lambda: nn.Reshape((-1, 2)), (2, 3, 4)),
    "Permute": (lambda: nn.Permute((1, 0)), (2, 3, 4)),
    "Graph": (lambda: nn.Graph([("a", nn.Conv2d(1, 2, 1, rng=0), ["input"]),
                                ("b", nn.Split(1), ["a"]),
                                ("c", nn.Concat(), ["b:1", "b:0", "input"])]), (1, 1, 3, 3)),
    "ReLU6": (lambda: nn.ReLU6(), (2, 3)),
    "Hardsigmoid": (lambda: nn.Hardsigmoid(), (2, 3)),
    "Hardswish": (lambda: nn.Hardswish(), (2, 3)),
    "SiLU": (lambda: nn.SiLU(), (2, 3)),
    "GELU": (lambda: nn.GELU("tanh"), (2, 3)),
    "Identity": (lambda: nn.Identity(), (2, 3)),
    "AdaptiveAvgPool1d": (lambda: nn.AdaptiveAvgPool1d(3), (1, 2, 7)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((2, None)), (1, 2, 5, 4)),
    "AdaptiveAvgPool3d": (lambda: nn.AdaptiveAvgPool3d(1), (1, 1, 3, 3, 3)),
    "AdaptiveMaxPool1d": (lambda: nn.AdaptiveMaxPool1d(4), (1, 2, 7)),
    "AdaptiveMaxPool2d": (lambda: nn.AdaptiveMaxPool2d(2), (1, 2, 5, 4)),
    "AdaptiveMaxPool3d": (lambda: nn.AdaptiveMaxPool3d((1, 2, 1)), (1, 1, 3, 3, 3)),
    "CrossEntropyLoss": (lambda: nn.CrossEntropyLoss(), None),
    "MSELoss": (lambda: nn.MSELoss(), None),
}


def test_every_registered_type_has_an_example():
    assert set(nn.spec.registered()) == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_round_trip(name):
    make, in_shape = EXAMPLES[name]
    module = make()
    spec = nn.to_spec(module)
    assert spec["type"] == name
    text = json.dumps(spec)  # JSON-safe
    rebuilt = nn.from_spec(json.loads(text))
    assert type(rebuilt) is type(module)
    assert repr(rebuilt) == repr(module)
    assert nn.to_spec(rebuilt) == spec
    state = module.state_dict()
    assert {k: (v.shape, v.dtype) for k, v in rebuilt.state_dict().items()} == {
        k: (v.shape, v.dtype) for k, v in state.items()}
    if in_shape is None:
        return
    rebuilt.load_state_dict(state)
    module.eval()
    rebuilt.eval()
    dtype = getattr(module, "dtype", None) or next(
        (p.dtype for p in module.parameters()), np.dtype(np.float32))
    x = np.random.default_rng(0).standard_normal(in_shape).astype(dtype)
    assert np.array_equal(module(x), rebuilt(x))


def test_spec_shape_is_documented_form():
    spec = nn.to_spec(nn.Sequential(nn.Linear(2, 3, rng=0), nn.ReLU()))
    assert spec == {
        "type": "Sequential",
        "config": {},
        "children": {
            "0": {"type": "Linear", "config": {"in_features": 2, "out_features": 3, "bias": True,
                                                "dtype": "float32"}},
            "1": {"type": "ReLU", "config": {}},
        },
    }


def test_from_spec_errors():
    with pytest.raises(ConfigError, match=r"unknown type 'Conv9d'.*Known types: .*Conv2d"):
        nn.from_spec({"type": "Conv9d", "config": {}})
    with pytest.raises(ConfigError, match=r"spec.children.1 has unknown type 'Nope'"):
        nn.from_spec({"type": "Sequential", "config": {}, "children": {"0": {"type": "ReLU"}, "1": {"type": "Nope"}}})
    with pytest.raises(ConfigError, match=r"Linear\) has arguments its constructor does not accept"):
        nn.from_spec({"type": "Linear", "config": {"in_features": 2, "out_features": 3, "colour": "red"}})
    with pytest.raises(ConfigError, match=r"spec \(Conv2d\): Conv2d: stride"):
        nn.from_spec({"type": "Conv2d", "config": {"in_channels": 1, "out_channels": 1,
                                                   "kernel_size": 3, "stride": 0}})
    with pytest.raises(ConfigError, match="must be a dict with a string 'type'"):
        nn.from_spec(["Conv2d"])
    with pytest.raises(ConfigError, match="takes no children"):
        nn.from_spec({"type": "ReLU", "config": {}, "children": {"0": {"type": "ReLU"}}})
    with pytest.raises(ConfigError, match="exactly one child named 'block'"):
        nn.from_spec({"type": "Residual", "config": {}, "children": {}})
    with pytest.raises(ArgumentTypeError, match="must be a convscope Module"):
        nn.to_spec("Conv2d")


def test_register_custom_module_and_name_clash():
    @nn.register
    class Scale(nn.Module):
        def __init__(self, factor: float = 2.0):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

        def config(self):
            return {"factor": self.factor}

    try:
        rebuilt = nn.from_spec(nn.to_spec(nn.Sequential(Scale(3.0))))
        assert rebuilt[0].factor == 3.0
        with pytest.raises(ConfigError, match="already taken"):
            nn.register(type("ReLU", (nn.Module,), {}))
    finally:
        nn.spec._REGISTRY.pop("Scale", None)
