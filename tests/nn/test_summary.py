"""convscope.summary: counts, formulas, fully-connected equivalents, receptive fields, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import convscope
from convscope import nn
from convscope.errors import ArgumentTypeError, ConfigError, ShapeError


def lenet5():
    """LeCun's LeNet-5 on 32x32 gray images (counts computed by hand below)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, rng=0), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, rng=0), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120, rng=0), nn.ReLU(),
        nn.Linear(120, 84, rng=0), nn.ReLU(), nn.Linear(84, 10, rng=0),
    )


def test_notes_9_1_18_weight_sharing_650_vs_10():
    s = convscope.summary(nn.Conv2d(1, 1, 3, padding=1, rng=0), (1, 5, 5))
    row = s.rows[0]
    assert row.output_shape == (1, 1, 5, 5)
    assert (row.params, row.formula) == (10, "1*(1*3*3)+1 = 10")
    assert (row.fc_params, row.fc_formula) == (650, "25*25+25 = 650")
    text = str(s)
    assert "1*(1*3*3)+1 = 10" in text and "25*25+25 = 650" in text


def test_lenet5_counts_by_hand():
    s = convscope.summary(lenet5(), (1, 32, 32))
    by_name = {r.name: r for r in s.rows}
    # conv1: 6 filters of 1x5x5 + 6 offsets; conv2: 16 filters of 6x5x5 + 16
    assert by_name["0"].formula == "6*(1*5*5)+6 = 156"
    assert by_name["3"].formula == "16*(6*5*5)+16 = 2,416"
    assert by_name["7"].formula == "120*400+120 = 48,120"
    assert by_name["9"].params == 120 * 84 + 84 == 10164
    assert by_name["11"].params == 84 * 10 + 10 == 850
    assert s.total_params == 156 + 2416 + 48120 + 10164 + 850 == 61706
    assert s.total_params == lenet5().num_parameters()
    shapes = [r.output_shape for r in s.rows]
    assert shapes[:7] == [(1, 6, 28, 28), (1, 6, 28, 28), (1, 6, 14, 14), (1, 16, 10, 10),
                          (1, 16, 10, 10), (1, 16, 5, 5), (1, 400)]
    assert s.output_shape == (1, 10) and s.batch_added
    # fully-connected equivalent of conv1: 784 inputs to 6*28*28 = 4704 outputs
    assert by_name["0"].fc_params == 4704 * 1024 + 4704
    # receptive field / jump: rf += (k-1)*jump, jump *= s
    assert [(r.receptive_field, r.jump) for r in s.rows[:6]] == [
        ((5, 5), (1, 1)), ((5, 5), (1, 1)), ((6, 6), (2, 2)),
        ((14, 14), (2, 2)), ((14, 14), (2, 2)), ((16, 16), (4, 4))]
    assert by_name["7"].receptive_field is None  # fully connected: the whole input
    # window matrices: N * out positions * C_in * k*k entries of 4 bytes
    assert by_name["0"].window_bytes == 1 * 28 * 28 * 1 * 25 * 4
    assert by_name["3"].window_bytes == 1 * 10 * 10 * 6 * 25 * 4
    assert s.peak_window_bytes == 78400 and s.total_window_bytes == 78400 + 60000
    text = str(s)
    assert "Total parameters: 61,706" in text and "16x16" in text and "78,400 B" in text


def test_batched_and_unbatched_input_shapes_agree():
    a = convscope.summary(lenet5(), (1, 32, 32))
    b = convscope.summary(lenet5(), (8, 1, 32, 32))
    assert not b.batch_added and b.rows[0].output_shape == (8, 6, 28, 28)
    assert [r.params for r in a.rows] == [r.params for r in b.rows]
    assert b.rows[0].window_bytes == 8 * a.rows[0].window_bytes
    fc = convscope.summary(nn.Linear(25, 25, rng=0), (25,))
    assert fc.batch_added and fc.rows[0].formula == "25*25+25 = 650"


