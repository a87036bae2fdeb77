"""convscope.viz.activations: one sample walked layer by layer, numbered as convscope.summary."""

import numpy as np
import pytest

from convscope import nn, summary
from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError
from convscope.viz.activations import find_layer, forward_layers, numbered_layers, prepare_input


def _residual_model():
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, rng=0), nn.BatchNorm2d(3), nn.ReLU(),
        nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, rng=1), nn.Tanh())),
        nn.Dropout(0.5, rng=2), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 3 * 3, 4, rng=3),
    )


def test_every_layer_recorded_in_summary_order_and_output_matches_model():
    model = _residual_model().eval()
    x = np.random.default_rng(0).standard_normal((1, 6, 6)).astype(np.float32)
    xb, acts = forward_layers(model, x)
    rows = summary(model, (1, 6, 6)).rows
    assert [a.index for a in acts] == [r.index for r in rows]
    assert [a.name for a in acts] == [r.name for r in rows]
    assert [a.y.shape for a in acts] == [r.output_shape for r in rows]
    np.testing.assert_array_equal(acts[-1].y, model(xb))
    # top-level layers chain: each one's input is the previous top-level output
    top = [a for a in acts if not a.nested]
    for prev, cur in zip(top, top[1:]):
        assert cur.x is prev.y
    nested = [a.name for a in acts if a.nested]
    assert nested == ["3.block.0", "3.block.1"]
    residual = next(a for a in acts if a.name == "3")
    block_out = next(a for a in acts if a.name == "3.block.1")
    np.testing.assert_array_equal(residual.y, residual.x + block_out.y)


def test_runs_in_eval_mode_and_restores_the_mode():
    model = _residual_model()          # training mode: dropout would zero half the entries
    model[4].training = True
    x = np.ones((1, 6, 6), np.float32)
    _, acts = forward_layers(model, x)
    drop = next(a for a in acts if isinstance(a.module, nn.Dropout))
    np.testing.assert_array_equal(drop.y, drop.x)        # identity in eval mode
    assert all(m.training for m in model.modules())     # mode given back


@pytest.mark.parametrize("shape, expected", [((5, 5), (1, 1, 5, 5)), ((1, 5, 5), (1, 1, 5, 5)),
                                             ((1, 1, 5, 5), (1, 1, 5, 5))])
def test_prepare_input_adds_axes_and_casts_to_model_dtype(shape, expected):
    model = nn.Conv2d(1, 2, 3, rng=0)
    xb = prepare_input(model, np.zeros(shape, np.float64))
    assert xb.shape == expected and xb.dtype == np.float32


def test_prepare_input_rejects_with_reasons():
    conv = nn.Conv2d(1, 2, 3, rng=0)
    with pytest.raises(ShapeError, match="ONE sample.*batch of 2"):
        prepare_input(conv, np.zeros((2, 1, 5, 5)))
    with pytest.raises(ShapeError, match=r"1 input channel.*x\.mean\(axis=0\)"):
        prepare_input(conv, np.zeros((3, 5, 5)))
    with pytest.raises(ShapeError, match="4 axes"):
        prepare_input(conv, np.zeros(5))
    with pytest.raises(DTypeError, match="real numbers"):
        prepare_input(conv, np.array([["a"]]))
    with pytest.raises(ArgumentTypeError, match="convscope Module"):
        prepare_input("conv", np.zeros((5, 5)))
    with pytest.raises(ShapeError, match=r"layer 1 \(Conv2d.*does not fit"):
        forward_layers(nn.Conv2d(1, 1, 5, rng=0), np.zeros((3, 3)))


def test_numbered_layers_and_find_layer():
    model = _residual_model()
    numbered = numbered_layers(model)
    assert [(i, n) for i, n, _ in numbered] == [(r.index, r.name) for r in summary(model, (1, 6, 6)).rows]
    assert find_layer(model, None, (nn.Conv2d,), "convolution", "t")[0] == 1
    assert find_layer(model, 4, (nn.Conv2d,), "convolution", "t")[1] == "3.block.0"
    assert find_layer(model, "3.block.0", (nn.Conv2d,), "convolution", "t")[0] == 4
    assert find_layer(model, "0", (nn.Conv2d,), "convolution", "t")[0] == 1     # a name first
    assert find_layer(model, "10", (nn.Linear,), "Linear", "t")[0] == 10       # no such name: a number
    with pytest.raises(ConfigError, match="layer '4' is Dropout"):               # the child named 4
        find_layer(model, "4", (nn.Conv2d,), "convolution", "t")
    with pytest.raises(ConfigError, match=r"layer 3 is ReLU.*are: 1, 4 \(3\.block\.0\)\."):
        find_layer(model, 3, (nn.Conv2d,), "convolution", "t")
    with pytest.raises(ConfigError, match="there is no layer 99"):
        find_layer(model, 99, (nn.Conv2d,), "convolution", "t")
    with pytest.raises(ConfigError, match="no convolution layer"):
        find_layer(nn.Sequential(nn.ReLU()), None, (nn.Conv2d,), "convolution", "t")
    with pytest.raises(ArgumentTypeError, match="layer number or a dotted name"):
        find_layer(model, 1.5, (nn.Conv2d,), "convolution", "t")
