"""Tests of convscope.functional pooling: max_pool, avg_pool, blur_pool and their backward.

The notes' worked example and its derivative, finite-difference gradient checks in float64
for every op and argument combination (ties avoided), shape tables, tie / NaN / padding
rules, error messages, the binomial filter, and the fast path against the plain-loop
reference (odd shapes, several row blocks, N-D).
"""

from __future__ import annotations

import importlib
import zlib

import numpy as np
import pytest

import convscope.functional.pool as pool_module
from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError
from convscope.functional import (
    avg_pool,
    avg_pool_backward,
    binomial_filter,
    blur_pool,
    blur_pool_backward,
    max_pool,
    max_pool_backward,
)
from convscope.functional.reference import reference_avg_pool, reference_max_pool
from convscope.testing import assert_close, gradcheck, tolerance

blur_module = importlib.import_module("convscope.functional.blur_pool")

NOTES_9_12 = np.array(
    [[1.0, 3.0, -9.0, -22.0], [44.0, -10.0, -11.0, -1.0], [0.0, 10.0, 4.0, -3.0], [11.0, 9.0, 321.0, 99.0]]
)


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _distinct(rng, shape, dtype=np.float64):
    """Values at least 0.05 apart, so no max-pool tie flips under a finite-difference step."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) * 0.05 - size * 0.025).astype(dtype)


@pytest.fixture(params=[7, 50])
def small_blocks(monkeypatch, request):
    """Force many row blocks (one row each, or a few with a short last block) so block
    boundaries are exercised."""
    monkeypatch.setattr(pool_module, "_BLOCK_ELEMENTS", request.param)


# ----------------------------------------------------------------------------------------
# The notes' example (9.12) and the max-pool derivative (9.35, Key Equation 69)
# ----------------------------------------------------------------------------------------
def test_notes_9_12_max_pool_2x2_stride_2():
    y = max_pool(NOTES_9_12[None, None], 2)
    np.testing.assert_array_equal(y[0, 0], [[44.0, -1.0], [11.0, 321.0]])
    np.testing.assert_array_equal(reference_max_pool(NOTES_9_12[None, None], 2), y)
    # stride given explicitly = default stride (the kernel size)
    np.testing.assert_array_equal(max_pool(NOTES_9_12[None, None], (2, 2), stride=2), y)


@pytest.mark.parametrize("window", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_notes_9_35_one_hot_derivative_per_window(window):
    """dy one-hot at one output: dx is one-hot at that window's maximum, zero elsewhere."""
    argmax = {(0, 0): (1, 0), (0, 1): (1, 3), (1, 0): (3, 0), (1, 1): (3, 2)}[window]
    dy = np.zeros((1, 1, 2, 2))
    dy[(0, 0) + window] = 1.0
    dx = max_pool_backward(dy, NOTES_9_12[None, None], 2)
    expected = np.zeros((4, 4))
    expected[argmax] = 1.0
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_notes_9_35_six_inputs_a4_largest():
    """(9.35): six inputs in one window, a_4 the largest: the derivative is e_4."""
    a = np.array([0.3, -1.0, 2.0, 7.5, 1.0, 0.0])[None, None]
    dx = max_pool_backward(np.ones((1, 1, 1)), a, 6)
    np.testing.assert_array_equal(dx[0, 0], [0, 0, 0, 1, 0, 0])
    # the same as a column vector in 2-D: a (6, 1) window
    dx2 = max_pool_backward(np.ones((1, 1, 1, 1)), a.reshape(1, 1, 6, 1), (6, 1))
    np.testing.assert_array_equal(dx2.ravel(), [0, 0, 0, 1, 0, 0])


