"""The pointwise activations, Normalize and adaptive pooling explained in a real browser: a click
on a value shows its arithmetic, redone on the page, next to convscope's value ("agree"), the
adaptive window boxed on the previous layer's map, and in the backward view each elementwise
layer's local derivative and dL/dz next to what convscope's backward computed."""

import math

import numpy as np
import pytest

from convscope import nn
from convscope.viz import explain_model_html, forward_layers

from .conftest import Page
from .test_explainer_pointwise import _se_graph


def _model():
    return nn.Sequential(
        nn.Normalize([0.4, 0.6], [0.2, 0.3]),            # 1
        nn.Conv2d(2, 3, 3, padding=1, rng=0),            # 2
        nn.Hardswish(),                                  # 3
        nn.Conv2d(3, 3, 3, padding=1, rng=1),            # 4
        nn.ReLU6(), nn.Hardsigmoid(), nn.SiLU(),         # 5, 6, 7
        nn.GELU(), nn.GELU("tanh"), nn.Identity(),       # 8, 9, 10
        nn.Dropout(0.3),                                 # 11
        nn.AdaptiveMaxPool2d(5),                         # 12: 9 -> 5, overlapping windows
        nn.AdaptiveAvgPool2d((2, 3)),                    # 13
        nn.AdaptiveAvgPool2d(1),                         # 14: global
        nn.Flatten(), nn.Linear(3, 4, rng=2))


