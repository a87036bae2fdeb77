"""The layer protocol of nn.Module (layer_kind, window, input_rank) and the one walker."""

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError, ShapeError
from convscope.shapes import WindowGeometry


class MyConv(nn.Conv2d):
    """A user's subclass: a convolution with a different name and an extra attribute."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.note = "mine"


class Opaque(nn.Module):
    def forward(self, x):
        return x

    def output_shape(self, input_shape):
        return tuple(input_shape)


@pytest.mark.parametrize("layer, kind", [
    (nn.Conv1d(1, 1, 3, rng=0), "conv"), (nn.Conv2d(1, 1, 3, rng=0), "conv"),
    (nn.Conv3d(1, 1, 1, rng=0), "conv"), (nn.ConvNd(4, 1, 1, 1, rng=0), "conv"),
    (nn.MaxPool1d(2), "max_pool"), (nn.MaxPool2d(2), "max_pool"), (nn.MaxPool3d(2), "max_pool"),
    (nn.AvgPool1d(2), "avg_pool"), (nn.AvgPool2d(2), "avg_pool"), (nn.AvgPool3d(2), "avg_pool"),
    (nn.BlurPool1d(2), "blur_pool"), (nn.BlurPool2d(2), "blur_pool"), (nn.BlurPool3d(2), "blur_pool"),
    (nn.BatchNorm1d(2), "batch_norm"), (nn.BatchNorm2d(2), "batch_norm"),
    (nn.ReLU(), "relu"), (nn.LeakyReLU(), "leaky_relu"), (nn.Sigmoid(), "sigmoid"),
    (nn.Tanh(), "tanh"), (nn.Softmax(), "softmax"), (nn.Linear(2, 3, rng=0), "linear"),
    (nn.Flatten(), "flatten"), (nn.Dropout(), "dropout"), (nn.Sequential(), "sequential"),
    (nn.Residual(nn.ReLU()), "residual"), (Opaque(), "module"),
])
def test_layer_kind(layer, kind):
    assert layer.layer_kind == kind


def test_window_of_conv():
    conv = nn.Conv2d(2, 4, (3, 5), stride=(1, 2), padding=((1, 0), (2, 2)), dilation=(2, 1),
                     groups=2, padding_mode="reflect", rng=0)
    assert conv.window == WindowGeometry("conv", (3, 5), (1, 2), (2, 1), ((1, 0), (2, 2)),
                                         "reflect", False, 2)
    same = nn.Conv1d(1, 1, 3, stride=2, padding="same", rng=0).window
    assert same.padding == "same" and same.padding_pairs((8,)) == ((0, 1),)


def test_window_of_pools():
    assert nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True).window == WindowGeometry(
        "max", (3, 3), (2, 2), (2, 2), ((1, 1), (1, 1)), "-inf", True, 1)
    assert nn.AvgPool1d(2).window == WindowGeometry("avg", (2,), (2,), (1,), ((0, 0),), "zeros")
    blur = nn.BlurPool2d(3, filter_size=4, stride=2, padding_mode="replicate").window
    assert blur == WindowGeometry("blur", (4, 4), (2, 2), (1, 1), ((1, 2), (1, 2)), "replicate",
                                  False, 3)


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.Linear(2, 2, rng=0), nn.Flatten(),
                                   nn.BatchNorm2d(2), nn.Dropout(), nn.Sequential(nn.Conv1d(1, 1, 1, rng=0)),
                                   Opaque()])
def test_no_window(layer):
    assert layer.window is None


@pytest.mark.parametrize("layer, rank", [
    (nn.Conv1d(1, 1, 1, rng=0), 1), (nn.Conv2d(1, 1, 1, rng=0), 2), (nn.ConvNd(4, 1, 1, 1, rng=0), 4),
    (nn.MaxPool3d(2), 3), (nn.AvgPool1d(2), 1), (nn.BlurPool2d(1), 2), (nn.BatchNorm2d(1), 2),
    (nn.BatchNorm1d(1), None), (nn.Linear(1, 1, rng=0), 0), (nn.ReLU(), None), (nn.Flatten(), None),
    (nn.Dropout(), None), (Opaque(), None),
    (nn.Sequential(nn.ReLU(), nn.Dropout(), nn.Conv1d(1, 1, 1, rng=0)), 1),
    (nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0)), None),
    (nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2, rng=0)), None),
    (nn.Sequential(Opaque(), nn.Linear(4, 2, rng=0)), 0),
    (nn.Residual(nn.Sequential(nn.ReLU(), nn.Conv3d(1, 1, 1, rng=0))), 3),
])
def test_input_rank(layer, rank):
    assert layer.input_rank == rank
    assert nn.input_rank(layer) == rank


def test_subclass_reports_the_same_protocol():
    mine = MyConv(3, 8, 3, stride=2, padding=1, rng=0)
    plain = nn.Conv2d(3, 8, 3, stride=2, padding=1, rng=0)
    assert type(mine) is not nn.Conv2d
    assert (mine.layer_kind, mine.window, mine.input_rank) == (plain.layer_kind, plain.window,
                                                                plain.input_rank)
    model = nn.Sequential(mine, nn.ReLU())
    assert nn.input_rank(model) == 2 and nn.input_channels(model) == 3
    records = list(nn.walk(model, (1, 3, 9, 9)))
    assert [(r.kind, r.effect, r.out_shape) for r in records] == [
        ("conv", "window", (1, 8, 5, 5)), ("relu", "pointwise", (1, 8, 5, 5))]
    assert records[0].padding == ((1, 1), (1, 1))


def test_walk_order_names_depths_and_blocks():
    inner = nn.Residual(nn.Conv2d(2, 2, 1, rng=2))
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, rng=0),
        nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, rng=1), inner)),
        nn.Flatten(), nn.Linear(2 * 6 * 6, 3, rng=3),
    )
    records = list(nn.walk(model, (4, 1, 8, 8)))
    assert [(r.index, r.name, r.depth, r.kind) for r in records] == [
        (1, "0", 0, "conv"), (2, "1.block.0", 1, "conv"), (3, "1.block.1.block", 2, "conv"),
        (4, "1.block.1", 1, "residual"), (5, "1", 0, "residual"), (6, "2", 0, "flatten"),
        (7, "3", 0, "linear")]
    assert [r.index for r in records[4].block] == [2, 3, 4]
    assert [r.index for r in records[3].block] == [3]
    assert records[0].in_shape == (4, 1, 8, 8) and records[-1].out_shape == (4, 3)
    assert [r.effect for r in records] == ["window", "window", "window", "residual", "residual",
                                           "global", "global"]
    assert [r.nested for r in records] == [False, True, True, True, False, False, False]
    # without an input shape: the same layers, no shapes
    bare = list(nn.walk(model))
    assert [r.name for r in bare] == [r.name for r in records]
    assert all(r.in_shape is None and r.out_shape is None for r in bare)


def test_walk_of_a_single_layer_and_opaque_modules():
    (record,) = nn.walk(nn.Conv1d(1, 1, 3, rng=0), (1, 1, 5))
    assert record.name == "(model)" and record.label == "1 (Conv1d(1, 1, kernel_size=(3,)))"
    records = list(nn.walk(nn.Sequential(Opaque(), nn.Softmax(dim=1)), (1, 3, 4)))
    assert [r.effect for r in records] == ["unknown", "pointwise"]
    (spatial,) = nn.walk(nn.Softmax(dim=2), (1, 3, 4))
    assert spatial.effect == "global"


def test_walk_stops_at_the_first_layer_that_does_not_fit():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, rng=0), nn.Conv2d(1, 1, 5, rng=1), nn.ReLU())
    records = list(nn.walk(model, (1, 1, 6, 6)))
    assert len(records) == 2
    assert records[1].out_shape is None and isinstance(records[1].error, ShapeError)
    # a failure inside a Residual block ends the walk before the Residual
    res = nn.Sequential(nn.Residual(nn.Conv2d(1, 1, 3, rng=0)), nn.ReLU())
    records = list(nn.walk(res, (1, 1, 6, 6)))
    assert [r.kind for r in records] == ["conv", "residual"]
    assert records[0].error is None and "keep the shape" in str(records[1].error)
    records = list(nn.walk(nn.Residual(nn.Conv2d(1, 1, 9, rng=0)), (1, 1, 6, 6)))
    assert [r.kind for r in records] == ["conv"] and records[0].error is not None


def test_walk_refuses_a_non_module():
    with pytest.raises(ArgumentTypeError, match="convscope Module"):
        list(nn.walk(lambda x: x))


def test_batched_input_shape_and_channels():
    assert nn.batched_input_shape(nn.Linear(4, 2, rng=0), (4,), "t") == ((1, 4), True)
    assert nn.batched_input_shape(nn.Linear(4, 2, rng=0), (3, 4), "t") == ((3, 4), False)
    assert nn.batched_input_shape(nn.Flatten(), (3, 4), "t") == ((3, 4), False)
    assert nn.input_channels(nn.Sequential(nn.BatchNorm2d(5), nn.Conv2d(5, 1, 1, rng=0))) == 5
    assert nn.input_channels(nn.MaxPool2d(2)) is None
    with pytest.raises(ArgumentTypeError, match="positive ints"):
        nn.batched_input_shape(nn.ReLU(), (0, 3), "t")


def test_window_geometry_output_size():
    w = nn.MaxPool1d(2, ceil_mode=True).window
    assert w.output_size((5,)) == (3,)
    x = np.zeros((1, 1, 5), dtype=np.float32)
    assert nn.MaxPool1d(2, ceil_mode=True)(x).shape[2:] == w.output_size((5,))


def test_summary_marks_the_field_after_an_unknown_layer_as_unknown():
    s = nn.summary(nn.Sequential(nn.Conv1d(1, 1, 3, rng=0), Opaque(), nn.ReLU()), (1, 9))
    assert s.rows[0].receptive_field == (3,)
    assert [(r.receptive_field, r.field_note) for r in s.rows[1:]] == [
        (None, "unknown layer"), (None, "unknown layer")]
    assert "unknown" in str(s).splitlines()[5]


def test_receptive_field_steps_of_a_residual_are_the_union_of_both_paths():
    from convscope.nn.receptive import field_steps

    model = nn.Sequential(nn.Conv1d(1, 1, 1, rng=0),
                          nn.Residual(nn.Conv1d(1, 1, 3, padding=((2, 0),), rng=1)))
    records = list(nn.walk(model, (1, 1, 6)))
    steps = field_steps(records, 1)
    assert [(f.rf, f.jump, f.start) for f in steps] == [((1,), (1,), (0,)), ((3,), (1,), (-2,)),
                                                       ((3,), (1,), (-2,))]
