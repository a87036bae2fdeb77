"""Convolution is linear: the matrix M, composition of convolutions, the filter-bank demo."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope import functional as F
from convscope.errors import ShapeError
from convscope.explain import compose, conv_as_matrix, filter_bank_demo
from convscope.testing import assert_close


def test_notes_1d_example_as_a_matrix():
    x = np.array([1., 1, -1, -1, -1, 1, -1, 1, 1, 1])
    m = conv_as_matrix(np.array([1., -1., 1.]), (10,))
    np.testing.assert_array_equal(m.matrix @ x, [-1, 1, -1, 1, -3, 3, -1, 1])
    assert m.shape == (8, 10) and m.nonzeros == 24 and m.free_weights == 3
    assert m.dense_weights == 80
    assert "80 free weights" in m.text() and "M =" in m.text()


def test_notes_9_1_18_counts():
    m = conv_as_matrix(np.ones((3, 3)), (5, 5), padding=1)
    assert m.shape == (25, 25) and m.free_weights == 9 and m.dense_weights == 625


@settings(max_examples=30)
@given(data=st.data(), ndim=st.integers(1, 2))
def test_matrix_times_x_is_conv(data, ndim):
    g = data.draw(st.sampled_from([1, 2]))
    c_in = g * data.draw(st.integers(1, 2))
    c_out = g * data.draw(st.integers(1, 2))
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    s = tuple(data.draw(st.integers(1, 2)) for _ in range(ndim))
    d = tuple(data.draw(st.integers(1, 2)) for _ in range(ndim))
    p = tuple(data.draw(st.integers(0, 1)) for _ in range(ndim))
    mode = data.draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    n = tuple(di * (ki - 1) + 2 + data.draw(st.integers(0, 3)) for ki, di in zip(k, d))
    rng = np.random.default_rng(data.draw(st.integers(0, 999)))
    w = rng.standard_normal((c_out, c_in // g, *k))
    x = rng.standard_normal((c_in, *n))
    m = conv_as_matrix(w, (c_in, *n), s, p, d, g, mode)
    y = F.conv(x[None], w, None, s, p, d, g, mode)[0]
    assert_close((m.matrix @ x.ravel()).reshape(y.shape), y, context=f"{mode} k={k} s={s} p={p} d={d}")
    assert_close(m.apply(x), y, context="triplets")
    assert m.free_weights == w.size


def test_large_matrix_is_not_printed():
    m = conv_as_matrix(np.ones((1, 1, 3, 3)), (1, 10, 10))
    assert "too large to print" in m.text()
    assert m.output_shape == (1, 8, 8)


def test_matrix_errors():
    with pytest.raises(ShapeError, match="filter bank"):
        conv_as_matrix(np.ones((2, 2, 2, 2)), (4,))
    with pytest.raises(ShapeError, match="does not fit"):
        conv_as_matrix(np.ones(5), (3,))


def test_compose_two_1d_filters_is_full_convolution():
    a, b = np.array([1., 2., -1.]), np.array([3., 0., 1., 2.])
    c = compose(a, b)
    np.testing.assert_array_equal(c.weight, np.convolve(a, b))
    x = np.random.default_rng(0).standard_normal(12)
    stacked = F.conv(F.conv(x[None, None], a[None, None]), b[None, None])
    assert_close(F.conv(x[None, None], c.weight[None, None]), stacked, context="compose 1-D")
    assert c.check_error < 1e-12 and c.verify(x) < 1e-12


@settings(max_examples=20)
@given(data=st.data())
def test_compose_banks_with_biases(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 999)))
    c0, c1, c2, c3 = (data.draw(st.integers(1, 3)) for _ in range(4))
    ka = tuple(data.draw(st.integers(1, 3)) for _ in range(2))
    kb = tuple(data.draw(st.integers(1, 3)) for _ in range(2))
    kc = tuple(data.draw(st.integers(1, 2)) for _ in range(2))
    a, b, c = (rng.standard_normal(s) for s in ((c1, c0, *ka), (c2, c1, *kb), (c3, c2, *kc)))
    ba = rng.standard_normal(c1)
    bc = rng.standard_normal(c3)
    merged = compose((a, ba), b, (c, bc))
    x = rng.standard_normal((2, c0, 9, 8))
    stacked = F.conv(F.conv(F.conv(x, a, ba), b), c, bc)
    assert_close(F.conv(x, merged.weight, merged.bias), stacked, context="three layers")
    assert merged.weight.shape == (c3, c0, *(p + q + r - 2 for p, q, r in zip(ka, kb, kc)))


def test_compose_text_and_errors():
    c = compose((np.ones((2, 1, 3)), np.array([1.0, 2.0])), (np.ones((1, 2, 2)), np.array([1.0])))
    # the first layer's biases pass through the second filter: 2*1 + 2*2 + 1 = 7
    assert "3 + 2 - 1 = 4" in c.text() and "combined bias: 7" in c.text()
    with pytest.raises(ShapeError, match="expects 3 input channels"):
        compose(np.ones((2, 1, 3)), np.ones((1, 3, 2)))
    with pytest.raises(Exception, match="at least two"):
        compose(np.ones(3))


def test_notes_9_1_12_filter_bank_demo():
    demo = filter_bank_demo()
    # two channels from the filter bank, as the library computes them
    bank = np.stack([demo.vertical_filter, demo.horizontal_filter])[:, None]
    np.testing.assert_array_equal(demo.channels, F.conv(demo.image[None, None], bank)[0])
    # the vertical filter is silent on horizontal lines and vice versa (line interiors)
    assert demo.channels[0, 3 - 1, 13:18].max() == 0 and demo.channels[1, 4:7, 3 - 1].max() == 0
    # the tensor filter fires only at the hollow square, not at the filled one
    assert demo.fire_positions == [demo.hollow_square]
    fr, fc = demo.filled_square
    assert demo.response[fr - 3, fc - 3] < 0
    # one composed donut filter does the same job
    np.testing.assert_array_equal(demo.donut_response, demo.response)
    assert demo.donut.shape == (7, 7)
    assert demo.donut[3, 1] > 0 and demo.donut[3, 3] <= 0 and demo.donut[0, 3] < 0   # ring, hole, outside
    assert "fires (response > 0) at [(11, 12)]" in demo.text()
