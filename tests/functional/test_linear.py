"""Linear (fully connected) layer: the notes' 9.22, gradients, dtypes and shape errors."""

import numpy as np
import pytest

from convscope.errors import DTypeError, ShapeError
from convscope.functional import linear, linear_backward
from convscope.testing import assert_close, gradcheck, tolerance

GC_TOL = tolerance(np.float64, "gradcheck")[0]


def test_notes_9_22_derivative_of_fc_output_with_respect_to_its_input_is_w2():
    # The notes: A^2 = (W^2)^T A^1 with W^2 of shape (m x 1), so dA^2/dA^1 = W^2.
    # convscope's weight is w = (W^2)^T, of shape (1, m).
    W2 = np.array([[0.5], [-2.0], [3.0]])
    a1 = np.array([[1.0, 4.0, -1.0]])  # one sample, a row
    a2 = linear(a1, W2.T)
    np.testing.assert_array_equal(a2, (W2.T @ a1.T).T)  # (W^2)^T A^1
    dx, dw, db = linear_backward(np.array([[1.0]]), a1, W2.T)
    np.testing.assert_array_equal(dx[0], W2[:, 0])
    np.testing.assert_array_equal(dw, a1)  # dA^2/dW^2 = A^1
    np.testing.assert_array_equal(db, [1.0])


def test_forward_values_with_and_without_bias():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, -1.0]])
    w = np.array([[1.0, 1.0], [2.0, -1.0], [0.0, 0.5]])
    b = np.array([0.5, 0.0, -1.0])
    expected = np.array([[3.0, 0.0, 1.0], [7.0, 2.0, 2.0], [-1.0, 1.0, -0.5]])
    np.testing.assert_array_equal(linear(x, w), expected)
    np.testing.assert_array_equal(linear(x, w, b), expected + b)


def test_backward_sums_over_the_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3))
    w = rng.standard_normal((2, 3))
    dy = rng.standard_normal((5, 2))
    dx, dw, db = linear_backward(dy, x, w)
    per_sample_dw = sum(np.outer(dy[i], x[i]) for i in range(5))
    assert_close(dw, per_sample_dw, kind="backward", context="dw = sum_i dy_i x_i^T")
    assert_close(db, dy.sum(axis=0), kind="backward", context="db")
    assert_close(dx, np.stack([w.T @ dy[i] for i in range(5)]), kind="backward", context="dx")


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_x_w_b(bias):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5))
    w = rng.standard_normal((3, 5))
    b = rng.standard_normal(3)
    dy = rng.standard_normal((4, 3))
    if bias:
        err = gradcheck(linear, lambda g, x, w, b: linear_backward(g, x, w), [x, w, b], dy)
    else:
        err = gradcheck(linear, linear_backward, [x, w], dy)
    assert err < GC_TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_and_arguments_are_not_modified(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5)).astype(dtype)
    w = rng.standard_normal((3, 5)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    dy = rng.standard_normal((4, 3)).astype(dtype)
    copies = [a.copy() for a in (x, w, b, dy)]
    y = linear(x, w, b)
    grads = linear_backward(dy, x, w)
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
    assert [g.shape for g in grads] == [(4, 5), (3, 5), (3,)]
    for a, c in zip((x, w, b, dy), copies):
        np.testing.assert_array_equal(a, c)


def test_empty_batch():
    x = np.zeros((0, 3))
    w = np.ones((2, 3))
    assert linear(x, w, np.ones(2)).shape == (0, 2)
    dx, dw, db = linear_backward(np.zeros((0, 2)), x, w)
    assert dx.shape == (0, 3)
    np.testing.assert_array_equal(dw, np.zeros((2, 3)))
    np.testing.assert_array_equal(db, np.zeros(2))


def test_nan_propagates():
    y = linear(np.array([[np.nan, 1.0]]), np.ones((2, 2)))
    assert np.isnan(y).all()


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------
def test_feature_maps_get_a_flatten_hint():
    x = np.ones((8, 4, 2, 2))
    with pytest.raises(ShapeError, match=r"\(N, in_features\).*\(8, 4, 2, 2\).*flatten\(x\).*\(8, 16\).*matches w"):
        linear(x, np.ones((10, 16)))
    with pytest.raises(ShapeError, match=r"flatten.*w expects 12"):
        linear(x, np.ones((10, 12)))


def test_in_features_mismatch_names_both_shapes():
    with pytest.raises(ShapeError, match=r"in_features mismatch: x has shape \(8, 5\).*w has shape \(3, 4\)"):
        linear(np.ones((8, 5)), np.ones((3, 4)))
    with pytest.raises(ShapeError, match=r"x\.T"):
        linear(np.ones((4, 8)), np.ones((3, 4)))
    with pytest.raises(ShapeError, match=r"in_features mismatch"):
        linear_backward(np.ones((8, 3)), np.ones((8, 5)), np.ones((3, 4)))


def test_single_sample_without_batch_axis_gets_a_hint():
    with pytest.raises(ShapeError, match=r"x\[None, :\]"):
        linear(np.ones(4), np.ones((3, 4)))


def test_weight_and_bias_shapes():
    with pytest.raises(ShapeError, match=r"w must be 2-D.*\(out_features, in_features\); got shape \(4\)\."):
        linear(np.ones((2, 4)), np.ones(4))
    with pytest.raises(ShapeError, match=r"b must have shape \(out_features,\) = \(3\).*\(3, 4\).*\(4\)"):
        linear(np.ones((2, 4)), np.ones((3, 4)), np.ones(4))


def test_dy_shape_is_checked():
    with pytest.raises(ShapeError, match=r"dy must have the shape of the output y.*\(2, 3\).*got dy of shape \(2, 4\)"):
        linear_backward(np.ones((2, 4)), np.ones((2, 4)), np.ones((3, 4)))


def test_dtype_errors():
    with pytest.raises(DTypeError, match=r"x is float32, w is float64"):
        linear(np.ones((2, 4), dtype=np.float32), np.ones((3, 4)))
    with pytest.raises(DTypeError, match=r"b is float32"):
        linear(np.ones((2, 4)), np.ones((3, 4)), np.ones(3, dtype=np.float32))
    with pytest.raises(DTypeError, match=r"w must have dtype float32 or float64; got integer"):
        linear(np.ones((2, 4)), np.ones((3, 4), dtype=np.int64))
    with pytest.raises(DTypeError, match=r"dy is float32"):
        linear_backward(np.ones((2, 3), dtype=np.float32), np.ones((2, 4)), np.ones((3, 4)))
