"""Graph models: merges and the graph container, by finite differences (float64), against
PyTorch, save/load, the walker and training."""

from __future__ import annotations

import numpy as np
import pytest

import convscope
from convscope import nn
from convscope.errors import ArgumentTypeError, ConfigError, ShapeError, StateError
from convscope.testing import gradcheck, max_relative_error, numerical_vjp

RNG = np.random.default_rng(0)


def _r(*shape):
    return RNG.standard_normal(shape)


def _module_check(make, *inputs):
    """Finite differences of a (possibly multi-input / multi-output) module's backward."""
    module = make()
    out = module(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    dys = tuple(_r(*o.shape) for o in outs)

    def f(*xs):
        y = make()(*xs)
        ys = y if isinstance(y, tuple) else (y,)
        return np.concatenate([a.ravel() for a in ys])

    flat_dy = np.concatenate([d.ravel() for d in dys])
    numeric = numerical_vjp(f, inputs, flat_dy)
    grads = module.backward(dys if isinstance(out, tuple) else dys[0])
    grads = grads if isinstance(grads, tuple) else (grads,)
    return max(max_relative_error(a, n) for a, n in zip(grads, numeric))


@pytest.mark.parametrize("make, shapes", [
    (nn.Add, [(2, 3, 4, 4)] * 3),
    (lambda: nn.Concat(1), [(2, 1, 3, 3), (2, 3, 3, 3)]),
    (lambda: nn.Concat(-1), [(2, 2, 3), (2, 2, 1)]),
    (nn.Mul, [(2, 3, 4, 4), (2, 3, 1, 1)]),
    (nn.Mul, [(2, 1, 4, 4), (3, 1, 1)]),
    (lambda: nn.ChannelShuffle(3), [(2, 6, 2, 2)]),
    (lambda: nn.Split((2, 3)), [(2, 5, 2, 2)]),
    (lambda: nn.Split(2, dim=2), [(1, 2, 5)]),
    (lambda: nn.Reshape((-1, 4)), [(2, 2, 2, 4)]),
    (lambda: nn.Permute((2, 0, 1)), [(2, 3, 4, 5)]),
])
def test_merge_gradients_by_finite_differences(make, shapes):
    assert _module_check(make, *(_r(*s) for s in shapes)) < 1e-8


def _branchy(dtype=np.float64):
    """Residual + concat + squeeze-excitation gate + split/shuffle, one of each."""
    g = nn.GraphBuilder()
    a = g.add("conv1", nn.Conv2d(2, 4, 3, padding=1, rng=0, dtype=dtype), g.input)
    r = g.add("relu1", nn.ReLU(), a)
    b = g.add("conv2", nn.Conv2d(4, 4, 3, padding=1, rng=1, dtype=dtype), r)
    s = g.add("add", nn.Add(), b, a)                      # residual (a fans out twice)
    p = g.add("split", nn.Split((2, 2)), s)
    left = g.add("left", nn.Conv2d(2, 2, 1, rng=2, dtype=dtype), "split:0")
    cat = g.add("cat", nn.Concat(), left, "split:1", g.input)   # 2 + 2 + 2 channels
    shuf = g.add("shuffle", nn.ChannelShuffle(2), cat)
    pool = g.add("squeeze", nn.AvgPool2d(4), shuf)         # (N, 6, 1, 1)
    gate = g.add("gate", nn.Sigmoid(), pool)
    y = g.add("excite", nn.Mul(), shuf, gate)
    f = g.add("flat", nn.Flatten(), y)
    assert p == "split"
    return g.build(g.add("fc", nn.Linear(6 * 16, 3, rng=3, dtype=dtype), f))


def test_graph_gradients_by_finite_differences():
    model = _branchy()
    x = _r(2, 2, 4, 4)
    dy = _r(2, 3)

    def forward(x):
        return model(x)

    def backward(dy, x):
        model(x)
        return model.backward(dy)

    assert gradcheck(forward, backward, [x], dy) < 1e-7
    # parameter gradients: the first conv's weight
    w = model.node("conv1").module.weight
    model.zero_grad()
    model(x)
    model.backward(dy)
    analytic = w.grad.copy()

    def of_w(wv):
        old = w.data.copy()
        w.data[...] = wv
        try:
            return model(x)
        finally:
            w.data[...] = old

    numeric = numerical_vjp(of_w, [w.data.copy()], dy)[0]
    assert max_relative_error(analytic, numeric) < 1e-7


def test_backward_params_matches_backward():
    model = _branchy()
    x = _r(2, 2, 4, 4)
    dy = _r(2, 3)
    model.zero_grad()
    model(x)
    model.backward(dy)
    full = {k: p.grad.copy() for k, p in model.named_parameters()}
    model.zero_grad()
    model(x)
    assert model.backward_params(dy) is None
    for k, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, full[k], rtol=1e-12, atol=1e-14)


