"""Teaching correctness of explain's text (issue 11): strides, matches, Key Equation 54, centred indexing."""

import numpy as np
import pytest

from convscope import functional as F
from convscope.errors import ConfigError, ShapeError
from convscope.explain import (
    centred_indexing,
    chain_9_32,
    conv_weight_jacobian,
    coverage_note,
    explain_shape,
    never_read,
    route_max_pool,
    trace_conv,
    trace_filter_bank,
    trace_pool,
)

X = [1, 1, -1, -1, -1, 1, -1, 1, 1, 1]
F3 = [1, -1, 1]


def test_stride_two_jacobian_header_gives_the_strided_index():
    j = conv_weight_jacobian(8, 3, stride=2)
    assert "dZ_i/dW_j = X_{s(i-1)+j}" in j.text().splitlines()[1]
    assert j.symbols[:, 1].tolist() == ["X_3", "X_4", "X_5"]          # window 2 starts at s(2-1)+1 = 3
    assert "X_{i+j-1}" in conv_weight_jacobian(6, 4).text()
    assert "X_{s(i-1)+d(j-1)+1}" in conv_weight_jacobian(9, 2, stride=2, dilation=2).text()


def test_chain_honours_the_stride():
    x, w1 = np.array([1., -2, 3, 1, 0, 2, 1]), np.array([1., 0, 1])
    c = chain_9_32(x, w1, [1., -1, 2], 1.0, stride=2)
    z = F.conv(x[None, None], w1[None, None], stride=2)[0, 0]
    assert np.array_equal(c.z1, z) and c.max_abs_diff == 0.0
    assert "stride s = 2" in c.text()
    with pytest.raises(ShapeError, match=r"floor\(\(m \+ 2p - k\) / s\) \+ 1"):
        chain_9_32(x, w1, [1., 2.], 1.0, stride=2)


def test_a_stride_that_skips_the_bright_spot_says_so_and_no_negative_value_is_a_match():
    text = trace_conv(X, F3, stride=2).text()
    assert "bright spot (strongest match)" not in text
    assert "largest output: y_1 = -1" in text and "not a match" in text
    assert "the stride s = 2 skips the true bright spot: the window x[5:8] = [1, -1, 1] would give 3" in text
    t = trace_conv(X, F3)
    assert t.skipped_best is None and "skips" not in t.text()
    assert "not a match" in trace_conv([1, 1, 1], [-1, -1]).text()
    assert "not a match" in trace_conv([0, 0, 0], [1, 1]).text()       # 0 is not a match either


def test_entries_never_read_with_k3_s4_in_conv_pool_and_shape_text():
    assert never_read(11, 3, s=4) == (3, 7)
    assert never_read(10, 3, p=1, s=1) == ()
    assert never_read(9, 2, s=2, d=2) == (1, 3, 5, 7)
    note = "never read: x_4, x_8 (2 of 11 entries): the stride s = 4 is larger than the window k = 3"
    assert note in trace_conv(np.arange(11.), F3, stride=4).text()
    assert note in explain_shape(11, 3, s=4).text()
    pool = trace_pool([5., 1., 7., 2., 9., 3., 4., 8.], 2, stride=3).text()
    assert "never seen by any receptive field: x_3, x_6" in pool and "Key Equation 54" in pool
    assert "never" not in trace_pool([1., 2., 3., 4.], 2).text()
    assert coverage_note(10, 3, s=2) == ("never read: x_10 (1 of 10 entries): the last window ends before the "
                                         "input does (the floor of Key Equation 48 drops what is left)")


def test_centred_indexing_example():
    c = centred_indexing(X, F3)
    text = c.text()
    assert "y_i = sum_(j = -1..1) f_j * x_(i+j)" in text
    assert "y_7 = f . x[5:8] = f_-1*x_6 + f_0*x_7 + f_+1*x_8 = 1*1 + (-1)*(-1) + 1*1 = 3    (left-indexed y_6)" in text
    assert c.centres == tuple(range(1, 9))
    same = centred_indexing(X, F3, same=True)
    assert same.centres == tuple(range(10)) and same.y.shape == (10,)
    with pytest.raises(ConfigError, match="odd filter size"):
        centred_indexing(X, [1, 1])


def test_filter_bank_trace_equals_the_library():
    x = np.random.default_rng(0).standard_normal((2, 5, 5))
    bank = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
    t = trace_filter_bank(x, bank, b=[0.5, -1, 0], padding=1)
    expected = F.conv(x[None], bank, np.array([0.5, -1, 0]), padding=1)[0]
    np.testing.assert_allclose(t.y, expected, atol=1e-12)
    assert "4-tensor (Concept 32)" in t.text()
    with pytest.raises(ShapeError, match="on a new first axis"):
        trace_filter_bank(x, bank[0])


def test_max_pool_routing_equals_the_backward():
    x = np.random.default_rng(2).standard_normal((6, 6))
    dy = np.random.default_rng(3).standard_normal((3, 3))
    r = route_max_pool(trace_pool(x, 3, stride=2, padding=1), dy)
    expected = F.max_pool_backward(dy[None, None], x[None, None], 3, stride=2, padding=1)[0, 0]
    np.testing.assert_allclose(r.dx, expected, atol=1e-12)
    with pytest.raises(ConfigError, match="max-pool"):
        route_max_pool(trace_pool(x, 2, kind="avg"))
