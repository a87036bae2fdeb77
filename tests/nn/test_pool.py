"""MaxPool/AvgPool/BlurPool 1d/2d/3d: shapes, delegation, gradients, PyTorch, errors."""

from __future__ import annotations

import numpy as np
import pytest

import convscope.functional as F
from convscope import nn
from convscope.errors import ConfigError, ShapeError, StateError
from convscope.testing import assert_close

SHAPE_TABLE = [
    (nn.MaxPool2d, (2,), {}, (1, 3, 28, 28), (1, 3, 14, 14)),
    (nn.MaxPool2d, (3,), {"stride": 2, "padding": 1}, (1, 1, 7, 7), (1, 1, 4, 4)),
    (nn.MaxPool2d, (2,), {"ceil_mode": True}, (1, 1, 5, 5), (1, 1, 3, 3)),
    (nn.MaxPool2d, (2,), {"stride": 1, "dilation": 2}, (1, 1, 5, 5), (1, 1, 3, 3)),
    (nn.MaxPool2d, (2,), {}, (3, 4, 4), (3, 2, 2)),  # unbatched
    (nn.MaxPool1d, (2,), {}, (2, 3, 9), (2, 3, 4)),
    (nn.MaxPool3d, (2,), {}, (1, 1, 4, 4, 4), (1, 1, 2, 2, 2)),
    (nn.AvgPool2d, (2,), {}, (1, 1, 4, 4), (1, 1, 2, 2)),
    (nn.AvgPool2d, (3,), {"stride": 2, "padding": 1, "count_include_pad": False}, (1, 2, 7, 7), (1, 2, 4, 4)),
    (nn.AvgPool1d, (3,), {"stride": 1}, (1, 1, 5), (1, 1, 3)),
    (nn.AvgPool3d, (2,), {"ceil_mode": True}, (1, 1, 5, 5, 5), (1, 1, 3, 3, 3)),
    (nn.BlurPool2d, (3,), {}, (1, 3, 8, 8), (1, 3, 4, 4)),
    (nn.BlurPool2d, (3,), {"stride": (1, 2)}, (1, 3, 5, 5), (1, 3, 5, 3)),
    (nn.BlurPool1d, (2,), {"filter_size": 3}, (1, 2, 7), (1, 2, 4)),
    (nn.BlurPool3d, (1,), {"padding_mode": "zeros"}, (1, 1, 4, 4, 4), (1, 1, 2, 2, 2)),
]


@pytest.mark.parametrize("cls,args,kwargs,in_shape,out_shape", SHAPE_TABLE)
def test_shape_table(cls, args, kwargs, in_shape, out_shape):
    pool = cls(*args, **kwargs)
    x = np.random.default_rng(0).standard_normal(in_shape).astype(np.float32)
    assert pool(x).shape == out_shape
    assert pool.output_shape(in_shape) == out_shape
    assert pool.num_parameters() == 0
    assert pool.backward(np.ones(out_shape, dtype=np.float32)).shape == in_shape


def test_modules_delegate_to_functional():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 6))
    mp = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
    y = mp(x)
    assert np.array_equal(y, F.max_pool(x, 3, 2, 1, 1, True))
    dy = rng.standard_normal(y.shape)
    assert np.array_equal(mp.backward(dy), F.max_pool_backward(dy, x, 3, 2, 1, 1, True))
    ap = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False)
    y = ap(x)
    assert np.array_equal(y, F.avg_pool(x, 2, 1, 1, False, False))
    dy = rng.standard_normal(y.shape)
    assert np.array_equal(ap.backward(dy), F.avg_pool_backward(dy, x, 2, 1, 1, False, False))
    bp = nn.BlurPool2d(3, filter_size=5, stride=2, padding_mode="replicate")
    y = bp(x)
    assert np.array_equal(y, F.blur_pool(x, 5, 2, "replicate"))
    dy = rng.standard_normal(y.shape)
    assert np.array_equal(bp.backward(dy), F.blur_pool_backward(dy, x, 5, 2, "replicate"))


