"""The HTML explainer as a file: self-contained, its embedded numbers right, its caps stated.

The browser half (clicks, the page's own arithmetic, the playground) is tests/viz/test_browser.py.
"""

import base64
import io
import json
import re

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError, ConfigError
from convscope.explain import receptive_field, trace_conv
from convscope.functional import softmax
from convscope.viz import explain_model_html, forward_layers
from convscope.viz._explainer_data import unb64


def _model(dtype=np.float32):
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, padding_mode="reflect", rng=1, dtype=dtype),
        nn.Conv2d(4, 2, 2, stride=2, rng=2, dtype=dtype),
        nn.Flatten(), nn.Linear(2 * 2 * 2, 3, rng=3, dtype=dtype),
    )


def _x(shape=(8, 8), seed=0):
    return np.random.default_rng(seed).random(shape)


def _data(text):
    blob = re.search(r'<script type="application/json" id="convscope-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))


def _decode(entry):
    return unb64(entry).astype(np.float64)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = explain_model_html(_model(), _x(), tmp_path_factory.mktemp("html") / "report.html",
                              class_names=["cat", "dog", "<b>bird</b>"])
    return path, path.read_text(encoding="utf-8")


def test_self_contained_every_image_inline_and_decodable(page):
    Image = pytest.importorskip("PIL.Image", reason="Pillow decodes the inline PNGs")
    _, text = page
    assert not re.search(r"(src|href)\s*=\s*\"(https?:)?//", text)
    assert "<link" not in text and not re.search(r"<script[^>]+src=", text)
    assert "@import" not in text and "url(" not in text
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:
        with Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) as img:
            img.load()
            assert img.size[0] > 0 and img.size[1] > 0
    # every channel of every spatial layer: 4 + 4 + 4 + 4 + 2 maps
    assert len(re.findall(r'<img class="fmap"', text)) == 18
    assert len(re.findall(r'<section class="card layer', text)) == 7


def test_embedded_numbers_reproduce_every_convolution_output(page):
    _, text = page
    data = _data(text)
    model = _model()
    _, acts = forward_layers(model, _x())
    eps = np.finfo(np.float32).eps
    convs = [lay for lay in data["layers"] if lay["conv"] is not None]
    assert [lay["index"] for lay in convs] == [1, 4, 5]
    for lay in convs:
        cv, act = lay["conv"], acts[lay["index"] - 1]
        xp, w, y = _decode(cv["padded"]), _decode(cv["weights"]), _decode(lay["values"]["data"])
        np.testing.assert_array_equal(y, act.y[0, lay["values"]["channels"]])   # the library's values, bit-exact
        gsize, per_group = cv["c_in"] // cv["groups"], cv["c_out"] // cv["groups"]
        (kh, kw), (sh, sw), (dh, dw) = cv["k"], cv["s"], cv["d"]
        for ci, c in enumerate(cv["channels"]):
            g = c // per_group
            for i, j in np.ndindex(*y.shape[1:]):
                v = xp[g * gsize:(g + 1) * gsize, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                       j * sw:j * sw + dw * (kw - 1) + 1:dw]
                terms = w[ci] * v
                value = terms.sum() + cv["bias"][ci]
                bound = (terms.size + 1) * eps * (np.abs(terms).sum() + abs(cv["bias"][ci]))
                assert abs(value - y[ci, i, j]) <= bound, (lay["index"], c, i, j)
    # and the page's window arithmetic is explain.trace_conv's (layer 4: reflect padding, dilation, groups)
    act = acts[3]
    m = act.module
    t = trace_conv(act.x[0, 2:4].astype(np.float64), m.weight.data[3].astype(np.float64), b=float(m.bias.data[3]),
                   padding=2, dilation=2, padding_mode="reflect", channels=True)
    assert abs(t.step((1, 2)).y - act.y[0, 3, 1, 2]) < 1e-5


def test_receptive_fields_match_explain(page):
    _, text = page
    data = _data(text)
    model = _model()
    rf = receptive_field(model, (1, 1, 8, 8))
    for lay in data["layers"]:
        row = rf.rows[lay["index"]]
        assert lay["rf"] == (None if row.rf is None or row.jump is None else list(row.rf))
        assert (lay["field"] is None) == (row.jump is None)
        if lay["field"] is None:
            continue
        for pixel in np.ndindex(*lay["out_shape"][2:]):
            exact = receptive_field(model, (1, 1, 8, 8), pixel=pixel, layer=lay["index"]).region
            box = [(lay["field"][a][0][p], lay["field"][a][1][p]) for a, p in enumerate(pixel)]
            assert box == [(sl.start, sl.stop - 1) for sl in exact], (lay["index"], pixel)


