"""BatchNorm1d/2d: running statistics, train/eval, gradients, PyTorch parity, errors."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ConfigError, ShapeError
from convscope.testing import assert_close


@pytest.mark.parametrize(
    "make,in_shape,count",
    [
        (lambda: nn.BatchNorm2d(6), (4, 6, 5, 5), 12),
        (lambda: nn.BatchNorm2d(3, affine=False), (2, 3, 2, 2), 0),
        (lambda: nn.BatchNorm1d(8), (4, 8), 16),
        (lambda: nn.BatchNorm1d(2), (3, 2, 7), 4),
    ],
)
def test_shape_table(make, in_shape, count):
    bn = make()
    x = np.random.default_rng(0).standard_normal(in_shape).astype(np.float32)
    assert bn(x).shape == in_shape == bn.output_shape(in_shape)
    assert bn.num_parameters() == count
    assert bn.backward(np.ones(in_shape, dtype=np.float32)).shape == in_shape


def test_training_normalises_each_channel_and_updates_running_stats_unbiased():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 3, 4, 4)) * np.array([1.0, 2.0, 5.0])[:, None, None] + 3.0
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    y = bn(x)
    assert_close(y.mean(axis=(0, 2, 3)), np.zeros(3), kind="backward")
    assert np.allclose(y.var(axis=(0, 2, 3)), 1.0, atol=1e-4)
    m = 8 * 4 * 4
    unbiased = x.var(axis=(0, 2, 3)) * m / (m - 1)
    assert_close(bn.running_mean, 0.1 * x.mean(axis=(0, 2, 3)))
    assert_close(bn.running_var, 0.9 + 0.1 * unbiased)
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    before = bn.running_mean.copy()
    y_eval = bn(x)
    assert np.array_equal(bn.running_mean, before)  # eval does not move the statistics
    expected = (x - before[:, None, None]) / np.sqrt(bn.running_var[:, None, None] + 1e-5)
    assert_close(y_eval, expected)


def test_momentum_none_is_a_cumulative_average():
    rng = np.random.default_rng(2)
    batches = [rng.standard_normal((5, 2)) + i for i in range(3)]
    bn = nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    for b in batches:
        bn(b)
    assert_close(bn.running_mean, np.mean([b.mean(axis=0) for b in batches], axis=0))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    "make,in_shape",
    [
        (lambda: nn.BatchNorm2d(3, dtype=np.float64), (3, 3, 2, 2)),
        (lambda: nn.BatchNorm1d(4, dtype=np.float64), (5, 4)),
        (lambda: nn.BatchNorm1d(2, affine=False, dtype=np.float64), (3, 2, 3)),
        (lambda: nn.BatchNorm2d(2, track_running_stats=False, dtype=np.float64), (2, 2, 2, 3)),
    ],
)
def test_gradients_match_finite_differences(gradcheck_module, make, in_shape, training):
    bn = make()
    rng = np.random.default_rng(3)
    if bn.affine:
        bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.weight.shape)
        bn.bias.data[...] = rng.standard_normal(bn.bias.shape)
    if bn.track_running_stats:
        bn.running_mean[...] = rng.standard_normal(bn.running_mean.shape)
        bn.running_var[...] = rng.uniform(0.5, 2.0, bn.running_var.shape)
    bn.train(training)
    x = rng.standard_normal(in_shape)
    errors = gradcheck_module(bn, x)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "ndim,kwargs",
    [
        (2, {}),
        (2, {"momentum": 0.3, "eps": 1e-3}),
        (2, {"affine": False}),
        (2, {"track_running_stats": False}),
        (1, {}),
        (1, {"momentum": None}),
    ],
)
def test_matches_torch_in_train_and_eval(torch, ndim, kwargs, dtype):
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[ndim]
    ours = cls(4, **kwargs, dtype=dtype)
    theirs = getattr(torch.nn, f"BatchNorm{ndim}d")(4, **kwargs).to(tdtype)
    rng = np.random.default_rng(6)
    if ours.affine:
        ours.weight.data[...] = rng.uniform(0.5, 1.5, 4)
        ours.bias.data[...] = rng.standard_normal(4)
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(ours.weight.data))
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    shape = (6, 4, 3, 3) if ndim == 2 else (6, 4, 5)
    for step, training in enumerate([True, True, False, True, False]):
        ours.train(training)
        theirs.train(training)
        ours.zero_grad()
        theirs.zero_grad()
        x = (rng.standard_normal(shape) * 2 + step).astype(dtype)
        xt = torch.from_numpy(x).requires_grad_(True)
        y, yt = ours(x), theirs(xt)
        ctx = f"step {step} training={training} {kwargs}"
        assert_close(y, yt.detach().numpy(), kind="backward", context=f"{ctx} forward")
        dy = rng.standard_normal(shape).astype(dtype)
        yt.backward(torch.from_numpy(dy))
        assert_close(ours.backward(dy), xt.grad.numpy(), kind="backward", context=f"{ctx} dx")
        if ours.affine:
            assert_close(ours.weight.grad, theirs.weight.grad.numpy(), kind="backward", context=f"{ctx} dweight")
            assert_close(ours.bias.grad, theirs.bias.grad.numpy(), kind="backward", context=f"{ctx} dbias")
        if ours.track_running_stats:
            assert_close(ours.running_mean, theirs.running_mean.numpy(), context=f"{ctx} running_mean")
            assert_close(ours.running_var, theirs.running_var.numpy(), context=f"{ctx} running_var")
            assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked)
    assert set(ours.state_dict()) == set(theirs.state_dict())


def test_errors_and_repr():
    with pytest.raises(ShapeError, match=r"more than one value per channel.*\(1, 3\)"):
        nn.BatchNorm1d(3)(np.ones((1, 3), dtype=np.float32))
    bn = nn.BatchNorm1d(3).eval()
    assert bn(np.ones((1, 3), dtype=np.float32)).shape == (1, 3)  # eval works on one sample
    with pytest.raises(ShapeError, match=r"BatchNorm2d expected 3 input channels.*transpose\(0, 3, 1, 2\)"):
        nn.BatchNorm2d(3)(np.ones((2, 4, 4, 3), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        nn.BatchNorm2d(3)(np.ones((2, 3, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match="momentum"):
        nn.BatchNorm2d(3, momentum=2.0)
    with pytest.raises(ConfigError, match="eps"):
        nn.BatchNorm2d(3, eps=0)
    assert repr(nn.BatchNorm2d(16)) == "BatchNorm2d(16)"
    assert repr(nn.BatchNorm1d(4, momentum=None, affine=False)) == "BatchNorm1d(4, momentum=None, affine=False)"
    assert [n for n, _ in nn.BatchNorm2d(2).named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.BatchNorm2d(2, track_running_stats=False).named_buffers()) == []


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunked_passes_match_torch_on_a_batch_of_many_chunks(torch, monkeypatch, dtype, threads):
    """A batch of many cache-sized chunks (shared out to 2 threads too), with a large mean
    (cancellation check)."""
    norm = importlib.import_module("convscope.functional.norm")
    monkeypatch.setattr(norm, "_CHUNK_BYTES", 1 << 16)
    rng = np.random.default_rng(9)
    shape = (40, 8, 32, 32)
    assert shape[0] * 8 * 32 * 32 * np.dtype(dtype).itemsize > 16 * norm._CHUNK_BYTES
    ours = nn.BatchNorm2d(8, dtype=dtype)
    ours.weight.data[...] = rng.uniform(0.5, 1.5, 8)
    theirs = torch.nn.BatchNorm2d(8).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data))
    x = (rng.standard_normal(shape) * 3 + 50).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(dy))
    with norm.parallel.num_threads(threads):
        y = ours(x)
        dx = ours.backward(dy)
    assert_close(y, yt.detach().numpy(), kind="backward", context="forward")
    assert_close(dx, xt.grad.numpy(), kind="backward", context="dx")
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), kind="backward", context="dweight")
    assert_close(ours.running_var, theirs.running_var.numpy(), context="running_var")


@pytest.mark.parametrize("training", [True, False])
def test_sequential_fuses_batchnorm_and_relu_without_changing_results(training):
    """Sequential runs BatchNorm -> ReLU as one pass; outputs and every gradient equal the
    layers run one by one (the ReLU keeps relu(x) for its backward)."""
    rng = np.random.default_rng(12)

    def make():
        torch_free = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=1, dtype=np.float64),
                                   nn.BatchNorm2d(3, dtype=np.float64), nn.ReLU())
        torch_free[1].weight.data[...] = [0.5, -1.0, 2.0]
        torch_free[1].bias.data[...] = [0.1, 0.0, -0.3]
        return torch_free.train(training)

    x = rng.standard_normal((4, 2, 5, 5))
    dy = rng.standard_normal((4, 3, 5, 5))
    fused, plain = make(), make()
    y = fused(x)
    dx = fused.backward(dy)
    h = x
    for layer in plain:  # one by one: no fusion
        h = layer(h)
    g = dy
    for layer in reversed(list(plain)):
        g = layer.backward(g)
    np.testing.assert_array_equal(y, h)
    np.testing.assert_array_equal(dx, g)
    for a, b in zip(fused.parameters(), plain.parameters()):
        np.testing.assert_array_equal(a.grad, b.grad)


def test_relu_backward_from_its_output_equals_from_its_input():
    """Why the fused ReLU may keep relu(x) instead of x: same mask, NaN and +-0 included."""
    from convscope.functional import relu, relu_backward

    z = np.array([-2.0, -0.0, 0.0, 1e-300, 3.0, np.nan, -np.inf, np.inf])
    dy = np.arange(1.0, 9.0)
    np.testing.assert_array_equal(relu_backward(dy, relu(z)), relu_backward(dy, z))


def test_sequential_fusion_rule_is_exact_batchnorm_then_exact_relu(monkeypatch):
    """The rule of nn.container.fuses_batch_norm_relu: the fused pass runs for BatchNorm1d/2d
    directly followed by ReLU, and a subclass that changes forward keeps its own forward."""
    import convscope.functional as F
    from convscope.nn.container import fuses_batch_norm_relu

    calls = []
    fused = F.batch_norm_relu
    monkeypatch.setattr(F, "batch_norm_relu", lambda *a, **k: calls.append(1) or fused(*a, **k))

    class Shifted(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) + 1.0

    x = np.random.default_rng(3).standard_normal((4, 2, 3, 3)).astype(np.float32)
    nn.Sequential(nn.BatchNorm2d(2), nn.ReLU())(x)
    assert calls == [1]
    y = nn.Sequential(Shifted(2), nn.ReLU())(x)
    assert calls == [1] and not fuses_batch_norm_relu(Shifted(2), nn.ReLU())
    np.testing.assert_array_equal(y, np.maximum(nn.BatchNorm2d(2)(x) + 1.0, 0))
    nn.Sequential(nn.BatchNorm1d(2), nn.ReLU())(x[:, :, 0])
    assert calls == [1, 1]
    nn.Sequential(nn.BatchNorm2d(2), nn.Sigmoid())(x)
    assert calls == [1, 1]
