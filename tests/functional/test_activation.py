"""Activations: the notes' ReLU derivative, values, stability, gradients and error messages."""

import numpy as np
import pytest

from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError
from convscope.functional import (
    leaky_relu,
    leaky_relu_backward,
    log_softmax,
    log_softmax_backward,
    relu,
    relu_backward,
    relu_jacobian,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    tanh,
    tanh_backward,
)
from convscope.testing import assert_close, gradcheck, tolerance

GC_TOL = tolerance(np.float64, "gradcheck")[0]

# (name, forward(x), backward(dy, x)) for every activation, with default arguments.
OPS = [
    ("relu", relu, relu_backward),
    ("leaky_relu", leaky_relu, leaky_relu_backward),
    ("leaky_relu_0.3", lambda x: leaky_relu(x, 0.3), lambda dy, x: leaky_relu_backward(dy, x, 0.3)),
    ("sigmoid", sigmoid, sigmoid_backward),
    ("tanh", tanh, tanh_backward),
    ("softmax", softmax, softmax_backward),
    ("softmax_axis0", lambda x: softmax(x, axis=0), lambda dy, x: softmax_backward(dy, x, axis=0)),
    ("log_softmax", log_softmax, log_softmax_backward),
    ("log_softmax_axis1", lambda x: log_softmax(x, 1), lambda dy, x: log_softmax_backward(dy, x, 1)),
]
OP_IDS = [name for name, _, _ in OPS]


def _away_from_kink(rng, shape, dtype=np.float64):
    """Random values with |x| >= 0.1, so finite differences never straddle the ReLU kink."""
    u = rng.standard_normal(shape)
    return (np.sign(u) * (0.1 + np.abs(u))).astype(dtype)


# ---------------------------------------------------------------------------------------
# The notes' worked example: ReLU derivative as a diagonal matrix (9.4.4)
# ---------------------------------------------------------------------------------------
def test_notes_9_26_relu_derivative_is_diagonal_with_zero_where_z3_negative():
    z = np.array([0.7, 1.2, -0.4, 2.5])
    jac = relu_jacobian(z)
    np.testing.assert_array_equal(jac, np.diag([1.0, 1.0, 0.0, 1.0]))
    assert jac.shape == (4, 4) and jac.dtype == np.float64


def test_notes_key_equation_66_relu_backward_is_the_jacobian_times_dy():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(9)
    dy = rng.standard_normal(9)
    # Elementwise layer: the Jacobian is symmetric (diagonal), so J^T dy = J dy.
    np.testing.assert_array_equal(relu_backward(dy, z), relu_jacobian(z) @ dy)


