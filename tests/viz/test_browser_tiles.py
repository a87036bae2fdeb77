"""The page of a graph model whose every layer is tiled (a small max_layer_numbers), in a real browser:
a click inside the tile shows arithmetic that agrees with the library on every layer of both branches,
a click outside says where the tile is, dL/dW is re-derived on a tiled convolution, and a link
``#value=...`` opens the page on one value."""

import numpy as np
import pytest

from convscope.viz import explain_model_html, forward_layers

from .conftest import Page
from .test_explainer_slices import SMALL_CAP, _data, _graph, _x


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = explain_model_html(_graph(), _x(), tmp_path_factory.mktemp("tiles") / "tiles.html",
                              max_layer_numbers=SMALL_CAP)
    return path, _data(path.read_text())


@pytest.fixture(scope="module")
def page(browser, built):
    browser.get(built[0].resolve().as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    return Page(browser)


def _clicks(data):
    """One value inside the tile of every layer: the tile's last position, first embedded channel."""
    out = []
    for lay in data["layers"]:
        v = lay["values"]
        if "tile" not in v:
            c = lay["linear"]["rows"][0] if lay["kind"] == "linear" else 0
            out.append((lay["index"], lay["kind"], None, (c,)))
            continue
        c = lay["conv"]["channels"][-1] if lay["kind"] == "conv" else v["channels"][-1]
        out.append((lay["index"], lay["kind"], c, tuple(s + t - 1 for s, t in zip(v["start"], v["tile"]))))
    return out


def test_every_tiled_layer_agrees_with_the_library(page, built):
    acts = {a.index: a for a in forward_layers(_graph(), _x())[1]}
    clicks = _clicks(built[1])
    assert {k for _, k, _, _ in clicks} >= {"conv", "batch_norm", "relu", "max_pool", "add", "avg_pool", "linear"}
    for index, kind, channel, pos in clicks:
        page.click_value(index, channel, pos)
        assert page.attr("calc-kind", "data-kind") == kind
        expected = float(acts[index].y[(0,) + ((channel,) if channel is not None else ()) + pos])
        assert page.number("calc-lib") == expected, (index, kind)
        assert page.attr("calc-verdict", "textContent") == "agree", (index, kind)
    assert not page.errors()


def test_a_click_outside_the_tile_names_the_tile(page, built):
    conv1 = built[1]["layers"][0]
    assert conv1["values"]["start"][0] > 0
    page.click_value(1, 0, (0, 0))
    note = page.attr("tile-note", "textContent")
    r0, c0 = conv1["values"]["start"]
    h, w = conv1["values"]["tile"]
    assert f"rows {r0}..{r0 + h - 1}, columns {c0}..{c0 + w - 1}" in note
    boxes = page.driver.execute_script(
        "return Array.from(document.querySelectorAll(\"img.fmap[data-layer='1']\")).map(function (i) {"
        " var b = i.parentNode.querySelector('.tile-box'); return b ? getComputedStyle(b).display : 'none'; })")
    assert boxes and set(boxes) == {"block"}


def test_filter_gradient_on_a_tiled_conv_agrees_with_the_library(page, built):
    import json

    lay = next(lay for lay in built[1]["layers"] if lay["name"].strip(" ()") == "b.down")
    assert lay["conv"]["dw"] is not None
    if not page.driver.execute_script("return document.body.classList.contains('grads')"):
        page.click("#show-grads")
    page.driver.execute_script(f"window.convscopeExplainer.showFilterGrad({lay['index']}, 0)")
    assert page.attr("dw-verdict", "textContent") == "agree"
    lib = np.array(json.loads(page.attr("dw-lib")))
    page_dw = np.array(json.loads(page.attr("dw-js")))
    np.testing.assert_allclose(page_dw, lib, rtol=1e-4, atol=1e-6)


def test_a_link_opens_the_page_on_one_value(browser, built):
    path, data = built
    index, kind, channel, pos = _clicks(data)[10]           # the merge of the two branches
    browser.get(path.resolve().as_uri() + f"#value={index},{channel},{pos[0]},{pos[1]}&grads=1")
    browser.refresh()
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    page = Page(browser)
    assert page.attr("calc-kind", "data-kind") == kind == "add"
    assert page.attr("calc-verdict", "textContent") == "agree"
    assert browser.execute_script("return document.body.classList.contains('grads')")
