"""Every kind of layer explained in a real browser: a click shows the library's arithmetic.

One value of each layer kind is clicked as a user would click it; the panel's numbers are
compared with convscope's own (forward values, gradients from the layers' backward, dL/dW).
"""

import json

import numpy as np
import pytest

from convscope import nn
from convscope.viz import explain_model_html, forward_layers

from .conftest import Page


def _model():
    m = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, rng=0),        # 1 conv
        nn.BatchNorm2d(3),                            # 2 batch_norm
        nn.ReLU(),                                    # 3 relu
        nn.MaxPool2d(2),                              # 4 max_pool
        nn.Conv2d(3, 4, 3, padding=1, rng=1),        # 5 conv
        nn.LeakyReLU(0.1),                            # 6 leaky_relu
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),   # 7 avg_pool
        nn.BlurPool2d(4, 3, stride=2),               # 8 blur_pool
        nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, rng=2), nn.Tanh())),  # 9, 10, 11 residual
        nn.Sigmoid(),                                 # 12 sigmoid
        nn.Flatten(),                                 # 13 flatten
        nn.Dropout(0.5),                              # 14 dropout
        nn.Linear(16, 5, rng=3),                      # 15 linear
        nn.Softmax(dim=1),                            # 16 softmax
    )
    bn = m[1]
    bn.running_mean[...] = np.array([0.1, -0.2, 0.05], dtype=np.float32)
    bn.running_var[...] = np.array([0.5, 2.0, 1.5], dtype=np.float32)
    bn.weight.data[...] = np.array([1.5, 0.7, -1.2], dtype=np.float32)
    bn.bias.data[...] = np.array([0.2, -0.1, 0.3], dtype=np.float32)
    return m


def _x():
    return np.random.default_rng(3).random((8, 8))


