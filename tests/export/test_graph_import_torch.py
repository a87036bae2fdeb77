"""from_torch on torchvision's architectures: torch.fx graphs become convscope graphs that
compute the same outputs and the same gradients (input and every parameter) as PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from convscope import nn  # noqa: E402
from convscope.errors import ConfigError  # noqa: E402
from convscope.export import from_torch  # noqa: E402

from . import reference_models as R  # noqa: E402


def stochastic_depth(input, p, mode, training=True):
    """torchvision.ops.stochastic_depth's signature (torchvision marks it torch.fx.wrap)."""
    if not training or p == 0.0:
        return input
    keep = torch.empty([input.shape[0]] + [1] * (input.ndim - 1)).bernoulli_(1.0 - p)
    return input * keep / (1.0 - p)


torch.fx.wrap("stochastic_depth")

pytestmark = pytest.mark.skipif(
    not hasattr(nn, "Graph"), reason="nn.Graph (issue 14's graph container) is not in this build")

# name -> (builder of a small torch model, one sample's shape)
ARCHS = {
    "resnet18": (lambda: R.resnet18(10, width=0.125), (3, 32, 32)),
    "resnet50": (lambda: R.resnet50(10, width=0.0625), (3, 32, 32)),
    "vgg11_bn": (lambda: R.vgg11_bn(10, width=0.125, hidden=32), (3, 32, 32)),
    "alexnet": (lambda: R.AlexNet(10, width=0.125, hidden=32), (3, 63, 63)),
    "squeezenet1_1": (lambda: R.SqueezeNet(10, width=0.25), (3, 32, 32)),
    "mobilenet_v2": (lambda: R.MobileNetV2(10, width_mult=0.25), (3, 32, 32)),
    "mobilenet_v3_small": (lambda: R.MobileNetV3(10, width_mult=0.25), (3, 32, 32)),
    "mobilenet_v3_functional_se": (lambda: R.MobileNetV3(10, 0.25, functional_se=True),
                                   (3, 32, 32)),
    "densenet121": (lambda: R.densenet121(10, growth_rate=4, num_init_features=8, bn_size=2),
                    (3, 32, 32)),
    "shufflenet_v2": (lambda: R.ShuffleNetV2((2, 2, 2), (8, 16, 32, 64, 32), 10), (3, 32, 32)),
}
GRADIENTS = ("resnet18", "mobilenet_v3_small", "shufflenet_v2", "squeezenet1_1", "densenet121")


def _build(name: str, dtype) -> tuple:
    make, shape = ARCHS[name]
    torch.manual_seed(0)
    net = R.randomize(make()).to(dtype).eval()
    return net, shape


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("name", list(ARCHS))
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_outputs_match_torch(name, dtype, tol):
    net, shape = _build(name, dtype)
    model = from_torch(net, shape)
    assert model.layer_kind == "graph" and not model.training
    x = np.random.default_rng(1).standard_normal((2, *shape)).astype(
        np.float32 if dtype == torch.float32 else np.float64)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    y = model(x)
    assert y.dtype == x.dtype and y.shape == expected.shape
    assert _rel(y, expected) < tol, (name, _rel(y, expected))


@pytest.mark.parametrize("name", list(ARCHS))
def test_state_dict_keys_are_torchs(name):
    net, shape = _build(name, torch.float32)
    model = from_torch(net, shape)
    ours = model.state_dict()
    for key, value in net.state_dict().items():
        assert key in ours, key
        np.testing.assert_array_equal(np.asarray(ours[key]), value.numpy(), err_msg=key)


@pytest.mark.parametrize("name", GRADIENTS)
def test_backward_matches_autograd(name):
    net, shape = _build(name, torch.float64)
    model = from_torch(net, shape)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, *shape))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = net(xt)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(dy))
    model.zero_grad()
    model(x)
    dx = model.backward(dy)
    assert _rel(dx, xt.grad.numpy()) < 1e-9
    ours = dict(model.named_parameters())
    theirs = dict(net.named_parameters())
    assert set(ours) == set(theirs)
    # relative to each gradient, or to 1e-10 of the largest one where a small gradient is a
    # sum that cancels (MobileNetV3's squeeze-excitation weights: ~1e-11 absolute)
    scale = max(float(p.grad.abs().max()) for p in theirs.values())
    for key, p in theirs.items():
        g = p.grad.numpy()
        diff = float(np.abs(ours[key].grad - g).max())
        assert diff <= max(1e-9 * float(np.abs(g).max()), 1e-10 * scale), (key, diff)


def test_train_mode_batch_norm_matches_and_updates_statistics():
    net, shape = _build("resnet18", torch.float64)
    net.train()
    model = from_torch(net, shape)
    assert model.training
    x = np.random.default_rng(3).standard_normal((4, *shape))
    expected = net(torch.from_numpy(x)).detach().numpy()
    assert _rel(model(x), expected) < 1e-10
    ours = model.state_dict()
    for key in ("bn1.running_mean", "layer2.0.bn2.running_var", "layer4.1.bn1.running_mean"):
        assert _rel(ours[key], net.state_dict()[key].numpy()) < 1e-10, key