def test_output_shapes_match_a_real_forward_pass():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding="same", rng=0), nn.BatchNorm2d(8), nn.LeakyReLU(),
        nn.Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, dilation=1, rng=1), nn.ReLU())),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.BlurPool2d(8), nn.AvgPool2d(2, ceil_mode=True),
        nn.Flatten(), nn.Dropout(0.1, rng=0), nn.Linear(8 * 2 * 2, 5, rng=0), nn.Softmax(),
    )
    x = np.zeros((2, 3, 27, 25), dtype=np.float32)
    s = convscope.summary(model, x.shape)
    assert s.output_shape == model(x).shape == (2, 5)
    assert s.total_params == model.num_parameters()
    names = [r.name for r in s.rows]
    assert names[3:6] == ["3.block.0", "3.block.1", "3"]
    bn = s.rows[1]
    assert bn.formula == "2*8 = 16"
    # strided conv, then a 3x3 conv: rf 3 + 2*2 = 7 with jump 2; residual keeps it
    assert s.rows[5].receptive_field == (7, 7) and s.rows[5].jump == (2, 2)
    json.dumps(s.to_dict())


def test_conv1d_and_groups_formula():
    s = convscope.summary(nn.Sequential(nn.Conv1d(4, 8, 3, groups=2, bias=False, rng=0)), (4, 10))
    assert s.rows[0].formula == "8*(2*3) = 48" and s.rows[0].receptive_field == (3,)


def test_layer_that_does_not_fit_names_the_layer_and_the_arithmetic():
    model = nn.Sequential(nn.Conv2d(1, 4, 5, rng=0), nn.MaxPool2d(2), nn.Conv2d(4, 8, 5, rng=0))
    with pytest.raises(ShapeError) as info:
        convscope.summary(model, (1, 10, 10))
    msg = str(info.value)
    assert "layer 3 (Conv2d(4, 8, kernel_size=(5, 5)))" in msg and "'2'" in msg
    assert "(1, 4, 3, 3)" in msg and "kernel size 5 does not fit" in msg and "n=3" in msg
    with pytest.raises(ShapeError, match=r"layer 2 \(Conv2d\(3, 8.*expected 3 input channels"):
        convscope.summary(nn.Sequential(nn.ReLU(), nn.Conv2d(3, 8, 3)), (1, 4, 8, 8))
    with pytest.raises(ShapeError, match=r"layer 4 \(Linear\(in_features=100.*Linear expected 100"):
        convscope.summary(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(100, 2)),
                          (1, 8, 8))
    with pytest.raises(ConfigError, match=r"layer 1 \(BlurPool2d.*reflect padding"):
        convscope.summary(nn.BlurPool2d(1), (1, 1, 1, 1))


def test_summary_argument_errors():
    with pytest.raises(ArgumentTypeError, match="input_shape"):
        convscope.summary(lenet5(), (1, 0, 32))
    with pytest.raises(ArgumentTypeError, match="input_shape"):
        convscope.summary(lenet5(), "1x32x32")
    with pytest.raises(ArgumentTypeError, match="model"):
        convscope.summary(object(), (1, 32, 32))
    with pytest.raises(ConfigError, match="output_shape"):
        convscope.summary(nn.Sequential(type("Custom", (nn.Module,), {})()), (1, 2))


def test_summary_of_a_split_shows_every_piece():
    # ShuffleNet's chunk: both pieces are outputs (one skips to the Concat, one feeds the branch)
    g = nn.GraphBuilder()
    stem = g.add("stem", nn.Conv2d(1, 6, 3, padding=1, rng=0), g.input)
    split = g.add("split", nn.Split((2, 4)), stem)
    branch = g.add("branch", nn.Conv2d(4, 3, 3, padding=1, rng=1), f"{split}:1")
    s = convscope.summary(g.build(g.add("cat", nn.Concat(), f"{split}:0", branch)), (1, 5, 5))
    row = s.rows[1]
    assert row.output_shape == (1, 2, 5, 5) and row.output_shapes == ((1, 2, 5, 5), (1, 4, 5, 5))
    assert "(1, 2, 5, 5), (1, 4, 5, 5)" in str(s) and "(1, 2, 5, 5), (1, 4, 5, 5)" in s.to_text(width=80)
    assert json.loads(json.dumps(s.to_dict()))["rows"][1]["output_shapes"] == [[1, 2, 5, 5], [1, 4, 5, 5]]
    assert s.rows[0].output_shapes == () and "output_shapes" not in s.to_dict()["rows"][0]