def test_relu_derivative_at_zero_is_zero_as_pytorch():
    dx = relu_backward(np.array([3.0, 3.0, 3.0]), np.array([-0.0, 0.0, 1e-300]))
    np.testing.assert_array_equal(dx, [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(relu_jacobian(np.array([0.0])), [[0.0]])


def test_relu_jacobian_float32_and_wrong_rank():
    assert relu_jacobian(np.array([1.0, -1.0], dtype=np.float32)).dtype == np.float32
    with pytest.raises(ShapeError, match=r"1-D.*\(2, 2\).*reshape"):
        relu_jacobian(np.ones((2, 2)))


# ---------------------------------------------------------------------------------------
# Hand-checkable values and stability
# ---------------------------------------------------------------------------------------
def test_relu_and_leaky_relu_values():
    x = np.array([-2.0, -0.5, 0.0, 1.5])
    np.testing.assert_array_equal(relu(x), [0.0, 0.0, 0.0, 1.5])
    np.testing.assert_array_equal(leaky_relu(x), [-0.02, -0.005, 0.0, 1.5])
    np.testing.assert_array_equal(leaky_relu(x, negative_slope=0.5), [-1.0, -0.25, 0.0, 1.5])
    np.testing.assert_array_equal(leaky_relu(x, negative_slope=-1), [2.0, 0.5, 0.0, 1.5])
    np.testing.assert_array_equal(
        leaky_relu_backward(np.ones(4), x, negative_slope=0.5), [0.5, 0.5, 0.5, 1.0]
    )


def test_sigmoid_is_stable_and_precise_for_large_inputs():
    x = np.array([-1000.0, -40.0, -5.0, 0.0, 5.0, 40.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = sigmoid(x)
        dx = sigmoid_backward(np.ones_like(x), x)
    exact_small = 1.0 / (1.0 + np.exp(40.0))  # about 4.2e-18, representable
    assert y[1] == pytest.approx(exact_small, rel=1e-12)
    assert y[0] == 0.0 and y[-1] == 1.0 and y[3] == 0.5
    np.testing.assert_allclose(y[2] + y[4], 1.0, rtol=1e-15)  # sigmoid(-x) = 1 - sigmoid(x)
    # s(1 - s) must not cancel to 0 at x = 40, where 1 - s rounds to 0 in float64.
    assert dx[5] == pytest.approx(np.exp(-40.0), rel=1e-12)
    assert dx[3] == 0.25


def test_tanh_derivative_is_precise_for_large_inputs():
    x = np.array([-20.0, 0.0, 20.0, 400.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        dx = tanh_backward(np.ones_like(x), x)
    assert dx[1] == 1.0
    assert dx[0] == pytest.approx(4 * np.exp(-40.0), rel=1e-12)
    assert dx[2] == dx[0]
    assert dx[3] == 0.0
    np.testing.assert_array_equal(tanh(np.array([-np.inf, np.inf])), [-1.0, 1.0])


def test_softmax_rows_sum_to_one_and_ignore_a_shift():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5))
    y = softmax(x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-14)
    assert_close(softmax(x + 123.0), y, context="softmax shift invariance")
    assert_close(softmax(x, axis=0).sum(axis=0), np.ones(5), context="softmax axis 0")
    assert_close(np.exp(log_softmax(x)), y, context="exp(log_softmax) == softmax")


def test_softmax_and_log_softmax_handle_huge_logits():
    x = np.array([[1000.0, 1000.0 + np.log(3.0)], [-1000.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        y = softmax(x)
        log_y = log_softmax(x)
    np.testing.assert_allclose(y[0], [0.25, 0.75], rtol=1e-12)
    np.testing.assert_allclose(log_y[1], [-1000.0, 0.0], rtol=1e-12, atol=1e-12)
    assert np.isfinite(log_y).all()


def test_softmax_along_every_axis_matches_a_transposed_last_axis():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4))
    dy = rng.standard_normal((2, 3, 4))
    for axis in (0, 1, 2, -2):
        moved = np.moveaxis(x, axis, -1)
        back = np.moveaxis(softmax(moved), -1, axis)
        assert_close(softmax(x, axis=axis), back, context=f"softmax axis={axis}")
        gback = np.moveaxis(log_softmax_backward(np.moveaxis(dy, axis, -1), moved), -1, axis)
        assert_close(log_softmax_backward(dy, x, axis), gback, kind="backward", context=f"axis={axis}")


def test_softmax_of_empty_array_is_empty():
    x = np.zeros((0, 3))
    assert softmax(x).shape == (0, 3)
    assert log_softmax_backward(x, x).shape == (0, 3)


@pytest.mark.parametrize("name,fwd,bwd", OPS, ids=OP_IDS)
def test_dtype_is_kept_and_arguments_are_not_modified(name, fwd, bwd):
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((3, 4)).astype(dtype)
        dy = rng.standard_normal((3, 4)).astype(dtype)
        x0, dy0 = x.copy(), dy.copy()
        y = fwd(x)
        dx = bwd(dy, x)
        assert y.dtype == dtype and dx.dtype == dtype, name
        assert y.shape == x.shape and dx.shape == x.shape
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(dy, dy0)
        assert not np.shares_memory(dx, dy) and not np.shares_memory(y, x)


def test_nan_and_inf_propagate_without_errors():
    x = np.array([np.nan, np.inf, -np.inf, 1.0])
    y_relu = relu(x)
    assert np.isnan(y_relu[0]) and y_relu[1] == np.inf and y_relu[2] == 0.0
    assert np.isnan(leaky_relu(x)[0]) and leaky_relu(x)[2] == -np.inf
    s = sigmoid(x)
    assert np.isnan(s[0]) and s[1] == 1.0 and s[2] == 0.0
    assert np.isnan(tanh(x)[0])
    assert np.isnan(softmax(np.array([[1.0, np.nan], [1.0, 2.0]]))[0]).all()
    assert np.isfinite(softmax(np.array([[1.0, np.nan], [1.0, 2.0]]))[1]).all()
    assert np.isnan(sigmoid_backward(np.ones(4), x)[0])
    # As PyTorch: relu's gradient is zeroed only where x <= 0, so NaN inputs pass dy through.
    np.testing.assert_array_equal(relu_backward(np.full(4, 2.0), x), [2.0, 2.0, 0.0, 2.0])


# ---------------------------------------------------------------------------------------
# Finite differences in float64, random upstream gradients, kinks avoided
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,fwd,bwd", OPS, ids=OP_IDS)
def test_gradcheck(name, fwd, bwd):
    rng = np.random.default_rng(4)
    x = _away_from_kink(rng, (3, 4)) * 2.0
    dy = rng.standard_normal((3, 4))
    assert gradcheck(fwd, bwd, [x], dy) < GC_TOL, name


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_gradcheck_softmax_family_on_3d_input(axis):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4))
    dy = rng.standard_normal((2, 3, 4))
    err = gradcheck(lambda a: softmax(a, axis), lambda g, a: softmax_backward(g, a, axis), [x], dy)
    assert err < GC_TOL
    err = gradcheck(lambda a: log_softmax(a, axis), lambda g, a: log_softmax_backward(g, a, axis), [x], dy)
    assert err < GC_TOL


def test_gradcheck_sigmoid_tanh_at_large_inputs():
    rng = np.random.default_rng(6)
    x = rng.uniform(-12, 12, size=(10,))
    dy = rng.standard_normal(10)
    assert gradcheck(sigmoid, sigmoid_backward, [x], dy) < GC_TOL
    assert gradcheck(tanh, tanh_backward, [x], dy) < GC_TOL


# ---------------------------------------------------------------------------------------
# Errors: expected / got / why
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,fwd,bwd", OPS, ids=OP_IDS)
def test_integer_input_is_refused(name, fwd, bwd):
    with pytest.raises(DTypeError, match=r"x must have dtype float32 or float64; got integer"):
        fwd(np.arange(6).reshape(2, 3))
    with pytest.raises(DTypeError, match=r"dy must have dtype"):
        bwd(np.ones((2, 3), dtype=np.int32), np.ones((2, 3)))


@pytest.mark.parametrize("name,fwd,bwd", OPS, ids=OP_IDS)
def test_backward_refuses_mismatched_shapes_and_dtypes(name, fwd, bwd):
    x = np.ones((2, 3))
    with pytest.raises(ShapeError, match=r"dy must have the shape of x, \(2, 3\).*\(3, 2\)"):
        bwd(np.ones((3, 2)), x)
    with pytest.raises(DTypeError, match=r"dy is float32, x is float64"):
        bwd(np.ones((2, 3), dtype=np.float32), x)


def test_axis_errors():
    x = np.ones((2, 3))
    with pytest.raises(ConfigError, match=r"axis must be in \[-2, 1\].*\(2, 3\).*axis=2"):
        softmax(x, axis=2)
    with pytest.raises(ConfigError, match=r"axis=-3"):
        log_softmax_backward(x, x, axis=-3)
    with pytest.raises(ArgumentTypeError, match=r"axis must be an int; got 1.0"):
        log_softmax(x, axis=1.0)
    with pytest.raises(ShapeError, match=r"0-d"):
        softmax(np.array(1.0))


@pytest.mark.parametrize("bad", ["0.1", True, None, np.array([0.1])])
def test_negative_slope_must_be_a_real_number(bad):
    with pytest.raises(ArgumentTypeError, match=r"negative_slope must be a real number"):
        leaky_relu(np.ones(2), negative_slope=bad)
    with pytest.raises(ArgumentTypeError, match=r"negative_slope"):
        leaky_relu_backward(np.ones(2), np.ones(2), negative_slope=bad)
