"""Tests of convscope.shapes: output-size arithmetic (Key Equation 48), padding forms,
argument normalisers and the messages of conv_geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convscope.errors import ArgumentTypeError, ConfigError, ConvscopeError, ShapeError
from convscope.shapes import (
    conv_geometry,
    conv_output_size,
    key_equation_48_ceil,
    key_equation_48_floor,
    normalize_int,
    normalize_padding,
    normalize_tuple,
    pool_output_size,
    same_padding,
)


# ----------------------------------------------------------------------------------------
# Output sizes
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, k, p, s, d, expected",
    [
        (10, 3, 0, 1, 1, 8),  # notes 9.1.4: n - (k - 1)
        (4, 3, 2, 1, 1, 6),  # notes 9.1.7: (n + 2p) - (k - 1)
        (5, 3, 1, 1, 1, 5),  # notes 9.1.18: 5x5 image, 3x3 filter, p = 1
        (64, 2, 0, 2, 1, 32),  # notes Key Equation 48 example
        (7, 3, 0, 2, 1, 3),
        (8, 3, 0, 2, 1, 3),
        (8, 3, 1, 2, 1, 4),
        (7, 3, 0, 1, 2, 3),  # dilation 2: the kernel spans 5
        (9, 3, 1, 3, 2, 3),
        (5, 5, 0, 1, 1, 1),  # kernel exactly as large as the input
        (5, 1, 0, 7, 1, 1),  # stride larger than the input
        (5, 3, (0, 2), 1, 1, 5),  # asymmetric padding pair
        (6, 4, (1, 2), 2, 1, 3),
    ],
)
def test_conv_output_size_table(n, k, p, s, d, expected):
    assert conv_output_size(n, k, p, s, d) == expected


@pytest.mark.parametrize(
    "n, k, p, s, d, ceil_mode, expected",
    [
        (4, 2, 0, None, 1, False, 2),  # notes (9.12): 4x4, 2x2 window, stride 2
        (5, 2, 0, None, 1, False, 2),
        (5, 2, 0, None, 1, True, 3),  # third window starts at 4, inside the input
        (4, 2, 0, None, 1, True, 2),  # sizes divide: ceil == floor
        (5, 3, 1, 2, 1, False, 3),
        (6, 3, 1, 2, 1, True, 4),  # 4th window starts at 6 < n + p_before = 7: kept
        (5, 2, 1, 2, 1, True, 3),  # a 4th window would start at 6 >= n + p_before = 6: dropped
        (10, 3, 0, 1, 2, False, 6),
        (10, 2, 0, 3, 1, True, 4),
    ],
)
def test_pool_output_size_table(n, k, p, s, d, ceil_mode, expected):
    assert pool_output_size(n, k, p, s, d, ceil_mode) == expected


@pytest.mark.parametrize("n, k, p, s", [(6, 3, 1, 2), (5, 2, 1, 2), (10, 2, 0, 3), (7, 3, 0, 3)])
def test_pool_ceil_mode_matches_pytorch_rule(n, k, p, s):
    """PyTorch: ceil the division, then drop a last window that starts at or after n + p."""
    span = n + 2 * p - (k - 1) - 1
    out = math.ceil(span / s) + 1
    if (out - 1) * s >= n + p:
        out -= 1
    assert pool_output_size(n, k, p, s, 1, True) == out


def test_key_equation_48_both_forms_agree_everywhere():
    checked = 0
    for n in range(1, 40):
        for k in range(1, 12):
            for p in range(0, 6):
                for s in range(1, 8):
                    if n - k + 2 * p < 0:
                        continue
                    ceil_form = key_equation_48_ceil(n, k, p, s)
                    floor_form = key_equation_48_floor(n, k, p, s)
                    assert ceil_form == floor_form, (n, k, p, s)
                    assert ceil_form == math.ceil((n - (k - 1) + 2 * p) / s)
                    assert floor_form == math.floor((n - k + 2 * p) / s + 1)
                    # and both are the general formula with dilation 1
                    assert conv_output_size(n, k, p, s) == ceil_form
                    checked += 1
    assert checked > 10_000


def test_key_equation_48_notes_example_64_k2_s2():
    # The notes print "(64 - (2+1) + 2*0)/2"; the arithmetic they mean is 64 - (2-1) = 63.
    assert 64 - (2 - 1) + 2 * 0 == 63
    assert math.ceil(63 / 2) == 32
    assert key_equation_48_ceil(64, 2, 0, 2) == 32
    assert key_equation_48_floor(64, 2, 0, 2) == 32
    assert conv_output_size(64, 2, 0, 2) == 32
    # The filter is 2 x 2 x 3 on a 64 x 64 x 3 input: one output channel of 32 x 32.
    g = conv_geometry((1, 3, 64, 64), (1, 3, 2, 2), stride=2)
    assert g.y_shape == (1, 1, 32, 32)


@pytest.mark.parametrize("s", [1, 2, 3, 4])
@pytest.mark.parametrize("d", [1, 2])
def test_same_padding_gives_ceil_n_over_s(s, d):
    for n in range(1, 30):
        for k in range(1, 8):
            before, after = same_padding(n, k, s, d)
            assert before >= 0 and after >= 0
            assert after - before in (0, 1), "the odd one goes after"
            total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
            assert before + after == total
            assert conv_output_size(n, k, (before, after), s, d) == math.ceil(n / s), (n, k, s, d)


def test_same_padding_stride_one_is_symmetric_for_odd_kernels():
    for n in range(1, 20):
        for k in (1, 3, 5, 7):
            assert same_padding(n, k) == ((k - 1) // 2, (k - 1) // 2)  # notes: 2p = k - 1


# ----------------------------------------------------------------------------------------
# Normalisers
# ----------------------------------------------------------------------------------------
def test_normalize_int_and_tuple_values():
    assert normalize_int(3, "groups", "conv", minimum=1) == 3
    assert normalize_int(np.int64(2), "groups", "conv") == 2
    assert normalize_tuple(2, 3, "stride", "conv") == (2, 2, 2)
    assert normalize_tuple([1, 2], 2, "stride", "conv") == (1, 2)
    assert normalize_tuple(np.array([3, 1]), 2, "dilation", "conv") == (3, 1)
    assert normalize_tuple(0, 1, "x", "op", minimum=0) == (0,)


@pytest.mark.parametrize(
    "value, error, words",
    [
        (0, ConfigError, ["groups", ">= 1", "0"]),
        (-2, ConfigError, ["groups", "-2"]),
        (1.0, ArgumentTypeError, ["groups", "int", "float"]),
        ("2", ArgumentTypeError, ["groups", "str"]),
        (None, ArgumentTypeError, ["groups", "NoneType"]),
        (True, ArgumentTypeError, ["groups", "bool"]),
    ],
)
def test_normalize_int_errors(value, error, words):
    with pytest.raises(error) as info:
        normalize_int(value, "groups", "conv", minimum=1)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "value, error, words",
    [
        (0, ConfigError, ["stride", "positive int", "0"]),
        ((2, 0), ConfigError, ["stride", "tuple of 2", "(2, 0)"]),
        ((1, 2, 3), ArgumentTypeError, ["stride", "3 entries", "2 spatial axes"]),
        ((1,), ArgumentTypeError, ["stride", "1 entries"]),
        ((1.0, 2), ArgumentTypeError, ["stride", "(1.0, 2)"]),
        (2.5, ArgumentTypeError, ["stride", "float"]),
        ("1", ArgumentTypeError, ["stride", "str"]),
        (None, ArgumentTypeError, ["stride", "NoneType"]),
        (False, ArgumentTypeError, ["stride", "bool"]),
        ((True, 1), ArgumentTypeError, ["stride"]),
    ],
)
def test_normalize_tuple_errors(value, error, words):
    with pytest.raises(error) as info:
        normalize_tuple(value, 2, "stride", "conv")
    for word in words:
        assert word in str(info.value)
    assert str(info.value).startswith("conv: ")


def test_normalize_padding_forms():
    assert normalize_padding(0, 2, "conv") == ((0, 0), (0, 0))
    assert normalize_padding(2, 1, "conv") == ((2, 2),)
    assert normalize_padding((1, 2), 2, "conv") == ((1, 1), (2, 2))
    assert normalize_padding(((1, 2), (0, 3)), 2, "conv") == ((1, 2), (0, 3))
    assert normalize_padding([0, [1, 2]], 2, "conv") == ((0, 0), (1, 2))
    assert normalize_padding("valid", 3, "conv") == ((0, 0),) * 3
    assert normalize_padding("VALID", 1, "conv") == ((0, 0),)
    assert normalize_padding("same", 2, "conv") == "same"


@pytest.mark.parametrize(
    "padding, error, words",
    [
        (-1, ConfigError, ["padding", "non-negative", "-1", "crop"]),
        ((1, -2), ConfigError, ["padding", "(1, -2)", "crop"]),
        (((0, -1), 1), ConfigError, ["padding", "crop"]),
        ((1, 2, 3), ConfigError, ["padding", "3 entries", "2 spatial axes"]),
        ("full", ConfigError, ["padding", "'full'", "'valid' or 'same'"]),
        (1.5, ArgumentTypeError, ["padding", "float"]),
        (None, ArgumentTypeError, ["padding", "NoneType"]),
        ((1, 2.0), ArgumentTypeError, ["padding"]),
        (((1, 2, 3), 1), ArgumentTypeError, ["padding"]),
        (True, ArgumentTypeError, ["padding", "bool"]),
    ],
)
def test_normalize_padding_errors(padding, error, words):
    with pytest.raises(error) as info:
        normalize_padding(padding, 2, "conv")
    for word in words:
        assert word in str(info.value)


# ----------------------------------------------------------------------------------------
# conv_geometry: values
# ----------------------------------------------------------------------------------------
def test_conv_geometry_fields():
    g = conv_geometry((2, 4, 9, 8), (6, 2, 3, 2), stride=(2, 1), padding=((1, 0), 2), dilation=(1, 3), groups=2)
    assert (g.batch, g.c_in, g.c_out, g.g) == (2, 4, 6, 2)
    assert g.n == (9, 8) and g.k == (3, 2) and g.s == (2, 1) and g.d == (1, 3)
    assert g.p == ((1, 0), (2, 2))
    assert g.out == (conv_output_size(9, 3, (1, 0), 2, 1), conv_output_size(8, 2, 2, 1, 3))
    assert g.out == (4, 9)
    assert g.y_shape == (2, 6, 4, 9) and g.w_shape == (6, 2, 3, 2) and g.padded == (10, 12)


def test_conv_geometry_same_with_stride():
    g = conv_geometry((1, 1, 7, 10, 5), (1, 1, 3, 4, 1), stride=(2, 3, 4), padding="same")
    assert g.out == (4, 4, 2)
    assert g.p == (same_padding(7, 3, 2), same_padding(10, 4, 3), same_padding(5, 1, 4))


# ----------------------------------------------------------------------------------------
# conv_geometry: messages (key words pinned, not whole sentences)
# ----------------------------------------------------------------------------------------
def _message(error, *args, **kwargs):
    with pytest.raises(error) as info:
        conv_geometry(*args, **kwargs)
    assert isinstance(info.value, ConvscopeError)
    return str(info.value)


def test_error_wrong_ndim_suggests_batch_axis():
    msg = _message(ShapeError, (3, 8, 8), (4, 3, 3, 3))
    assert "4 axes" in msg and "(3, 8, 8)" in msg and "x[None]" in msg


def test_error_wrong_ndim_too_many_axes():
    msg = _message(ShapeError, (1, 2, 3, 8, 8), (4, 3, 3))
    assert "3 axes" in msg and "(1, 2, 3, 8, 8)" in msg and "x[None]" not in msg


def test_error_weight_too_few_axes():
    msg = _message(ShapeError, (1, 1, 8), (3,))
    assert "weight" in msg and "(1, 1, k)" in msg


def test_error_channel_mismatch_with_channels_last_hint():
    msg = _message(ShapeError, (2, 8, 8, 3), (4, 3, 3, 3))
    assert "3 input channels" in msg and "(2, 8, 8, 3)" in msg
    assert "channels-last" in msg and "transpose(0, 3, 1, 2)" in msg


def test_error_channel_mismatch_without_hint_when_last_axis_differs():
    msg = _message(ShapeError, (2, 5, 8, 8), (4, 3, 3, 3))
    assert "3 input channels" in msg and "(2, 5, 8, 8)" in msg and "transpose" not in msg


def test_error_kernel_larger_than_padded_input_shows_arithmetic():
    msg = _message(ShapeError, (1, 1, 4, 4), (1, 1, 5, 5))
    assert "kernel size 5" in msg and "padded input of size 4" in msg and "would be 0" in msg
    msg = _message(ShapeError, (1, 1, 8, 2), (1, 1, 3, 5), padding=(0, 1))
    assert "kernel size 5" in msg and "size 4" in msg and "n=2" in msg and "would be 0" in msg


def test_error_dilated_kernel_too_large_mentions_span():
    msg = _message(ShapeError, (1, 1, 4), (1, 1, 3), dilation=2)
    assert "dilation 2" in msg and "5" in msg and "would be 0" in msg


@pytest.mark.parametrize("name", ["stride", "dilation"])
def test_error_stride_or_dilation_zero(name):
    msg = _message(ConfigError, (1, 1, 8, 8), (1, 1, 3, 3), **{name: (2, 0)})
    assert name in msg and "positive" in msg and "(2, 0)" in msg


def test_error_negative_padding():
    msg = _message(ConfigError, (1, 1, 8), (1, 1, 3), padding=-1)
    assert "padding" in msg and "-1" in msg and "non-negative" in msg


def test_error_groups_not_dividing_input_channels():
    msg = _message(ConfigError, (1, 4, 8), (6, 2, 3), groups=3)
    assert "groups=3" in msg and "C_in=4" in msg and "4 % 3 = 1" in msg


def test_error_groups_not_dividing_filters():
    msg = _message(ConfigError, (1, 4, 8), (3, 2, 3), groups=2)
    assert "groups=2" in msg and "C_out=3" in msg


def test_error_groups_zero():
    msg = _message(ConfigError, (1, 4, 8), (4, 4, 3), groups=0)
    assert "groups" in msg and "0" in msg


def test_error_unknown_padding_mode():
    msg = _message(ConfigError, (1, 1, 8), (1, 1, 3), padding=1, padding_mode="mirror")
    assert "padding_mode" in msg and "'mirror'" in msg and "reflect" in msg


def test_error_reflect_padding_too_large():
    msg = _message(ConfigError, (1, 1, 3), (1, 1, 3), padding=3, padding_mode="reflect")
    assert "reflect" in msg and "(3, 3)" in msg and "size 3" in msg
    # padding n - 1 is still fine for reflect
    assert conv_geometry((1, 1, 3), (1, 1, 3), padding=2, padding_mode="reflect").out == (5,)


def test_error_circular_padding_too_large():
    msg = _message(ConfigError, (1, 1, 3), (1, 1, 3), padding=4, padding_mode="circular")
    assert "circular" in msg and "(4, 4)" in msg
    assert conv_geometry((1, 1, 3), (1, 1, 3), padding=3, padding_mode="circular").out == (7,)


def test_error_empty_axis():
    msg = _message(ShapeError, (1, 1, 0), (1, 1, 1))
    assert "(1, 1, 0)" in msg and "empty" in msg


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"stride": 1.5}, "stride"),
        ({"stride": "2"}, "stride"),
        ({"stride": None}, "stride"),
        ({"stride": True}, "stride"),
        ({"dilation": 2.0}, "dilation"),
        ({"dilation": None}, "dilation"),
        ({"padding": 1.0}, "padding"),
        ({"padding": None}, "padding"),
        ({"padding": False}, "padding"),
        ({"groups": 1.0}, "groups"),
        ({"groups": "1"}, "groups"),
        ({"groups": None}, "groups"),
        ({"groups": True}, "groups"),
    ],
)
def test_error_wrong_python_type(kwargs, name):
    with pytest.raises(ArgumentTypeError) as info:
        conv_geometry((1, 1, 8), (1, 1, 3), **kwargs)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    msg = str(info.value)
    assert name in msg and repr(kwargs[name]) in msg


def test_error_classes_subclass_builtins():
    with pytest.raises(ValueError):
        conv_geometry((1, 1, 4), (1, 1, 5))
    with pytest.raises(ValueError):
        conv_geometry((1, 1, 4), (1, 1, 3), stride=0)
    with pytest.raises(TypeError):
        conv_geometry((1, 1, 4), (1, 1, 3), stride=1.0)


@pytest.mark.parametrize("formula, args", [
    (conv_output_size, (4, 5)),                      # no output: the kernel is larger than n
    (conv_output_size, (7, 3, 0, 1, 4)),             # dilation 4: the kernel spans 9 > 7
    (pool_output_size, (3, 5, 0)),
    (pool_output_size, (2, 5, 0, 2, 1, True)),       # even rounding up leaves no window
    (key_equation_48_ceil, (4, 5)),
    (key_equation_48_floor, (4, 5, 0, 3)),
])
def test_output_size_formulas_refuse_an_empty_output_as_the_ops_do(formula, args):
    with pytest.raises(ShapeError, match="does not fit the padded input") as info:
        formula(*args)
    assert "would be" in str(info.value)


def test_output_size_refusals_match_the_ops_message():
    from convscope import functional as F

    with pytest.raises(ShapeError) as op_error:
        F.conv(np.zeros((1, 1, 4)), np.zeros((1, 1, 5)))
    with pytest.raises(ShapeError) as formula_error:
        conv_output_size(4, 5)
    tail = str(op_error.value).split(": ", 1)[1].replace(" along spatial axis 1", "")
    assert str(formula_error.value).split(": ", 1)[1] == tail


def test_key_equation_48_takes_a_padding_pair():
    assert key_equation_48_ceil(6, 4, (1, 2), 2) == key_equation_48_floor(6, 4, (1, 2), 2) == 3
    assert conv_output_size(6, 4, (1, 2), 2) == 3
