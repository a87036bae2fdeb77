"""Flatten: shapes, order (as PyTorch), the backward as the inverse reshape, errors."""

import numpy as np
import pytest

from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError
from convscope.functional import flatten, flatten_backward
from convscope.testing import gradcheck, tolerance

GC_TOL = tolerance(np.float64, "gradcheck")[0]


@pytest.mark.parametrize(
    "shape,start_dim,expected",
    [
        ((8, 16, 5, 5), 1, (8, 400)),
        ((8, 16, 5, 5), 0, (3200,)),
        ((8, 16, 5, 5), 2, (8, 16, 25)),
        ((8, 16, 5, 5), -1, (8, 16, 5, 5)),
        ((8, 16, 5, 5), -3, (8, 400)),
        ((4, 3, 10), 1, (4, 30)),
        ((2, 1, 2, 3, 4), 1, (2, 24)),
        ((7,), 0, (7,)),
        ((0, 3, 2), 1, (0, 6)),
    ],
)
def test_shape_table(shape, start_dim, expected):
    x = np.zeros(shape)
    y = flatten(x, start_dim)
    assert y.shape == expected
    assert flatten_backward(y, shape).shape == shape


def test_row_major_order_and_round_trip():
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    y = flatten(x)
    np.testing.assert_array_equal(y[1], np.arange(12.0, 24.0))  # sample 1, channel-major
    np.testing.assert_array_equal(flatten_backward(y, x.shape), x)


def test_results_are_new_arrays_and_dtype_is_kept():
    x = np.ones((2, 3, 4), dtype=np.float32)
    y = flatten(x)
    assert y.dtype == np.float32 and not np.shares_memory(y, x)
    dx = flatten_backward(y, x.shape)
    assert dx.dtype == np.float32 and not np.shares_memory(dx, y)


def test_gradcheck():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 2))
    dy = rng.standard_normal((2, 6))
    assert gradcheck(flatten, lambda g, a: flatten_backward(g, a.shape), [x], dy) < GC_TOL


def test_flatten_errors():
    with pytest.raises(ConfigError, match=r"start_dim must be in \[-3, 2\].*\(2, 3, 4\).*start_dim=3"):
        flatten(np.ones((2, 3, 4)), start_dim=3)
    with pytest.raises(ArgumentTypeError, match=r"start_dim must be an int; got 1.5"):
        flatten(np.ones((2, 3)), start_dim=1.5)
    with pytest.raises(ShapeError, match=r"at least one axis"):
        flatten(np.array(2.0))
    with pytest.raises(DTypeError, match=r"float32 or float64"):
        flatten(np.ones((2, 3), dtype=np.int8))


def test_flatten_backward_errors():
    with pytest.raises(ShapeError,
                       match=r"dy of shape \(2, 11\) is not the flattened form of x_shape "
                             r"\(2, 3, 4\); expected e\.g\. \(2, 12\)"):
        flatten_backward(np.ones((2, 11)), (2, 3, 4))
    with pytest.raises(ShapeError, match=r"not the flattened form"):
        flatten_backward(np.ones((3, 8)), (2, 3, 4))  # same size, wrong split
    with pytest.raises(ArgumentTypeError, match=r"x_shape must be.*non-negative ints; got \(2, -1\)"):
        flatten_backward(np.ones((2, 1)), (2, -1))
    with pytest.raises(ArgumentTypeError, match=r"x_shape"):
        flatten_backward(np.ones(2), None)
    with pytest.raises(ArgumentTypeError, match=r"x_shape"):
        flatten_backward(np.ones(2), ())
