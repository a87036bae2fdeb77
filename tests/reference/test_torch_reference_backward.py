"""The plain-loop backward passes of functional.reference against PyTorch's autograd.

reference_conv_backward (dx, dw, db), reference_max_pool_backward and
reference_avg_pool_backward on a few fixed geometries each (padding modes, stride, dilation,
groups, ceil_mode, count_include_pad) in float64, with a random upstream gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
TF = torch.nn.functional

from convscope.functional.reference import (  # noqa: E402
    reference_avg_pool_backward,
    reference_conv_backward,
    reference_max_pool_backward,
)
from convscope.testing import assert_close  # noqa: E402

TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}
TORCH_MAX = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}
TORCH_AVG = {1: TF.avg_pool1d, 2: TF.avg_pool2d, 3: TF.avg_pool3d}


def _pad_arg(p: int, ndim: int) -> tuple[int, ...]:
    return (p, p) * ndim


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, dilation, groups, mode",
    [
        ((2, 3, 7, 6), (4, 3, 3, 3), 1, 1, 1, 1, "zeros"),
        ((2, 4, 9, 8), (6, 2, 3, 2), 2, 1, 1, 2, "zeros"),
        ((2, 2, 13), (3, 2, 4), 2, 3, 2, 1, "reflect"),
        ((1, 2, 6, 5, 5), (2, 2, 3, 2, 2), 1, 1, 1, 1, "replicate"),
        ((2, 3, 7, 7), (2, 3, 3, 3), 2, 1, 1, 1, "circular"),
    ],
)
def test_conv_backward_loops_match_torch(x_shape, w_shape, stride, padding, dilation, groups, mode):
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    ndim = len(x_shape) - 2
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    inp = xt if mode == "zeros" else TF.pad(xt, _pad_arg(padding, ndim), mode=mode)
    yt = TORCH_CONV[ndim](inp, wt, bt, stride=stride, padding=padding if mode == "zeros" else 0,
                          dilation=dilation, groups=groups)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    dx, dw, db = reference_conv_backward(dy, x, w, stride, padding, dilation, groups, mode)
    assert_close(dx, xt.grad.numpy(), kind="backward", context="dx")
    assert_close(dw, wt.grad.numpy(), kind="backward", context="dw")
    assert_close(db, bt.grad.numpy(), kind="backward", context="db")


@pytest.mark.parametrize(
    "x_shape, kernel, stride, padding, dilation, ceil_mode",
    [
        ((2, 3, 8, 8), 2, 2, 0, 1, False),
        ((2, 2, 9, 7), 3, 2, 1, 1, False),
        ((1, 2, 12), 3, 2, 1, 2, True),
        ((2, 1, 5, 6, 4), 2, 1, 1, 1, False),
    ],
)
def test_max_pool_backward_loops_match_torch(x_shape, kernel, stride, padding, dilation, ceil_mode):
    rng = np.random.default_rng(sum(x_shape))
    ndim = len(x_shape) - 2
    x = rng.permutation(int(np.prod(x_shape))).reshape(x_shape).astype(np.float64)  # no ties
    xt = torch.tensor(x, requires_grad=True)
    yt = TORCH_MAX[ndim](xt, kernel, stride, padding, dilation, ceil_mode)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    got = reference_max_pool_backward(dy, x, kernel, stride, padding, dilation, ceil_mode)
    assert_close(got, xt.grad.numpy(), kind="backward")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(
    "x_shape, kernel, stride, padding, ceil_mode",
    [
        ((2, 3, 8, 8), 2, 2, 0, False),
        ((2, 2, 9, 7), 3, 2, 1, True),
        ((1, 2, 11), 3, 2, 1, True),
        ((2, 1, 5, 6, 4), 2, 1, 1, False),
    ],
)
def test_avg_pool_backward_loops_match_torch(x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    rng = np.random.default_rng(sum(x_shape) + kernel)
    ndim = len(x_shape) - 2
    x = rng.standard_normal(x_shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = TORCH_AVG[ndim](xt, kernel, stride, padding, ceil_mode, count_include_pad)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    got = reference_avg_pool_backward(dy, x, kernel, stride, padding, ceil_mode, count_include_pad)
    assert_close(got, xt.grad.numpy(), kind="backward")
