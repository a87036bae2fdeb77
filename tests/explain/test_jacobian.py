"""The derivatives of section 9.4 as matrices, checked against the library's backward."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope import functional as F
from convscope.errors import ShapeError
from convscope.explain import chain_9_32, conv_weight_jacobian, maxpool_jacobian, relu_jacobian
from convscope.testing import assert_close, numerical_vjp


def test_notes_9_31_symbolic_matrix():
    j = conv_weight_jacobian(6, 4)
    assert j.shape == (4, 3) and j.matrix is None
    assert j.symbols.tolist() == [["X_1", "X_2", "X_3"], ["X_2", "X_3", "X_4"],
                                  ["X_3", "X_4", "X_5"], ["X_4", "X_5", "X_6"]]
    assert "(4 x 3)" in j.text() and "Key Equation 68" in j.text()


def test_weight_jacobian_times_dz_is_conv_backward_dw():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(9)
    j = conv_weight_jacobian(x, 3, stride=2, padding=1, dilation=2)
    dz = rng.standard_normal(j.shape[1])
    _, dw, _ = F.conv_backward(dz[None, None], x[None, None], np.zeros((1, 1, 3)), stride=2,
                               padding=1, dilation=2)
    assert_close(j.matrix @ dz, dw[0, 0], kind="backward", context="dZ/dW . dL/dZ")
    assert "0" in j.symbols[:, 0].tolist()          # the zero padding shows as 0


def test_weight_jacobian_2d():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5))
    j = conv_weight_jacobian(x, (2, 3), padding=(1, 0))
    dz = rng.standard_normal(j.shape[1])
    _, dw, _ = F.conv_backward(dz.reshape(1, 1, 5, 3), x[None, None], np.zeros((1, 1, 2, 3)),
                               padding=(1, 0))
    assert_close(j.matrix @ dz, dw.ravel(), kind="backward", context="2-D dZ/dW")
    # X = A^0 is the padded input (9.14): its row 1 is padding, x's first row is X's row 2
    assert j.symbols[0, 0] == "0" and j.symbols[0, 3] == "X_{2,1}"


def test_notes_9_26_relu_diagonal():
    j = relu_jacobian([0.5, 2.0, -1.0, 3.0])
    np.testing.assert_array_equal(j.matrix, np.diag([1., 1., 0., 1.]))
    dy = np.arange(1., 5.)
    np.testing.assert_array_equal(j.matrix @ dy, F.relu_backward(dy, np.array([0.5, 2.0, -1.0, 3.0])))
    assert "diagonal" in j.text()


def test_notes_9_35_maxpool_one_hot():
    j = maxpool_jacobian([1., 0., 2., 5., -1., 3.])
    np.testing.assert_array_equal(j.matrix.ravel(), [0, 0, 0, 1, 0, 0])
    assert j.shape == (6, 1)


@settings(max_examples=25)
@given(n=st.integers(2, 12), k=st.integers(1, 4), s=st.integers(1, 3), seed=st.integers(0, 99))
def test_maxpool_jacobian_is_max_pool_backward(n, k, s, seed):
    if k > n:
        return
    rng = np.random.default_rng(seed)
    a = rng.permutation(n).astype(float)
    j = maxpool_jacobian(a, k, s)
    y = F.max_pool(a[None, None], k, s)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(j.matrix.sum(axis=0), np.ones(y.size))   # one-hot columns
    assert_close(j.matrix @ dy.ravel(), F.max_pool_backward(dy, a[None, None], k, s).ravel(),
                 kind="backward", context="maxpool")


def test_chain_9_32_matches_library_and_finite_differences():
    c = chain_9_32([1., -2., 3., 1., 0., 2.], [1., 0., 1., -1.], [1., -1., 2.], 1.0)
    np.testing.assert_array_equal(c.z1, [3, -1, 1])
    assert c.a2 == 5 and c.loss == 16
    assert c.dz_dw.shape == (4, 3) and c.da1_dz1.shape == (3, 3)
    assert c.da2_da1.shape == (3, 1) and c.dl_da2.shape == (1, 1)
    assert c.product.shape == (4, 1)
    np.testing.assert_array_equal(c.product.ravel(), c.library_dw)
    assert c.max_abs_diff == 0
    text = c.text()
    assert "dL/dW^1 (k x 1) = dZ^1/dW^1 (k x n) . dA^1/dZ^1 (n x n)" in text
    assert "largest difference 0" in text


@settings(max_examples=20)
@given(m=st.integers(3, 9), k=st.integers(1, 3), p=st.integers(0, 2), seed=st.integers(0, 99))
def test_chain_9_32_random(m, k, p, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(m)
    w1 = rng.standard_normal(k)
    n = m + 2 * p - k + 1
    w2 = rng.standard_normal(n)
    c = chain_9_32(x, w1, w2, 0.3, padding=p)
    assert_close(c.product.ravel(), c.library_dw, kind="backward", context="chain vs library")

    def loss(w):
        z = F.conv(x[None, None], w[None, None], padding=p)[0, 0]
        return np.array([(np.maximum(z, 0) @ w2 - 0.3) ** 2])

    z = F.conv(x[None, None], w1[None, None], padding=p)[0, 0]
    if np.min(np.abs(z)) > 1e-3:               # away from ReLU's kink
        (num,) = numerical_vjp(loss, [w1], np.ones(1))
        assert np.allclose(num, c.product.ravel(), rtol=1e-5, atol=1e-6)


def test_chain_errors():
    with pytest.raises(ShapeError, match="n = m \\+ 2p - k \\+ 1"):
        chain_9_32([1., 2., 3.], [1., 1.], [1., 1., 1.], 0.0)
    with pytest.raises(ShapeError, match="1-D"):
        chain_9_32([[1., 2.]], [1.], [1.], 0.0)
