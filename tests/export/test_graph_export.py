"""to_torch / to_onnx on graph models: the exported module or file computes what the
convscope graph computes (to_torch: outputs and every gradient; to_onnx: ONNX Runtime), and
torch -> convscope -> ONNX -> convscope keeps the numbers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from convscope import nn  # noqa: E402
from convscope.export import from_torch, to_onnx, to_torch  # noqa: E402

from . import reference_models as R  # noqa: E402

pytestmark = pytest.mark.skipif(
    not hasattr(nn, "Graph"), reason="nn.Graph (issue 14's graph container) is not in this build")

NETS = {
    "mergenet": (lambda: R.MergeNet(), (3, 8, 8)),
    "resnet18": (lambda: R.resnet18(10, width=0.125), (3, 32, 32)),
    "shufflenet_v2": (lambda: R.ShuffleNetV2((2, 2, 2), (8, 16, 32, 64, 32), 10), (3, 32, 32)),
}


def _graph(name: str, dtype):
    make, shape = NETS[name]
    torch.manual_seed(0)
    net = R.randomize(make()).to(dtype).eval()
    return from_torch(net, shape), shape


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("name", list(NETS))
def test_to_torch_forward_and_gradients_match(name):
    model, shape = _graph(name, torch.float64)
    net = to_torch(model)
    assert isinstance(net, torch.fx.GraphModule) and not net.training
    assert set(net.state_dict()) >= set(model.state_dict())
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, *shape))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = net(xt)
    y = model(x)
    assert _rel(yt.detach().numpy(), y) < 1e-12
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.from_numpy(dy))
    model.zero_grad()
    dx = model.backward(dy)
    assert _rel(dx, xt.grad.numpy()) < 1e-10
    theirs = dict(net.named_parameters())
    for key, p in model.named_parameters():
        assert _rel(p.grad, theirs[key].grad.numpy()) < 1e-10, key


def test_to_torch_then_from_torch_is_the_same_graph():
    model, shape = _graph("shufflenet_v2", torch.float32)
    back = from_torch(to_torch(model), shape)
    assert [m.layer_kind for _, m in back.named_children()] == \
        [m.layer_kind for _, m in model.named_children()]
    x = np.random.default_rng(5).standard_normal((2, *shape)).astype(np.float32)
    np.testing.assert_array_equal(back(x), model(x))


@pytest.mark.parametrize("name", list(NETS))
def test_to_onnx_matches_onnxruntime(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model, shape = _graph(name, torch.float32)
    path = to_onnx(model, tmp_path / f"{name}.onnx", shape)
    x = np.random.default_rng(6).standard_normal((3, *shape)).astype(np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    assert _rel(model(x), expected) < 1e-5


def test_round_trip_torch_convscope_onnx_convscope_resnet18(tmp_path):
    pytest.importorskip("onnx")
    from convscope.export.onnx_import import from_onnx

    make, shape = NETS["resnet18"]
    torch.manual_seed(0)
    net = R.randomize(make()).eval()
    model = from_torch(net, shape)
    again = from_onnx(to_onnx(model, tmp_path / "r18.onnx", shape))
    x = np.random.default_rng(7).standard_normal((2, *shape)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert _rel(again(x), expected) < 1e-5
    assert _rel(again(x), model(x)) < 1e-5
    ours, theirs = model.state_dict(), again.state_dict()
    for key in ("conv1.weight", "layer1.0.conv1.weight", "fc.weight", "fc.bias"):
        np.testing.assert_array_equal(theirs[key], ours[key])


def test_a_block_node_exports_as_its_chain(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    block = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, rng=0), nn.ReLU())
    model = nn.Graph([nn.Node("stem", nn.Conv2d(1, 2, 3, padding=1, rng=1), ("input",)),
                      nn.Node("block", block, ("stem",)),
                      nn.Node("add", nn.Add(), ("stem", "block")),
                      nn.Node("flat", nn.Flatten(), ("add",))])
    x = np.random.default_rng(9).standard_normal((2, 1, 5, 5)).astype(np.float32)
    path = to_onnx(model, tmp_path / "nested.onnx", (1, 5, 5))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    assert _rel(got, model(x)) < 1e-6
    net = to_torch(model)
    assert list(net.state_dict()) == ["stem.weight", "stem.bias", "block.0.weight", "block.0.bias"]
    assert _rel(net(torch.from_numpy(x)).detach().numpy(), model(x)) < 1e-6
