"""to_torch / from_torch: same outputs, same input gradient, same gradient of every parameter."""

from __future__ import annotations

import io
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from convscope import nn  # noqa: E402
from convscope.errors import (  # noqa: E402
    ArgumentTypeError,
    ConfigError,
    DTypeError,
    MissingDependencyError,
)
from convscope.export import (  # noqa: E402
    from_torch,
    to_torch,
    torch_layers,  # noqa: E402
)
from convscope.testing import assert_close, tolerance  # noqa: E402

from ._helpers import CASES, build_model, models, note  # noqa: E402

tn = torch.nn
# PyTorch's note that its 'same' padding for an even kernel copies the input: not our concern
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _diff(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.abs(a - np.asarray(b, dtype=np.float64)).max()) if a.size else 0.0


def param_pairs(model, net):
    """(name, ours, torch's, flipped?) in order; a flipped conv's torch weight is reversed."""
    owners = dict(model.named_modules())
    ours = list(model.named_parameters())
    theirs = list(net.named_parameters())
    assert len(ours) == len(theirs), ([n for n, _ in ours], [n for n, _ in theirs])
    for (name, p), (_, tp) in zip(ours, theirs):
        owner = owners[name.rpartition(".")[0]]
        yield name, p, tp, bool(getattr(owner, "flip", False)) and name.endswith("weight")


def reverse_spatial(a):
    return a[(slice(None), slice(None)) + (slice(None, None, -1),) * (a.ndim - 2)]


def _close_to_scale(actual, expected, context):
    """|difference| within the backward tolerance of the array's largest entry.

    For gradients that are sums of many cancelling float32 terms (a convolution under a
    training-mode batch norm, 50,000 terms per entry), where element-wise relative error is
    meaningless for the entries near zero.
    """
    rtol, atol = tolerance(np.float32, "backward")
    bound = atol + rtol * float(np.abs(expected).max())
    assert _diff(actual, expected) <= bound, f"{context}: {_diff(actual, expected):.3g} > {bound:.3g}"


def _close(actual, expected, context):
    assert_close(actual, expected, kind="backward", context=context)


def compare(model, net, x, record, label, seed=0, grad_check=_close, record_as="torch"):
    """One forward and one backward through both; every output and gradient must agree."""
    dtype = x.dtype.name
    model.zero_grad()
    net.zero_grad()
    y = model(x)
    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    dx = model.backward(dy)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = net(xt)
    yt.backward(torch.from_numpy(dy))
    context = f"{label}\n{model!r}\n{net!r}"
    assert_close(yt.detach().numpy(), y, kind="forward", context=f"output, {context}")
    note(record, f"{record_as}: outputs ({dtype})", _diff(yt.detach().numpy(), y))
    grad_check(xt.grad.numpy(), dx, context=f"dx, {context}")
    worst = _diff(xt.grad.numpy(), dx)
    for name, p, tp, flipped in param_pairs(model, net):
        grad = tp.grad.numpy() if tp.grad is not None else np.zeros(tp.shape, dtype=x.dtype)
        if flipped:
            grad = reverse_spatial(grad)
        grad_check(grad, p.grad, context=f"grad of {name}, {context}")
        worst = max(worst, _diff(grad, p.grad))
    note(record, f"{record_as}: gradients, input and every parameter ({dtype})", worst)
    # training mode moves the running statistics: both the same way
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    tbns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn, tbn in zip(bns, tbns):
        if bn.track_running_stats:
            assert_close(tbn.running_mean.numpy(), bn.running_mean, context=f"running_mean, {context}")
            assert_close(tbn.running_var.numpy(), bn.running_var, context=f"running_var, {context}")
            assert int(tbn.num_batches_tracked) == int(bn.num_batches_tracked)


def check_to_torch(model, input_shape, record, label, dtype=np.float32, seed=0):
    model = model.to(dtype)
    has_dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    x = np.random.default_rng(seed).standard_normal((3, *input_shape)).astype(dtype)
    model.eval()
    net = to_torch(model)
    assert not net.training
    assert all(p.dtype == TORCH_DTYPE[np.dtype(dtype)] for p in net.parameters())
    compare(model, net, x, record, f"{label}, eval mode", seed)
    if not has_dropout:  # dropout masks are random on both sides; the rest must agree in training
        model.train()
        net = to_torch(model)
        assert net.training
        compare(model, net, x, record, f"{label}, training mode", seed)
    return net


