"""PNG pictures (convscope.viz.png, .curves, .demo): files that decode, colours that mean what they say."""

import sys

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError, ConfigError, DataError, MissingDependencyError, ShapeError, StateError
from convscope.explain import filter_bank_demo, per_shift_probability
from convscope.functional import softmax
from convscope.train import History
from convscope.viz import (
    explain_model_html,
    plot_curves,
    plot_feature_maps,
    plot_filters,
    plot_shift_curve,
    plot_weight_gradients,
    save_filter_bank_demo,
    save_shift_curve,
)

pytest.importorskip("matplotlib", reason="the PNG pictures need matplotlib (convscope[train])")
Image = pytest.importorskip("PIL.Image", reason="Pillow decodes the PNGs")


def _pixels(path):
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB")).astype(int)


def _small_model():
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(3, 4, 3, rng=1), nn.Flatten(), nn.Linear(4, 3, rng=2))


def test_filters_positive_weights_red_negative_blue(tmp_path):
    conv = nn.Conv2d(1, 2, 3, bias=False, rng=0)
    conv.weight.data[:] = 0
    conv.weight.data[0, 0, 1, 1] = 1.0        # filter 1: one positive tap
    conv.weight.data[1, 0, 0, :] = -1.0       # filter 2: a row of three negative taps
    path = plot_filters(conv, tmp_path / "f.png")
    px = _pixels(path)
    red = (px[..., 0] > 150) & (px[..., 1] < 60) & (px[..., 2] < 80)
    blue = (px[..., 2] > 80) & (px[..., 0] < 40) & (px[..., 1] < 80)
    # the tiles are the same size, so the negative filter covers about three times the area;
    # the colour bar adds the same amount of both ends
    assert red.sum() > 100 and blue.sum() > 2 * red.sum()


def test_filters_by_layer_number_and_name_and_caps(tmp_path):
    model = _small_model()
    full = _pixels(plot_filters(model, tmp_path / "all.png", layer=4))
    capped = _pixels(plot_filters(model, tmp_path / "cap.png", layer="3", max_filters=2))
    assert capped.shape[0] < full.shape[0]            # fewer rows of filters drawn
    with pytest.raises(ConfigError, match=r"layer 2 is ReLU.*layers are: 1, 4\."):
        plot_filters(model, tmp_path / "x.png", layer=2)
    with pytest.raises(ConfigError, match="max_filters must be a positive int"):
        plot_filters(model, tmp_path / "x.png", max_filters=0)
    assert not (tmp_path / "x.png").exists()


def test_feature_maps_and_input_errors(tmp_path):
    model = _small_model()
    x = np.random.default_rng(0).random((6, 6))
    path = plot_feature_maps(model, x, tmp_path / "sub" / "maps.png", max_channels=2)
    assert path == tmp_path / "sub" / "maps.png" and _pixels(path).shape[0] > 200
    with pytest.raises(ShapeError, match="does not fit"):
        plot_feature_maps(model, np.zeros((2, 2)), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_weight_gradients_computed_here_equal_an_explicit_backward(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 1, 6, 6)).astype(np.float32)
    target = np.array([0, 2, 1])
    model = _small_model()
    loss = nn.CrossEntropyLoss()
    model.zero_grad()
    loss(model(x), target)
    model.backward(loss.backward())
    expected = {n: p.grad.copy() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad[...] = 123.0                     # stale values must be replaced, not added to
    plot_weight_gradients(model, tmp_path / "g.png", x=x, target=target)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, expected[n], rtol=1e-6, atol=1e-7, err_msg=n)
    assert _pixels(tmp_path / "g.png").size > 0
    # drawing what .grad holds needs a backward first
    model.zero_grad()
    with pytest.raises(StateError, match="every weight gradient is zero"):
        plot_weight_gradients(model, tmp_path / "z.png")
    with pytest.raises(ConfigError, match="both x and target"):
        plot_weight_gradients(model, tmp_path / "z.png", x=x)


def test_curves_from_history_records_and_columns(tmp_path):
    h = History()
    for e, (tl, vl, ta, va) in enumerate([(1.0, 1.1, 0.5, 0.45), (0.5, 0.7, 0.8, 0.7)], start=1):
        h.append({"epoch": e, "train_loss": tl, "val_loss": vl, "train_accuracy": ta, "val_accuracy": va})
    wide = _pixels(plot_curves(h, tmp_path / "h.png", test={"loss": 0.6, "accuracy": 0.75}))
    _pixels(plot_curves(h.to_dict(), tmp_path / "d.png"))
    narrow = _pixels(plot_curves({"train_loss": [0.9, 0.4, 0.3]}, tmp_path / "c.png"))
    assert wide.shape[1] > narrow.shape[1]      # a second panel for accuracy
    with pytest.raises(DataError, match="train_loss"):
        plot_curves({"val_accuracy": [0.5]}, tmp_path / "e.png")
    with pytest.raises(DataError, match="one entry per epoch"):
        plot_curves({"train_loss": [1.0, 0.5], "epoch": [1]}, tmp_path / "e.png")
    with pytest.raises(ArgumentTypeError, match="History"):
        plot_curves(3, tmp_path / "e.png")