def _x():
    return np.random.default_rng(3).normal(0.5, 2.0, (2, 9, 9)).astype(np.float32)


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    path = explain_model_html(_model(), _x(), tmp_path_factory.mktemp("pointwise") / "pointwise.html", label=1)
    browser.get(path.resolve().as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    return Page(browser)


@pytest.fixture(scope="module")
def acts():
    return forward_layers(_model(), _x())[1]


CLICKS = [(1, "normalize", 1, (4, 7)), (3, "hardswish", 2, (3, 3)), (3, "hardswish", 0, (8, 0)),
          (5, "relu6", 1, (2, 5)), (6, "hardsigmoid", 0, (4, 4)), (7, "silu", 2, (6, 1)), (8, "gelu", 1, (0, 8)),
          (9, "gelu", 0, (5, 5)), (10, "identity", 2, (7, 2)), (11, "dropout", 1, (1, 1)),
          (12, "adaptive_max_pool", 2, (2, 3)), (13, "adaptive_avg_pool", 1, (1, 2)),
          (14, "adaptive_avg_pool", 0, (0, 0))]


def _check(page, act, channel, pos):
    expected = float(act.y[(0, channel) + pos])
    assert page.number("calc-lib") == expected
    tol = page.number("calc-tol")
    assert abs(page.number("calc-js") - expected) <= tol <= 1e-5 * max(1.0, abs(expected)) + 1e-6
    assert page.attr("calc-verdict", "textContent") == "agree"


@pytest.mark.parametrize("index, kind, channel, pos", CLICKS)
def test_click_shows_the_arithmetic_and_agrees(page, acts, index, kind, channel, pos):
    act = acts[index - 1]
    assert act.module.layer_kind == kind
    page.click_value(index, channel, pos)
    assert page.attr("calc-kind", "data-kind") == kind
    assert "does not know the arithmetic" not in page.attr("detail", "textContent")
    _check(page, act, channel, pos)
    assert not page.errors()


@pytest.mark.parametrize("index, n, out, pos", [(12, (9, 9), (5, 5), (2, 3)), (13, (5, 5), (2, 3), (1, 2)),
                                               (14, (2, 3), (1, 1), (0, 0))])
def test_adaptive_window_is_pytorchs_and_boxed_on_the_input_map(page, index, n, out, pos):
    lo = [i * k // o for i, k, o in zip(pos, n, out)]
    hi = [math.ceil((i + 1) * k / o) for i, k, o in zip(pos, n, out)]
    page.click_value(index, 1, pos)
    assert page.attr("adaptive-window", "data-start") == f"{lo[0]},{lo[1]}"
    assert page.attr("adaptive-window", "data-size") == f"{hi[0] - lo[0]},{hi[1] - lo[1]}"
    assert page.attr("win-text", "data-window") == f"{lo[0]}:{hi[0]}, {lo[1]}:{hi[1]}"
    shown = page.driver.execute_script(
        f"return Array.from(document.querySelectorAll(\"img.fmap[data-layer='{index - 1}']\")).map(function (i) {{"
        " var b = i.parentNode.querySelector('.win-box'); return b ? getComputedStyle(b).display : 'none'; })")
    assert shown == ["none", "block", "none"]                 # on the clicked channel only


def test_adaptive_max_names_the_first_maximum(page, acts):
    page.click_value(12, 2, (2, 3))
    window = acts[11].x[0, 2, 3:6, 5:8]                       # rows floor(18/5)..ceil(27/5), cols 27/5..36/5
    r, c = np.unravel_index(int(np.argmax(window)), window.shape)
    assert page.attr("pool-argmax", "data-pos") == f"{3 + r},{5 + c}"


@pytest.mark.parametrize("index, channel, pos", [(1, 0, (2, 2)), (3, 2, (3, 3)), (3, 0, (8, 0)), (5, 1, (2, 5)),
                                                 (6, 0, (4, 4)), (7, 2, (6, 1)), (8, 1, (0, 8)), (9, 0, (5, 5)),
                                                 (10, 2, (7, 2)), (11, 1, (1, 1))])
def test_backward_local_derivative_agrees_with_the_library(page, index, channel, pos):
    if not page.driver.execute_script("return document.body.classList.contains('grads')"):
        page.driver.execute_script("window.scrollTo(0, 0)")
        page.click("#show-grads")
    page.click_value(index, channel, pos)
    g = page.number("grad-value")
    assert page.attr("local-verdict", "textContent") == "agree"
    assert page.number("local-grad") != 0 or g == 0
    assert not page.errors()


def test_backward_of_adaptive_pooling_spreads_or_routes(page, acts):
    if not page.driver.execute_script("return document.body.classList.contains('grads')"):
        page.driver.execute_script("window.scrollTo(0, 0)")
        page.click("#show-grads")
    page.click_value(12, 2, (2, 3))
    window = acts[11].x[0, 2, 3:6, 5:8]
    r, c = np.unravel_index(int(np.argmax(window)), window.shape)
    assert page.attr("route-text", "data-pos") == f"{3 + r},{5 + c}"
    assert page.number("route-text") == page.number("grad-value")
    page.click_value(13, 1, (1, 2))                           # rows 2..4, columns 3..4 of the 5 x 5 input: 6 entries
    assert page.attr("spread-text", "data-count") == "6"
    assert page.number("spread-text") == page.number("grad-value") / 6
    assert not page.errors()


def test_after_a_global_pooling_and_an_se_gate_the_page_says_why(browser, tmp_path):
    # last: it loads another page in the module's browser
    path = explain_model_html(_se_graph(), np.random.default_rng(0).random((2, 6, 6)), tmp_path / "se.html")
    browser.get(path.resolve().as_uri())
    page = Page(browser)
    page.click_value(4, 0, (2, 3))                            # the Mul of the gate
    text = browser.execute_script("return document.getElementById('rf-text').textContent")
    assert "squeeze-and-excitation" in text and "global pooling of layer 2" in text
    assert "Flatten or Linear" not in text
    _check(page, forward_layers(_se_graph(), np.random.default_rng(0).random((2, 6, 6)))[1][3], 0, (2, 3))
    page.click_value(2, 1, (0, 0))
    assert "global pooling" in browser.execute_script("return document.getElementById('rf-text').textContent")
    assert page.attr("calc-verdict", "textContent") == "agree"
    assert not page.errors()