def test_import_leaves_the_torch_module_untouched():
    net, shape = _build("resnet18", torch.float32)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    from_torch(net, shape)
    assert net.training and all(m.training for m in net.modules())
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_node_names_are_qualified_names_and_a_reused_relu_is_two_nodes():
    net, shape = _build("resnet18", torch.float32)
    names = [name for name, _ in from_torch(net).named_children()]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert "layer1.0.relu" in names and "layer1.0.relu_1" in names
    assert "layer2.0.downsample.0" in names and names[-1] == "fc"


def test_channel_shuffle_is_recognised():
    net, shape = _build("shufflenet_v2", torch.float32)
    kinds = [m.layer_kind for _, m in from_torch(net, shape).named_children()]
    assert kinds.count("channel_shuffle") == 6 and "reshape" not in kinds
    assert kinds.count("split") == 3 and "permute" not in kinds


class _Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return torch.exp(self.conv(x))


class _Shared(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x))


class _Sizes(torch.nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


def test_an_unsupported_op_is_refused_naming_op_node_and_the_supported_list():
    with pytest.raises(ConfigError) as info:
        from_torch(_Scaled())
    text = str(info.value)
    assert "torch.exp" in text and "'exp'" in text and "torch.cat" in text
    assert "Conv2d" in text  # the supported layers are listed too


class _Upsampled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.up = torch.nn.Upsample(scale_factor=2)

    def forward(self, x):
        return self.up(self.conv(x)) + 1.0


def test_an_unsupported_layer_is_refused():
    with pytest.raises(ConfigError, match=r"call_module Upsample at torch.fx node 'up'.*Conv2d"):
        from_torch(_Upsampled())


def test_a_layer_with_weights_called_twice_is_refused():
    with pytest.raises(ConfigError, match="called more than once"):
        from_torch(_Shared())


def test_sizes_need_an_input_shape_and_then_fold():
    with pytest.raises(ConfigError, match="input_shape"):
        from_torch(_Sizes())
    model = from_torch(_Sizes(), (2, 3, 3))
    x = np.arange(36, dtype=np.float32).reshape(2, 2, 3, 3)
    np.testing.assert_array_equal(model(x), x.reshape(2, -1))
    model = from_torch(_Sizes(), example_input=torch.zeros(1, 2, 3, 3))
    np.testing.assert_array_equal(model(x), x.reshape(2, -1))


def test_a_sequential_of_supported_layers_stays_a_sequential():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten())
    assert type(from_torch(net)).__name__ == "Sequential"


class _Functional(torch.nn.Module):
    """LeNet as tutorials write it: layers as attributes, the rest torch.nn.functional."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 6, 3)
        self.fc1 = torch.nn.Linear(6 * 3 * 3, 12)
        self.fc2 = torch.nn.Linear(12, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(torch.tanh(self.conv2(x)), kernel_size=2, stride=2, ceil_mode=True)
        x = x.view(-1, 6 * 3 * 3)
        x = F.dropout(F.leaky_relu(self.fc1(x), 0.2), p=0.3, training=self.training)
        return F.softmax(torch.sigmoid(self.fc2(x)), dim=1)


def test_functional_lenet_needs_no_input_shape():
    torch.manual_seed(0)
    net = _Functional().double().eval()
    model = from_torch(net)
    kinds = [m.layer_kind for _, m in model.named_children()]
    assert kinds == ["conv", "relu", "max_pool", "conv", "tanh", "avg_pool", "reshape", "linear",
                     "leaky_relu", "dropout", "linear", "sigmoid", "softmax"]
    x = np.random.default_rng(8).standard_normal((3, 1, 14, 14))
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert _rel(model(x), expected) < 1e-12


class _Sliced(torch.nn.Module):
    def forward(self, x):
        return x[:, :2]


class _Parameter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.scale


class _Untraceable(torch.nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


@pytest.mark.parametrize("net, words", [
    (_Sliced(), r"operator.getitem at torch.fx node 'getitem'.*slicing"),
    (_Parameter(), r"get_attr 'scale'.*outside a layer"),
    (_Untraceable(), r"torch.fx could not trace _Untraceable.forward"),
])
def test_what_cannot_be_imported_is_named(net, words):
    with pytest.raises(ConfigError, match=words):
        from_torch(net, (4, 3, 3))


class _MBConvLike(torch.nn.Module):
    """EfficientNet's residual: x + stochastic_depth(block(x))."""

    def __init__(self):
        super().__init__()
        self.block = torch.nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return stochastic_depth(self.block(x), 0.2, "row", self.training) + x


def test_stochastic_depth_is_the_identity_in_eval_mode_and_refused_in_training():
    net = _MBConvLike().eval()
    model = from_torch(net)
    assert [m.layer_kind for _, m in model.named_children()] == ["conv", "add"]
    x = np.random.default_rng(10).standard_normal((2, 2, 4, 4)).astype(np.float32)
    with torch.no_grad():
        assert _rel(model(x), net(torch.from_numpy(x)).numpy()) < 1e-6
    with pytest.raises(ConfigError, match="stochastic_depth.*training mode"):
        from_torch(net.train())
