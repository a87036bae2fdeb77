"""Losses: the notes' squared loss (9.17, 9.21), cross-entropy, gradients, errors."""

import numpy as np
import pytest

from convscope.errors import ArgumentTypeError, DTypeError, ShapeError
from convscope.functional import (
    cross_entropy,
    cross_entropy_backward,
    log_softmax,
    softmax,
    squared_loss,
    squared_loss_backward,
)
from convscope.testing import assert_close, gradcheck, tolerance

GC_TOL = tolerance(np.float64, "gradcheck")[0]


# ---------------------------------------------------------------------------------------
# Squared loss
# ---------------------------------------------------------------------------------------
def test_notes_9_17_and_9_21_single_scalar_output():
    a2, y = 2.5, 1.0
    loss = squared_loss(np.array([[a2]]), np.array([[y]]))
    assert loss == (a2 - y) ** 2  # 9.17
    grad = squared_loss_backward(np.array([[a2]]), np.array([[y]]))
    np.testing.assert_array_equal(grad, [[2 * (a2 - y)]])  # 9.21


def test_squared_loss_is_the_batch_mean_of_per_sample_sums():
    y_pred = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]])
    y = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # per-sample sums: 1 + 4 = 5, 0 + 1 = 1, 4 + 0 = 4; mean over 3 samples = 10 / 3
    assert squared_loss(y_pred, y) == pytest.approx(10.0 / 3.0, rel=1e-15)
    np.testing.assert_allclose(squared_loss_backward(y_pred, y), 2 * (y_pred - y) / 3, rtol=1e-15)
    # A batch of scalar outputs (N,): the mean of the notes' (A^2 - y)^2.
    assert squared_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0])) == 5.0


def test_squared_loss_gradcheck_both_arguments():
    rng = np.random.default_rng(0)
    y_pred = rng.standard_normal((4, 3, 2))
    y = rng.standard_normal((4, 3, 2))
    dl = np.array(rng.standard_normal())  # random upstream gradient of the scalar loss

    def backward(g, y_pred, y):
        d = g * squared_loss_backward(y_pred, y)
        return d, -d  # the loss depends on y_pred - y

    assert gradcheck(squared_loss, backward, [y_pred, y], dl) < GC_TOL


def test_squared_loss_keeps_float32():
    y_pred = np.ones((3, 2), dtype=np.float32)
    y = np.zeros((3, 2), dtype=np.float32)
    assert squared_loss(y_pred, y).dtype == np.float32
    assert squared_loss_backward(y_pred, y).dtype == np.float32


def test_squared_loss_errors():
    with pytest.raises(ShapeError, match=r"y must have the shape of y_pred, \(4, 1\); got y of shape \(4\).*reshape"):
        squared_loss(np.ones((4, 1)), np.ones(4))
    with pytest.raises(ShapeError, match=r"batch is empty"):
        squared_loss(np.ones((0, 2)), np.ones((0, 2)))
    with pytest.raises(ShapeError, match=r"batch axis.*0-d.*\(1,\)"):
        squared_loss_backward(np.array(1.0), np.array(1.0))
    with pytest.raises(DTypeError, match=r"y_pred is float32, y is float64"):
        squared_loss(np.ones(2, dtype=np.float32), np.ones(2))
    with pytest.raises(DTypeError, match=r"y must have dtype float32 or float64; got integer"):
        squared_loss_backward(np.ones(2), np.array([1, 2]))


def test_squared_loss_nan_propagates():
    assert np.isnan(squared_loss(np.array([np.nan, 1.0]), np.array([0.0, 0.0])))


# ---------------------------------------------------------------------------------------
# Cross-entropy
# ---------------------------------------------------------------------------------------
def test_cross_entropy_with_class_indices_by_hand():
    z = np.array([[0.0, np.log(3.0)], [np.log(4.0), 0.0]])  # softmax rows [1/4, 3/4], [4/5, 1/5]
    t = np.array([1, 1])
    expected = -(np.log(0.75) + np.log(0.2)) / 2
    assert cross_entropy(z, t) == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(
        cross_entropy_backward(z, t), np.array([[0.25, -0.25], [0.8, -0.8]]) / 2, rtol=1e-14
    )