torch = pytest.importorskip("torch", reason="the PyTorch reference tests need torch")


class _TorchBranchy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.left = torch.nn.Conv2d(2, 2, 1)
        self.fc = torch.nn.Linear(6 * 16, 3)

    def forward(self, x):
        a = self.conv1(x)
        s = self.conv2(torch.relu(a)) + a
        p0, p1 = torch.split(s, [2, 2], dim=1)
        cat = torch.cat([self.left(p0), p1, x], 1)
        n, c, h, w = cat.shape
        shuf = cat.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        gate = torch.sigmoid(torch.nn.functional.avg_pool2d(shuf, 4))
        return self.fc(torch.flatten(shuf * gate, 1))


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-4), (np.float64, 1e-11)])
def test_graph_matches_torch_forward_and_backward(dtype, tol):
    model = _branchy(dtype)
    ref = _TorchBranchy().to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for name in ("conv1", "conv2", "left", "fc"):
            m = model.node(name).module
            getattr(ref, name).weight.copy_(torch.from_numpy(m.weight.data))
            getattr(ref, name).bias.copy_(torch.from_numpy(m.bias.data))
    x = _r(3, 2, 4, 4).astype(dtype)
    dy = _r(3, 3).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    yt.backward(torch.from_numpy(dy))
    model.zero_grad()
    y = model(x)
    dx = model.backward(dy)
    assert y.dtype == dtype and dx.dtype == dtype
    assert max_relative_error(y, yt.detach().numpy()) < tol
    assert max_relative_error(dx, xt.grad.numpy()) < tol
    for name in ("conv1", "conv2", "left", "fc"):
        m, t = model.node(name).module, getattr(ref, name)
        assert max_relative_error(m.weight.grad, t.weight.grad.numpy()) < tol
        assert max_relative_error(m.bias.grad, t.bias.grad.numpy()) < tol


def test_state_dict_keys_are_node_names_and_save_load_round_trips(tmp_path):
    g = nn.GraphBuilder()
    h = g.add("layer1.0.conv1", nn.Conv2d(1, 2, 3, padding=1, rng=0), g.input)
    h = g.add("layer1.0.bn1", nn.BatchNorm2d(2), h)
    model = g.build(g.add("layer1.0.add", nn.Add(), h, h))
    assert {"layer1.0.conv1.weight", "layer1.0.conv1.bias", "layer1.0.bn1.weight",
            "layer1.0.bn1.running_mean"} <= set(model.state_dict())
    x = _r(2, 1, 5, 5).astype(np.float32)
    model(x)  # updates the running statistics
    model.eval()
    path = convscope.save(_branchy(np.float32), tmp_path / "branchy.npz")
    back = convscope.load(path)
    assert isinstance(back, nn.Graph)
    assert [n.inputs for n in back.nodes] == [n.inputs for n in _branchy(np.float32).nodes]
    x2 = _r(2, 2, 4, 4).astype(np.float32)
    np.testing.assert_array_equal(back(x2), _branchy(np.float32)(x2))
    path = convscope.save(model, tmp_path / "dotted.npz")
    back = convscope.load(path).eval()
    np.testing.assert_array_equal(back(x), model(x))


def test_graph_errors_name_the_node():
    conv = nn.Conv2d(1, 1, 1, rng=0)
    with pytest.raises(ConfigError, match=r"node 'b' reads 'zz', which is not defined before it"):
        nn.Graph([("a", nn.ReLU(), ["input"]), ("b", nn.ReLU(), ["zz"])])
    with pytest.raises(ConfigError, match=r"'a' is used twice"):
        nn.Graph([("a", nn.ReLU(), ["input"]), ("a", nn.ReLU(), ["a"])])
    with pytest.raises(ConfigError, match=r"same module instance as node 'a'"):
        nn.Graph([("a", conv, ["input"]), ("b", conv, ["a"])])
    with pytest.raises(ConfigError, match=r"Mul\) takes 2; it was given 3"):
        nn.Graph([("a", nn.Mul(), ["input", "input", "input"])])
    with pytest.raises(ConfigError, match=r"has 2 outputs; name one as 's:0'"):
        nn.Graph([("s", nn.Split((1, 1)), ["input"]), ("r", nn.ReLU(), ["s"])])
    with pytest.raises(ConfigError, match=r"forward order"):
        nn.Graph([("a", nn.Add(), ["input", "b"]), ("b", nn.ReLU(), ["a"])])
    model = nn.Graph([("a", nn.Conv2d(1, 2, 1, rng=0), ["input"]), ("b", nn.Add(), ["a", "input"])])
    with pytest.raises(ShapeError, match=r"Graph node 'b' \(Add.*input 1 has shape \(1, 2, 3, 3\) but input 2 has "
                                         r"\(1, 1, 3, 3\)"):
        model(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(ShapeError, match=r"node 'b'"):
        model.output_shape((1, 1, 3, 3))
    with pytest.raises(ArgumentTypeError, match=r"takes 1 input"):
        model(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)))
    with pytest.raises(StateError, match="before forward"):
        nn.Graph([("r", nn.ReLU(), ["input"])]).backward(np.zeros(3))
    with pytest.raises(ShapeError, match=r"add up to 3"):
        nn.Split((1, 2))(np.zeros((1, 4)))
    with pytest.raises(ShapeError, match=r"do not broadcast"):
        nn.Mul()(np.zeros((1, 3, 2)), np.zeros((1, 2, 2)))
    with pytest.raises(ConfigError, match="malformed|must be"):
        nn.Graph.from_config({"nodes": [["a"]]}, {"a": nn.ReLU()})