# ------------------------------------------------------------------ convscope -> torch
@settings(max_examples=40)
@given(drawn=models(), dtype=st.sampled_from([np.float32, np.float64]))
def test_random_models_match_torch(drawn, dtype, largest_differences):
    model, input_shape = drawn
    check_to_torch(model, input_shape, largest_differences, "random model", dtype)


@pytest.mark.parametrize("name", sorted(n for n in CASES if not n.startswith("convnd_4d")))
def test_every_option_matches_torch(name, largest_differences):
    model, input_shape = CASES[name](np.random.default_rng(zlib.crc32(name.encode())))
    check_to_torch(model, input_shape, largest_differences, name)


def test_mapping_uses_torch_layers_and_flipped_weights():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect", flip=True, rng=0),
        nn.Conv2d(2, 2, 3, padding=((1, 0), (0, 2)), padding_mode="circular", rng=1),
        nn.Conv2d(2, 2, 3, stride=2, padding="same", rng=2),
        nn.Conv2d(2, 2, 3, padding="same", padding_mode="replicate", rng=3),
        nn.MaxPool2d(2, padding=((1, 0), (0, 1))),
        nn.BlurPool2d(2), nn.Residual(nn.ReLU()),
    )
    net = to_torch(model)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Conv2d", "Sequential", "Sequential", "Conv2d", "Pool", "BlurPool", "Residual"]
    assert (net[0].padding, net[0].padding_mode) == ((1, 1), "reflect")
    assert type(net[1][0]) is tn.CircularPad2d and net[1][0].padding == (0, 2, 1, 0)
    assert type(net[2][0]).__name__ == "SamePad"
    assert (net[3].padding, net[3].padding_mode) == ("same", "replicate")
    np.testing.assert_array_equal(net[0].weight.detach().numpy(), model[0].weight.data[:, :, ::-1, ::-1])
    assert type(net[4]) is torch_layers.Pool  # the custom layers are importable


def test_weights_are_copies_not_shared_memory():
    model = nn.Linear(3, 2, rng=0)
    net = to_torch(model)
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not np.allclose(net.weight.detach().numpy(), model.weight.data)


def test_exported_module_pickles_with_its_custom_layers(largest_differences):
    model, shape = CASES["conv2d_circular_same_stride2_flip"](np.random.default_rng(0))
    model = nn.Sequential(model, nn.BlurPool2d(4, 3), nn.Residual(nn.Tanh()),
                          nn.AvgPool2d(2, padding=((1, 0), (0, 1)))).eval()
    buffer = io.BytesIO()
    torch.save(to_torch(model), buffer)
    buffer.seek(0)
    net = torch.load(buffer, weights_only=False)
    x = np.random.default_rng(1).standard_normal((2, *shape)).astype(np.float32)
    assert_close(net(torch.from_numpy(x)).detach().numpy(), model(x))


def test_lenet_on_real_mnist_images(shared_data, largest_differences):
    from convscope.data.formats import read_idx

    images = shared_data / "mnist" / "t10k-images-idx3-ubyte.gz"
    if not images.is_file():
        pytest.skip(f"MNIST test images not found at {images}")
    x = ((read_idx(images)[:64].astype(np.float32)[:, None] / 255.0) - 0.1307) / 0.3081
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, rng=0), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, rng=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(400, 120, rng=2), nn.ReLU(), nn.Linear(120, 84, rng=3), nn.Tanh(),
        nn.Linear(84, 10, rng=4),
    )
    # Training mode: float64 must agree entry by entry. In float32 torch's own rounding
    # dominates (against a float64 reference its conv-weight gradient is off by 4e-4, ours by
    # 6e-6), so there the bound is relative to the gradient's scale.
    model64 = from_torch(to_torch(model)).to(np.float64)
    record_as = "torch: LeNet on MNIST"
    compare(model64, to_torch(model64), x[:16].astype(np.float64), largest_differences,
            "LeNet on MNIST, training mode, float64", record_as=record_as)
    compare(model, to_torch(model), x, largest_differences, "LeNet on MNIST, training mode",
            grad_check=lambda a, b, context: _close_to_scale(a, b, context),
            record_as=f"{record_as}, training-mode batch norm")
    model.eval()
    compare(model, to_torch(model), x, largest_differences, "LeNet on MNIST, eval mode",
            record_as=record_as)