# ----------------------------------------------------------------------------------------
# Rules: ties, NaN, padding value, indices, ceil_mode, divisors
# ----------------------------------------------------------------------------------------
def test_ties_go_to_the_first_entry_in_window_order():
    x = np.array([[5.0, 5.0, 1.0, 2.0], [5.0, 5.0, 2.0, 2.0]])[None, None]
    y, idx = max_pool(x, 2, return_indices=True)
    np.testing.assert_array_equal(idx[0, 0], [[0, 3]])  # (0,0) of the first, (0,3) of the second
    dx = max_pool_backward(np.array([[[[10.0, 20.0]]]]), x, 2)
    np.testing.assert_array_equal(dx[0, 0], [[10.0, 0.0, 0.0, 20.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(reference_max_pool(x, 2, return_indices=True)[1], idx)


def test_overlapping_windows_accumulate_gradient():
    """Stride 1: the same entry is the maximum of several windows and collects all their dy."""
    x = np.array([[[0.0, 9.0, 1.0, 2.0]]])
    dx = max_pool_backward(np.array([[[1.0, 2.0, 4.0]]]), x, 2, stride=1)
    np.testing.assert_array_equal(dx[0, 0], [0.0, 3.0, 0.0, 4.0])


def test_nan_counts_as_the_maximum_and_the_last_nan_wins():
    nan = np.nan
    x = np.array([[[1.0, nan, 3.0, nan, 2.0, 0.0, 5.0, 6.0]]], dtype=np.float32)
    y, idx = max_pool(x, 4, return_indices=True)
    assert np.isnan(y[0, 0, 0]) and y[0, 0, 1] == 6.0
    np.testing.assert_array_equal(idx[0, 0], [3, 7])  # as PyTorch: (v > max) || isnan(v)
    dx = max_pool_backward(np.ones((1, 1, 2), np.float32), x, 4)
    np.testing.assert_array_equal(dx[0, 0], [0, 0, 0, 1, 0, 0, 0, 1])
    yr, ir = reference_max_pool(x, 4, return_indices=True)
    np.testing.assert_array_equal(ir, idx)
    # values-only path propagates NaN too
    assert np.isnan(max_pool(x, 4)[0, 0, 0])


def test_infinite_upstream_gradient_does_not_leak_nan():
    x = np.array([[[1.0, 2.0, 4.0, 3.0]]])
    dx = max_pool_backward(np.array([[[np.inf, -np.inf]]]), x, 2)
    np.testing.assert_array_equal(dx[0, 0], [0.0, np.inf, -np.inf, 0.0])


def test_padding_is_minus_infinity_and_all_minus_inf_window_points_at_first_entry():
    x = np.array([[[-5.0, -7.0, -6.0]]])
    y, idx = max_pool(x, 3, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(y[0, 0], [-5.0, -6.0])  # padding never wins, even over -7
    np.testing.assert_array_equal(idx[0, 0], [0, 2])
    inf = np.full((1, 1, 4), -np.inf)
    y, idx = max_pool(inf, 3, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(idx[0, 0], [0, 1])  # first input entry of each window


def test_indices_are_flat_positions_in_the_input_plane():
    x = _distinct(_rng("idx"), (2, 3, 5, 4, 6))
    y, idx = max_pool(x, (2, 3, 2), (2, 2, 3), (1, 1, 0), (1, 1, 2), return_indices=True)
    flat = x.reshape(2, 3, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, idx.reshape(2, 3, -1), axis=2).reshape(y.shape), y)
    assert idx.dtype == np.int64


def test_ceil_mode_keeps_a_partial_last_window():
    v = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    np.testing.assert_array_equal(max_pool(v, 2)[0, 0], [2.0, 4.0])
    np.testing.assert_array_equal(max_pool(v, 2, ceil_mode=True)[0, 0], [2.0, 4.0, 5.0])
    np.testing.assert_array_equal(avg_pool(v, 2, ceil_mode=True)[0, 0], [1.5, 3.5, 5.0])
    # a last window that would start in the right padding is dropped (PyTorch's rule):
    # n=4, k=2, s=2, p=1: ceil((4+2-2)/2)+1 = 3 windows start at -1, 1, 3 -> all kept
    assert max_pool(v[..., :4], 2, padding=1, ceil_mode=True).shape[-1] == 3
    # n=5, k=2, s=2, p=1: ceil((5+2-2)/2)+1 = 4, but the 4th starts at 5 = n: dropped
    assert max_pool(v, 2, padding=1, ceil_mode=True).shape[-1] == 3


def test_ceil_mode_window_larger_than_the_input_is_allowed_like_pytorch():
    v = np.array([[[3.0, 1.0]]])
    np.testing.assert_array_equal(max_pool(v, 3, ceil_mode=True)[0, 0], [3.0])
    np.testing.assert_array_equal(avg_pool(v, 3, ceil_mode=True)[0, 0], [2.0])  # divisor 2
    with pytest.raises(ShapeError, match="does not fit"):
        max_pool(v, 3)


@pytest.mark.parametrize("count_include_pad, expected", [(True, [1.0, 3.0, 2.0]), (False, [1.5, 3.0, 4.0])])
def test_avg_divisor_counts_padding_but_not_the_ceil_overhang(count_include_pad, expected):
    v = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    y = avg_pool(v, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=count_include_pad)
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-15)


def test_avg_pool_2d_divisor_is_a_product_over_axes():
    x = np.ones((1, 1, 3, 3))
    y = avg_pool(x, 2, padding=1, count_include_pad=True)
    np.testing.assert_allclose(y[0, 0], [[0.25, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(avg_pool(x, 2, padding=1, count_include_pad=False), 1.0)


def test_avg_backward_spreads_share_of_each_window():
    dx = avg_pool_backward(np.array([[[3.0, 6.0, 4.0]]]), np.zeros((1, 1, 4)), 3, 2, 1, True, True)
    # windows (pad,0,1), (1,2,3), (3,pad) with divisors 3, 3, 2
    np.testing.assert_allclose(dx[0, 0], [1.0, 1.0 + 2.0, 2.0, 2.0 + 2.0])


# ----------------------------------------------------------------------------------------
# Finite-difference gradient checks in float64 (random dy, ties avoided)
# ----------------------------------------------------------------------------------------
MAX_CASES = [
    ("1d", (2, 2, 9), dict(kernel_size=2)),
    ("1d-stride1", (1, 2, 7), dict(kernel_size=3, stride=1)),
    ("1d-pad-ceil", (2, 1, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("1d-dilation", (1, 2, 11), dict(kernel_size=3, stride=2, dilation=3, padding=1)),
    ("1d-dilation-ceil", (1, 1, 10), dict(kernel_size=2, stride=3, dilation=2, ceil_mode=True)),
    ("2d", (2, 2, 4, 6), dict(kernel_size=2)),
    ("2d-overlap", (1, 2, 5, 5), dict(kernel_size=3, stride=1, padding=1)),
    ("2d-tuple", (1, 2, 6, 7), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0), dilation=(2, 1))),
    ("2d-ceil", (1, 2, 5, 7), dict(kernel_size=(3, 2), stride=2, ceil_mode=True, padding=(1, 1))),
    ("2d-pairs", (1, 1, 5, 6), dict(kernel_size=3, stride=2, padding=((1, 0), (0, 1)))),
    ("3d", (1, 2, 4, 4, 4), dict(kernel_size=2)),
    ("3d-mixed", (1, 1, 5, 4, 6), dict(kernel_size=(3, 2, 2), stride=(2, 1, 3), padding=(1, 1, 0), ceil_mode=True)),
    ("4d", (1, 1, 3, 4, 3, 4), dict(kernel_size=2, stride=(1, 2, 2, 1), ceil_mode=True)),
]


@pytest.mark.parametrize("shape, kw", [c[1:] for c in MAX_CASES], ids=[c[0] for c in MAX_CASES])
def test_max_pool_backward_gradcheck(shape, kw):
    rng = _rng("max", shape, kw)
    x = _distinct(rng, shape)
    dy = rng.standard_normal(max_pool(x, **kw).shape)
    err = gradcheck(lambda a: max_pool(a, **kw), lambda g, a: max_pool_backward(g, a, **kw), [x], dy)
    assert err < tolerance(np.float64, "gradcheck")[0], f"{kw}: {err:.3g}"


AVG_CASES = [
    ("1d", (2, 2, 9), dict(kernel_size=2)),
    ("1d-overlap-pad", (1, 2, 7), dict(kernel_size=3, stride=1, padding=1)),
    ("1d-ceil-include", (2, 1, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("1d-ceil-exclude", (2, 1, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("2d", (2, 2, 4, 6), dict(kernel_size=2)),
    ("2d-exclude", (1, 2, 5, 5), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("2d-tuple-ceil", (1, 2, 6, 7), dict(kernel_size=(2, 3), stride=(3, 2), padding=(1, 1), ceil_mode=True)),
    ("2d-pairs", (1, 1, 5, 6), dict(kernel_size=3, stride=2, padding=((1, 0), (0, 1)), count_include_pad=False)),
    ("3d", (1, 2, 4, 4, 4), dict(kernel_size=2, padding=1)),
    ("3d-ceil-exclude", (1, 1, 5, 4, 6), dict(kernel_size=(3, 2, 2), stride=2, ceil_mode=True,
                                              count_include_pad=False)),
    ("4d", (1, 1, 3, 4, 3, 4), dict(kernel_size=2, stride=(1, 2, 2, 1), padding=1)),
]


@pytest.mark.parametrize("shape, kw", [c[1:] for c in AVG_CASES], ids=[c[0] for c in AVG_CASES])
def test_avg_pool_backward_gradcheck(shape, kw):
    rng = _rng("avg", shape, kw)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(avg_pool(x, **kw).shape)
    err = gradcheck(lambda a: avg_pool(a, **kw), lambda g, a: avg_pool_backward(g, a, **kw), [x], dy)
    assert err < tolerance(np.float64, "gradcheck")[0], f"{kw}: {err:.3g}"


BLUR_CASES = [
    ("1d-f4-reflect", (2, 2, 9), dict()),
    ("1d-f1", (1, 2, 7), dict(filter_size=1, stride=3)),
    ("1d-f7-replicate", (1, 1, 6), dict(filter_size=7, padding_mode="replicate")),
    ("1d-f5-circular", (1, 2, 5), dict(filter_size=5, stride=1, padding_mode="circular")),
    ("2d-f3-zeros", (2, 2, 5, 6), dict(filter_size=3, padding_mode="zeros")),
    ("2d-f4-reflect-tuple", (1, 2, 6, 7), dict(filter_size=4, stride=(1, 2))),
    ("2d-f2-circular", (1, 1, 5, 4), dict(filter_size=2, stride=(2, 3), padding_mode="circular")),
    ("2d-f6-replicate", (1, 1, 4, 5), dict(filter_size=6, padding_mode="replicate")),
    ("3d-f3-reflect", (1, 2, 4, 3, 5), dict(filter_size=3)),
    ("3d-f4-zeros", (1, 1, 4, 5, 3), dict(stride=(2, 1, 2), padding_mode="zeros")),
    ("4d-f2-reflect", (1, 1, 3, 3, 2, 3), dict(filter_size=2, stride=(1, 2, 2, 1))),
]


@pytest.mark.parametrize("shape, kw", [c[1:] for c in BLUR_CASES], ids=[c[0] for c in BLUR_CASES])
def test_blur_pool_backward_gradcheck(shape, kw):
    rng = _rng("blur", shape, kw)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(blur_pool(x, **kw).shape)
    err = gradcheck(lambda a: blur_pool(a, **kw), lambda g, a: blur_pool_backward(g, a, **kw), [x], dy)
    assert err < tolerance(np.float64, "gradcheck")[0], f"{kw}: {err:.3g}"


# ----------------------------------------------------------------------------------------
# Shape tables
# ----------------------------------------------------------------------------------------
POOL_SHAPES = [
    # (op, x shape, kwargs, output shape)
    ("max", (8, 3, 32, 32), dict(kernel_size=2), (8, 3, 16, 16)),
    ("max", (8, 3, 33, 33), dict(kernel_size=2), (8, 3, 16, 16)),
    ("max", (8, 3, 33, 33), dict(kernel_size=2, ceil_mode=True), (8, 3, 17, 17)),
    ("max", (1, 4, 64, 64), dict(kernel_size=2, stride=2), (1, 4, 32, 32)),  # Key Eq. 48 example
    ("max", (2, 1, 28, 28), dict(kernel_size=3, stride=2, padding=1), (2, 1, 14, 14)),
    ("max", (2, 1, 10), dict(kernel_size=3, stride=1, dilation=2), (2, 1, 6)),
    ("max", (2, 1, 10), dict(kernel_size=3, stride=1, padding="same"), (2, 1, 10)),
    ("max", (2, 1, 10), dict(kernel_size=3, stride=2, padding="same"), (2, 1, 5)),
    ("max", (1, 2, 7, 8, 9), dict(kernel_size=(1, 2, 3)), (1, 2, 7, 4, 3)),
    ("max", (1, 1, 4, 4, 4, 4), dict(kernel_size=2), (1, 1, 2, 2, 2, 2)),
    ("avg", (8, 3, 32, 32), dict(kernel_size=2), (8, 3, 16, 16)),
    ("avg", (8, 3, 7, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (8, 3, 4, 4)),
    ("avg", (8, 3, 6, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (8, 3, 4, 4)),
    ("avg", (2, 1, 9), dict(kernel_size=4, stride=4, ceil_mode=True), (2, 1, 3)),
    ("avg", (1, 1, 5, 5, 5), dict(kernel_size=5), (1, 1, 1, 1, 1)),
    ("blur", (8, 3, 32, 32), dict(), (8, 3, 16, 16)),
    ("blur", (8, 3, 33, 31), dict(), (8, 3, 17, 16)),
    ("blur", (2, 3, 10), dict(filter_size=3, stride=3), (2, 3, 4)),
    ("blur", (2, 3, 10, 10), dict(filter_size=5, stride=1), (2, 3, 10, 10)),
    ("blur", (1, 2, 4, 5, 6), dict(stride=(1, 2, 3)), (1, 2, 4, 3, 2)),
]
OPS = {"max": max_pool, "avg": avg_pool, "blur": blur_pool}


@pytest.mark.parametrize("op, shape, kw, out", POOL_SHAPES)
def test_output_shape_table(op, shape, kw, out):
    x = np.zeros(shape, dtype=np.float32)
    y = OPS[op](x, **kw)
    assert y.shape == out and y.dtype == np.float32


# ----------------------------------------------------------------------------------------
# Error messages (key words pinned)
# ----------------------------------------------------------------------------------------
def test_padding_above_half_the_kernel_is_refused_for_max_and_avg():
    x = np.zeros((1, 1, 9, 9))
    with pytest.raises(ConfigError, match=r"at most half the window.*here 1") as e:
        max_pool(x, 3, padding=2)
    assert "(2, 2)" in str(e.value)
    # dilation does not raise the limit (PyTorch refuses max_pool2d(k=3, d=2, p=2) too)
    with pytest.raises(ConfigError, match="half the window"):
        max_pool(x, 3, padding=2, dilation=2)
    with pytest.raises(ConfigError, match="half the window"):
        avg_pool(x, 2, padding=2)
    with pytest.raises(ConfigError, match="half the window"):
        max_pool_backward(np.zeros((1, 1, 5, 5)), x, 3, padding=2)


def test_window_larger_than_padded_input_shows_arithmetic():
    with pytest.raises(ShapeError, match=r"window size 5 does not fit the padded input of size 4") as e:
        max_pool(np.zeros((1, 1, 4)), 5)
    assert "floor(" in str(e.value)
    with pytest.raises(ShapeError, match="even with ceil_mode") as e:
        max_pool(np.zeros((1, 1, 2)), 4, stride=1, ceil_mode=True)
    assert "ceil(" in str(e.value)


@pytest.mark.parametrize(
    "kw, error, words",
    [
        (dict(kernel_size=0), ConfigError, "kernel_size"),
        (dict(kernel_size=2, stride=0), ConfigError, "stride"),
        (dict(kernel_size=2, dilation=0), ConfigError, "dilation"),
        (dict(kernel_size=2, padding=-1), ConfigError, "Negative padding"),
        (dict(kernel_size=2.0), ArgumentTypeError, "kernel_size"),
        (dict(kernel_size=(2, 2, 2)), ShapeError, "5 axes"),
        (dict(kernel_size=2, ceil_mode="yes"), ArgumentTypeError, "ceil_mode"),
        (dict(kernel_size=2, return_indices=1), ConfigError, "return_indices"),
    ],
)
def test_max_pool_argument_errors(kw, error, words):
    with pytest.raises(error, match=words):
        max_pool(np.zeros((1, 2, 6, 6)), **kw)


def test_dilated_window_that_jumps_over_the_input_is_refused():
    # n=1, k=2, d=3, p=1, ceil_mode: taps at -1 and 2, neither inside (PyTorch returns -inf)
    with pytest.raises(ConfigError, match="at least one input entry"):
        max_pool(np.zeros((1, 1, 1)), 2, stride=2, padding=1, dilation=3, ceil_mode=True)
    with pytest.raises(ConfigError, match="at least one input entry"):
        max_pool_backward(np.zeros((1, 1, 1)), np.zeros((1, 1, 1)), 2, 2, 1, 3, True)


def test_input_dtype_and_layout_errors():
    with pytest.raises(DTypeError, match="float32 or float64"):
        max_pool(np.zeros((1, 1, 4, 4), dtype=np.int64), 2)
    with pytest.raises(DTypeError, match="astype"):
        avg_pool(np.zeros((1, 1, 4), dtype=np.int32), 2)
    with pytest.raises(ShapeError, match=r"x\[None\]"):
        max_pool(np.zeros((3, 4, 4)), (2, 2))
    with pytest.raises(ShapeError, match="at least 3 axes"):
        max_pool(np.zeros((4, 4)), 2)
    with pytest.raises(ShapeError, match="at least 3 axes"):
        blur_pool(np.zeros((4, 4)))


def test_backward_checks_dy():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ShapeError, match=r"\(1, 1, 2, 2\).*got \(1, 1, 3, 3\)"):
        max_pool_backward(np.zeros((1, 1, 3, 3)), x, 2)
    with pytest.raises(DTypeError, match="same dtype"):
        avg_pool_backward(np.zeros((1, 1, 2, 2), np.float32), x, 2)
    with pytest.raises(ShapeError, match="dy must have the shape"):
        blur_pool_backward(np.zeros((1, 1, 4, 4)), x)


def test_avg_pool_3d_needs_input_at_least_kernel_size_like_pytorch():
    with pytest.raises(ShapeError, match=r"avg_pool3d.*\(5, 3, 5\).*\(3, 4, 3\)"):
        avg_pool(np.zeros((1, 1, 5, 3, 5)), (3, 4, 3), stride=1, padding=(1, 2, 1))
    assert avg_pool(np.zeros((1, 1, 3, 3)), 4, stride=1, padding=2).shape == (1, 1, 4, 4)  # 2-D: fine
    with pytest.raises(ConfigError, match="count_include_pad"):
        avg_pool(np.zeros((1, 1, 4)), 2, count_include_pad=None)


def test_blur_pool_errors():
    x = np.zeros((1, 1, 2, 5))
    with pytest.raises(ShapeError, match=r"reflect.*at least 3.*size 2 along spatial axis 1.*replicate"):
        blur_pool(x, filter_size=5)
    assert blur_pool(x, filter_size=5, padding_mode="replicate").shape == (1, 1, 1, 3)
    with pytest.raises(ShapeError, match="circular"):
        blur_pool(np.zeros((1, 1, 1)), filter_size=4, padding_mode="circular")
    with pytest.raises(ConfigError, match=r"between 1 and 7.*got 8"):
        blur_pool(np.zeros((1, 1, 9)), filter_size=8)
    with pytest.raises(ConfigError, match="filter_size must be an int >= 1"):
        blur_pool(np.zeros((1, 1, 9)), filter_size=0)
    with pytest.raises(ConfigError, match="padding_mode must be one of"):
        blur_pool(np.zeros((1, 1, 9)), padding_mode="mirror")
    with pytest.raises(ConfigError, match="stride"):
        blur_pool(np.zeros((1, 1, 9)), stride=(2, 2))
    with pytest.raises(ShapeError, match=r"reflect"):
        blur_pool_backward(np.zeros((1, 1, 1)), np.zeros((1, 1, 2)), filter_size=4)


# ----------------------------------------------------------------------------------------
# Blur pooling: the binomial filter and what the filter does
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "size, row",
    [(1, [1]), (2, [1, 1]), (3, [1, 2, 1]), (4, [1, 3, 3, 1]), (5, [1, 4, 6, 4, 1]),
     (6, [1, 5, 10, 10, 5, 1]), (7, [1, 6, 15, 20, 15, 6, 1])],
)
def test_binomial_filter_rows_of_pascals_triangle(size, row):
    row = np.array(row, dtype=np.float64)
    np.testing.assert_array_equal(binomial_filter(size, 1), row / row.sum())
    f2 = binomial_filter(size, 2)
    np.testing.assert_allclose(f2, np.outer(row, row) / row.sum() ** 2, rtol=1e-15)
    f3 = binomial_filter(size, 3)
    assert f3.shape == (size,) * 3 and f3.sum() == pytest.approx(1.0, abs=1e-15)


def test_binomial_filter_errors():
    with pytest.raises(ConfigError, match="between 1 and 7"):
        binomial_filter(8, 2)
    with pytest.raises(ConfigError, match="ndim"):
        binomial_filter(3, 0)


def test_blur_pool_is_depthwise_binomial_filter_then_subsampling():
    """Against a direct sum over filter taps (f**r products) on a zero-padded input."""
    rng = _rng("blur-direct")
    x = rng.standard_normal((2, 3, 7, 6))
    f, s = 4, (2, 3)
    w = binomial_filter(f, 2)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (1, 2)))
    expected = np.zeros((2, 3, 4, 2))
    for i in range(f):
        for j in range(f):
            expected += w[i, j] * xp[:, :, i : i + 7 : 2, j : j + 4 : 3][:, :, :4, :2]
    assert_close(blur_pool(x, f, s, "zeros"), expected, context="blur vs direct taps")


def test_blur_pool_keeps_constants_and_filter_size_one_subsamples():
    x = np.full((1, 2, 5, 6), 3.5)
    for mode in ("reflect", "replicate", "circular"):
        np.testing.assert_allclose(blur_pool(x, 5, 2, mode), 3.5, rtol=1e-15)
    ramp = np.arange(24.0).reshape(1, 1, 4, 6)
    np.testing.assert_array_equal(blur_pool(ramp, 1, (2, 3)), ramp[:, :, ::2, ::3])


def test_blur_pool_circular_stride_one_preserves_the_sum():
    x = _rng("sum").standard_normal((2, 2, 6, 5))
    for f in range(1, 6):
        assert blur_pool(x, f, 1, "circular").sum() == pytest.approx(x.sum(), rel=1e-12)


def test_blur_pool_reduces_the_shift_sensitivity_of_strided_max_pooling():
    """Notes 9.2.6: a one-pixel shift changes a stride-2 max pool a lot; blurred, much less."""
    x = np.zeros((1, 1, 16))
    x[0, 0, 7] = 1.0
    shifted = np.roll(x, 1, axis=-1)
    dense = lambda a: max_pool(a, 2, stride=1, ceil_mode=True)  # noqa: E731
    plain = np.abs(max_pool(x, 2) - max_pool(shifted, 2)).sum()
    blurred = np.abs(blur_pool(dense(x), 4) - blur_pool(dense(shifted), 4)).sum()
    assert plain == 2.0 and blurred < 0.5 * plain


# ----------------------------------------------------------------------------------------
# Fast path versus the plain-loop reference; dtypes; blocks; arguments untouched
# ----------------------------------------------------------------------------------------
REF_CASES = [
    ((2, 3, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 6, 5), dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1), dilation=(2, 1), ceil_mode=True)),
    ((2, 1, 9, 9), dict(kernel_size=2)),
    ((1, 2, 3, 5, 4), dict(kernel_size=(2, 3, 2), stride=(2, 1, 3), padding=(1, 1, 0), ceil_mode=True)),
    ((1, 1, 3, 3, 4, 2), dict(kernel_size=(2, 2, 3, 1), stride=(1, 2, 2, 1), padding=(1, 0, 1, 0))),
    ((2, 2, 7, 6), dict(kernel_size=3, stride=2, padding=((1, 0), (0, 1)), ceil_mode=True)),
    ((2, 2, 7, 6), dict(kernel_size=(3, 2), stride=2, padding="same")),
]


@pytest.mark.parametrize("shape, kw", REF_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_matches_reference_with_ties(shape, kw, dtype, small_blocks):
    x = np.round(_rng("ref", shape).standard_normal(shape), 0).astype(dtype)  # many ties
    y, idx = max_pool(x, **kw, return_indices=True)
    yr, ir = reference_max_pool(x, **kw, return_indices=True)
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(idx, ir)
    assert y.dtype == dtype
    # backward = dy scattered to the reference indices
    dy = _rng("dy", shape).standard_normal(y.shape).astype(dtype)
    expected = np.zeros(x.shape, dtype).reshape(x.shape[:2] + (-1,))
    for (b, c), _ in np.ndenumerate(np.zeros(x.shape[:2])):
        np.add.at(expected[b, c], ir[b, c].ravel(), dy[b, c].ravel())
    assert_close(max_pool_backward(dy, x, **kw), expected.reshape(x.shape), kind="backward")


@pytest.mark.parametrize("shape, kw", REF_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_reference(shape, kw, count_include_pad, small_blocks):
    kw = {k: v for k, v in kw.items() if k != "dilation"}
    if len(shape) == 5:  # 3-D avg pool needs n >= k (PyTorch's avg_pool3d rule)
        shape = (1, 2, 4, 5, 4)
    x = _rng("avg-ref", shape).standard_normal(shape).astype(np.float32)
    y = avg_pool(x, **kw, count_include_pad=count_include_pad)
    assert_close(y, reference_avg_pool(x, **kw, count_include_pad=count_include_pad))
    assert y.dtype == np.float32


def test_float32_in_float32_out_everywhere():
    x = _rng("f32").standard_normal((2, 3, 8, 8)).astype(np.float32)
    for y in (max_pool(x, 2), avg_pool(x, 3, 2, 1), blur_pool(x), max_pool(x, 2, return_indices=True)[0]):
        assert y.dtype == np.float32
    assert max_pool_backward(np.ones((2, 3, 4, 4), np.float32), x, 2).dtype == np.float32
    assert avg_pool_backward(np.ones((2, 3, 4, 4), np.float32), x, 3, 2, 1).dtype == np.float32
    assert blur_pool_backward(np.ones((2, 3, 4, 4), np.float32), x).dtype == np.float32


def test_backward_does_not_modify_arguments_and_accepts_views():
    rng = _rng("views")
    base = _distinct(rng, (2, 6, 9, 3))
    x = base.transpose(0, 3, 1, 2)[:, :, ::-1]  # non-contiguous, negative strides
    dy = rng.standard_normal((2, 3, 2, 5))
    x_copy, dy_copy = x.copy(), dy.copy()
    for fwd, bwd, kw in [
        (max_pool, max_pool_backward, dict(kernel_size=3, padding=1, stride=(3, 2))),
        (avg_pool, avg_pool_backward, dict(kernel_size=3, padding=1, stride=(3, 2))),
        (blur_pool, blur_pool_backward, dict(filter_size=3, stride=(3, 2))),
    ]:
        y = fwd(x, **kw)
        np.testing.assert_array_equal(y, fwd(np.ascontiguousarray(x), **kw))
        dx = bwd(dy, x, **kw)
        np.testing.assert_array_equal(dx, bwd(dy, np.ascontiguousarray(x), **kw))
        np.testing.assert_array_equal(x, x_copy)
        np.testing.assert_array_equal(dy, dy_copy)


def test_blur_pool_in_row_blocks_matches_one_block(monkeypatch):
    rng = _rng("blocks")
    x = rng.standard_normal((5, 2, 9, 8)).astype(np.float32)
    dy = rng.standard_normal((5, 2, 5, 4)).astype(np.float32)
    y, dx = blur_pool(x), blur_pool_backward(dy, x)
    monkeypatch.setattr(blur_module, "_BLUR_BLOCK_ELEMENTS", 150)  # 1 row (of 10 x 11 padded) per block
    np.testing.assert_array_equal(blur_pool(x), y)
    np.testing.assert_array_equal(blur_pool_backward(dy, x), dx)
    monkeypatch.setattr(blur_module, "_BLUR_BLOCK_ELEMENTS", 330)  # 3 rows: a short last block
    np.testing.assert_array_equal(blur_pool(x), y)
    np.testing.assert_array_equal(blur_pool_backward(dy, x), dx)


def test_empty_batch():
    x = np.zeros((0, 3, 4, 4))
    assert max_pool(x, 2).shape == (0, 3, 2, 2)
    assert max_pool(x, 2, return_indices=True)[1].shape == (0, 3, 2, 2)
    assert avg_pool_backward(np.zeros((0, 3, 2, 2)), x, 2).shape == x.shape
    assert max_pool_backward(np.zeros((0, 3, 2, 2)), x, 2).shape == x.shape
    assert blur_pool(x).shape == (0, 3, 2, 2)