@pytest.mark.parametrize(
    "pool,in_shape",
    [
        (nn.MaxPool2d(2), (2, 2, 4, 4)),
        (nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (1, 2, 6, 5)),
        (nn.MaxPool1d(2, stride=1, dilation=2), (1, 2, 6)),
        (nn.MaxPool3d(2), (1, 1, 4, 2, 2)),
        (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (1, 2, 5, 5)),
        (nn.AvgPool1d(2, ceil_mode=True), (2, 1, 5)),
        (nn.AvgPool3d(2, padding=1), (1, 1, 3, 3, 2)),
        (nn.BlurPool2d(2), (1, 2, 6, 5)),
        (nn.BlurPool1d(1, filter_size=3, padding_mode="circular"), (2, 1, 7)),
        (nn.BlurPool3d(1, filter_size=2), (1, 1, 3, 4, 3)),
    ],
)
def test_gradients_match_finite_differences(gradcheck_module, pool, in_shape):
    # distinct, well-separated values: no max-pool ties near the finite-difference step
    rng = np.random.default_rng(3)
    x = rng.permutation(np.arange(np.prod(in_shape), dtype=np.float64)).reshape(in_shape) * 0.1
    errors = gradcheck_module(pool, x)
    assert errors["x"] < 1e-7, errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "name,kwargs,ndim",
    [
        ("MaxPool", dict(kernel_size=2), 2),
        ("MaxPool", dict(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True), 2),
        ("MaxPool", dict(kernel_size=2, stride=1, dilation=2), 1),
        ("MaxPool", dict(kernel_size=2, stride=2, padding=1), 3),
        ("AvgPool", dict(kernel_size=2), 2),
        ("AvgPool", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False), 2),
        ("AvgPool", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), 2),
        ("AvgPool", dict(kernel_size=2, ceil_mode=True), 1),
        ("AvgPool", dict(kernel_size=2, padding=1), 3),
    ],
)
def test_matches_torch(torch, name, kwargs, ndim, dtype):
    ours = getattr(nn, f"{name}{ndim}d")(**kwargs)
    theirs = getattr(torch.nn, f"{name}{ndim}d")(**kwargs)
    rng = np.random.default_rng(5)
    shape = (2, 3) + (7,) * ndim
    x = rng.permutation(np.arange(np.prod(shape))).reshape(shape).astype(dtype) / 10
    xt = torch.from_numpy(x).requires_grad_(True)
    y = ours(x)
    yt = theirs(xt)
    assert_close(y, yt.detach().numpy(), context=f"{name}{ndim}d {kwargs} forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(dy))
    assert_close(ours.backward(dy), xt.grad.numpy(), kind="backward", context="dx")


def test_maxpool_tie_gradient_goes_to_first_entry_like_torch(torch):
    x = np.ones((1, 1, 2, 2))
    pool = nn.MaxPool2d(2)
    pool(x)
    dx = pool.backward(np.ones((1, 1, 1, 1)))
    xt = torch.from_numpy(x).requires_grad_(True)
    torch.nn.MaxPool2d(2)(xt).sum().backward()
    assert np.array_equal(dx, xt.grad.numpy())
    assert dx[0, 0, 0, 0] == 1 and dx.sum() == 1


def test_blurpool_is_depthwise_binomial_convolution(torch):
    """BlurPool2d == reflect-pad + depthwise conv with the binomial filter + stride (Zhang 2019)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    y = nn.BlurPool2d(3)(x)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    f2 = (f[:, None] * f[None, :]) / f.sum() ** 2
    weight = f2.expand(3, 1, 4, 4).contiguous()
    xt = torch.nn.functional.pad(torch.from_numpy(x), (1, 2, 1, 2), mode="reflect")
    ref = torch.nn.functional.conv2d(xt, weight, stride=2, groups=3)
    assert_close(y, ref.numpy(), context="blur pool vs torch depthwise conv")


def test_blurpool_reduces_shift_sensitivity():
    """Notes 9.2.6: a one-pixel shift changes strided max pooling much more than blur pooling."""
    x = np.zeros((1, 1, 16))
    x[0, 0, 7] = 1.0
    shifted = np.roll(x, 1, axis=-1)

    def change(pool):
        a, b = pool(x), pool(shifted)
        return float(np.abs(a - b).sum())

    plain = change(nn.MaxPool1d(2))  # spike stays or moves with the grid
    blur = change(nn.Sequential(nn.MaxPool1d(2, stride=1), nn.BlurPool1d(1)))
    assert plain > 0.9 and blur < 0.7 * plain


def test_errors():
    with pytest.raises(StateError,
                       match="backward called before forward on MaxPool2d; run forward on this module first."):
        nn.MaxPool2d(2).backward(np.zeros((1, 1, 1, 1)))
    with pytest.raises(ConfigError, match="half the window"):
        nn.MaxPool2d(2, padding=2)(np.zeros((1, 1, 6, 6)))
    with pytest.raises(ShapeError, match="does not fit"):
        nn.MaxPool2d(5)(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ShapeError, match="4 or 3 axes"):
        nn.AvgPool2d(2)(np.zeros((4, 4)))
    with pytest.raises(ConfigError, match="stride"):
        nn.AvgPool2d(2, stride=0)
    with pytest.raises(ConfigError, match="filter_size must be between 1 and 7"):
        nn.BlurPool2d(3, filter_size=9)
    with pytest.raises(ShapeError, match=r"BlurPool2d expected 3 input channels.*transpose\(0, 3, 1, 2\)"):
        nn.BlurPool2d(3)(np.zeros((1, 8, 8, 3)))


def test_repr():
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=(2, 2))"
    assert repr(nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)) == (
        "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True)")
    assert repr(nn.AvgPool1d(2, count_include_pad=False)) == "AvgPool1d(kernel_size=(2,), count_include_pad=False)"
    assert repr(nn.BlurPool2d(8)) == "BlurPool2d(8)"
    assert repr(nn.BlurPool2d(8, filter_size=3, stride=1, padding_mode="zeros")) == (
        "BlurPool2d(8, filter_size=3, stride=(1, 1), padding_mode='zeros')")