# ------------------------------------------------------------------ torch -> convscope
def _with_head(trunk, input_shape, classes=5):
    with torch.no_grad():
        features = trunk(torch.zeros(1, *input_shape)).reshape(1, -1).shape[1]
    return tn.Sequential(*trunk, tn.Flatten(), tn.Linear(features, classes))


def torch_zoo():
    """PyTorch models built the PyTorch way (padding layers, string padding, nesting)."""
    torch.manual_seed(0)
    zoo = {
        "2d": (_with_head(tn.Sequential(
            tn.ZeroPad2d((1, 0, 2, 1)), tn.Conv2d(2, 4, 3, stride=2), tn.ReLU(),
            tn.ReflectionPad2d((1, 1, 0, 2)), tn.Conv2d(4, 4, 2, groups=2, dilation=(1, 2)),
            tn.BatchNorm2d(4), tn.LeakyReLU(0.1), tn.MaxPool2d(2, ceil_mode=True, padding=1),
            tn.AvgPool2d(3, 1, padding=1, count_include_pad=False),
        ), (2, 11, 10)), (2, 11, 10)),
        "1d": (_with_head(tn.Sequential(
            tn.CircularPad1d((2, 1)), tn.Conv1d(1, 3, 3),
            tn.Conv1d(3, 3, 4, padding="same", padding_mode="replicate"), tn.Tanh(),
            tn.ConstantPad1d((1, 1), 0.0), tn.Conv1d(3, 2, 2, padding=1, bias=False), tn.Sigmoid(),
            tn.MaxPool1d(3, 2, dilation=2), tn.BatchNorm1d(2),
        ), (1, 16)), (1, 16)),
        "3d": (_with_head(tn.Sequential(
            tn.ReplicationPad3d((1, 0, 0, 1, 1, 1)), tn.Conv3d(2, 2, 2),
            tn.Conv3d(2, 2, 3, padding=1, padding_mode="circular"), tn.AvgPool3d(2, ceil_mode=True),
            tn.Sequential(tn.Conv3d(2, 3, 1), tn.ReLU()),
        ), (2, 5, 4, 5)), (2, 5, 4, 5)),
        "features": (tn.Sequential(tn.Linear(6, 8), tn.BatchNorm1d(8), tn.ReLU(), tn.Dropout(0.0),
                                   tn.Linear(8, 4), tn.Softmax(dim=1)), (6,)),
    }
    for net, shape in zoo.values():  # give batch norms real running statistics
        net.train()
        for _ in range(2):
            net(torch.randn(4, *shape))
    return zoo


@pytest.mark.parametrize("name", ["2d", "1d", "3d", "features"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_from_torch_matches_torch(name, mode, largest_differences):
    net, shape = torch_zoo()[name]
    net.train(mode == "train")
    model = from_torch(net)
    assert model.training == (mode == "train")
    x = np.random.default_rng(3).standard_normal((3, *shape)).astype(np.float32)
    compare(model, net, x, largest_differences, f"from_torch {name}, {mode}")


def test_from_torch_fuses_padding_layers_into_the_conv():
    net, _ = torch_zoo()["1d"]
    model = from_torch(net)
    conv0, conv1, _, conv2 = model[0], model[1], model[2], model[3]
    assert (conv0.padding, conv0.padding_mode) == (((2, 1),), "circular")
    assert (conv1.padding, conv1.padding_mode) == ("same", "replicate")
    assert (conv2.padding, conv2.padding_mode, conv2.bias) == (((2, 2),), "zeros", None)
    assert from_torch(torch_zoo()["features"][0].double())[0].weight.dtype == np.float64


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1))
def test_round_trips(seed, largest_differences):
    model, shape = build_model(seed)
    model.eval()
    x = np.random.default_rng(seed).standard_normal((2, *shape)).astype(np.float32)
    back = from_torch(to_torch(model))
    assert_close(back(x), model(x), context=f"from_torch(to_torch(model))\n{model!r}\n{back!r}")
    if not any(getattr(m, "flip", False) for m in model.modules()):  # flip comes back as reversed weights
        ours, theirs = model.state_dict(), back.state_dict()
        assert list(ours) == list(theirs)
        for key in ours:
            np.testing.assert_array_equal(theirs[key], ours[key], err_msg=key)
    again = to_torch(back)
    net = to_torch(model)
    xt = torch.from_numpy(x)
    assert_close(again(xt).detach().numpy(), net(xt).detach().numpy(), context="to_torch(from_torch(net))")


