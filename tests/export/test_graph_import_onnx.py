"""from_onnx on the ONNX files PyTorch exports for the reference architectures: the
convscope graph computes what ONNX Runtime computes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ConfigError

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from convscope.export.onnx_import import from_onnx  # noqa: E402

from . import reference_models as R  # noqa: E402

pytestmark = pytest.mark.skipif(
    not hasattr(nn, "Graph"), reason="nn.Graph (issue 14's graph container) is not in this build")

# adaptive pools set to 1x1 where torch's exporter refuses output sizes that do not divide
ARCHS = {
    "resnet18": (lambda: R.resnet18(10, width=0.125), (3, 32, 32)),
    "resnet50": (lambda: R.resnet50(10, width=0.0625), (3, 32, 32)),
    "vgg11_bn": (lambda: R.vgg11_bn(10, width=0.125, pool_size=1, hidden=32), (3, 32, 32)),
    "alexnet": (lambda: R.AlexNet(10, width=0.125, pool_size=1, hidden=32), (3, 63, 63)),
    "squeezenet1_1": (lambda: R.SqueezeNet(10, width=0.25), (3, 32, 32)),
    "mobilenet_v2": (lambda: R.MobileNetV2(10, width_mult=0.25), (3, 32, 32)),
    "mobilenet_v3_small": (lambda: R.MobileNetV3(10, width_mult=0.25), (3, 32, 32)),
    "densenet121": (lambda: R.densenet121(10, growth_rate=4, num_init_features=8, bn_size=2),
                    (3, 32, 32)),
    "shufflenet_v2": (lambda: R.ShuffleNetV2((2, 2, 2), (8, 16, 32, 64, 32), 10), (3, 32, 32)),
}


def export(net, shape, path, dynamic=True):
    """PyTorch's TorchScript exporter (``dynamo=False``: the default dynamo exporter needs
    onnxscript), opset 17, batch axis dynamic."""
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, *shape),), str(path), dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["output"],
                          dynamic_axes=axes)
    return path


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("name", list(ARCHS))
def test_matches_onnxruntime_and_torch(name, tmp_path):
    make, shape = ARCHS[name]
    torch.manual_seed(0)
    net = R.randomize(make()).eval()
    path = export(net, shape, tmp_path / f"{name}.onnx")
    model = from_onnx(path)
    assert model.layer_kind == "graph" and not model.training
    x = np.random.default_rng(1).standard_normal((3, *shape)).astype(np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    y = model(x)
    assert y.shape == expected.shape and np.abs(expected).max() > 0
    assert _rel(y, expected) < 1e-5, _rel(y, expected)
    with torch.no_grad():
        assert _rel(y, net(torch.from_numpy(x)).numpy()) < 1e-4


def test_names_follow_torch_scopes(tmp_path):
    make, shape = ARCHS["resnet18"]
    names = [n for n, _ in from_onnx(export(make().eval(), shape, tmp_path / "r.onnx"))
             .named_children()]
    assert names[:3] == ["conv1", "relu", "maxpool"]
    assert "layer1.0.conv1" in names and "layer2.0.downsample.0" in names and names[-1] == "fc"


def test_channel_shuffle_and_split_are_recognised(tmp_path):
    make, shape = ARCHS["shufflenet_v2"]
    model = from_onnx(export(make().eval(), shape, tmp_path / "s.onnx"))
    kinds = [m.layer_kind for _, m in model.named_children()]
    assert kinds.count("channel_shuffle") == 6 and kinds.count("split") == 3
    assert "reshape" not in kinds and "permute" not in kinds


class _Exp(torch.nn.Module):
    def forward(self, x):
        return torch.exp(x)


def test_an_unsupported_operator_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"operator Exp at ONNX node .*Supported operators: .*Conv"):
        from_onnx(export(_Exp(), (2, 4, 4), tmp_path / "e.onnx"))


def test_a_fixed_batch_reshape_is_refused_with_the_fix(tmp_path):
    make, shape = ARCHS["shufflenet_v2"]
    path = export(make().eval(), shape, tmp_path / "fixed.onnx", dynamic=False)
    with pytest.raises(ConfigError, match="dynamic batch axis"):
        from_onnx(path)


def test_bad_paths_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="could not read"):
        from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="path must be"):
        from_onnx(3)


@pytest.mark.skipif(not hasattr(nn, "GELU"), reason="nn.GELU is not in this build")
def test_torchs_erf_gelu_pattern_is_one_gelu(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.GELU(), torch.nn.Linear(6, 2)).eval()
    path = export(net, (4,), tmp_path / "gelu.onnx")
    assert "Erf" in [n.op_type for n in onnx.load(str(path)).graph.node]
    model = from_onnx(path)
    assert [(n, m.layer_kind) for n, m in model.named_children()] == \
        [("0", "linear"), ("1", "gelu"), ("2", "linear")]
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    assert _rel(model(x), expected) < 1e-5


class _TorchBlurPool(torch.nn.Module):
    """antialiased-cnns' BlurPool (Zhang 2019): reflect pad, then a fixed depthwise binomial
    filter ([1, 3, 3, 1] / 8 per axis) at stride 2, a buffer rather than a parameter."""

    def __init__(self, channels):
        super().__init__()
        a = torch.tensor([1.0, 3.0, 3.0, 1.0])
        f = a[:, None] * a[None, :]
        self.register_buffer("filt", (f / f.sum()).expand(channels, 1, 4, 4).clone())
        self.pad = torch.nn.ReflectionPad2d((1, 2, 1, 2))
        self.channels = channels

    def forward(self, x):
        return torch.nn.functional.conv2d(self.pad(x), self.filt, stride=2, groups=self.channels)


class _Preprocess(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _run_both(path, x):
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    model = from_onnx(path)
    assert _rel(model(x), expected) < 1e-5
    return model


def test_pads_before_convolutions_become_their_padding_and_blurpool_comes_back(tmp_path):
    net = torch.nn.Sequential(
        _Preprocess(),
        torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
        torch.nn.Conv2d(4, 4, 3, padding=1, padding_mode="replicate"),
        torch.nn.ReflectionPad2d(2), torch.nn.Conv2d(4, 6, 5),
        torch.nn.ReLU(), _TorchBlurPool(6),
    ).eval()
    torch.manual_seed(3)
    x = np.random.default_rng(4).standard_normal((2, 3, 12, 12)).astype(np.float32)
    model = _run_both(export(net, (3, 12, 12), tmp_path / "pads.onnx"), x)
    layers = [m for _, m in model.named_children()]
    assert [m.layer_kind for m in layers] == \
        ["normalize", "conv", "conv", "conv", "relu", "blur_pool"]
    assert [getattr(m, "padding_mode", None) for m in layers] == \
        [None, "reflect", "replicate", "reflect", None, "reflect"]
    np.testing.assert_allclose(layers[0].std, [0.229, 0.224, 0.225], rtol=1e-6)
    assert layers[3].padding == ((2, 2), (2, 2)) and layers[5].stride == (2, 2)


def test_convscopes_own_padded_and_normalized_models_come_back_with_their_names(tmp_path):
    from convscope.export.onnx import to_onnx

    model = nn.Sequential(nn.Normalize([0.5, 0.25], [2.0, 4.0]),
                          nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular", rng=0),
                          nn.BlurPool2d(3, padding_mode="replicate"), nn.ReLU(),
                          nn.BlurPool2d(3, filter_size=3, padding_mode="zeros")).eval()
    x = np.random.default_rng(5).standard_normal((2, 2, 9, 9)).astype(np.float32)
    back = _run_both(to_onnx(model, tmp_path / "own.onnx", (2, 9, 9)), x)
    assert [(n, m.layer_kind, getattr(m, "padding_mode", None)) for n, m in back.named_children()] \
        == [("0", "normalize", None), ("1", "conv", "circular"), ("2", "blur_pool", "replicate"),
            ("3", "relu", None), ("4", "blur_pool", "zeros")]
    np.testing.assert_array_equal(back(x), model(x))


@pytest.mark.parametrize("net, why", [
    (torch.nn.Sequential(torch.nn.ReflectionPad2d(1), torch.nn.MaxPool2d(2)), "feeds one Conv"),
    (torch.nn.Sequential(torch.nn.ConstantPad2d(1, 0.5), torch.nn.Conv2d(2, 2, 3)), "value"),
])
def test_a_pad_that_is_no_convolutions_padding_is_refused(net, why, tmp_path):
    with pytest.raises(ConfigError, match=r"operator Pad at ONNX node .*only a Pad of the spatial"):
        from_onnx(export(net.eval(), (2, 6, 6), tmp_path / "p.onnx"))


class _Minus(torch.nn.Module):
    def forward(self, x):
        return x - x * x


def test_a_sub_that_is_no_normalization_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"operator Sub at ONNX node .*\(x - mean\) / std"):
        from_onnx(export(_Minus().eval(), (2, 4, 4), tmp_path / "s.onnx"))


def test_torchs_circular_padding_slices_are_refused_cleanly(tmp_path):
    """PyTorch writes padding_mode="circular" as Slices and Concats of the input, not Pad."""
    net = torch.nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular").eval()
    with pytest.raises(ConfigError, match=r"operator Slice at ONNX node .*together cover it"):
        from_onnx(export(net, (2, 6, 6), tmp_path / "c.onnx"))