def test_shift_curves(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 3, rng=1))

    def predict(x):
        return softmax(model.eval()(x.astype(np.float32)).astype(np.float64), axis=1)

    img = np.random.default_rng(2).random((1, 8, 8))
    curve = per_shift_probability(predict, img, 1, range(-2, 3))
    other = per_shift_probability(predict, img, 1, [(0, 1), (1, 0), (1, 1)])
    _pixels(plot_shift_curve(curve, tmp_path / "one.png"))
    _pixels(plot_shift_curve({"MaxPool": curve, "again": curve}, tmp_path / "two.png"))
    _pixels(plot_shift_curve(other, tmp_path / "axes.png"))
    _pixels(save_shift_curve(tmp_path / "mean.png", range(-2, 3), {"a": curve.probabilities, "b": curve}))
    with pytest.raises(ShapeError, match="3 points but there are 5 shifts"):
        save_shift_curve(tmp_path / "bad.png", range(-2, 3), {"a": [0.1, 0.2, 0.3]})
    with pytest.raises(ArgumentTypeError, match="ShiftCurve"):
        plot_shift_curve([0.1, 0.2], tmp_path / "bad.png")


def test_filter_bank_demo_pictures(tmp_path):
    paths = save_filter_bank_demo(filter_bank_demo(), tmp_path / "demo")
    assert [p.name for p in paths] == ["filter_bank.png", "filter_bank_image.png", "filter_bank_channels.png",
                                       "filter_bank_tensor_filter.png", "filter_bank_donut.png"]
    for p in paths:
        assert _pixels(p).shape[0] > 100
    with pytest.raises(ArgumentTypeError, match="FilterBankDemo"):
        save_filter_bank_demo("demo", tmp_path)


def test_without_matplotlib_png_says_what_to_install_and_html_still_works(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)      # import now fails
    with pytest.raises(MissingDependencyError, match=r"convscope\[train\]"):
        plot_filters(nn.Conv2d(1, 1, 3, rng=0), tmp_path / "f.png")
    page = explain_model_html(_small_model(), np.zeros((6, 6)), tmp_path / "p.html")
    assert page.stat().st_size > 1000


def test_feature_maps_draw_every_piece_of_a_split():
    # a ShuffleNet unit's chunk: piece 1 skips to the Concat, piece 2 feeds the branch; both are drawn
    g = nn.GraphBuilder()
    stem = g.add("stem", nn.Conv2d(1, 4, 3, padding=1, rng=0), g.input)
    split = g.add("split", nn.Split((3, 1)), stem)
    branch = g.add("branch", nn.Conv2d(1, 1, 3, padding=1, rng=1), f"{split}:1")
    model = g.build(g.add("cat", nn.Concat(), f"{split}:0", branch))
    x = np.random.default_rng(0).random((1, 6, 6)).astype(np.float32)
    fig = plot_feature_maps(model, x)
    titles = [ax.get_title(loc="left") or ax.get_title() for ax in fig.mpl.axes]
    text = "\n".join(titles)
    assert "piece 1 of 2 (1, 3, 6, 6)" in text and "piece 2 of 2 (1, 1, 6, 6)" in text, text


def test_weight_gradients_heading_stays_above_the_first_panel_of_a_deep_model():
    # the heading sat at 98% of the figure's height: inside the first panel once the figure is
    # tens of inches tall (a ResNet's 20 convolutions)
    model = nn.Sequential(*[nn.Conv2d(2 if i else 1, 2, 3, padding=1, rng=i) for i in range(24)],
                          nn.Flatten(), nn.Linear(2 * 4 * 4, 3, rng=99))
    x = np.random.default_rng(0).random((1, 1, 4, 4)).astype(np.float32)
    fig = plot_weight_gradients(model, x=x, target=np.array([1])).mpl
    renderer = fig.canvas.get_renderer()
    heading = fig._suptitle.get_window_extent(renderer)
    first = fig.axes[0]
    top = max(first.get_window_extent(renderer).y1,
              *(t.get_window_extent(renderer).y1 for t in (first.title, first._left_title) if t.get_text()))
    assert heading.y0 >= top, (heading, top)


def test_a_wide_filter_grid_names_rows_and_columns_on_its_axes_not_over_every_tile():
    # 64 x 32 labels "f12, ch 30" written over 3x3 tiles overlapped into a grey smear
    wide = plot_filters(nn.Conv2d(12, 20, 3, rng=0), max_channels=12).mpl.axes[0]
    assert [t.get_text() for t in wide.get_xticklabels()] == [f"ch {c}" for c in range(1, 13)]
    assert [t.get_text() for t in wide.get_yticklabels()] == [f"f{r}" for r in range(1, 21)]
    assert not [t for t in wide.texts if ", ch " in t.get_text()]
    narrow = plot_filters(nn.Conv2d(3, 4, 3, rng=0)).mpl.axes[0]       # few columns: a label per tile
    assert len([t for t in narrow.texts if ", ch " in t.get_text()]) == 12 and not narrow.get_xticklabels()
