"""The plain-loop backward passes of functional.reference against the fast paths.

reference_conv_backward (Key Equation 68 and the input derivative per window),
reference_max_pool_backward (Key Equation 69: one-hot routing) and
reference_avg_pool_backward, on odd geometries: stride, dilation, groups, every padding mode,
asymmetric padding, ceil_mode, ties, 1-D to 3-D, float32 and float64. The loops themselves
are held to PyTorch in tests/reference/test_torch_reference_backward.py.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from convscope.errors import ShapeError
from convscope.functional import avg_pool_backward, conv, conv_backward, max_pool, max_pool_backward
from convscope.functional.reference import (
    reference_avg_pool_backward,
    reference_conv_backward,
    reference_max_pool_backward,
)
from convscope.testing import assert_close


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


CONV_CASES = [
    # (x shape, w shape, kwargs)
    ((2, 3, 7, 6), (4, 3, 3, 3), dict(padding=1)),
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 3), padding=(1, 0), groups=2)),
    ((2, 2, 13), (3, 2, 4), dict(stride=2, dilation=2, padding=3, padding_mode="reflect")),
    ((1, 2, 5, 4, 4), (2, 2, 3, 2, 2), dict(padding=1, flip=True)),
    ((2, 3, 7, 7), (2, 3, 3, 3), dict(stride=2, padding="same", padding_mode="circular")),
    ((2, 2, 8, 6), (3, 2, 2, 3), dict(padding=((2, 0), (1, 1)), padding_mode="replicate")),
    ((3, 4, 11), (4, 1, 3), dict(groups=4, dilation=3)),  # depthwise
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV_CASES)
def test_conv_backward_loops_equal_the_fast_path(x_shape, w_shape, kwargs, dtype):
    rng = _rng("conv", x_shape, w_shape)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    dy = rng.standard_normal(conv(x, w, **kwargs).shape).astype(dtype)
    want = conv_backward(dy, x, w, **kwargs)
    got = reference_conv_backward(dy, x, w, **kwargs)
    for name, g, e in zip(("dx", "dw", "db"), got, want):
        assert g.dtype == e.dtype and g.shape == e.shape, name
        assert_close(g, e, kind="backward", context=name)


def test_conv_backward_loops_notes_9_31():
    """Key Equation 68's matrix (9.31): with dy one-hot at output i, dW is window v_i."""
    x = np.arange(1.0, 7.0).reshape(1, 1, 6)
    w = np.zeros((1, 1, 4))
    for i in range(3):
        dy = np.zeros((1, 1, 3))
        dy[0, 0, i] = 1.0
        _, dw, db = reference_conv_backward(dy, x, w)
        np.testing.assert_array_equal(dw[0, 0], x[0, 0, i : i + 4])  # X_{i+1} .. X_{i+4}
        np.testing.assert_array_equal(db, [1.0])


POOL_CASES = [
    # (x shape, kwargs)
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 2, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 1, 5, 6, 4), dict(kernel_size=(2, 3, 2), stride=(1, 2, 2))),
    ((2, 2, 10, 10), dict(kernel_size=3, stride=1, padding=1)),  # overlapping windows
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kwargs", POOL_CASES + [((1, 2, 12), dict(kernel_size=3, dilation=2, padding=1))])
def test_max_pool_backward_loops_equal_the_fast_path(x_shape, kwargs, dtype):
    rng = _rng("max", x_shape)
    x = rng.integers(-3, 3, x_shape).astype(dtype)  # many ties: the first maximum is chosen
    dy = rng.standard_normal(max_pool(x, **kwargs).shape).astype(dtype)
    np.testing.assert_array_equal(reference_max_pool_backward(dy, x, **kwargs), max_pool_backward(dy, x, **kwargs))


def test_max_pool_backward_loops_route_to_the_notes_maxima():
    """Notes 9.12 with dy = 1: the one-hot derivative of every window (9.35)."""
    x = np.array([[1., 3., -9., -22.], [44., -10., -11., -1.], [0., 10., 4., -3.], [11., 9., 321., 99.]])
    dx = reference_max_pool_backward(np.ones((1, 1, 2, 2)), x[None, None], 2)
    np.testing.assert_array_equal(dx[0, 0], (x == 44) | (x == -1) | (x == 11) | (x == 321))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kwargs", POOL_CASES)
def test_avg_pool_backward_loops_equal_the_fast_path(x_shape, kwargs, dtype, count_include_pad):
    rng = _rng("avg", x_shape)
    x = rng.standard_normal(x_shape).astype(dtype)
    kwargs = dict(kwargs, count_include_pad=count_include_pad)
    dy = rng.standard_normal(max_pool(x, kwargs["kernel_size"], kwargs.get("stride"), kwargs.get("padding", 0),
                                      ceil_mode=kwargs.get("ceil_mode", False)).shape).astype(dtype)
    assert_close(reference_avg_pool_backward(dy, x, **kwargs), avg_pool_backward(dy, x, **kwargs), kind="backward")


@pytest.mark.parametrize("loop, args", [
    (reference_conv_backward, (np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))),
    (reference_max_pool_backward, (np.ones((1, 1, 4, 4)), 2)),
    (reference_avg_pool_backward, (np.ones((1, 1, 4, 4)), 2)),
])
def test_loops_refuse_a_dy_of_the_wrong_shape(loop, args):
    with pytest.raises(ShapeError, match="dy"):
        loop(np.ones((1, 1, 5, 5)), *args)
