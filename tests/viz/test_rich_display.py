"""Every object that explain, summary and the pictures return shows itself in Jupyter: an HTML table
or an inline picture, and a short repr (no dumps)."""

import numpy as np
import pytest

import convscope
from convscope import explain as E
from convscope import nn, viz

pytest.importorskip("matplotlib", reason="the pictures need matplotlib (convscope[train])")

GRID = [[1, 3, -9, -22], [44, -10, -11, -1], [0, 10, 4, -3], [11, 9, 321, 99]]


def _model():
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(2 * 3 * 3, 3, rng=1))


def _results():
    """One result of every public function of convscope.explain, convscope.summary and convscope.viz."""
    model = _model()
    x = np.eye(6)
    conv = E.trace_conv([1, 1, -1, -1, -1, 1, -1, 1, 1, 1], [1, -1, 1])
    pool = E.trace_pool(GRID, 2)

    def predict(b):
        return np.stack([b.sum(axis=(1, 2, 3)) < 3, b.sum(axis=(1, 2, 3)) >= 3], axis=1) * 1.0

    images = np.random.default_rng(0).random((4, 1, 6, 6))
    labels = np.array([0, 1, 0, 1])
    from convscope.train import History

    out = {
        "trace_conv": conv, "ConvStep": conv.steps[0], "trace_pool": pool, "PoolStep": pool.steps[0],
        "trace_filter_bank": E.trace_filter_bank(np.eye(3), np.ones((2, 2, 2))),
        "centred_indexing": E.centred_indexing([1, 2, 3, 4], [1, 0, -1]),
        "route_max_pool": E.route_max_pool(pool),
        "explain_shape": E.explain_shape(11, 3, s=4), "AxisSize": E.explain_shape(11, 3).axes[0],
        "explain_model_shapes": E.explain_model_shapes(model, (1, 6, 6)),
        "explain_params": E.explain_params((5, 5), 1, 3, padding=1),
        "conv_weight_jacobian": E.conv_weight_jacobian(6, 4), "relu_jacobian": E.relu_jacobian([1., -1.]),
        "maxpool_jacobian": E.maxpool_jacobian([1., 3.]),
        "chain_9_32": E.chain_9_32([1., -2, 3, 1, 0, 2], [1., 0, 1, -1], [1., -1, 2], 1.0),
        "conv_as_matrix": E.conv_as_matrix(np.array([1., -1., 1.]), (5,)),
        "compose": E.compose(np.array([1., 1.]), np.array([1., -1.])),
        "filter_bank_demo": E.filter_bank_demo(),
        "receptive_field": E.receptive_field(model, (1, 6, 6), pixel=(0, 0), layer=3),
        "ReceptiveRow": E.receptive_field(model, (1, 6, 6)).rows[1],
        "shift_consistency": E.shift_consistency(predict, images, labels, 1),
        "per_shift_probability": E.per_shift_probability(predict, images[0], 1, range(-1, 2)),
        "summary": convscope.summary(model, (1, 6, 6)), "Module": model,
        "forward_layers": viz.forward_layers(model, x)[1][0],
        "explain_model_page": viz.explain_model_page(model, x),
        "plot_conv1d": viz.plot_conv1d(conv), "plot_pool": viz.plot_pool(pool),
        "plot_filters": viz.plot_filters(model), "plot_feature_maps": viz.plot_feature_maps(model, x),
        "plot_weight_gradients": viz.plot_weight_gradients(model, x=x[None, None].astype(np.float32),
                                                           target=np.array([1])),
        "plot_curves": viz.plot_curves(History([{"epoch": 1, "train_loss": 1.0}])),
        "plot_filter_bank_demo": viz.plot_filter_bank_demo(),
        "animate_pool": viz.animate_pool(GRID, 2),
        "plot_output_size": viz.plot_output_size(11, 3, s=4),
        "make_exercise": E.make_exercise("conv", seed=1),
        "check_answer": E.check_answer(E.make_exercise("pool", seed=1), "1 2; 3 4"),
        "exercise_sheet": E.exercise_sheet(count=2),
    }
    return out


def test_every_returned_object_has_a_rich_display_and_a_short_repr():
    names_in_api = set(E.__all__) | set(viz.__all__)
    results = _results()
    assert len(results) >= 30
    for name, obj in results.items():
        assert name in names_in_api or name in ("summary", "Module") or type(obj).__name__ == name, name
        html = getattr(obj, "_repr_html_", None)
        png = getattr(obj, "_repr_png_", None)
        assert html is not None or png is not None, f"{name}: no rich display"
        shown = html() if html is not None else png()
        assert shown, f"{name}: the rich display is empty"
        assert len(repr(obj)) < 2000, f"{name}: repr of {len(repr(obj))} characters"
        assert "\n" not in repr(obj) or isinstance(obj, nn.Module), name


def test_filter_bank_demo_repr_is_short_and_html_shows_the_text():
    demo = E.filter_bank_demo()
    assert len(repr(demo)) < 200
    assert "donut" in demo._repr_html_()


def test_trace_html_marks_padding_match_and_unread_with_the_shared_classes():
    html = E.trace_conv([1, 2, 3, 4], [1, 1, 1], padding=2)._repr_html_()
    assert html.count('class="cs-pad"') == 4 and 'class="cs-match"' in html
    html = E.trace_pool([5., 1., 7., 2., 9., 3., 4., 8.], 2, stride=3)._repr_html_()
    assert html.count('class="cs-unread"') == 2


def test_figure_display_png_by_default_svg_when_asked():
    fig = viz.plot_output_size(5, 3)
    assert fig._repr_png_()[:4] == b"\x89PNG" and fig._repr_svg_() is None
    try:
        viz.Figure.inline = "svg"
        assert fig._repr_png_() is None and "<svg" in fig._repr_svg_()
    finally:
        viz.Figure.inline = "png"
    assert fig.to_html().startswith("<img")


def test_module_html_is_its_layer_table():
    html = _model()._repr_html_()
    assert html.count("<tr>") == 6 and "Conv2d(1, 2" in html
    s = convscope.summary(_model(), (1, 6, 6))
    assert "print() for the table" in repr(s) and "<table" in s._repr_html_()