# ------------------------------------------------------------------ errors
class Doubler(nn.Module):
    def forward(self, x):
        return 2 * x


def test_to_torch_errors():
    with pytest.raises(ConfigError, match="1, 2 and 3"):
        to_torch(nn.Sequential(nn.ConvNd(4, 1, 1, 2, rng=0)))
    with pytest.raises(ConfigError, match=r"at '0\.block' of type Doubler has no PyTorch mapping"):
        to_torch(nn.Sequential(nn.Residual(Doubler())))
    with pytest.raises(ArgumentTypeError, match="convscope Module"):
        to_torch(tn.ReLU())
    mixed = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Linear(2, 2, rng=0).to(np.float64))
    with pytest.raises(DTypeError, match="one dtype"):
        to_torch(mixed)


@pytest.mark.parametrize("net, words", [
    (tn.Sequential(tn.Linear(4, 4), tn.PixelShuffle(2)), r"layer '1' \(.*PixelShuffle\) is not supported"),
    (tn.Sequential(tn.ReLU(), tn.Sequential(tn.Conv2d(1, 1, 1), tn.Upsample(scale_factor=2))), r"layer '1\.1'"),
    (tn.Sequential(tn.ConvTranspose2d(1, 1, 2)), r"layer '0'.*ConvTranspose2d"),
    (tn.Sequential(tn.ZeroPad2d(1), tn.ReLU()), "directly before a Conv"),
    (tn.Sequential(tn.Conv2d(1, 1, 1), tn.ZeroPad2d(1)), "directly before a Conv"),
    (tn.Sequential(tn.ConstantPad1d(1, 2.0), tn.Conv1d(1, 1, 1)), "value 2.0"),
    (tn.Sequential(tn.ZeroPad1d(1), tn.Conv2d(1, 1, 1)), "pads 1 axes but the conv"),
    (tn.Sequential(tn.ZeroPad2d(-1), tn.Conv2d(1, 1, 1)), "negative padding"),
    (tn.Sequential(tn.ReflectionPad1d(1), tn.Conv1d(1, 1, 3, padding=1)), "also pads"),
    (tn.Sequential(tn.Softmax()), "dim=None"),
    (tn.Sequential(tn.Flatten(1, 2)), "end_dim=2"),
    (tn.Sequential(tn.MaxPool2d(2, return_indices=True)), "return_indices=True"),
    (tn.Sequential(tn.AvgPool2d(2, divisor_override=3)), "divisor_override=3"),
])
def test_from_torch_names_the_unsupported_layer(net, words):
    with pytest.raises(ConfigError, match=words) as info:
        from_torch(net)
    assert "Supported layer types:" in str(info.value)


def test_from_torch_type_errors():
    with pytest.raises(DTypeError, match=r"layer '0'.*float16"):
        from_torch(tn.Sequential(tn.Linear(2, 2).half()))
    with pytest.raises(ArgumentTypeError, match="torch.nn.Module"):
        from_torch(nn.Sequential())


@pytest.mark.parametrize("function, arg", [(to_torch, "model"), (from_torch, "module")])
def test_missing_torch_names_the_extra(function, arg, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "convscope\[torch\]"') as info:
        function(nn.ReLU())
    assert function.__name__ in str(info.value) and isinstance(info.value, ImportError)
