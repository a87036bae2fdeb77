"""The branch layout shared by the explainer page and the architecture picture."""

from __future__ import annotations

import re

import numpy as np
import pytest

from convscope import nn
from convscope.models import build_model
from convscope.nn import walk
from convscope.nn.graph import GraphBuilder
from convscope.viz._branches import Block, branch_layout
from convscope.viz.html import explain_model_html


def _fire():
    """A SqueezeNet fire module inside a stem: squeeze 1x1, then expand 1x1 and 3x3, concatenated."""
    g = GraphBuilder()
    s = g.add("stem", nn.Conv2d(1, 4, 3, padding=1, rng=0), g.input)
    s = g.add("squeeze", nn.Conv2d(4, 2, 1, rng=1), s)
    s = g.add("squeeze_relu", nn.ReLU(), s)
    a = g.add("expand1x1", nn.Conv2d(2, 3, 1, rng=2), s)
    a = g.add("expand1x1_relu", nn.ReLU(), a)
    b = g.add("expand3x3", nn.Conv2d(2, 3, 3, padding=1, rng=3), s)
    b = g.add("expand3x3_relu", nn.ReLU(), b)
    return g.build(g.add("cat", nn.Concat(), a, b))


def _dense():
    """A DenseNet chain: the second concat reads the first branch's output again (no clean block)."""
    g = GraphBuilder()
    x0 = g.add("c0", nn.Conv2d(1, 2, 3, padding=1, rng=0), g.input)
    x1 = g.add("c1", nn.Conv2d(2, 2, 3, padding=1, rng=1), x0)
    h = g.add("cat1", nn.Concat(), x0, x1)
    x2 = g.add("c2", nn.Conv2d(4, 2, 3, padding=1, rng=2), h)
    return g.build(g.add("cat2", nn.Concat(), x0, x1, x2))


def _nested():
    """A residual block whose main path holds a residual block of its own."""
    g = GraphBuilder()
    x = g.add("stem", nn.Conv2d(1, 2, 3, padding=1, rng=0), g.input)
    a = g.add("a", nn.Conv2d(2, 2, 3, padding=1, rng=1), x)
    b = g.add("b", nn.Conv2d(2, 2, 3, padding=1, rng=2), a)
    inner = g.add("inner_add", nn.Add(), b, a)
    c = g.add("c", nn.ReLU(), inner)
    return g.build(g.add("outer_add", nn.Add(), c, x))


def test_the_resnet_blocks_by_hand():
    # ResNet-8 (the built-in recipe): numbered as summary numbers it (see tests/test_models_resnet.py)
    model = build_model("resnet", input_shape=(3, 32, 32), seed=0)
    assert branch_layout(walk(model, (1, 3, 32, 32))) == [
        1, 2, 3, Block(3, ((4, 5, 6, 7, 8), ()), 9), 10,
        Block(10, ((11, 12, 13, 14, 15), (16, 17)), 18), 19,
        Block(19, ((20, 21, 22, 23, 24), (25, 26)), 27), 28, 29, 30, 31]


def test_a_residual_container_fire_module_nesting_and_a_dense_chain():
    seq = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0),
                        nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, rng=1), nn.ReLU())), nn.ReLU())
    assert branch_layout(walk(seq, (1, 1, 6, 6))) == [1, Block(1, ((2, 3), ()), 4), 5]
    assert branch_layout(walk(_fire(), (1, 1, 6, 6))) == [1, 2, 3, Block(3, ((4, 5), (6, 7)), 8)]
    assert branch_layout(walk(_nested(), (1, 1, 6, 6))) == [
        1, Block(1, ((2, Block(2, ((3,), ()), 4), 5), ()), 6)]
    assert branch_layout(walk(_dense(), (1, 1, 6, 6))) == [1, 2, 3, 4, 5]
    plain = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU())
    assert branch_layout(walk(plain, (1, 1, 6, 6))) == [1, 2]