LABEL = 2


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    path = explain_model_html(_model(), _x(), tmp_path_factory.mktemp("layers") / "layers.html", label=LABEL,
                              class_names=["zero", "one", "two", "three", "four"])
    browser.get(path.resolve().as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    return Page(browser)


@pytest.fixture(scope="module")
def acts():
    return forward_layers(_model(), _x())[1]


# (layer index, kind, channel, position) of one value per kind of layer
CLICKS = [
    (1, "conv", 2, (3, 4)), (2, "batch_norm", 1, (5, 2)), (3, "relu", 0, (2, 6)), (4, "max_pool", 2, (1, 3)),
    (5, "conv", 3, (2, 0)), (6, "leaky_relu", 1, (3, 3)), (7, "avg_pool", 0, (0, 3)),
    (8, "blur_pool", 2, (1, 1)), (9, "conv", 1, (0, 1)), (10, "tanh", 3, (1, 0)), (11, "residual", 0, (1, 1)),
    (12, "sigmoid", 2, (0, 0)), (13, "flatten", None, (9,)), (14, "dropout", None, (4,)),
    (15, "linear", None, (3,)), (16, "softmax", None, (1,)),
]


@pytest.mark.parametrize("index, kind, channel, pos", CLICKS)
def test_click_one_value_of_every_layer_kind(page, acts, index, kind, channel, pos):
    act = acts[index - 1]
    assert act.module.layer_kind == kind
    page.click_value(index, channel, pos)
    assert page.attr("calc-kind", "data-kind") == kind
    expected = float(act.y[(0,) + ((channel,) if channel is not None else ()) + pos])
    assert page.number("calc-lib") == expected                       # convscope's value, embedded exactly
    tol = page.number("calc-tol")
    assert abs(page.number("calc-js") - expected) <= tol and tol <= 1e-5 * max(1.0, abs(expected)) + 1e-6
    assert page.attr("calc-verdict", "textContent") == "agree"
    assert not page.errors()


def test_max_pool_names_its_maximum_and_draws_the_window_on_the_previous_layer(page, acts):
    page.click_value(4, 2, (1, 3))
    window = acts[2].y[0, 2, 2:4, 6:8]                                # ReLU output under the 2x2 window
    r, c = np.unravel_index(int(np.argmax(window)), window.shape)
    assert page.attr("pool-argmax", "data-pos") == f"{2 + r},{6 + c}"
    assert page.attr("win-text", "data-window") == "2:4, 6:8"
    shown = page.driver.execute_script(
        "return Array.from(document.querySelectorAll(\"img.fmap[data-layer='3']\")).map(function (i) {"
        " var b = i.parentNode.querySelector('.win-box'); return b ? getComputedStyle(b).display : 'none'; })")
    assert shown == ["none", "none", "block"]                         # the window on channel 3 of layer 3 only


def test_conv_window_spans_every_input_channel_of_the_previous_layer(page):
    page.click_value(5, 3, (2, 0))
    assert page.attr("win-text", "data-window") == "1:4, 0:2"          # padding 1 clipped at the left edge
    shown = page.driver.execute_script(
        "return Array.from(document.querySelectorAll(\"img.fmap[data-layer='4']\")).map(function (i) {"
        " var b = i.parentNode.querySelector('.win-box'); return b ? getComputedStyle(b).display : 'none'; })")
    assert shown == ["block", "block", "block"]


def test_flatten_and_linear_explain_where_numbers_come_from(page, acts):
    page.click_value(13, None, (9,))
    assert page.attr("flatten-source", "data-source") == ",".join(
        str(int(v)) for v in np.unravel_index(9, acts[12].x.shape[1:]))
    page.click_value(15, None, (3,))
    lin = acts[14]
    products = lin.module.weight.data[3].astype(np.float64) * lin.x[0].astype(np.float64)
    first = page.driver.execute_script(
        "return document.querySelector('#linear-top tr:nth-child(2) td:last-child').textContent")
    assert abs(float(first) - products[np.argmax(np.abs(products))]) < 1e-5


def test_class_bar_shows_the_softmax_over_every_class(page, acts):
    page.click('.bar[data-class="3"]')
    p = acts[-1].y[0].astype(np.float64)
    assert page.attr("calc-kind", "data-kind") == "probability"
    assert abs(page.number("calc-js") - p[3]) < 1e-6 and page.attr("calc-verdict", "textContent") == "agree"
    rows = page.driver.execute_script("return document.querySelectorAll('#softmax-table tr').length")
    assert rows == 1 + p.size


def test_prediction_and_layer_index_at_the_top(page, acts):
    top = int(np.argmax(acts[-1].y[0]))
    assert page.attr("top-classes", "data-class") == str(top)
    y_top = page.driver.execute_script("return document.getElementById('top-classes').getBoundingClientRect().top"
                                       " + window.scrollY")
    assert y_top < 200
    links = page.driver.execute_script("return Array.from(document.querySelectorAll('#layer-index a'))"
                                       ".map(function (a) { return a.getAttribute('href'); })")
    assert [f"#layer-{i}" for i in range(1, 17)] == [h for h in links if h.startswith("#layer-")]
    page.click("#collapse-all")
    assert page.driver.execute_script(
        "return Array.from(document.querySelectorAll('section.card.layer > details')).every(d => !d.open)")
    page.click("#expand-all")
    assert page.driver.execute_script(
        "return Array.from(document.querySelectorAll('section.card.layer > details')).every(d => d.open)")


def _library_grads(target):
    """dL/d(output of layer 4) and dL/dW of layer 5 from convscope's own backward, L = -log p_target."""
    m = _model()
    xb, acts = forward_layers(m, _x())
    tail = nn.Sequential(*list(m)[4:])
    tail.eval()
    y = tail(acts[3].y)
    g = np.zeros_like(y)
    g[0, target] = -1.0 / y[0, target]
    for p in tail.parameters():
        p.zero_grad()
    d_pool = tail.backward(g)
    return d_pool, np.array(m[4].weight.grad)


def test_backward_gradients_routing_and_relu_mask(page, acts):
    page.driver.execute_script("window.scrollTo(0, 0)")
    page.click("#show-grads")
    assert page.attr("grad-class", "value") == str(LABEL)             # the true label first
    canvases = page.driver.execute_script("return document.querySelectorAll('.gmaps canvas').length")
    assert canvases > 40
    d_pool, _ = _library_grads(LABEL)
    page.click_value(4, 2, (1, 3))
    assert abs(page.number("grad-value") - float(d_pool[0, 2, 1, 3])) <= 1e-6 * max(1.0, abs(d_pool).max())
    window = acts[2].y[0, 2, 2:4, 6:8]
    r, c = np.unravel_index(int(np.argmax(window)), window.shape)
    assert page.attr("route-text", "data-pos") == f"{2 + r},{6 + c}"  # one-hot routing to the maximum
    page.click_value(3, 0, (2, 6))
    z = float(acts[2].x[0, 0, 2, 6])
    assert page.attr("relu-mask") == ("1" if z > 0 else "0")
    assert not page.errors()


def test_filter_gradient_in_the_9_31_form_agrees_with_the_library(page):
    _, dw = _library_grads(LABEL)
    if not page.driver.execute_script("return document.body.classList.contains('grads')"):
        page.click("#show-grads")
    for f in range(4):
        page.click(f'img.ftile[data-layer="5"][data-filter="{f}"][data-channel="0"]')
        assert page.attr("dw-verdict", "textContent") == "agree"
        lib = np.array(json.loads(page.attr("dw-lib")))
        page_dw = np.array(json.loads(page.attr("dw-js")))
        np.testing.assert_allclose(lib.reshape(dw[f].shape), dw[f], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(page_dw, lib, rtol=1e-4, atol=1e-6)


def test_changing_the_class_redraws_the_gradients(page):
    if not page.driver.execute_script("return document.body.classList.contains('grads')"):
        page.click("#show-grads")
    page.click_value(4, 2, (1, 3))
    before = page.number("grad-value")
    page.driver.execute_script("var s = document.getElementById('grad-class'); s.value = '0';"
                               "s.dispatchEvent(new Event('change'))")
    d_pool, _ = _library_grads(0)
    after = page.number("grad-value")
    assert after != before and abs(after - float(d_pool[0, 2, 1, 3])) <= 1e-6 * max(1.0, abs(d_pool).max())


def test_sliding_window_steps_plays_and_pauses(page):
    page.click_value(1, 0, (0, 6))
    page.click("#anim-step")
    assert page.attr("anim-pos", "data-pos") == "0,7"
    page.click("#anim-step")
    assert page.attr("anim-pos", "data-pos") == "1,0"                 # row-major, as the notes shift the window
    page.click("#anim-back")
    assert page.attr("anim-pos", "data-pos") == "0,7"
    page.click("#anim-play")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(page.driver, 5).until(lambda d: d.find_element("id", "anim-pos").get_attribute("data-pos") != "0,7")
    page.click("#anim-play")                                         # pause
    stopped = page.attr("anim-pos", "data-pos")
    page.driver.execute_script("return new Promise(function (r) { setTimeout(r, 1600); })")
    assert page.attr("anim-pos", "data-pos") == stopped
    assert page.attr("calc-verdict", "textContent") == "agree"        # each step redoes the arithmetic