def test_probabilities_and_escaping(page):
    _, text = page
    model = _model()
    p = softmax(model.eval()(_x().astype(np.float32)[None, None]).astype(np.float64), axis=1)[0]
    top = int(re.search(r'id="prediction" data-class="(\d+)"', text).group(1))
    assert top == int(np.argmax(p))
    shown = [float(v) for v in re.findall(r'class="bar[^"]*" data-class="\d+" data-p="([^"]+)"', text)]
    np.testing.assert_allclose(shown, p, rtol=1e-6)
    assert "&lt;b&gt;bird&lt;/b&gt;" in text and "<b>bird</b>" not in text
    assert "softmax is applied here" in text


def test_softmax_model_output_used_as_is(tmp_path):
    model = nn.Sequential(nn.Conv1d(1, 2, 3, rng=0), nn.Flatten(), nn.Linear(12, 4, rng=1), nn.Softmax(dim=1))
    text = explain_model_html(model, _x((1, 8)), tmp_path / "p.html").read_text()
    assert "the model's own Softmax output" in text
    data = _data(text)
    assert data["spatial_ndim"] == 1 and data["layers"][0]["conv"]["k"] == [3]


def test_caps_are_applied_and_stated(tmp_path):
    text = explain_model_html(_model(), _x(), tmp_path / "c.html", max_channels=1, max_layers=3,
                              max_numbers=100, max_layer_numbers=40).read_text()
    assert len(re.findall(r'<img class="fmap"', text)) == 3
    assert len(re.findall(r'<section class="card layer', text)) == 3
    assert "Only the first 3 of 7 layers are shown" in text
    assert "only the first 1 channels are drawn" in text
    assert "Showing the first 1 of 4 channels: <code>convscope explain model --max-channels 4</code>" in text
    assert "backward pass is not embedded" in text                  # one class needs more than 100 numbers
    data = _data(text)
    conv = data["layers"][0]
    # 40 numbers per layer: the 8x8 map's values (1 channel), its padded input patch and the filter do not
    # fit, so the layer embeds a centred block: values 2x3, patch 4x5 (3x3 windows, stride 1), one filter 3x3
    assert conv["values"]["tile"] == [2, 3] and conv["values"]["start"] == [3, 2]
    assert conv["conv"]["padded_shape"] == [1, 4, 5] and conv["conv"]["padded_start"] == [3, 2]
    assert "dashed box" in text and "max_layer_numbers" in text
    assert "Class probabilities" in text                          # still there after a layer cap


def test_float64_model_embeds_float64(tmp_path):
    text = explain_model_html(_model(np.float64), _x(), tmp_path / "d.html").read_text()
    data = _data(text)
    assert data["dtype"] == "float64" and data["layers"][0]["conv"]["padded"]["dtype"] == "f8"
    assert data["eps"] == np.finfo(np.float64).eps


def test_rejects_with_reasons(tmp_path):
    with pytest.raises(ConfigError, match="class_names must name the model's 3 outputs; got 2"):
        explain_model_html(_model(), _x(), tmp_path / "e.html", class_names=["a", "b"])
    with pytest.raises(ConfigError, match="1-D and 2-D inputs"):
        explain_model_html(nn.Conv3d(1, 1, 2, rng=0), np.zeros((3, 3, 3)), tmp_path / "e.html")
    with pytest.raises(ConfigError, match="max_channels must be a positive int"):
        explain_model_html(_model(), _x(), tmp_path / "e.html", max_channels=0)
    with pytest.raises(ArgumentTypeError, match="path must be a file name"):
        explain_model_html(_model(), _x(), None)
    assert not (tmp_path / "e.html").exists()



def test_every_card_says_what_feeds_it_and_a_residual_names_both_branches(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(),
                          nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, rng=1), nn.ReLU())),
                          nn.Flatten(), nn.Linear(2 * 36, 3, rng=2))
    text = explain_model_html(model, np.eye(6), tmp_path / "m.html").read_text()
    feeds = re.findall(r'<p class="meta feeds">(.*?)</p>', text)
    assert len(feeds) == 7                                   # every layer, in walk order
    assert '<a href="#input">the input</a>' in feeds[0] and '<a href="#layer-1">layer 1</a>' in feeds[1]
    # layer 5 = x + block(x): x is layer 2's output (the block's input), the block ends at layer 4
    assert feeds[4].startswith('merge (add): <a href="#layer-2">layer 2</a> (the identity branch) + '
                               '<a href="#layer-4">layer 4</a>')


def _small_graph():
    """conv -> relu, then a residual (conv + skip, Add) and a concat of two branches."""
    g = nn.GraphBuilder()
    stem = g.add("stem", nn.Conv2d(1, 2, 3, padding=1, rng=0), g.input)
    act = g.add("act", nn.ReLU(), stem)
    body = g.add("body", nn.Conv2d(2, 2, 3, padding=1, rng=1), act)
    res = g.add("res", nn.Add(), body, act)
    left = g.add("left", nn.Conv2d(2, 1, 1, rng=2), res)
    right = g.add("right", nn.MaxPool2d(3, stride=1, padding=1), res)
    cat = g.add("cat", nn.Concat(), left, right)
    flat = g.add("flat", nn.Flatten(), cat)
    return g.build(outputs=g.add("fc", nn.Linear(3 * 36, 3, rng=3), flat))


