"""The page of a graph with a SqueezeNet fire module (Concat), a squeeze-and-excitation gate (Mul,
broadcast from (C, 1, 1)) and a channel shuffle, in a real browser: a click on every layer, tiled
or whole, shows arithmetic that agrees with the library, and the merge panels name the input,
channel and position each value comes from, with links to those layers."""

import numpy as np
import pytest

from convscope.viz import explain_model_html, forward_layers

from .conftest import Page
from .test_browser_tiles import _clicks
from .test_explainer_merges import CAP, fire_se_graph, merge_x, shuffle_source
from .test_explainer_slices import _data


@pytest.fixture(scope="module", params=[None, CAP], ids=["whole-maps", "tiled"])
def built(request, tmp_path_factory):
    kwargs = {} if request.param is None else {"max_layer_numbers": request.param}
    path = explain_model_html(fire_se_graph(), merge_x(), tmp_path_factory.mktemp("merges") / "merges.html",
                              **kwargs)
    return path, _data(path.read_text())


@pytest.fixture(scope="module")
def page(browser, built):
    browser.get(built[0].resolve().as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    return Page(browser)


def _boxed(page):
    """The maps (layer:channel) that show a window box: where the clicked value was read."""
    return sorted(page.driver.execute_script(
        "return Array.from(document.querySelectorAll('.win-box')).filter(function (b) {"
        " return b.style.display === 'block'; }).map(function (b) {"
        " var i = b.parentNode.querySelector('img'); return i.dataset.layer + ':' + i.dataset.channel; })"))


def _named(data):
    return {lay["name"].strip(" ()"): lay for lay in data["layers"]}


def test_every_layer_agrees_with_the_library(page, built):
    acts = {a.index: a for a in forward_layers(fire_se_graph(), merge_x())[1]}
    clicks = _clicks(built[1])
    assert {k for _, k, _, _ in clicks} >= {"conv", "relu", "concat", "avg_pool", "sigmoid", "mul",
                                            "channel_shuffle", "flatten", "linear"}
    for index, kind, channel, pos in clicks:
        page.click_value(index, channel, pos)
        assert page.attr("calc-kind", "data-kind") == kind
        expected = float(acts[index].y[(0,) + ((channel,) if channel is not None else ()) + pos])
        assert page.number("calc-lib") == expected, (index, kind)
        assert page.attr("calc-verdict", "textContent") == "agree", (index, kind)
    assert not page.errors()


def _last(lay):
    v = lay["values"]
    return tuple(s + t - 1 for s, t in zip(v["start"], v["tile"]))


def test_a_concat_value_names_its_input_and_channel(page, built):
    names = _named(built[1])
    cat = names["fire.cat"]
    pos = _last(cat)
    for c, src, channel in [(1, "fire.expand1x1_relu", 1), (4, "fire.expand3x3_relu", 1)]:
        page.click_value(cat["index"], c, pos)
        assert page.attr("calc-kind", "data-kind") == "concat"
        ref = names[src]["index"]
        assert int(page.attr("merge-source", "data-ref")) == ref
        assert int(page.attr("merge-source", "data-channel")) == channel
        assert page.number("calc-js") == page.number("calc-lib")           # a copy: the same bits
        links = page.driver.execute_script(
            "return Array.from(document.querySelectorAll('#merge-source a')).map(function (a) {"
            " return a.getAttribute('href'); })")
        assert links == [f"#layer-{ref}"]
        assert f"its channel {channel + 1}" in page.attr("merge-source", "textContent")
        assert _boxed(page) == [f"{ref}:{channel}"]


def test_a_gated_value_is_x_times_the_broadcast_factor(page, built):
    names = _named(built[1])
    mul, gate, cat = names["se.scale"], names["se.gate"], names["fire.cat"]
    c, pos = 5, _last(mul)
    page.click_value(mul["index"], c, pos)
    assert page.attr("calc-kind", "data-kind") == "mul"
    acts = {a.index: a for a in forward_layers(fire_se_graph(), merge_x())[1]}
    s = float(acts[gate["index"]].y[0, c, 0, 0])
    x = float(acts[cat["index"]].y[(0, c, *pos)])
    text = page.driver.execute_script("return document.getElementById('detail').textContent")
    assert f"s[{c}, 0, 0]" in text and f"x[{c}, {pos[0]}, {pos[1]}]" in text
    assert "squeeze-and-excitation" in text
    assert page.number("calc-js") == s * x
    hrefs = page.driver.execute_script(
        "return Array.from(document.querySelectorAll('#detail a')).map(function (a) {"
        " return a.getAttribute('href'); })")
    assert f"#layer-{gate['index']}" in hrefs and f"#layer-{cat['index']}" in hrefs
    assert _boxed(page) == sorted([f"{gate['index']}:{c}", f"{cat['index']}:{c}"])
    assert page.attr("calc-verdict", "textContent") == "agree"


def test_a_shuffled_channel_names_its_source(page, built):
    names = _named(built[1])
    shuf = names["shuffle"]
    for c in range(6):
        page.click_value(shuf["index"], c, _last(shuf))
        assert int(page.attr("merge-source", "data-channel")) == shuffle_source(c, 6, 2)
        assert int(page.attr("merge-source", "data-ref")) == names["se.scale"]["index"]
        assert page.attr("calc-verdict", "textContent") == "agree"


def test_a_link_opens_the_page_on_a_merge_value(browser, built):
    path, data = built
    mul = _named(data)["se.scale"]
    r, c = _last(mul)
    browser.get(path.resolve().as_uri() + f"#value={mul['index']},2,{r},{c}")
    browser.refresh()
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    page = Page(browser)
    assert page.attr("calc-kind", "data-kind") == "mul"
    assert page.attr("calc-verdict", "textContent") == "agree"
    assert np.isfinite(page.number("calc-js"))
