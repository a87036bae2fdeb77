"""receptive_field: sizes and jumps per layer, and the exact region of one pixel (checked by backprop)."""

import numpy as np
import pytest

from convscope import nn, summary
from convscope.errors import ConfigError, ShapeError
from convscope.explain import receptive_field


def _positive(model):
    for p in model.parameters():
        p.data[...] = np.abs(p.data) + 0.1
    return model


def _support(model, x, layer_model, pixel):
    """Input entries with a non-zero gradient of one output pixel (positive weights and input:
    no cancellation, so the support is exactly the set of entries that can influence it)."""
    y = layer_model(x)
    dy = np.zeros_like(y)
    dy[(0, 0) + tuple(pixel)] = 1.0
    dx = layer_model.backward(dy)
    return np.abs(dx[0]).sum(axis=0) > 0


def test_table_agrees_with_summary():
    model = nn.Sequential(nn.Conv2d(1, 4, 5, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 8, 3, padding=1, rng=1), nn.MaxPool2d(2, stride=1),
                          nn.Flatten(), nn.Linear(8 * 11 * 11, 10, rng=2))
    rf = receptive_field(model, (1, 28, 28))
    s = summary(model, (1, 28, 28))
    assert [r.rf for r in rf.rows[1:]] == [row.receptive_field for row in s.rows]
    assert [r.jump for r in rf.rows[1:6]] == [row.jump for row in s.rows[:5]]
    assert rf.rows[3].rf == (6, 6) and rf.rows[3].jump == (2, 2)
    assert rf.rows[4].start == (-2, -2)              # padding 1 at jump 2
    assert rf.rows[-1].rf is None and "whole input" in rf.text()
    assert rf.pixel is None and rf.region is None


def test_exact_region_equals_gradient_support():
    model = _positive(nn.Sequential(
        nn.Conv2d(1, 2, 3, rng=0), nn.AvgPool2d(2), nn.Conv2d(2, 2, 3, dilation=2, padding=1, rng=1),
        nn.BlurPool2d(2, filter_size=3)))
    x = np.random.default_rng(0).random((1, 1, 24, 24)).astype(np.float32) + 0.1
    out = model.output_shape((1, 1, 24, 24))
    for pixel in [(0, 0), (1, 2), (out[2] - 1, out[3] - 1)]:
        rf = receptive_field(model, (1, 24, 24), pixel=pixel)
        assert rf.layer == 4
        support = _support(model, x, model, pixel)
        np.testing.assert_array_equal(rf.mask, support, err_msg=str(pixel))
        bounds = rf.rows[4].span(pixel)
        for (lo, hi), sl in zip(bounds, rf.region):
            assert sl.start == max(lo, 0) and sl.stop <= hi + 1


def test_intermediate_layer_and_chain():
    model = _positive(nn.Sequential(nn.Conv1d(1, 1, 3, rng=0), nn.MaxPool1d(2), nn.Conv1d(1, 1, 2, rng=1)))
    rf = receptive_field(model, (1, 20), pixel=3, layer=2)
    np.testing.assert_array_equal(rf.exact[0], np.arange(6, 10))      # window 3 of the pool
    assert [idx for idx, _ in rf.chain] == [0, 1, 2]
    np.testing.assert_array_equal(rf.chain[1][1][0], [6, 7])
    assert "x[..., 6:10]" in rf.text()


def test_gaps_from_dilation_and_large_stride():
    rf = receptive_field(nn.Conv1d(1, 1, 3, dilation=2, rng=0), (1, 9), pixel=1)
    np.testing.assert_array_equal(rf.exact[0], [1, 3, 5])
    assert rf.rows[1].rf == (5,) and "with gaps" in rf.text()
    model = nn.Sequential(nn.Conv1d(1, 1, 1, stride=3, rng=0), nn.Conv1d(1, 1, 2, rng=1))
    rf = receptive_field(model, (1, 12), pixel=1)
    np.testing.assert_array_equal(rf.exact[0], [3, 6])


def test_reflect_padding_folds_back_and_residual_unions():
    blur = nn.BlurPool1d(1, filter_size=3, stride=2)
    rf = receptive_field(blur, (1, 6), pixel=0)
    np.testing.assert_array_equal(rf.exact[0], [0, 1])                 # x_p = [x1, x0, x1, ...]
    res = nn.Sequential(nn.Conv1d(1, 1, 1, rng=0), nn.Residual(nn.Conv1d(1, 1, 3, padding=1, rng=1)))
    rf = receptive_field(res, (1, 8), pixel=4)
    np.testing.assert_array_equal(rf.exact[0], [3, 4, 5])
    assert rf.rows[-1].rf == (3,)


def test_errors():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, rng=0), nn.Residual(nn.Conv2d(1, 1, 3, padding=1, rng=1)),
                          nn.Flatten())
    with pytest.raises(ConfigError, match="inside a Residual"):
        receptive_field(model, (1, 8, 8), pixel=(0, 0), layer=2)
    with pytest.raises(ConfigError, match="no spatial receptive field"):
        receptive_field(model, (1, 8, 8), pixel=(0, 0), layer=4)
    with pytest.raises(ShapeError, match="inside the spatial output"):
        receptive_field(model, (1, 8, 8), pixel=(6, 0))
    with pytest.raises(ShapeError, match="does not fit"):
        receptive_field(model, (1, 2, 2))
    with pytest.raises(ConfigError, match="layer must be"):
        receptive_field(model, (1, 8, 8), pixel=(0, 0), layer=9)


def test_exact_region_of_a_graph_pixel_is_the_union_over_its_branches():
    # a 3x3 branch and a dilated 3x3 branch of one conv, added, then a 1x1 conv: the pixel sees
    # rows/columns 4..6 through one branch and {2, 5, 8} through the other; the chain names
    # every layer on the way, the model's input first
    g = nn.GraphBuilder()
    stem = g.add("stem", nn.Conv2d(1, 2, 1, rng=0), g.input)
    near = g.add("near", nn.Conv2d(2, 2, 3, padding=1, rng=1), stem)
    far = g.add("far", nn.Conv2d(2, 2, 3, padding=3, dilation=3, rng=2), stem)
    add = g.add("add", nn.Add(), near, far)
    model = _positive(g.build(g.add("head", nn.Conv2d(2, 1, 1, rng=3), add)))
    rf = receptive_field(model, (1, 11, 11), pixel=(5, 5))
    assert rf.layer == 5
    for axis in rf.exact:
        np.testing.assert_array_equal(axis, [2, 4, 5, 6, 8])
    assert [index for index, _ in rf.chain] == [0, 1, 2, 3, 4, 5]
    x = np.random.default_rng(0).random((1, 1, 11, 11)).astype(np.float32) + 0.1
    support = _support(model, x, model, (5, 5))
    assert not np.any(support[~rf.mask])          # nothing outside the per-axis sets influences it
    assert support[4:7, 4:7].all() and support[2::3, 2::3][:3, :3].all()
    assert receptive_field(model, (1, 11, 11), pixel=(5, 5), layer=3).exact[0].tolist() == [2, 5, 8]