def test_a_graph_page_lists_every_node_with_its_branches_and_the_library_output(tmp_path):
    from convscope.viz import forward_layers

    model = _small_graph()
    x = np.random.default_rng(0).random((6, 6))
    xb, acts = forward_layers(model, x)
    np.testing.assert_array_equal(acts[-1].y, model(xb))            # node by node = the graph's forward
    names = [a.name for a in acts]
    assert names == ["stem", "act", "body", "res", "left", "right", "cat", "flat", "fc"]
    text = explain_model_html(model, x, tmp_path / "g.html").read_text()
    assert text.count('class="card layer') == len(names)
    feeds = re.findall(r'<p class="meta feeds">(.*?)</p>', text)
    assert feeds[3] == ('merge (add) of: <a href="#layer-3">layer 3</a> + <a href="#layer-2">layer 2</a>')
    assert feeds[6] == ('merge (concat) of: <a href="#layer-5">layer 5</a> + <a href="#layer-6">layer 6</a>')
    assert feeds[4] == feeds[5] == 'input: <a href="#layer-4">layer 4</a>'      # fan-out of the residual
    data = json.loads(re.search(r'<script type="application/json" id="convscope-data">(.*?)</script>',
                                text, re.S).group(1))
    assert data["backward"] is not None and data["layers"][4]["conv"] is not None


def test_the_graph_backward_pass_of_the_page_is_the_graphs_own(tmp_path):
    from convscope.viz import forward_layers
    from convscope.viz._explainer_data import backward_passes

    model = _small_graph()
    x = np.random.default_rng(1).random((1, 1, 6, 6))
    xb, acts = forward_layers(model, x)
    grad = backward_passes(model, xb, acts, [2])[0]
    model.eval()
    y = model(xb)
    p = softmax(y, axis=1)
    dy = p.copy()
    dy[0, 2] -= 1.0
    np.testing.assert_allclose(grad.input_grad, model.backward(dy), rtol=1e-5, atol=1e-7)


def test_graph_branch_fields_follow_each_nodes_own_input():
    from convscope.viz import forward_layers
    from convscope.viz.fields import receptive_boxes

    model = _small_graph()
    xb, acts = forward_layers(model, np.zeros((6, 6)))
    boxes = receptive_boxes(acts, (6, 6))
    # left (1x1 conv) sees what res sees: stem 3x3 + body 3x3 -> 5 wide; right (3x3 max) -> 7 wide
    first, last = boxes[5][0]
    assert (first[3], last[3]) == (1, 5)
    first, last = boxes[6][0]
    assert (first[3], last[3]) == (0, 5) and (boxes[6][0][0][0], boxes[6][0][1][0]) == (0, 3)
    np.testing.assert_array_equal(boxes[7][0][0], boxes[6][0][0])       # concat: the union of both


def test_the_pictures_draw_a_graph_model(tmp_path):
    from convscope.viz import plot_feature_maps, plot_filters, plot_weight_gradients

    model = _small_graph()
    x = np.random.default_rng(0).random((1, 1, 6, 6)).astype(np.float32)
    assert plot_filters(model, layer="left").title
    assert plot_feature_maps(model, x[0, 0], tmp_path / "f.png").stat().st_size > 0
    assert plot_weight_gradients(model, tmp_path / "g.png", x, np.array([1])).stat().st_size > 0


def test_a_cut_filter_bank_says_which_command_draws_it_whole(tmp_path):
    """The page's layer numbers are convscope summary's, which `explain filters --layer` takes."""
    from convscope import summary

    model = nn.Sequential(nn.Normalize([0.5], [0.25]), nn.Conv2d(1, 20, 3, rng=0), nn.ReLU(),
                          nn.Conv2d(20, 9, 3, rng=1), nn.Flatten(), nn.Linear(9 * 2 * 2, 3, rng=2))
    text = explain_model_html(model, _x((1, 6, 6)), tmp_path / "f.html").read_text()
    assert ("(showing first 16 of 20 filters; <code>convscope explain filters MODEL --layer 2 "
            "--max-filters 20 --max-channels 1</code> draws them all)") in text
    assert ("(showing first 8 of 20 input channels; <code>convscope explain filters MODEL --layer 4 "
            "--max-filters 9 --max-channels 20</code> draws them all)") in text
    rows = str(summary(model, (1, 6, 6))).splitlines()
    assert any(line.split()[:1] == ["2"] and "Conv2d(1, 20" in line for line in rows)
    assert any(line.split()[:1] == ["4"] and "Conv2d(20, 9" in line for line in rows)
