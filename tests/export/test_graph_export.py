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
    _check_to_torch(model, shape, seed=4)


def _check_to_torch(model, shape, seed):
    """to_torch(model): an fx graph in eval mode with every state_dict key, the same forward,
    input gradient and parameter gradients (float64); returns the torch module."""
    net = to_torch(model)
    assert isinstance(net, torch.fx.GraphModule) and not net.training
    assert set(net.state_dict()) >= set(model.state_dict())
    rng = np.random.default_rng(seed)
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
    return net


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


def _resnet(dtype):
    """The built-in ``--arch resnet`` graph with non-trivial BatchNorm statistics, in eval mode."""
    from convscope.models import build_model

    from ._helpers import randomize_batch_norm

    model = build_model("resnet", seed=0, dtype=dtype)
    rng = np.random.default_rng(11)
    for m in model.modules():
        if m.layer_kind == "batch_norm":
            randomize_batch_norm(m, rng)
    return model.eval()


def test_builtin_resnet_to_torch_forward_and_gradients_match():
    net = _check_to_torch(_resnet(np.float64), (3, 32, 32), seed=12)
    assert "layer2.0.downsample.0.weight" in net.state_dict()


def test_builtin_resnet_and_its_antialiased_twin_to_onnx_match_onnxruntime_and_resnet_imports_back(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the exported file")
    pytest.importorskip("onnx")
    from convscope.export.onnx_import import from_onnx
    from convscope.models import antialias

    model = _resnet(np.float32)
    twin = antialias(model, (3, 32, 32)).eval()
    x = np.random.default_rng(13).standard_normal((3, 3, 32, 32)).astype(np.float32)
    for name, m in (("resnet", model), ("resnet_blur", twin)):
        path = to_onnx(m, tmp_path / f"{name}.onnx", (3, 32, 32))
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        assert _rel(got, m(x)) < 1e-5, name
    # both come back, the twin's Pad -> binomial depthwise Conv as BlurPool (reflect) again
    for name, m in (("resnet", model), ("resnet_blur", twin)):
        back = from_onnx(tmp_path / f"{name}.onnx")
        assert [(n.name, n.module.layer_kind) for n in back.nodes] == \
            [(n.name, n.module.layer_kind) for n in m.nodes], name
        ours, theirs = m.state_dict(), back.state_dict()
        assert sorted(ours) == sorted(theirs), name
        for key in ours:  # ONNX carries no batch-norm step counter
            if not key.endswith("num_batches_tracked"):
                np.testing.assert_array_equal(theirs[key], ours[key])
        assert _rel(back(x), m(x)) < 1e-5, name
    assert [n.module.padding_mode for n in back.nodes if n.module.layer_kind == "blur_pool"] == \
        ["reflect"] * sum(n.module.layer_kind == "blur_pool" for n in twin.nodes)


def _two_in_five_out() -> nn.Graph:
    """Inputs (a, b); outputs in an order unlike the nodes': a flattened sum, a Split piece, a
    node that later nodes also read, a graph input passed through, and that node again."""
    return nn.Graph([
        nn.Node("ca", nn.Conv2d(1, 2, 3, padding=1, rng=0), ("a",)),
        nn.Node("cb", nn.Conv2d(3, 2, 3, stride=2, padding=1, rng=1), ("b",)),
        nn.Node("up", nn.Conv2d(2, 2, 1, rng=2), ("ca",)),
        nn.Node("pool", nn.MaxPool2d(2), ("up",)),
        nn.Node("add", nn.Add(), ("pool", "cb")),
        nn.Node("pieces", nn.Split((1, 1), dim=1), ("add",)),
        nn.Node("flat", nn.Flatten(), ("add",)),
    ], inputs=("a", "b"), outputs=("flat", "pieces:1", "ca", "b", "ca"))


def test_to_onnx_of_a_graph_with_several_inputs_and_outputs_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the exported file")
    onnx = pytest.importorskip("onnx")
    model = _two_in_five_out()
    rng = np.random.default_rng(14)
    a = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    b = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    expected = model(a, b)
    for given in (((1, 8, 8), (3, 8, 8)), {"b": (3, 8, 8), "a": (1, 8, 8)}):
        path = to_onnx(model, tmp_path / "multi.onnx", given)
        proto = onnx.load(path)
        assert [v.name for v in proto.graph.input] == ["a", "b"]
        assert [v.name for v in proto.graph.output] == [f"output_{k}" for k in range(5)]
        dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in proto.graph.output]
        assert dims == [["batch", 32], ["batch", 1, 4, 4], ["batch", 2, 8, 8], ["batch", 3, 8, 8],
                        ["batch", 2, 8, 8]]
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"b": b, "a": a})
        assert len(got) == len(expected) == 5
        for k, (g, e) in enumerate(zip(got, expected)):
            assert g.shape == e.shape and _rel(g, e) < 1e-5, k
        np.testing.assert_array_equal(got[3], b)


