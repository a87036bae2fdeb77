"""Conv1d/2d/3d and ConvNd: shapes, delegation to functional, gradients, PyTorch, errors."""

from __future__ import annotations

import numpy as np
import pytest

import convscope.functional as F
from convscope import nn
from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError, StateError
from convscope.testing import assert_close

# (class, args, kwargs, input shape, expected output shape, parameter count)
SHAPE_TABLE = [
    (nn.Conv2d, (1, 6, 5), {}, (1, 1, 28, 28), (1, 6, 24, 24), 6 * 25 + 6),
    (nn.Conv2d, (6, 16, 5), {}, (2, 6, 12, 12), (2, 16, 8, 8), 16 * 6 * 25 + 16),
    (nn.Conv2d, (3, 8, 3), {"stride": 2, "padding": 1}, (1, 3, 32, 32), (1, 8, 16, 16), 224),
    (nn.Conv2d, (4, 8, 3), {"groups": 2, "bias": False}, (1, 4, 7, 7), (1, 8, 5, 5), 8 * 2 * 9),
    (nn.Conv2d, (1, 1, 3), {"dilation": 2}, (1, 1, 9, 9), (1, 1, 5, 5), 10),
    (nn.Conv2d, (2, 3, (3, 5)), {"padding": "same"}, (1, 2, 6, 7), (1, 3, 6, 7), 3 * 2 * 15 + 3),
    (nn.Conv2d, (2, 3, 3), {"padding": "same", "stride": 2}, (1, 2, 7, 8), (1, 3, 4, 4), 57),
    (nn.Conv2d, (1, 1, 3), {"padding": ((0, 1), (2, 0))}, (1, 1, 5, 5), (1, 1, 4, 5), 10),
    (nn.Conv2d, (2, 2, 3), {"padding": 1, "padding_mode": "reflect"}, (1, 2, 4, 4), (1, 2, 4, 4), 38),
    (nn.Conv2d, (3, 2, 3), {}, (3, 8, 8), (2, 6, 6), 56),  # one unbatched sample
    (nn.Conv1d, (1, 1, 3), {}, (1, 1, 10), (1, 1, 8), 4),  # notes 9.1.4
    (nn.Conv1d, (2, 4, 3), {"stride": 2, "padding": 1}, (3, 2, 9), (3, 4, 5), 28),
    (nn.Conv3d, (2, 4, 3), {"padding": 1}, (1, 2, 4, 4, 4), (1, 4, 4, 4, 4), 4 * 2 * 27 + 4),
    (nn.Conv3d, (1, 2, (1, 2, 3)), {"stride": (1, 2, 1)}, (2, 1, 3, 4, 5), (2, 2, 3, 2, 3), 14),
]


@pytest.mark.parametrize("cls,args,kwargs,in_shape,out_shape,count", SHAPE_TABLE)
def test_shape_table(cls, args, kwargs, in_shape, out_shape, count):
    conv = cls(*args, **kwargs, rng=0)
    y = conv(np.zeros(in_shape, dtype=np.float32))
    assert y.shape == out_shape
    assert conv.output_shape(in_shape) == out_shape
    assert conv.num_parameters() == count
    assert conv.backward(np.ones(out_shape, dtype=np.float32)).shape == in_shape


def test_convnd_matches_conv2d_and_handles_4d():
    a = nn.ConvNd(2, 2, 3, 3, stride=2, padding=1, rng=5)
    b = nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=5)
    assert np.array_equal(a.weight.data, b.weight.data)  # same init stream for the same shape
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 6)).astype(np.float32)
    assert np.array_equal(a(x), b(x))
    conv4 = nn.ConvNd(4, 1, 2, 2, rng=0)
    assert conv4(np.ones((1, 1, 3, 3, 3, 3), dtype=np.float32)).shape == (1, 2, 2, 2, 2, 2)


@pytest.mark.parametrize("flip", [False, True])
def test_forward_backward_delegate_to_functional(flip):
    rng = np.random.default_rng(1)
    conv = nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2,
                     padding_mode="circular", flip=flip, rng=2, dtype=np.float64)
    args = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2,
                padding_mode="circular", flip=flip)
    x = rng.standard_normal((3, 4, 7, 8))
    y = conv(x)
    assert np.array_equal(y, F.conv(x, conv.weight.data, conv.bias.data, **args))
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    ref_dx, ref_dw, ref_db = F.conv_backward(dy, x, conv.weight.data, **args)
    assert np.array_equal(dx, ref_dx)
    assert np.array_equal(conv.weight.grad, ref_dw)
    assert np.array_equal(conv.bias.grad, ref_db)


def test_gradients_accumulate_and_zero_grad_resets():
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(1, 2, 3, rng=0, dtype=np.float64)
    x = rng.standard_normal((2, 1, 5, 5))
    dy = rng.standard_normal((2, 2, 3, 3))
    conv(x)
    conv.backward(dy)
    once = conv.weight.grad.copy(), conv.bias.grad.copy()
    conv(x)
    conv.backward(dy)
    assert_close(conv.weight.grad, 2 * once[0], kind="backward")
    assert_close(conv.bias.grad, 2 * once[1], kind="backward")
    conv.zero_grad()
    assert not conv.weight.grad.any() and not conv.bias.grad.any()


