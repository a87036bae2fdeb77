"""trace_conv: the notes' worked examples, agreement with functional.conv, the text, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope import functional as F
from convscope.errors import ConfigError, DataError, DTypeError, ShapeError
from convscope.explain import parse_array, trace_conv
from convscope.functional.reference import reference_conv
from convscope.testing import assert_close

NOTES_X = [1, 1, -1, -1, -1, 1, -1, 1, 1, 1]
NOTES_F = [1, -1, 1]


def test_notes_9_1_4_one_dimensional_example():
    t = trace_conv(NOTES_X, NOTES_F)
    np.testing.assert_array_equal(t.y, [-1, 1, -1, 1, -3, 3, -1, 1])      # (9.4)
    assert t.bright_spot == (5,) and t.step(5).label == "y_6"
    # (9.2): the first window and its dot product
    np.testing.assert_array_equal(t.steps[0].v, [1, 1, -1])
    assert t.steps[0].dot == -1
    text = t.text()
    assert "v_1 = x[0:3] = [1, 1, -1]" in text
    assert "y_1 = f . v_1 = 1*1 + (-1)*1 + 1*(-1) = -1" in text
    assert "y = x * f = [-1, 1, -1, 1, -3, 3, -1, 1]" in text
    lines = text.splitlines()
    out_line = next(i for i, ln in enumerate(lines) if ln.startswith("y = x * f = ["))
    marker = lines[out_line + 1]
    # the caret sits under the entry "3" of y_6
    assert marker.strip() == "^ y_6" and lines[out_line][marker.index("^")] == "3"
    assert "bright spot (strongest match): y_6 = 3 from v_6 = x[5:8] = [1, -1, 1]" in text
    assert str(t) == text


def test_trace_equals_conv_1d_with_cli_strings():
    t = trace_conv(parse_array("1 1 -1 -1 -1 1 -1 1 1 1"), parse_array("1 -1 1"))
    ref = F.conv(np.array(NOTES_X, float)[None, None], np.array(NOTES_F, float)[None, None])
    np.testing.assert_array_equal(t.y, ref[0, 0])


def test_notes_9_1_8_two_dimensional_filter_matches_its_pattern():
    f = np.array([[-1, 1, -1], [1, 1, 1], [-1, 1, -1]], float)
    window = np.array([[1, -1, -1], [1, 1, -1], [1, -1, -1]], float)   # the notes' w_{0,1}
    t = trace_conv(window, f)
    # (9.10): the column-by-column dot products add up to the generalised dot product
    columns = [f[:, j] @ window[:, j] for j in range(3)]
    assert columns == [-1, -1, 1]
    assert t.y[0, 0] == sum(columns) == np.sum(f * window) == -1
    assert "y_{1,1} = f . v_{1,1} =" in t.text()


def test_bias_is_the_offset_f0():
    t = trace_conv([1., 2., 3.], [1., -1.], b=0.5)
    np.testing.assert_array_equal(t.y, [-0.5, -0.5])
    assert "+ f_0" in t.text() and "f_0 (offset): 0.5" in t.text()
    ref = F.conv(np.array([[[1., 2., 3.]]]), np.array([[[1., -1.]]]), np.array([0.5]))
    np.testing.assert_array_equal(t.y, ref[0, 0])


def test_padding_stride_dilation_are_shown():
    t = trace_conv([1, 2, 3, 4, 5, 6], [1, 0, -1], padding=2, stride=2, dilation=2)
    text = t.text()
    assert "x_p (10 entries): [0, 0, 1, 2, 3, 4, 5, 6, 0, 0]" in text
    assert "v_1 = x_p[0:5:2]" in text and "v_2 = x_p[2:7:2]" in text
    assert "stride s = 2, padding p = 2, dilation d = 2" in text
    ref = F.conv(np.arange(1., 7.)[None, None], np.array([[[1., 0., -1.]]]), stride=2, padding=2,
                 dilation=2)
    np.testing.assert_array_equal(t.y, ref[0, 0])


def test_multichannel_tensor_filter_sums_over_channels():
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, size=(3, 5, 6)).astype(float)
    f = rng.integers(-2, 3, size=(3, 2, 3)).astype(float)
    t = trace_conv(x, f, b=1.0, padding=1)
    assert t.channels
    ref = F.conv(x[None], f[None], np.array([1.0]), padding=1)[0, 0]
    np.testing.assert_array_equal(t.y, ref)
    assert "x: 3 channels of 5x6" in t.text() and "x_p[:, 0:2, 0:3]" in t.text()
    # a 1-D multi-channel signal needs channels=True (a 2-D array is one image by default)
    sig = rng.standard_normal((2, 7))
    flt = rng.standard_normal((2, 3))
    t1 = trace_conv(sig, flt, channels=True)
    assert_close(t1.y, F.conv(sig[None], flt[None])[0, 0], context="1-D two channels")
    t2 = trace_conv(sig, flt)
    assert t2.y.shape == (1, 5)


def test_padding_modes_match_conv():
    x = np.arange(12.).reshape(3, 4)
    f = np.array([[1., 2.], [0., -1.]])
    for mode in ("zeros", "reflect", "replicate", "circular"):
        t = trace_conv(x, f, padding=1, padding_mode=mode)
        ref = F.conv(x[None, None], f[None, None], padding=1, padding_mode=mode)[0, 0]
        np.testing.assert_array_equal(t.y, ref, err_msg=mode)


@settings(max_examples=40)
@given(
    data=st.data(),
    ndim=st.integers(1, 3),
    channels=st.integers(1, 3),
)
def test_trace_matches_conv_and_reference(data, ndim, channels):
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    d = tuple(data.draw(st.integers(1, 2)) for _ in range(ndim))
    s = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    p = tuple(data.draw(st.integers(0, 2)) for _ in range(ndim))
    n = tuple(max(1, di * (ki - 1) + 1 - 2 * pi) + data.draw(st.integers(0, 3))
              for ki, di, pi in zip(k, d, p))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    x = rng.standard_normal((channels, *n))
    f = rng.standard_normal((channels, *k))
    b = float(rng.standard_normal())
    t = trace_conv(x, f, b, s, p, d, channels=True)
    y = F.conv(x[None], f[None], np.array([b]), s, p, d)[0, 0]
    assert_close(t.y, y, context=f"n={n} k={k} s={s} p={p} d={d}")
    assert_close(t.y, reference_conv(x[None], f[None], np.array([b]), s, p, d)[0, 0],
                 context="reference")
    best = t.step(t.bright_spot)
    assert best.y == t.y.max()
    assert len(t.steps) == t.y.size


def test_text_limits():
    t = trace_conv(np.ones((6, 6)), np.ones((3, 3)))
    text = t.text(max_steps=2, max_terms=4)
    assert "... (14 more windows)" in text
    assert "(5 more products)" in text
    assert "also reached at" in text           # every window gives 9: ties are named


def test_errors_say_what_and_why():
    with pytest.raises(ShapeError, match="same number of axes"):
        trace_conv([1., 2., 3.], [[1., 1.]])
    with pytest.raises(ShapeError, match="does not fit"):
        trace_conv([1., 2.], [1., 1., 1.])
    with pytest.raises(ShapeError, match="all 3 channels"):
        trace_conv(np.ones((3, 4, 4)), np.ones((2, 2, 2)), channels=True)
    with pytest.raises(ConfigError, match="stride"):
        trace_conv([1., 2., 3.], [1.], stride=0)
    with pytest.raises(DataError, match="NaN"):
        trace_conv([1., np.nan, 3.], [1.])
    with pytest.raises(DTypeError):
        trace_conv(np.array([1 + 1j, 2]), [1.])
    with pytest.raises(ShapeError, match="inside the output"):
        trace_conv([1., 2., 3.], [1.]).step(3)
