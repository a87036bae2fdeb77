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
