"""Tests of convscope.functional batch normalisation: batch_norm / batch_norm_backward and
the fused batch_norm_relu pair.

Against PyTorch (forward, every gradient, the running statistics), by finite differences in
float64, the fused pair bit for bit against its two halves, the layer (nn.BatchNorm2d)
against the functional pair, and the errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError
from convscope.functional import (
    batch_norm,
    batch_norm_backward,
    batch_norm_relu,
    batch_norm_relu_backward,
    relu,
    relu_backward,
)
from convscope.testing import assert_close, gradcheck


def _data(shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    w = rng.uniform(0.5, 1.5, c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, w, b, dy


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 7), (3, 2, 5, 4), (2, 2, 3, 3, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_gradients_by_finite_differences(shape, training):
    x, w, b, dy = _data(shape)
    rm, rv = np.full(shape[1], 0.5), np.full(shape[1], 2.0)

    def forward(x, w, b):
        return batch_norm(x, w, b, rm.copy(), rv.copy(), training=training)

    def backward(dy, x, w, b):
        return batch_norm_backward(dy, x, w, rm, rv, training=training)

    assert gradcheck(forward, backward, [x, w, b], dy) < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_matches_torch(dtype, training):
    torch = pytest.importorskip("torch")
    x, w, b, dy = _data((8, 4, 6, 5), dtype)
    rm, rv = np.linspace(-1, 1, 4).astype(dtype), np.linspace(0.5, 2, 4).astype(dtype)
    rm_t, rv_t = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    xt, wt, bt = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, w, b))
    yt = torch.nn.functional.batch_norm(xt, rm_t, rv_t, wt, bt, training=training, momentum=0.3, eps=1e-4)
    yt.backward(torch.from_numpy(dy))
    y, mean, invstd = batch_norm(x, w, b, rm, rv, training=training, momentum=0.3, eps=1e-4, return_stats=True)
    dx, dw, db = batch_norm_backward(dy, x, w, training=training, eps=1e-4, stats=(mean, invstd))
    assert_close(y, yt.detach().numpy(), kind="forward", context="y")
    assert_close(dx, xt.grad.numpy(), kind="backward", context="dx")
    assert_close(dw, wt.grad.numpy(), kind="backward", context="dweight")
    assert_close(db, bt.grad.numpy(), kind="backward", context="dbias")
    assert_close(rm, rm_t.numpy(), context="running_mean")
    assert_close(rv, rv_t.numpy(), context="running_var")


@pytest.mark.parametrize("training", [True, False])
def test_backward_without_stats_works_them_out_again(training):
    x, w, b, dy = _data((5, 3, 4, 4), np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y, mean, invstd = batch_norm(x, w, b, rm.copy(), rv.copy(), training=training, return_stats=True)
    with_stats = batch_norm_backward(dy, x, w, rm, rv, training=training, stats=(mean, invstd))
    without = batch_norm_backward(dy, x, w, rm, rv, training=training)
    for got, want in zip(without, with_stats):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_relu_pair_is_bit_for_bit_its_two_halves(training, dtype):
    x, w, b, dy = _data((6, 3, 8, 8), dtype)
    x[0, 0, 0, 0] = np.nan
    rm, rv = np.zeros(3, dtype), np.ones(3, dtype)
    rm2, rv2 = rm.copy(), rv.copy()
    z, mean, invstd = batch_norm(x, w, b, rm, rv, training=training, return_stats=True)
    y, mean2, invstd2 = batch_norm_relu(x, w, b, rm2, rv2, training=training, return_stats=True)
    np.testing.assert_array_equal(y, relu(z))
    np.testing.assert_array_equal(rm, rm2)
    np.testing.assert_array_equal(rv, rv2)
    want = batch_norm_backward(relu_backward(dy, z), x, w, training=training, stats=(mean, invstd))
    got = batch_norm_relu_backward(dy, y, x, w, training=training, stats=(mean2, invstd2))
    for g, e in zip(got, want):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_the_layer_is_the_functional_pair(momentum):
    x, _, _, dy = _data((4, 3, 5, 5), np.float32)
    layer = nn.BatchNorm2d(3, momentum=momentum)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    for step in (1, 2):
        y = layer(x)
        want, mean, invstd = batch_norm(x, None, None, rm, rv, training=True,
                                        momentum=0.1 if momentum is not None else 1.0 / step,
                                        return_stats=True)
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(layer.running_mean, rm)
        np.testing.assert_array_equal(layer.running_var, rv)
        layer.zero_grad()
        dx = layer.backward(dy)
        want_dx, want_dw, want_db = batch_norm_backward(dy, x, np.ones(3, np.float32), stats=(mean, invstd))
        np.testing.assert_array_equal(dx, want_dx)
        np.testing.assert_array_equal(layer.weight.grad, want_dw)
        np.testing.assert_array_equal(layer.bias.grad, want_db)
    layer.eval()
    np.testing.assert_array_equal(layer(x), batch_norm(x, layer.weight.data, layer.bias.data, rm, rv, training=False))


def test_running_statistics_are_updated_in_place_only_in_training():
    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    rm, rv = np.zeros(2), np.ones(2)
    batch_norm(x, running_mean=rm, running_var=rv, training=False)
    np.testing.assert_array_equal(rm, [0.0, 0.0])
    batch_norm(x, running_mean=rm, running_var=rv, momentum=1.0)
    np.testing.assert_allclose(rm, [2.0, 20.0])
    np.testing.assert_allclose(rv, [2.0, 200.0])  # the unbiased variance: m / (m - 1) = 2


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda x: batch_norm(x[0, 0]), ShapeError, "channel axis"),
        (lambda x: batch_norm(x[:1, :, :1]), ShapeError, "more than one value"),
        (lambda x: batch_norm(x, training=False), ConfigError, "running_mean"),
        (lambda x: batch_norm(x, running_mean=np.zeros(3)), ConfigError, "go together"),
        (lambda x: batch_norm(x, np.ones(2)), ShapeError, "weight"),
        (lambda x: batch_norm(x, np.ones(3, np.float32)), DTypeError, "weight"),
        (lambda x: batch_norm(x, momentum=1.5), ConfigError, "momentum"),
        (lambda x: batch_norm(x, eps=0), ConfigError, "eps"),
        (lambda x: batch_norm(x, training="yes"), ArgumentTypeError, "training"),
        (lambda x: batch_norm(x, running_mean=np.broadcast_to(0.0, (3,)), running_var=np.ones(3)),
         ConfigError, "running_mean"),
        (lambda x: batch_norm_backward(x[:, :2], x), ShapeError, "dy"),
        (lambda x: batch_norm_backward(x, x, stats=(np.zeros(3),)), ArgumentTypeError, "stats"),
        (lambda x: batch_norm_backward(x, x, stats=(np.zeros(3), np.ones(2))), ShapeError, "invstd"),
        (lambda x: batch_norm_relu_backward(x, x[:1], x), ShapeError, "y"),
    ],
)
def test_errors_say_what_was_expected(call, error, words):
    x = np.ones((4, 3, 2))
    with pytest.raises(error, match=words):
        call(x)


@pytest.mark.parametrize("offset", [0.0, 3.0, 1000.0])
def test_float32_gradients_stay_accurate_whatever_the_channel_mean(monkeypatch, offset):
    """sum(dy * (x - mean)) is taken uncentred (one pass) only where |mean| / std is small;
    a channel far from zero (offset 1000, std 1) takes the centred pass. Either way float32
    matches float64 as closely as the centred pass does."""
    import importlib

    norm = importlib.import_module("convscope.functional.norm")
    rng = np.random.default_rng(5)
    x64 = rng.standard_normal((8, 3, 6, 6)) + offset
    dy64 = rng.standard_normal(x64.shape)
    w64 = np.array([1.5, -0.5, 2.0])
    want = batch_norm_backward(dy64, x64, w64, training=True)
    x32, dy32, w32 = (a.astype(np.float32) for a in (x64, dy64, w64))

    calls = []
    real = norm._grad_sums

    def spy(dy, x, mean, invstd):
        calls.append(float(np.max(np.abs(mean) * invstd)) <= norm._UNCENTRED_MAX)
        return real(dy, x, mean, invstd)

    monkeypatch.setattr(norm, "_grad_sums", spy)
    got = batch_norm_backward(dy32, x32, w32, training=True)
    assert calls == [offset < 100]  # the one-pass form where the mean is a few std at most
    monkeypatch.setattr(norm, "_UNCENTRED_MAX", -1.0)  # always centred
    centred = batch_norm_backward(dy32, x32, w32, training=True)
    for name, g, c, w in zip(("dx", "dweight", "dbias"), got, centred, want):
        scale = np.abs(w).max()
        err, err_centred = np.abs(g - w).max() / scale, np.abs(c - w).max() / scale
        assert err <= 2 * err_centred + 1e-6, (name, err, err_centred)