@pytest.mark.parametrize(
    "cls,args,kwargs,in_shape",
    [
        (nn.Conv1d, (2, 3, 3), {"stride": 2, "padding": 1}, (2, 2, 7)),
        (nn.Conv2d, (2, 4, 3), {"padding": 1, "groups": 2}, (2, 2, 5, 4)),
        (nn.Conv2d, (1, 2, 2), {"dilation": 2, "padding_mode": "reflect", "padding": 1}, (1, 1, 5, 5)),
        (nn.Conv2d, (2, 2, 3), {"flip": True, "padding": "same", "bias": False}, (1, 2, 4, 4)),
        (nn.Conv2d, (2, 3, 3), {}, (2, 5, 5)),  # unbatched
        (nn.Conv3d, (1, 2, 2), {"stride": (1, 2, 1)}, (1, 1, 3, 4, 3)),
    ],
)
def test_gradients_match_finite_differences(gradcheck_module, cls, args, kwargs, in_shape):
    conv = cls(*args, **kwargs, rng=3, dtype=np.float64)
    x = np.random.default_rng(4).standard_normal(in_shape)
    errors = gradcheck_module(conv, x)
    assert set(errors) == {"x", "weight"} | ({"bias"} if conv.bias is not None else set())
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "ndim,kwargs",
    [
        (1, dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1)),
        (2, dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(1, 2), padding=(1, 0),
                 dilation=(2, 1), groups=2)),
        (2, dict(in_channels=2, out_channels=3, kernel_size=3, padding=1, padding_mode="reflect",
                 bias=False)),
        (2, dict(in_channels=2, out_channels=2, kernel_size=3, padding="same",
                 padding_mode="circular")),
        (2, dict(in_channels=3, out_channels=3, kernel_size=3, padding=2, groups=3,
                 padding_mode="replicate")),
        (3, dict(in_channels=2, out_channels=2, kernel_size=2, stride=2, padding=1)),
    ],
)
def test_matches_torch(torch, ndim, kwargs, dtype):
    tnn = torch.nn
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[ndim]
    tcls = {1: tnn.Conv1d, 2: tnn.Conv2d, 3: tnn.Conv3d}[ndim]
    ours = cls(**kwargs, rng=0, dtype=dtype)
    tkw = {k: v for k, v in kwargs.items()}
    theirs = tcls(**tkw).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data))
        if ours.bias is not None:
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, kwargs["in_channels"]) + (6,) * ndim).astype(dtype)
    y = ours(x)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    assert_close(y, yt.detach().numpy(), kind="forward", context=f"forward {kwargs}")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ours.backward(dy)
    yt.backward(torch.from_numpy(dy))
    assert_close(dx, xt.grad.numpy(), kind="backward", context="dx")
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), kind="backward", context="dw")
    if ours.bias is not None:
        assert_close(ours.bias.grad, theirs.bias.grad.numpy(), kind="backward", context="db")


def test_default_init_is_pytorch_fan_in_uniform():
    conv = nn.Conv2d(4, 64, 3, groups=2, rng=0)
    bound = 1 / np.sqrt(2 * 9)  # fan_in = C_in/groups * k*k
    w = conv.weight.data
    assert w.dtype == np.float32 and np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.95 * bound  # uses the whole range
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound  # U(-b, b) has std b/sqrt(3)
    assert np.abs(conv.bias.data).max() <= bound
    assert np.array_equal(nn.Conv2d(4, 64, 3, groups=2, rng=0).weight.data, w)
    assert not np.array_equal(nn.Conv2d(4, 64, 3, groups=2, rng=1).weight.data, w)
    g = np.random.default_rng(9)
    assert nn.Conv2d(1, 1, 3, rng=g).weight.data.shape == (1, 1, 3, 3)


def test_manual_seed_makes_default_init_repeatable():
    nn.init.manual_seed(123)
    a = nn.Conv2d(1, 2, 3).weight.data.copy()
    nn.init.manual_seed(123)
    assert np.array_equal(nn.Conv2d(1, 2, 3).weight.data, a)


def test_dtype_float64_and_mismatch_error():
    conv = nn.Conv2d(1, 1, 3, rng=0, dtype=np.float64)
    assert conv.weight.dtype == np.float64 and conv.bias.dtype == np.float64
    with pytest.raises(DTypeError, match=r"float64.*float32.*astype"):
        conv(np.zeros((1, 1, 4, 4), dtype=np.float32))
    with pytest.raises(DTypeError, match="float32 or float64"):
        nn.Conv2d(1, 1, 3, dtype=np.int32)
    with pytest.raises(DTypeError, match="integer"):
        conv(np.zeros((1, 1, 4, 4), dtype=np.int64))