def _columns(text: str, merge: int) -> list[list[int]]:
    """The card numbers in each branch column of the block joined by layer ``merge``."""
    start = text.index('<div class="block" data-fork=')
    start = text.index(f'data-merge="{merge}"', start)
    block = text[start:text.index(f'id="layer-{merge}"', start)]
    parts = re.split(r'<div class="branch[^"]*" data-branch="\d+">', block)[1:]
    return [[int(v) for v in re.findall(r'<section class="card layer[^"]*" id="layer-(\d+)"', p)] for p in parts]


@pytest.mark.parametrize("which", ["resnet", "fire"])
def test_the_page_puts_each_branch_in_its_own_column(tmp_path, which):
    if which == "resnet":
        model, x, merge, want = build_model("resnet", input_shape=(3, 32, 32), seed=0), \
            np.random.default_rng(0).random((3, 32, 32)), 18, [[11, 12, 13, 14, 15], [16, 17]]
    else:
        model, x, merge, want = _fire(), np.random.default_rng(0).random((1, 6, 6)), 8, [[4, 5], [6, 7]]
    text = explain_model_html(model, x, tmp_path / "p.html", backward=False).read_text()
    assert _columns(text, merge) == want
    # every layer's card is on the page exactly once, the merge's after its branches
    ids = [int(v) for v in re.findall(r'<section class="card layer[^"]*" id="layer-(\d+)"', text)]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == len(list(walk(model, (1, *x.shape))))


def test_an_identity_branch_is_a_column_that_says_so(tmp_path):
    model = build_model("resnet", input_shape=(3, 32, 32), seed=0)
    text = explain_model_html(model, np.zeros((3, 32, 32)), tmp_path / "p.html", backward=False).read_text()
    assert _columns(text, 9) == [[4, 5, 6, 7, 8], []]
    block = text[text.index('data-merge="9"'):text.index('id="layer-9"')]
    assert 'class="branch identity"' in block and "the output of <a href=\"#layer-3\">layer 3</a> itself" in block


def _at(fig, text):
    (found,) = [t.get_position() for ax in fig.mpl.axes for t in ax.texts if t.get_text() == text]
    return found


def test_the_architecture_picture_draws_branches_in_lanes_and_the_identity_over_the_top():
    from convscope.viz import plot_architecture

    fig = plot_architecture(build_model("resnet", input_shape=(3, 32, 32), seed=0), (3, 32, 32))
    # layer2's projection shortcut (conv1x1: 512 params) sits in the lane under its main path's
    # first conv (4,608 params): same column, one lane lower
    (main_x, main_y), (short_x, short_y) = _at(fig, "4,608 params"), _at(fig, "512 params")
    assert main_x == short_x and short_y > main_y
    # polylines: one identity shortcut over the top (layer1) and, for each of the two projection
    # blocks, one into the lower lane and one out of it
    lines = [ln for ax in fig.mpl.axes for ln in ax.lines]
    assert len(lines) == 1 + 2 * 2
    over = [ln for ln in lines if len(ln.get_xdata()) == 3 and ln.get_ydata()[1] < main_y - 5]
    assert len(over) == 1
    plain = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2, rng=1))
    assert not [ln for ax in plot_architecture(plain, (1, 8, 8)).mpl.axes for ln in ax.lines]


def test_the_architecture_picture_names_every_earlier_row_a_concat_reads_in_one_note():
    # a DenseNet concat reads the block's input and earlier layers' outputs from rows above:
    # one "from layers ..." note, not one note per input drawn over each other
    from convscope.viz import plot_architecture

    g = GraphBuilder()
    stem = g.add("stem", nn.Conv2d(1, 2, 3, padding=1, rng=0), g.input)
    h, kept = stem, []
    for i in range(14):
        h = g.add(f"c{i}", nn.Conv2d(2, 2, 3, padding=1, rng=i + 1), h)
        if i == 3:
            kept.append(h)
    model = g.build(g.add("cat", nn.Concat(), stem, kept[0], h))
    fig = plot_architecture(model, (1, 6, 6))
    notes = [t for ax in fig.mpl.axes for t in ax.texts if t.get_text().startswith("from layer")]
    assert [t.get_text() for t in notes] == ["from layers 1, 5"]