def test_from_onnx_reads_a_several_input_several_output_file_back(tmp_path):
    pytest.importorskip("onnx")
    from convscope.export.onnx_import import from_onnx

    model = _two_in_five_out()
    back = from_onnx(to_onnx(model, tmp_path / "multi.onnx", [(1, 8, 8), (3, 8, 8)]))
    assert back.inputs == ("a", "b") and len(back.outputs) == 5
    rng = np.random.default_rng(15)
    a = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    b = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    for k, (g, e) in enumerate(zip(back(a, b), model(a, b))):
        assert g.shape == e.shape and _rel(g, e) < 1e-6, k
    net = to_torch(model)                           # and PyTorch takes the same two inputs
    for g, e in zip(net(torch.from_numpy(a), torch.from_numpy(b)), model(a, b)):
        assert _rel(g.detach().numpy(), e) < 1e-6


def test_to_onnx_refuses_shapes_that_are_not_one_per_graph_input(tmp_path):
    pytest.importorskip("onnx")
    from convscope.errors import ConfigError, ShapeError

    model = _two_in_five_out()
    with pytest.raises(ConfigError, match=r"one shape per graph input \(a, b\)"):
        to_onnx(model, tmp_path / "m.onnx", (1, 8, 8))
    with pytest.raises(ConfigError, match="the dict has keys \\['a'\\]"):
        to_onnx(model, tmp_path / "m.onnx", {"a": (1, 8, 8)})
    with pytest.raises(ShapeError, match="does not accept samples of input_shape"):
        to_onnx(model, tmp_path / "m.onnx", [(1, 8, 8), (3, 6, 6)])
    clash = nn.Graph([nn.Node("add", nn.Add(), ("output_1", "x")), nn.Node("r", nn.ReLU(), ("add",))],
                     inputs=("output_1", "x"), outputs=("add", "r"))
    with pytest.raises(ConfigError, match="rename the graph's inputs"):
        to_onnx(clash, tmp_path / "m.onnx", [(2,), (2,)])
    assert not (tmp_path / "m.onnx").exists()


def test_to_onnx_of_the_trained_form_normalize_then_resnet_graph_matches_onnxruntime(tmp_path):
    """``convscope train --arch resnet`` saves Sequential(Normalize, graph): a graph inside a
    Sequential exports through its node list, named under the Sequential's index."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the exported file")
    onnx = pytest.importorskip("onnx")
    model = nn.with_input_normalization(_resnet(np.float32), [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]).eval()
    assert [m.layer_kind for m in model] == ["normalize", "graph"]
    path = to_onnx(model, tmp_path / "trained.onnx", (3, 32, 32))
    names = [n.name for n in onnx.load(path).graph.node]
    assert "1.layer2.0.downsample.0/Conv" in names and "1.layer3.0.add/Add" in names
    x = np.random.default_rng(16).random((2, 3, 32, 32), dtype=np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert _rel(got, model(x)) < 1e-5


def _session_output(ort, path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_to_onnx_keeps_an_output_that_later_nodes_read_wired(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the exported file")
    pytest.importorskip("onnx")
    model = nn.Graph([nn.Node("stem", nn.Conv2d(1, 2, 3, padding=1, rng=1), ("input",)),
                      nn.Node("relu", nn.ReLU(), ("stem",)),          # reads the output "stem"
                      nn.Node("sum", nn.Add(), ("relu", "stem"))], outputs="stem")
    x = np.random.default_rng(17).standard_normal((2, 1, 5, 5)).astype(np.float32)
    assert _rel(_session_output(ort, to_onnx(model, tmp_path / "mid.onnx", (1, 5, 5)), x), model(x)) < 1e-6


def test_to_onnx_of_a_graph_node_inside_a_graph(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the exported file")
    onnx = pytest.importorskip("onnx")
    inner = nn.Graph([nn.Node("c", nn.Conv2d(2, 2, 1, rng=0), ("u",)), nn.Node("add", nn.Add(), ("c", "u"))],
                     inputs=("u",))
    model = nn.Graph([nn.Node("stem", nn.Conv2d(1, 2, 3, padding=1, rng=1), ("input",)),
                      nn.Node("blk", inner, ("stem",)),
                      nn.Node("sum", nn.Add(), ("stem", "blk"))])
    x = np.random.default_rng(18).standard_normal((2, 1, 5, 5)).astype(np.float32)
    path = to_onnx(model, tmp_path / "nested.onnx", (1, 5, 5))
    assert [n.name for n in onnx.load(path).graph.node] == ["stem/Conv", "blk.c/Conv", "blk.add/Add", "sum/Add"]
    assert _rel(_session_output(ort, path, x), model(x)) < 1e-6
