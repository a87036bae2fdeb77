"""explain_shape, explain_params, explain_model_shapes: Key Equation 48 and weight sharing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope import nn
from convscope.errors import ArgumentTypeError, ConfigError, ShapeError
from convscope.explain import explain_model_shapes, explain_params, explain_shape
from convscope.shapes import (
    axis_arithmetic,
    conv_output_size,
    key_equation_48_ceil,
    key_equation_48_floor,
    pool_output_size,
)


def test_notes_key_equation_48_example():
    e = explain_shape(64, 2, 0, 2)
    assert e.out == (32,) and e.fits
    text = e.text()
    assert "ceil((64 - 1 + 0) / 2) = ceil(31.5) = 32" in text
    assert "floor((64 - 2 + 0) / 2 + 1) = floor(32) = 32" in text


def test_notes_concept_18_and_padding():
    assert explain_shape(10, 3).out == (8,)          # n - (k - 1)
    assert explain_shape(4, 3, 2).out == (6,)        # (n + 2p) - (k - 1), (9.7)
    assert explain_shape(5, 3, 1).out == (5,)        # 2p = k - 1 keeps the size


@settings(max_examples=60)
@given(n=st.integers(1, 40), k=st.integers(1, 7), p=st.integers(0, 3), s=st.integers(1, 4),
       d=st.integers(1, 3))
def test_both_forms_agree_with_shapes_module(n, k, p, s, d):
    e = explain_shape(n, k, p, s, d)
    a = e.axes[0]
    arithmetic = axis_arithmetic(n, k, p, s, d)
    assert (a.out, a.ceil_form, a.floor_form) == (arithmetic.out, arithmetic.ceil_form,
                                                  arithmetic.floor_form)
    if e.fits:
        assert a.out == conv_output_size(n, k, p, s, d)
        if d == 1:
            assert a.ceil_form == key_equation_48_ceil(n, k, p, s)
            assert a.floor_form == key_equation_48_floor(n, k, p, s)
        assert a.ceil_form == a.floor_form == a.out
    else:
        assert "does not fit" in e.text()
        with pytest.raises(ShapeError, match="does not fit"):   # no output: refused, as the ops
            conv_output_size(n, k, p, s, d)


@settings(max_examples=60)
@given(n=st.integers(2, 30), k=st.integers(1, 5), s=st.integers(1, 4), ceil_mode=st.booleans(),
       data=st.data())
def test_pool_sizes_match_shapes_module(n, k, s, ceil_mode, data):
    p = data.draw(st.integers(0, k // 2))
    if n + 2 * p < k:
        return
    e = explain_shape(n, k, p, s, op="pool", ceil_mode=ceil_mode)
    assert e.out == (pool_output_size(n, k, p, s, 1, ceil_mode),)


def test_pool_stride_defaults_to_window_and_ceil_mode_drop():
    assert explain_shape(6, 2, op="pool").out == (3,)
    e = explain_shape(5, 2, 1, 2, op="pool", ceil_mode=True)
    assert e.out == (pool_output_size(5, 2, 1, 2, 1, True),) == (3,)
    assert "dropped" in e.text()


def test_per_axis_dilation_asymmetric_and_same():
    e = explain_shape((7, 9), (3, 2), p=((1, 2), 0), s=(2, 1), d=(2, 1))
    assert e.out == (conv_output_size(7, 3, (1, 2), 2, 2), conv_output_size(9, 2, 0, 1, 1))
    assert "spans d*(k - 1) + 1 = 2*2 + 1 = 5 entries" in e.text()
    assert "(p_before + p_after)" in e.text()
    assert explain_shape((7, 8), 3, "same", 2).out == (4, 4)


def test_shape_that_does_not_fit_is_explained_not_raised():
    e = explain_shape(4, 5)
    assert not e.fits and e.out == (0,)
    assert "does not fit" in e.text() and "no output" in e.text()
    e = explain_shape(4, 2, p=2, op="pool")
    assert not e.fits and "half the window" in e.reason


def test_shape_argument_errors():
    with pytest.raises(ConfigError, match="op must be"):
        explain_shape(5, 3, op="linear")
    with pytest.raises(ConfigError, match="pooling only"):
        explain_shape(5, 3, ceil_mode=True)
    with pytest.raises(ConfigError, match="k must be"):
        explain_shape(5, 0)
    with pytest.raises(ArgumentTypeError, match="n must be"):
        explain_shape("5", 3)


def test_notes_9_1_18_weight_sharing_650_versus_10():
    e = explain_params((5, 5), 1, 3, padding=1)
    assert e.counts == (10, 650)
    assert e.out_shape == (1, 5, 5)
    text = e.text()
    assert "1 filter * (3 * 3 * 1) weights + 1 bias = 9 + 1 = 10 parameters" in text
    assert "25 * 25 weights + 25 biases = 625 + 25 = 650 parameters" in text
    assert "65 times as many" in text


def test_params_agree_with_summary_and_module():
    e = explain_params((3, 32, 32), 8, 5, padding=2, stride=2)
    conv = nn.Conv2d(3, 8, 5, stride=2, padding=2, rng=0)
    assert e.conv_params == conv.num_parameters() == 8 * 3 * 25 + 8
    assert e.out_shape == conv.output_shape((3, 32, 32))
    assert e.fc_params == 3 * 32 * 32 * 8 * 16 * 16 + 8 * 16 * 16
    g = explain_params((4, 6), 6, (3,), groups=2, bias=False)
    assert g.conv_params == nn.Conv1d(4, 6, 3, groups=2, bias=False, rng=0).num_parameters()


def test_params_errors():
    with pytest.raises(ShapeError, match="does not fit"):
        explain_params((3, 3), 1, 5)
    with pytest.raises(ConfigError, match="groups"):
        explain_params((3, 8, 8), 4, 3, groups=2)
    with pytest.raises(ShapeError, match="in_shape"):
        explain_params((3, 8, 8, 8), 4, (3, 3))


def test_model_shape_walk_stops_at_first_misfit():
    model = nn.Sequential(nn.Conv2d(1, 6, 5, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(100, 10, rng=1), nn.ReLU())
    walk = explain_model_shapes(model, (1, 28, 28))
    assert walk.batch_added and walk.input_shape == (1, 1, 28, 28)
    assert [r[4] for r in walk.rows] == [(1, 6, 24, 24), (1, 6, 24, 24), (1, 6, 12, 12),
                                         (1, 864), None]
    assert not walk.fits and walk.failure[0] == 5 and "864" in walk.failure[2]
    text = walk.text()
    assert "ceil((28 - 4 + 0) / 1) = ceil(24) = 24" in text
    assert "stopped at layer 5" in text
    good = explain_model_shapes(model[:4], (2, 1, 32, 32))
    assert good.fits and good.output_shape == model[:4].output_shape((2, 1, 32, 32)) == (2, 1176)
    assert "output (2, 1176)" in good.text()


def test_model_shape_walk_residual_and_blur():
    model = nn.Sequential(nn.Conv1d(2, 2, 3, rng=0), nn.MaxPool1d(2, stride=1),
                          nn.BlurPool1d(2, filter_size=3),
                          nn.Residual(nn.Conv1d(2, 2, 3, padding="same", rng=1)))
    walk = explain_model_shapes(model, (2, 16))
    assert walk.fits and walk.output_shape == model.output_shape((1, 2, 16))
    assert "ceil(13 / 2) = 7" in walk.text()
    assert any("Residual" in r[2] for r in walk.rows)


def test_model_shape_walk_of_a_graph_names_every_branch():
    # a Split's second piece feeds a branch, a Concat joins both pieces: the row's shapes are one
    # input's and one output's, so the walk names every input and output and where a branch reads
    g = nn.GraphBuilder()
    stem = g.add("stem", nn.Conv2d(1, 6, 3, padding=1, rng=0), g.input)
    split = g.add("split", nn.Split((2, 4)), stem)
    branch = g.add("branch", nn.Conv2d(4, 3, 3, padding=1, rng=1), f"{split}:1")
    model = g.build(g.add("cat", nn.Concat(), f"{split}:0", branch))
    text = explain_model_shapes(model, (1, 5, 5)).text()
    assert "outputs: split:0 (1, 2, 5, 5), split:1 (1, 4, 5, 5)" in text
    assert ("3  branch: Conv2d(4, 3, kernel_size=(3, 3), padding=(1, 1))  (1, 4, 5, 5) -> (1, 3, 5, 5)\n"
            "     input: split:1 (1, 4, 5, 5)\n") in text
    assert ("inputs: split:0 (1, 2, 5, 5), branch (1, 3, 5, 5); side by side along axis 1: 2 + 3 = 5"
            in text)
    assert "input:" not in explain_model_shapes(nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU()), (1, 5, 5)).text()
