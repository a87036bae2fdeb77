"""Pictures of the notes' worked examples: they exist as PNG (>= 1600 px) and SVG, take their numbers
from explain's traces, and mark padding, skipped windows, never-read entries and matches."""

import io

import numpy as np
import pytest

from convscope import explain as E
from convscope import nn, viz
from convscope.errors import ArgumentTypeError, ConfigError, ShapeError
from convscope.viz.figure import MIN_WIDTH_PX

pytest.importorskip("matplotlib", reason="the pictures need matplotlib (convscope[train])")
Image = pytest.importorskip("PIL.Image", reason="Pillow decodes the PNGs")

X = [1, 1, -1, -1, -1, 1, -1, 1, 1, 1]
F = [1, -1, 1]
GRID = [[1, 3, -9, -22], [44, -10, -11, -1], [0, 10, 4, -3], [11, 9, 321, 99]]


def _texts(fig):
    return [t.get_text() for ax in fig.mpl.axes for t in ax.texts]


def _png_size(data):
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.size


def test_conv1d_picture_writes_every_dot_product_of_the_trace_and_marks_the_match(tmp_path):
    t = E.trace_conv(X, F)
    fig = viz.plot_conv1d(t)
    texts = _texts(fig)
    for st in t.steps:     # the arithmetic of every window, as explain prints it
        assert any(t.arithmetic(st).replace("*", "\u00b7").replace(" . ", " \u00b7 ").replace("-", "\u2212") in s
                   for s in texts)
    assert any("strongest match (bright spot): y_6 = 3" in s for s in texts)
    width, _ = _png_size(fig.png())
    assert width >= MIN_WIDTH_PX
    assert fig.save(tmp_path / "w.svg").read_text().lstrip().startswith("<?xml")
    assert fig.save(tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError, match=r"\.png or \.svg"):
        fig.save(tmp_path / "w.jpg")


def test_conv1d_stride_shows_skipped_windows_and_the_skipped_bright_spot():
    texts = _texts(viz.plot_conv1d(X, F, stride=2))
    assert sum("skipped" in s for s in texts) >= 4
    assert any("the stride s = 2 skips the true bright spot" in s for s in texts)
    assert any("not a match" in s for s in texts)
    assert not any("strongest match (bright spot)" in s for s in texts)


def test_padding_cells_are_drawn_differently():
    fig = viz.plot_conv1d([1, 2, 3, 4], [1, 1, 1], padding=2)
    hatched = [p for ax in fig.mpl.axes for p in ax.patches if p.get_hatch() == "///"]
    assert len(hatched) >= 4             # the 4 pad cells (and the legend swatch)
    assert _texts(fig).count("pad") == 4


def test_output_size_picture_hatches_the_entries_never_read_with_k3_s4():
    fig = viz.plot_output_size(11, 3, s=4)
    unread = [p for ax in fig.mpl.axes for p in ax.patches if p.get_hatch() == "xx"]
    assert len(unread) == 2 + 1          # x_4, x_8 and the legend swatch
    assert any("Key Equation 54" in s for s in _texts(fig))
    plain = viz.plot_output_size(10, 3, s=1)
    assert not [p for ax in plain.mpl.axes for p in ax.patches if p.get_hatch() == "xx"]


def test_conv2d_tensor_filter_and_bank_pictures():
    cross = np.array([[-1, 1, -1], [1, 1, 1], [-1, 1, -1]])
    image = -np.ones((6, 6))
    image[1:4, 2] = 1
    image[2, 1:4] = 1
    texts = _texts(viz.plot_conv2d(image, cross))
    assert "sum = 9" in texts
    two = E.trace_conv(np.stack([image, -image]), np.stack([cross, np.eye(3)]), b=-2)
    texts = _texts(viz.plot_conv2d(two))
    assert any(f"= {int(two.y.max())}" in s and "\u2212 2" in s for s in texts)
    bank = E.trace_filter_bank(image, np.stack([cross, -cross]))
    texts = _texts(viz.plot_filter_bank(bank))
    assert "output channel 1" in texts and "output channel 2" in texts
    with pytest.raises(ShapeError, match="plot_conv2d"):
        viz.plot_conv1d(image, cross)
    with pytest.raises(ArgumentTypeError):
        viz.plot_conv1d(X)


def test_pool_pictures_circle_the_chosen_maximum_and_hatch_unseen_entries():
    from matplotlib.patches import Circle

    fig = viz.plot_pool(GRID, 2)
    assert len([p for ax in fig.mpl.axes for p in ax.patches if isinstance(p, Circle)]) == 4
    skip = viz.plot_pool([5., 1., 7., 2., 9., 3., 4., 8.], 2, stride=3)
    assert any("Key Equation 54" in s for s in _texts(skip))
    shift = _texts(viz.plot_pool_shift())
    assert any("2 positive outputs become 1" in s for s in shift)
    r = E.route_max_pool(E.trace_pool(GRID, 2), [[0.5, -1], [2, 3]])
    texts = _texts(viz.plot_pool_derivative(r))
    for v in ("0.5", "\u22121", "2", "3"):
        assert v in texts