def test_channel_mismatch_suggests_channels_last_transpose():
    conv = nn.Conv2d(3, 4, 3, rng=0)
    with pytest.raises(ShapeError) as info:
        conv(np.zeros((8, 32, 32, 3), dtype=np.float32))
    msg = str(info.value)
    assert "Conv2d expected 3 input channels on axis 1" in msg
    assert "(8, 32, 32, 3)" in msg and "x.transpose(0, 3, 1, 2)" in msg
    with pytest.raises(ShapeError, match=r"axis 0.*transpose\(2, 0, 1\)"):
        conv(np.zeros((32, 32, 3), dtype=np.float32))  # unbatched channels-last
    with pytest.raises(ShapeError, match="4 or 3 axes"):
        conv(np.zeros((3, 32), dtype=np.float32))


def test_kernel_too_large_reports_the_arithmetic():
    conv = nn.Conv2d(1, 1, 5, padding=0, rng=0)
    with pytest.raises(ShapeError, match=r"kernel size 5 does not fit.*size 4"):
        conv(np.zeros((1, 1, 4, 4), dtype=np.float32))


@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), ConfigError,
         "groups=2 must divide in_channels=3"),
        (dict(in_channels=4, out_channels=3, kernel_size=3, groups=2), ConfigError, "out_channels=3"),
        (dict(in_channels=1, out_channels=1, kernel_size=(2, 0)), ConfigError, "kernel_size"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, stride=0), ConfigError, "stride"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, padding=-1), ConfigError, "padding"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, padding_mode="mirror"), ConfigError, "padding_mode"),
        (dict(in_channels=0, out_channels=1, kernel_size=3), ConfigError, "in_channels"),
        (dict(in_channels=1.5, out_channels=1, kernel_size=3), ArgumentTypeError, "in_channels"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, bias="yes"), ArgumentTypeError, "bias"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, rng="seed"), ArgumentTypeError, "rng"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        nn.Conv2d(**kwargs)


def test_backward_before_forward_and_twice():
    conv = nn.Conv2d(1, 1, 3, rng=0)
    with pytest.raises(StateError, match="backward called before forward on Conv2d; run forward"):
        conv.backward(np.zeros((1, 1, 2, 2), dtype=np.float32))
    conv(np.zeros((1, 1, 4, 4), dtype=np.float32))
    conv.backward(np.zeros((1, 1, 2, 2), dtype=np.float32))
    with pytest.raises(StateError, match="one backward"):
        conv.backward(np.zeros((1, 1, 2, 2), dtype=np.float32))


def test_second_forward_replaces_saved_input():
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(1, 1, 3, rng=0, dtype=np.float64)
    x1, x2 = rng.standard_normal((2, 1, 1, 5, 5))
    dy = rng.standard_normal((1, 1, 3, 3))
    conv(x1)
    conv(x2)
    conv.backward(dy)
    _, dw, _ = F.conv_backward(dy, x2, conv.weight.data)
    assert_close(conv.weight.grad, dw, kind="backward")


def test_backward_checks_dy_shape():
    conv = nn.Conv2d(1, 2, 3, rng=0)
    conv(np.zeros((1, 1, 5, 5), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"dy must have the shape of the forward output \(1, 2, 3, 3\)"):
        conv.backward(np.zeros((1, 2, 3), dtype=np.float32))


def test_repr_shows_non_default_arguments_only():
    assert repr(nn.Conv2d(1, 6, 5)) == "Conv2d(1, 6, kernel_size=(5, 5))"
    text = repr(nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2, bias=False,
                          padding_mode="reflect", flip=True, dtype=np.float64))
    assert text == ("Conv2d(2, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), "
                    "dilation=(2, 2), groups=2, bias=False, padding_mode='reflect', flip=True, "
                    "dtype=float64)")
    assert "padding=((0, 1), (1, 1))" in repr(nn.Conv2d(1, 1, 2, padding=((0, 1), 1)))
    assert repr(nn.ConvNd(1, 1, 1, 3)) == "ConvNd(1, 1, kernel_size=(3,))"


def test_learns_a_known_kernel_back_by_gradient_descent():
    """End to end: recover an edge filter from input/output pairs with plain GD on MSE."""
    rng = np.random.default_rng(0)
    target = nn.Conv2d(1, 1, 3, padding=1, rng=0, dtype=np.float64)
    target.weight.data[...] = [[[[1, 0, -1], [2, 0, -2], [1, 0, -1]]]]  # Sobel
    target.bias.data[...] = 0.5
    x = rng.standard_normal((16, 1, 10, 10))
    y = target(x)
    model = nn.Conv2d(1, 1, 3, padding=1, rng=1, dtype=np.float64)
    loss = nn.MSELoss()
    first = loss(model(x), y)
    for _ in range(150):
        model.zero_grad()
        value = loss(model(x), y)
        model.backward(loss.backward())
        for p in model.parameters():
            p.data -= 0.3 * p.grad
    assert value < 1e-10 < first
    assert_close(model.weight.data, target.weight.data, dtype=np.float32, context="learned kernel")
    assert abs(model.bias.data[0] - 0.5) < 1e-5