def test_one_hot_probabilities_equal_class_indices():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((5, 4))
    t = np.array([0, 3, 1, 1, 2])
    onehot = np.eye(4)[t]
    assert_close(cross_entropy(z, onehot), cross_entropy(z, t), context="loss")
    assert_close(cross_entropy_backward(z, onehot), cross_entropy_backward(z, t), kind="backward")
    # Gradient is (softmax - onehot) / N.
    assert_close(cross_entropy_backward(z, t), (softmax(z) - onehot) / 5, kind="backward")
    assert_close(cross_entropy(z, t), -log_softmax(z)[np.arange(5), t].mean())


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [5000.0, 5000.0, 5000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        loss = cross_entropy(z, np.array([1, 0]))
        grad = cross_entropy_backward(z, np.array([1, 0]))
    assert loss == pytest.approx((1000.0 + np.log(3.0)) / 2, rel=1e-12)
    assert np.isfinite(grad).all()


@pytest.mark.parametrize("targets", ["index", "probabilities", "unnormalised"])
def test_cross_entropy_gradcheck(targets):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4, 5)) * 2
    if targets == "index":
        t = rng.integers(0, 5, size=4)
    elif targets == "probabilities":
        t = softmax(rng.standard_normal((4, 5)))
    else:  # rows need not sum to 1 (label weights); the gradient is softmax * sum(t) - t
        t = rng.uniform(0, 2, size=(4, 5))
    dl = np.array(rng.standard_normal())
    err = gradcheck(
        lambda a: cross_entropy(a, t), lambda g, a: g * cross_entropy_backward(a, t), [z], dl
    )
    assert err < GC_TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_dtype_and_arguments_untouched(dtype):
    z = np.array([[1.0, 2.0, 3.0]], dtype=dtype)
    t = np.array([2])
    p = np.array([[0.2, 0.3, 0.5]], dtype=dtype)
    copies = (z.copy(), t.copy(), p.copy())
    for targets in (t, p):
        assert cross_entropy(z, targets).dtype == dtype
        assert cross_entropy_backward(z, targets).dtype == dtype
    for a, c in zip((z, t, p), copies):
        np.testing.assert_array_equal(a, c)


def test_cross_entropy_accepts_lists_and_unsigned_labels():
    z = np.array([[0.0, np.log(3.0)]])
    assert cross_entropy(z, [1]) == cross_entropy(z, np.array([1], dtype=np.uint8))


def test_cross_entropy_nan_propagates():
    assert np.isnan(cross_entropy(np.array([[np.nan, 0.0], [0.0, 0.0]]), np.array([0, 1])))


def test_label_range_errors_name_the_value_and_the_range():
    z = np.zeros((3, 4))
    with pytest.raises(ShapeError, match=r"class indices must be in 0\.\.3 .*4 classes.*targets\[2\] = 4"):
        cross_entropy(z, np.array([0, 3, 4]))
    with pytest.raises(ShapeError, match=r"targets\[0\] = -1"):
        cross_entropy_backward(z, np.array([-1, 0, 0]))


def test_target_shape_errors():
    z = np.zeros((3, 4))
    with pytest.raises(ShapeError, match=r"integer targets are class indices.*\(3\).*got shape \(3, 4\).*argmax"):
        cross_entropy(z, np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(ShapeError,
                       match=r"float targets are class probabilities.*\(3, 4\); got shape \(3\).*astype\(np\.int64\)"):
        cross_entropy(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ShapeError, match=r"integer targets.*got shape \(2\)"):
        cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ShapeError, match=r"probabilities.*got shape \(3, 3\)"):
        cross_entropy_backward(z, np.zeros((3, 3)))


def test_logits_shape_errors():
    with pytest.raises(ShapeError, match=r"logits must be 2-D with shape \(N, C\).*\(4\).*logits\[None, :\]"):
        cross_entropy(np.zeros(4), np.array([1]))
    with pytest.raises(ShapeError, match=r"\(2, 3, 4\).*Flatten"):
        cross_entropy(np.zeros((2, 3, 4)), np.array([1, 1]))
    with pytest.raises(ShapeError, match=r"batch is empty"):
        cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))
    with pytest.raises(ShapeError, match=r"at least one class"):
        cross_entropy(np.zeros((2, 0)), np.zeros(2, dtype=np.int64))


def test_target_dtype_errors():
    z = np.zeros((2, 3))
    with pytest.raises(DTypeError, match=r"integer class indices.*float probabilities.*bool"):
        cross_entropy(z, np.array([True, False]))
    with pytest.raises(DTypeError, match=r"logits is float64, targets is float32"):
        cross_entropy(z, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(DTypeError, match=r"logits must have dtype float32 or float64"):
        cross_entropy(np.zeros((2, 3), dtype=np.int64), np.array([0, 1]))
    with pytest.raises(ArgumentTypeError, match=r"targets must be.*got NoneType"):
        cross_entropy(z, None)
