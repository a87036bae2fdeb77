"""convscope.viz.fields: every pixel's receptive-field box equals explain.receptive_field's exact region."""

import itertools

import numpy as np
import pytest

from convscope import nn
from convscope.explain import receptive_field
from convscope.viz.activations import forward_layers
from convscope.viz.fields import receptive_boxes

MODELS = {
    "pool, dilation, groups, stride": (lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, rng=1),
        nn.Conv2d(4, 2, 2, stride=2, bias=False, rng=2), nn.Flatten(), nn.Linear(8, 3, rng=3)), (1, 8, 8)),
    "reflect, ceil_mode, nested Residual, circular, blur, avg": (lambda: nn.Sequential(
        nn.Conv1d(1, 2, 3, padding=2, dilation=2, padding_mode="reflect", rng=0),
        nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True),
        nn.Residual(nn.Sequential(nn.Conv1d(2, 2, 3, padding=1, padding_mode="circular", rng=1),
                                  nn.Residual(nn.Sequential(nn.Conv1d(2, 2, 1, rng=5))), nn.Tanh())),
        nn.BlurPool1d(2), nn.AvgPool1d(2, padding=1), nn.Conv1d(2, 2, 2, stride=3, padding=3, rng=2)), (1, 13)),
    "replicate, stride larger than the window, windows wholly in padding": (lambda: nn.Sequential(
        nn.Conv2d(1, 2, (3, 1), stride=(1, 2), padding=(0, 2), padding_mode="replicate", rng=0),
        nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(2, 1, 2, stride=3, padding=4, rng=1)), (1, 7, 9)),
    "graph: a strided block beside its 1x1 projection, then a concat with a dilated branch": (
        lambda: _graph(), (1, 9, 9)),
}


def _graph():
    g = nn.GraphBuilder()
    stem = g.add("stem", nn.Conv2d(1, 2, 3, padding=1, rng=0), g.input)
    a = g.add("a", nn.Conv2d(2, 2, 3, stride=2, padding=1, rng=1), stem)
    a = g.add("a2", nn.Conv2d(2, 2, 3, padding=1, rng=2), g.add("relu", nn.ReLU(), a))
    short = g.add("short", nn.Conv2d(2, 2, 1, stride=2, rng=3), stem)
    add = g.add("add", nn.Add(), a, short)
    far = g.add("far", nn.Conv2d(2, 2, 3, padding=2, dilation=2, rng=4), add)
    cat = g.add("cat", nn.Concat(), add, far)
    return g.build(g.add("head", nn.Conv2d(4, 1, 1, rng=5), cat))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_pixel_box_is_the_exact_region(name):
    build, shape = MODELS[name]
    model = build()
    _, acts = forward_layers(model, np.zeros(shape))
    boxes = receptive_boxes(acts, shape[1:])
    rows = receptive_field(model, (1,) + shape).rows
    seen_empty = 0
    for act in acts:
        box = boxes[act.index]
        assert (box is None) == (rows[act.index].jump is None), act.index
        if box is None or act.nested:          # receptive_field answers top-level layers only
            continue
        for pixel in itertools.product(*(range(o) for o in act.y.shape[2:])):
            exact = receptive_field(model, (1,) + shape, pixel=pixel, layer=act.index).exact
            for axis, p in enumerate(pixel):
                first, last = box[axis][0][p], box[axis][1][p]
                if exact[axis].size == 0:       # the windows see padding only
                    seen_empty += 1
                    assert first == -1, (act.index, pixel, axis)
                else:
                    assert (first, last) == (exact[axis][0], exact[axis][-1]), (act.index, pixel, axis)
    if name.endswith("wholly in padding"):
        assert seen_empty > 0


def test_residual_box_is_the_union_of_both_paths():
    model = nn.Sequential(nn.Conv1d(1, 1, 1, rng=0), nn.Residual(nn.Sequential(nn.Conv1d(1, 1, 3, padding=2, rng=1),
                                                                               nn.Conv1d(1, 1, 3, rng=2))))
    _, acts = forward_layers(model, np.zeros((1, 5)))
    boxes = receptive_boxes(acts, (5,))
    first, last = boxes[4][0]                   # the Residual, after its block of layers 2 and 3
    np.testing.assert_array_equal(first, [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(last, [2, 3, 4, 4, 4])
    assert [a.nested for a in acts] == [False, True, True, False]
