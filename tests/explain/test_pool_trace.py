"""trace_pool: the notes' max-pool example, agreement with the library's pooling and backward."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope import functional as F
from convscope.errors import ConfigError, ShapeError
from convscope.explain import parse_array, trace_pool
from convscope.testing import assert_close

NOTES = "[[1,3,-9,-22],[44,-10,-11,-1],[0,10,4,-3],[11,9,321,99]]"


def test_notes_9_12_max_pool_and_one_hot_derivative():
    x = parse_array(NOTES)
    t = trace_pool(x, 2, 2)
    np.testing.assert_array_equal(t.y, [[44, -1], [11, 321]])
    expected = np.zeros((4, 4))
    expected[1, 0] = expected[1, 3] = expected[3, 0] = expected[3, 2] = 1
    np.testing.assert_array_equal(t.derivative, expected)
    # per receptive field: the one-hot vector of Key Equation 69 / (9.35)
    assert [s.argmax for s in t.steps] == [(1, 0), (1, 3), (3, 0), (3, 2)]
    np.testing.assert_array_equal(t.steps[1].derivative.ravel(), [0, 0, 0, 1])
    y, idx = F.max_pool(x[None, None], 2, 2, return_indices=True)
    np.testing.assert_array_equal(t.y, y[0, 0])
    np.testing.assert_array_equal(t.derivative, F.max_pool_backward(np.ones_like(y), x[None, None], 2, 2)[0, 0])
    text = t.text()
    assert "y = [[44, -1], [11, 321]]" in text
    assert "r_{1,1} = x[0:2, 0:2] = [[1, 3], [44, -10]]" in text and "max 44 at x[1, 0]" in text
    assert "d max / d r_{1,2} = [0, 0, 0, 1]" in text
    assert "[1, 0, 0, 1]," in text and "[1, 0, 1, 0]]" in text     # the derivative matrix


def test_ties_go_to_the_first_entry_as_the_library():
    x = np.array([[3., 3., 1., 1.], [3., 0., 1., 1.]])
    t = trace_pool(x, 2)
    y = F.max_pool(x[None, None], 2)
    dx = F.max_pool_backward(np.ones_like(y), x[None, None], 2)[0, 0]
    np.testing.assert_array_equal(t.derivative, dx)
    assert t.steps[0].argmax == (0, 0) and t.steps[1].argmax == (0, 2)


def test_overlapping_fields_count_every_choice():
    t = trace_pool([1., 5., 2.], 2, stride=1)
    np.testing.assert_array_equal(t.derivative, [0, 2, 0])       # both fields choose the 5


@settings(max_examples=40)
@given(data=st.data(), ndim=st.integers(1, 3))
def test_max_and_avg_match_library_forward_and_backward(data, ndim):
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    s = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    p = tuple(data.draw(st.integers(0, ki // 2)) for ki in k)
    ceil_mode = data.draw(st.booleans())
    cip = data.draw(st.booleans())
    n = tuple(ki + data.draw(st.integers(0, 3)) for ki in k)
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    x = rng.permutation(int(np.prod(n))).astype(float).reshape(n)[None]
    x = np.concatenate([x, -x])                                   # two channels, tie-free
    t = trace_pool(x, k, s, "max", p, 1, ceil_mode, channels=True)
    y = F.max_pool(x[None], k, s, p, 1, ceil_mode)
    assert_close(t.y, y[0], context=f"max n={n} k={k} s={s} p={p}")
    assert_close(t.derivative, F.max_pool_backward(np.ones_like(y), x[None], k, s, p, 1, ceil_mode)[0],
                 context="max backward")
    t = trace_pool(x, k, s, "avg", p, ceil_mode=ceil_mode, count_include_pad=cip, channels=True)
    y = F.avg_pool(x[None], k, s, p, ceil_mode, cip)
    assert_close(t.y, y[0], context=f"avg n={n} k={k} s={s} p={p} cip={cip}")
    assert_close(t.derivative, F.avg_pool_backward(np.ones_like(y), x[None], k, s, p, ceil_mode, cip)[0],
                 context="avg backward")


def test_dilated_max_pool_matches_library():
    x = np.random.default_rng(0).standard_normal((7, 8))
    t = trace_pool(x, 2, 2, dilation=2, padding=1)
    y = F.max_pool(x[None, None], 2, 2, 1, 2)
    np.testing.assert_array_equal(t.y, y[0, 0])
    assert "x_p[0:3:2, 0:3:2]" in t.text()


@pytest.mark.parametrize("mode", ["reflect", "replicate", "zeros", "circular"])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_blur_matches_library(mode, size):
    x = np.random.default_rng(size).standard_normal((2, 6, 7))
    t = trace_pool(x, size, kind="blur", padding_mode=mode)
    y = F.blur_pool(x[None], size, 2, mode)
    assert_close(t.y, y[0], context=f"blur {mode} {size}")
    assert_close(t.derivative, F.blur_pool_backward(np.ones_like(y), x[None], size, 2, mode)[0],
                 context="blur backward")


def test_avg_and_blur_text():
    t = trace_pool([1, 5, 2, 2], 2, kind="avg")
    assert "mean = (1 + 5) / 2 = 3" in t.text()
    t = trace_pool([0, 0, 0, 4, 0, 0, 0, 0], 3, kind="blur")
    np.testing.assert_array_equal(t.y, [0, 1, 1, 0])
    assert "blur filter (binomial, sums to 1): [0.25, 0.5, 0.25]" in t.text()


def test_errors():
    with pytest.raises(ConfigError, match="kind"):
        trace_pool([1., 2.], 2, kind="median")
    with pytest.raises(ConfigError, match="dilation"):
        trace_pool([1., 2., 3., 4.], 2, kind="avg", dilation=2)
    with pytest.raises(ConfigError, match="does not apply to blur"):
        trace_pool([1., 2., 3., 4.], 2, kind="blur", padding=1)
    with pytest.raises(ShapeError, match="does not fit"):
        trace_pool([1., 2.], 3)
    with pytest.raises(ConfigError, match="half the window"):
        trace_pool([1., 2., 3., 4.], 2, padding=2)
