"""The notes' worked examples (cnn-notes.md, chapter 9), with the notes' own numbers.

Each test is named after the section it reproduces. Our own hand-checkable examples (a ramp
image, an edge filter) close the file. Max-pool examples (9.12, 9.35) live with the pooling
tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from convscope.functional import conv, conv_backward
from convscope.functional.reference import reference_conv, reference_conv_windows
from convscope.functional.windows import pad
from convscope.shapes import conv_output_size, key_equation_48_ceil, key_equation_48_floor


def _signal(values) -> np.ndarray:
    """A 1-D signal as a batch of one single-channel sample: shape (1, 1, n)."""
    return np.asarray(values, dtype=np.float64).reshape(1, 1, -1)


# ----------------------------------------------------------------------------------------
# 9.1.4 - 9.1.6: the 1-D example
# ----------------------------------------------------------------------------------------
NOTES_X = [+1, +1, -1, -1, -1, +1, -1, +1, +1, +1]
NOTES_F = [+1, -1, +1]
NOTES_Y = [-1, +1, -1, +1, -3, +3, -1, +1]  # (9.4)


def test_notes_9_1_4_one_dimensional_example():
    y = conv(_signal(NOTES_X), _signal(NOTES_F))
    assert y.shape == (1, 1, 8)
    np.testing.assert_array_equal(y[0, 0], NOTES_Y)


def test_notes_9_1_4_first_window_dot_product():
    # (9.2): v_1 = [+1 +1 -1], f . v_1 = +1 - 1 - 1 = -1, the first output (9.3).
    i, v_1 = next(iter(reference_conv_windows(np.array(NOTES_X, dtype=float), 3)))
    assert i == 0
    np.testing.assert_array_equal(v_1, [+1, +1, -1])
    assert float(np.dot(NOTES_F, v_1)) == -1.0


def test_notes_9_1_4_every_window_is_key_equation_15():
    x = np.array(NOTES_X, dtype=float)
    windows = list(reference_conv_windows(x, 3))
    assert [i for i, _ in windows] == list(range(8))
    for i, v in windows:
        np.testing.assert_array_equal(v, x[i : i + 3])  # v_{i+1} = x[i : i + k]
    assert [float(np.dot(NOTES_F, v)) for _, v in windows] == NOTES_Y


def test_notes_9_1_5_strongest_match_is_the_bright_spot():
    y = conv(_signal(NOTES_X), _signal(NOTES_F))[0, 0]
    assert int(np.argmax(y)) + 1 == 6  # the notes index outputs from 1
    assert y.max() == 3.0  # the full match: f . f = 3
    # the window there is exactly the pattern [+1 -1 +1]
    np.testing.assert_array_equal(NOTES_X[5:8], NOTES_F)


def test_notes_9_1_6_output_is_k_minus_1_shorter():
    for n in range(3, 15):
        for k in range(1, n + 1):
            y = conv(np.ones((1, 1, n)), np.ones((1, 1, k)))
            assert y.shape[-1] == n - (k - 1)  # Concept 18


def test_notes_9_1_4_reference_loops_agree():
    y = reference_conv(_signal(NOTES_X), _signal(NOTES_F))
    np.testing.assert_array_equal(y[0, 0], NOTES_Y)


# ----------------------------------------------------------------------------------------
# 9.1.7: padding
# ----------------------------------------------------------------------------------------
def test_notes_9_1_7_zero_padding_p2_via_pad():
    padded = pad(_signal([1, 2, 3, 4]), [(2, 2)])
    np.testing.assert_array_equal(padded[0, 0], [0, 0, 1, 2, 3, 4, 0, 0])  # (9.7)


def test_notes_9_1_7_zero_padding_p2_via_identity_filter():
    # A 1-tap filter [1] copies every window: the output is the padded input itself.
    y = conv(_signal([1, 2, 3, 4]), _signal([1]), padding=2)
    np.testing.assert_array_equal(y[0, 0], [0, 0, 1, 2, 3, 4, 0, 0])


def test_notes_9_1_7_padded_output_size():
    # (n + 2p) - (k - 1); with 2p = k - 1 the output keeps the input size.
    x = _signal(NOTES_X)
    for k, p in [(3, 1), (3, 2), (5, 2), (1, 0), (7, 3)]:
        y = conv(x, np.ones((1, 1, k)), padding=p)
        assert y.shape[-1] == (10 + 2 * p) - (k - 1)
    for k in (1, 3, 5, 7):
        assert conv(x, np.ones((1, 1, k)), padding=(k - 1) // 2).shape[-1] == 10


def test_notes_9_1_7_padded_notes_example_values():
    # p = 1 on the 1-D example: two extra outputs at the ends, the middle is (9.4) unchanged.
    y = conv(_signal(NOTES_X), _signal(NOTES_F), padding=1)[0, 0]
    assert y.tolist() == [0 * 1 - 1 * 1 + 1 * 1] + NOTES_Y + [1 * 1 - 1 * 1 + 0 * 1]


# ----------------------------------------------------------------------------------------
# 9.1.8 - 9.1.9: the 2-D window dot product
# ----------------------------------------------------------------------------------------
NOTES_F2 = np.array([[-1, +1, -1], [+1, +1, +1], [-1, +1, -1]], dtype=float)
NOTES_W01 = np.array([[+1, -1, -1], [+1, +1, -1], [+1, -1, -1]], dtype=float)


def test_notes_9_1_8_two_dimensional_window_dot_product():
    # (9.10): one column at a time, then summed.
    columns = [float(np.dot(NOTES_F2[:, j], NOTES_W01[:, j])) for j in range(3)]
    assert columns == [-1.0, -1.0, +1.0]
    # Definition 21: element-wise product, then the sum of all entries.
    assert float((NOTES_F2 * NOTES_W01).sum()) == sum(columns) == -1.0
    y = conv(NOTES_W01[None, None], NOTES_F2[None, None])
    assert y.shape == (1, 1, 1, 1) and y.item() == -1.0


def test_notes_9_1_8_window_w01_is_one_column_over():
    # Place the notes' window one column to the right in a 3x4 image: output [0, 1] is f . w_{0,1}.
    image = np.zeros((3, 4))
    image[:, 1:] = NOTES_W01
    image[:, 0] = [5.0, -7.0, 11.0]
    y = conv(image[None, None], NOTES_F2[None, None])
    assert y.shape == (1, 1, 1, 2)
    assert y[0, 0, 0, 1] == -1.0
    assert y[0, 0, 0, 0] == float((NOTES_F2 * image[:, :3]).sum())


def test_notes_9_1_9_two_dimensional_output_size():
    # Concept 22: (n + 2p) - (k - 1) along each axis.
    for n, k, p in [(5, 3, 0), (5, 3, 1), (7, 5, 2), (6, 2, 0), (4, 4, 1)]:
        y = conv(np.zeros((1, 1, n, n)), np.zeros((1, 1, k, k)), padding=p)
        assert y.shape[2:] == ((n + 2 * p) - (k - 1),) * 2


# ----------------------------------------------------------------------------------------
# 9.1.18: weight sharing, 10 parameters vs 650
# ----------------------------------------------------------------------------------------
def test_notes_9_1_18_parameter_count_conv_vs_fully_connected():
    image = np.random.default_rng(0).standard_normal((1, 1, 5, 5))
    w = np.ones((1, 1, 3, 3))  # a single 3x3 filter
    b = np.zeros(1)  # one bias
    y = conv(image, w, b, padding=1)
    assert y.shape == (1, 1, 5, 5)  # a (5 x 5) output from a (5 x 5) image
    conv_params = w.size + b.size
    assert conv_params == 9 + 1 == 10
    n_in, n_out = image[0].size, y[0].size  # flatten both to (25 x 1)
    fc_params = n_out * n_in + n_out  # 25 * 25 weights and 25 * 1 biases
    assert (n_in, n_out) == (25, 25)
    assert fc_params == 650


# ----------------------------------------------------------------------------------------
# 9.1.20 - 9.1.21: stride and Key Equation 48
# ----------------------------------------------------------------------------------------
def test_notes_9_1_20_stride_divides_the_size():
    x = _signal(NOTES_X)
    y1 = conv(x, _signal(NOTES_F))[0, 0]
    y2 = conv(x, _signal(NOTES_F), stride=2)[0, 0]
    # Stride 2 skips every other window: New Size = ceil(Old Size / s).
    assert y2.shape[0] == math.ceil(y1.shape[0] / 2) == 4
    np.testing.assert_array_equal(y2, y1[::2])
    y3 = conv(x, _signal(NOTES_F), stride=3)[0, 0]
    assert y3.shape[0] == math.ceil(8 / 3) == 3
    np.testing.assert_array_equal(y3, y1[::3])


@pytest.mark.parametrize("n, k, p, s", [(10, 3, 0, 1), (10, 3, 1, 2), (9, 3, 2, 3), (64, 2, 0, 2), (7, 5, 2, 2),
                                        (8, 1, 0, 3)])
def test_notes_key_equation_48_on_real_outputs(n, k, p, s):
    y = conv(np.zeros((1, 1, n)), np.zeros((1, 1, k)), padding=p, stride=s)
    assert y.shape[-1] == key_equation_48_ceil(n, k, p, s) == key_equation_48_floor(n, k, p, s)
    assert y.shape[-1] == conv_output_size(n, k, p, s)


def test_notes_key_equation_48_example_64x64x3_k2_s2():
    # (64 x 64 x 3) input, a (2 x 2 x 3) filter, stride 2 -> (32 x 32 x 1).
    # The notes print "(64 - (2+1) + 2*0)/2"; the arithmetic is 64 - (2-1) = 63, ceil(63/2) = 32.
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64))
    w = np.random.default_rng(2).standard_normal((1, 3, 2, 2))
    y = conv(x, w, stride=2)
    assert y.shape == (1, 1, 32, 32)
    assert math.ceil((64 - (2 - 1) + 2 * 0) / 2) == 32
    # each output is the dot product of the filter with one non-overlapping 2x2x3 block
    assert y[0, 0, 5, 7] == pytest.approx(float((w[0] * x[0, :, 10:12, 14:16]).sum()), rel=1e-12)


# ----------------------------------------------------------------------------------------
# 9.4.5: the filter derivative dZ/dW (9.31)
# ----------------------------------------------------------------------------------------
X6 = np.array([0.7, -1.3, 2.1, 0.4, -0.9, 1.6])  # X_1 .. X_6, all different


def _expected_dz_dw(x):
    # (9.31): rows are weights W_1..W_4, columns are outputs Z_1..Z_3; entry X_{i+j-1}.
    return np.array([[x[0], x[1], x[2]], [x[1], x[2], x[3]], [x[2], x[3], x[4]], [x[3], x[4], x[5]]])


def test_notes_9_31_dz_dw_by_perturbing_each_weight():
    x = _signal(X6)
    w = np.random.default_rng(3).standard_normal((1, 1, 4))
    eps = 1e-3
    jac = np.zeros((4, 3))  # (k x n): 4 weights, 3 outputs
    for j in range(4):
        plus, minus = w.copy(), w.copy()
        plus[0, 0, j] += eps
        minus[0, 0, j] -= eps
        jac[j] = (conv(x, plus) - conv(x, minus))[0, 0] / (2 * eps)
    assert conv(x, w).shape == (1, 1, 3)  # 4 weights, 6 inputs, stride 1: 3 outputs
    np.testing.assert_allclose(jac, _expected_dz_dw(X6), rtol=1e-9, atol=1e-12)


def test_notes_9_31_dz_dw_by_conv_backward_with_unit_dy():
    x = _signal(X6)
    w = np.random.default_rng(4).standard_normal((1, 1, 4))
    columns = []
    for i in range(3):
        dy = np.zeros((1, 1, 3))
        dy[0, 0, i] = 1.0  # picks dZ_i / dW
        _, dw, db = conv_backward(dy, x, w)
        columns.append(dw[0, 0])
        assert db.tolist() == [1.0]
    np.testing.assert_array_equal(np.stack(columns, axis=1), _expected_dz_dw(X6))


def test_notes_key_equation_68_general_entry():
    # dZ_i/dW_j = X_{i+j-1} for a longer random signal.
    rng = np.random.default_rng(5)
    x = rng.standard_normal(11)
    k = 5
    n_out = 11 - (k - 1)
    for i in range(n_out):
        dy = np.zeros((1, 1, n_out))
        dy[0, 0, i] = 1.0
        _, dw, _ = conv_backward(dy, _signal(x), np.zeros((1, 1, k)))
        for j in range(k):
            assert dw[0, 0, j] == x[i + j]  # 0-based form of X_{i+j-1}


# ----------------------------------------------------------------------------------------
# 9.4: the whole chain (conv with padding, ReLU, FC without bias, squared loss)
# ----------------------------------------------------------------------------------------
def test_notes_9_4_full_chain_gradient_9_32_equals_conv_backward():
    import convscope.functional as F
    relu, relu_backward = F.relu, F.relu_backward
    linear, linear_backward = F.linear, F.linear_backward
    squared_loss, squared_loss_backward = F.squared_loss, F.squared_loss_backward

    rng = np.random.default_rng(6)
    m, k, p = 7, 3, 1  # input length, filter size, padding; Z^1 and A^1 have n = 7 entries
    x = rng.standard_normal(m)
    w1 = rng.standard_normal((1, 1, k))
    w2 = rng.standard_normal((1, m))  # linear weight (out, in): A^2 = (W^2)^T A^1
    y_target = np.array([[0.3]])

    # Forward (9.14 - 9.17)
    a0 = _signal(x)
    z1 = conv(a0, w1, padding=p)  # (1, 1, n)
    assert np.abs(z1).min() > 1e-3, "keep away from the ReLU kink"
    assert (z1 < 0).any() and (z1 > 0).any(), "both ReLU regions appear"
    a1 = relu(z1)
    a2 = linear(a1.reshape(1, -1), w2)  # (1, 1)
    loss = squared_loss(a2, y_target)
    assert float(loss) == pytest.approx(((a2 - y_target) ** 2).item(), rel=1e-12)  # (9.17)

    # The notes' chain (9.32) as explicit matrices
    n = z1.shape[-1]
    assert n == m + 2 * p - (k - 1)
    x_padded = np.concatenate([np.zeros(p), x, np.zeros(p)])  # A^0 = X (9.14)
    dz_dw = np.array([[x_padded[i + j] for i in range(n)] for j in range(k)])  # (k x n), (9.30)
    da1_dz1 = np.diag((z1[0, 0] > 0).astype(float))  # (n x n), Key Equation 66
    da2_da1 = w2.T  # (n x 1), (9.22)
    dl_da2 = 2 * (a2 - y_target)  # (1 x 1), (9.21)
    dl_dw_notes = dz_dw @ da1_dz1 @ da2_da1 @ dl_da2  # (k x 1)
    assert dl_dw_notes.shape == (k, 1)

    # The same gradient through the library's backward functions, in reverse order
    dl_da2_lib = squared_loss_backward(a2, y_target)
    np.testing.assert_allclose(dl_da2_lib, dl_da2, rtol=1e-12)
    da1_flat, dw2, _ = linear_backward(dl_da2_lib, a1.reshape(1, -1), w2)
    dz1 = relu_backward(da1_flat.reshape(z1.shape), z1)
    _, dw1, db1 = conv_backward(dz1, a0, w1, padding=p)
    np.testing.assert_allclose(dw1[0, 0], dl_dw_notes[:, 0], rtol=1e-12, atol=1e-14)
    assert db1.shape == (1,)

    # ... and by central differences of the scalar loss
    def total_loss(weights):
        z = conv(a0, weights, padding=p)
        return float(squared_loss(linear(relu(z).reshape(1, -1), w2), y_target))

    eps = 1e-6
    numeric = []
    for j in range(k):
        plus, minus = w1.copy(), w1.copy()
        plus[0, 0, j] += eps
        minus[0, 0, j] -= eps
        numeric.append((total_loss(plus) - total_loss(minus)) / (2 * eps))
    np.testing.assert_allclose(dw1[0, 0], numeric, rtol=1e-6, atol=1e-8)


def test_notes_9_26_relu_derivative_is_a_diagonal_matrix():
    import convscope.functional as F
    z = np.array([0.5, 2.0, -1.5, 0.1])  # Z_3 negative, as in (9.26)
    jac = np.stack([F.relu_backward(e, z) for e in np.eye(4)], axis=1)
    np.testing.assert_array_equal(jac, np.diag([1.0, 1.0, 0.0, 1.0]))


# ----------------------------------------------------------------------------------------
# Clarification 17: true convolution flips the filter
# ----------------------------------------------------------------------------------------
def test_notes_clarification_17_true_convolution_is_numpy_convolve():
    rng = np.random.default_rng(7)
    for n, k in [(10, 3), (7, 7), (12, 4), (5, 1)]:
        x, f = rng.standard_normal(n), rng.standard_normal(k)
        y = conv(_signal(x), _signal(f), flip=True)[0, 0]
        np.testing.assert_allclose(y, np.convolve(x, f, mode="valid"), rtol=1e-12, atol=1e-14)
        # cross-correlation (the ML convolution) is numpy's correlate
        y_ml = conv(_signal(x), _signal(f))[0, 0]
        np.testing.assert_allclose(y_ml, np.correlate(x, f, mode="valid"), rtol=1e-12, atol=1e-14)


def test_notes_clarification_17_symmetric_filter_is_unchanged_by_flip():
    x = _signal(NOTES_X)
    f = _signal(NOTES_F)  # [+1 -1 +1] reads the same backwards
    np.testing.assert_array_equal(conv(x, f, flip=True), conv(x, f))


def test_true_convolution_2d_flips_both_axes():
    x = np.arange(20.0).reshape(1, 1, 4, 5)
    f = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    y = conv(x, f, flip=True)
    # Hand-written: true convolution uses f reversed on both axes, [[4, 3], [2, 1]].
    manual = np.array(
        [[4 * x[0, 0, i, j] + 3 * x[0, 0, i, j + 1] + 2 * x[0, 0, i + 1, j] + 1 * x[0, 0, i + 1, j + 1]
          for j in range(4)] for i in range(3)]
    )
    np.testing.assert_array_equal(y[0, 0], manual)


# ----------------------------------------------------------------------------------------
# Our own hand-checkable examples
# ----------------------------------------------------------------------------------------
def test_ramp_image_with_2x2_kernels():
    # x[i, j] = 4 i + j on a 3 x 4 image:
    #   0  1  2  3
    #   4  5  6  7
    #   8  9 10 11
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    box = np.ones((1, 1, 2, 2))  # the sum of each 2x2 window
    np.testing.assert_array_equal(conv(x, box)[0, 0], [[10, 14, 18], [26, 30, 34]])
    diagonal = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # x[i, j] - x[i+1, j+1] = -5 everywhere
    np.testing.assert_array_equal(conv(x, diagonal)[0, 0], np.full((2, 3), -5.0))
    horizontal = np.array([[[[-1.0, 1.0], [0.0, 0.0]]]])  # x[i, j+1] - x[i, j] = 1
    np.testing.assert_array_equal(conv(x, horizontal)[0, 0], np.ones((2, 3)))
    vertical = np.array([[[[-1.0, 0.0], [1.0, 0.0]]]])  # x[i+1, j] - x[i, j] = 4
    np.testing.assert_array_equal(conv(x, vertical)[0, 0], np.full((2, 3), 4.0))
    # with a bias and stride 2 along the columns
    y = conv(x, box, np.array([0.5]), stride=(1, 2))
    np.testing.assert_array_equal(y[0, 0], [[10.5, 18.5], [26.5, 34.5]])


def test_edge_filter_fires_on_vertical_step_and_is_silent_on_horizontal_step():
    step = np.zeros((6, 6))
    step[:, 3:] = 1.0  # dark left half, bright right half: a vertical edge between columns 2 and 3
    sobel_x = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])  # vertical-edge filter
    fired = conv(step[None, None], sobel_x[None, None])[0, 0]
    assert fired.shape == (4, 4)
    # Windows starting at columns 1 and 2 straddle the edge: response 1 + 2 + 1 = 4; others 0.
    np.testing.assert_array_equal(fired, np.tile([0.0, 4.0, 4.0, 0.0], (4, 1)))
    silent = conv(step.T[None, None].copy(), sobel_x[None, None])[0, 0]
    np.testing.assert_array_equal(silent, np.zeros((4, 4)))
    # The transposed filter sees the transposed step.
    np.testing.assert_array_equal(conv(step.T[None, None].copy(), sobel_x.T[None, None].copy())[0, 0], fired.T)