def test_jacobian_and_chain_pictures_label_rows_and_columns():
    texts = _texts(viz.plot_jacobian(E.conv_weight_jacobian([1., 2., 3., 4., 5., 6.], 4)))
    assert {"W_1", "W_4", "Z_1", "Z_3"} <= set(texts)
    assert "X_6\n6" in texts
    chain = E.chain_9_32([1., -2, 3, 1, 0, 2], [1., 0, 1, -1], [1., -1, 2], 1.0)
    texts = _texts(viz.plot_chain(chain))
    assert {"56", "24", "40"} <= set(texts)
    with pytest.raises(ArgumentTypeError):
        viz.plot_jacobian(np.eye(2))


def test_architecture_picture_has_a_box_per_layer_with_shapes_and_params():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(36, 10, rng=1))
    texts = _texts(viz.plot_architecture(model, (1, 8, 8)))
    assert {"Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "4 x 6 x 6", "40 params", "rf 3x3"} <= set(texts)


def test_animations_have_one_frame_per_window_with_the_trace_numbers(tmp_path):
    t = E.trace_conv(X, F)
    anim = viz.animate_conv(t)
    assert len(anim) == len(t.steps)
    third = _texts(anim.frames[2])
    assert "?" in third and any("y_3 = f \u00b7 v_3" in s for s in third)
    gif = anim.save(tmp_path / "a.gif")
    with Image.open(gif) as img:
        assert img.format == "GIF" and img.n_frames == len(t.steps)
    page = anim.save(tmp_path / "a.html").read_text()
    assert page.count("<svg") == len(t.steps) and "<script>" in page
    assert "frame 1 of 8" in anim._repr_html_()
    pool = viz.animate_pool(GRID, 2)
    assert len(pool) == 4
    with pytest.raises(ConfigError, match="max_frames"):
        viz.animate_conv(np.zeros(100), [1, 1], max_frames=10)


def test_model_pictures_return_a_figure_without_a_path_and_the_path_with_one(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 8, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 3, rng=1))
    fig = viz.plot_filters(model)
    assert isinstance(fig, viz.Figure) and fig.width_px >= MIN_WIDTH_PX
    texts = _texts(fig)
    assert [f"filter {i}" for i in range(1, 9)] == [s for s in texts if s.startswith("filter ")]
    path = viz.plot_filters(model, tmp_path / "f.svg")
    assert path == tmp_path / "f.svg" and path.read_text().lstrip().startswith("<?xml")
    maps = viz.plot_feature_maps(model, np.zeros((6, 6)), class_names=["cat", "dog", "owl"])
    ticks = [t.get_text() for ax in maps.mpl.axes for t in ax.get_xticklabels()]
    assert {"cat", "dog", "owl"} <= set(ticks)
    from convscope.train import History

    one = viz.plot_curves(History([{"epoch": 1, "train_loss": 0.9, "val_loss": 1.0}]))
    ax = one.mpl.axes[0]
    assert len(ax.patches) == 2 and "0.9" in [t.get_text() for t in ax.texts]


def test_feature_pixel_arithmetic_equals_the_forward():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(2, 3, 3, rng=1))
    x = np.random.default_rng(0).random((8, 8))
    fig = viz.pixel_arithmetic(model, x, layer=4, channel=2, pixel=(1, 0))
    y = model(x[None, None].astype(np.float32))[0, 2, 1, 0]
    total = [s for s in _texts(fig) if s.startswith("y_{2,1}")][0]
    assert f"= {viz._canvas.num(float(y))}" in total
    assert "layer 4" in viz.plot_feature_pixel(model, x, layer=4, channel=2, pixel=(1, 0)).title
    with pytest.raises(ConfigError, match="not a convolution"):
        viz.pixel_arithmetic(model, x, layer=2)


def test_feature_pixel_arithmetic_of_a_depthwise_conv_reads_its_group():
    # MobileNet's and ShuffleNet's depthwise 3x3: output channel 3 is filter 3 over input channel 3
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1, groups=4, rng=1),
                          nn.Conv2d(4, 4, 3, padding=1, groups=2, rng=2), nn.AdaptiveAvgPool2d(1))
    x = np.random.default_rng(0).random((6, 6))
    y = model(x[None, None].astype(np.float32))
    for layer, channel, group in ((3, 2, "group 3 of 4: input channels 3..3"), (4, 3, "group 2 of 2: input "
                                                                                        "channels 3..4")):
        fig = viz.pixel_arithmetic(model, x, layer=layer, channel=channel, pixel=(2, 1))
        sub = nn.Sequential(*list(model)[:layer])
        expected = sub(x[None, None].astype(np.float32))[0, channel, 2, 1]
        total = [t for t in _texts(fig) if t.startswith("y_{3,2}")][0]
        assert f"= {viz._canvas.num(float(expected))}" in total, (layer, total)
        assert any(group in t for t in _texts(fig)), layer
    assert y.shape == (1, 4, 1, 1)
    with pytest.raises(ConfigError, match="reads the whole of its input"):
        viz.pixel_arithmetic(model, x, layer=5)