def test_walk_lists_every_node_with_its_inputs_and_shapes():
    records = list(nn.walk(_branchy(np.float32), (2, 2, 4, 4)))
    by_name = {r.name: r for r in records}
    assert [r.name for r in records] == [n.name for n in _branchy().nodes]
    assert by_name["add"].inputs == ("conv2", "conv1")
    assert by_name["cat"].inputs == ("left", "split:1", "input")
    assert by_name["cat"].in_shapes == ((2, 2, 4, 4), (2, 2, 4, 4), (2, 2, 4, 4))
    assert by_name["cat"].out_shape == (2, 6, 4, 4)
    assert by_name["split"].out_shapes == ((2, 2, 4, 4), (2, 2, 4, 4))
    assert by_name["excite"].out_shape == (2, 6, 4, 4)
    assert by_name["fc"].out_shape == (2, 3)
    assert nn.input_rank(_branchy()) == 2


def test_walk_unfolds_a_sequential_inside_a_graph():
    block = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, rng=0), nn.ReLU())
    model = nn.Graph([("block", block, ["input"]), ("add", nn.Add(), ["block", "input"])])
    records = list(nn.walk(model, (1, 2, 5, 5)))
    assert [(r.name, r.inputs) for r in records] == [
        ("block.0", ("input",)), ("block.1", ("block.0",)), ("add", ("block.1", "input"))]
    assert model.output_shape((1, 2, 5, 5)) == (1, 2, 5, 5)


def test_a_graph_trains_with_fit():
    from convscope.optim import Adam
    from convscope.train import fit

    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 2, 4, 4)).astype(np.float32)
    labels = (x[:, 0].mean(axis=(1, 2)) > 0).astype(np.int64)
    model = _branchy(np.float32)
    history = fit(model, (x, labels), epochs=8, optimizer=Adam(model.parameters(), lr=1e-2),
                  batch_size=16, progress=None)
    losses = history["train_loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_receptive_field_of_a_graph_is_the_largest_over_its_paths():
    from convscope.nn.receptive import branch_fields, field_steps

    # main path: 3x3 (pad 1) then 3x3 stride 2 (pad 1); shortcut: 1x1 stride 2.
    # By hand (notes Definition 50): main rf = 1 + 2 + 2 = 5 starting at -2, jump 2;
    # shortcut rf 1 at 0, jump 2; their union spans -2..2: 5.
    g = nn.GraphBuilder()
    a = g.add("conv1", nn.Conv2d(1, 2, 3, padding=1, rng=0), g.input)
    a = g.add("conv2", nn.Conv2d(2, 2, 3, stride=2, padding=1, rng=1), a)
    b = g.add("down", nn.Conv2d(1, 2, 1, stride=2, rng=2), g.input)
    model = g.build(g.add("add", nn.Add(), a, b))
    records = list(nn.walk(model, (1, 1, 8, 8)))
    steps = field_steps(records, 2)
    assert [s.rf for s in steps] == [(3, 3), (5, 5), (1, 1), (5, 5)]
    assert steps[-1].jump == (2, 2) and steps[-1].start == (-2, -2)
    assert [[f.rf for f in fields] for fields in branch_fields(records, 2).values()] == [[(5, 5), (1, 1)]]
    # the same field as the support of one output pixel's input gradient (interior pixel)
    model64 = model.to(np.float64)
    x = np.ones((1, 1, 8, 8))
    dy = np.zeros((1, 2, 4, 4))
    dy[0, :, 2, 2] = 1.0
    model64(x)
    dx = model64.backward(dy)
    rows = np.nonzero(np.abs(dx[0, 0]).sum(axis=1))[0]
    assert rows.max() - rows.min() + 1 == 5 and rows.min() == 2 * 2 - 2
