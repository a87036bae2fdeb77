"""The backward view of a graph's merges in a real browser: a click on an Add, a Concat and a Mul
value (the backward pass shown) lists what each input gets, redone by the merge's rule on the
page, and the numbers agree with what the graph's own backward sends to that input; a fanned-out
output says its dL/dy is the sum of what its consumers send."""

import numpy as np
import pytest

from convscope.viz import explain_model_html

from .conftest import Page
from .test_explainer_merge_grads import CAP, graph_backward, merge_graph, merge_x
from .test_explainer_slices import _data


@pytest.fixture(scope="module", params=[None, CAP], ids=["whole-maps", "tiled"])
def built(request, tmp_path_factory):
    kwargs = {} if request.param is None else {"max_layer_numbers": request.param}
    model, x = merge_graph(), merge_x()
    path = explain_model_html(model, x, tmp_path_factory.mktemp("grads") / "grads.html", **kwargs)
    data = _data(path.read_text())
    return path, data, graph_backward(model, x, data["backward"]["default"])


@pytest.fixture(scope="module")
def page(browser, built):
    browser.get(built[0].resolve().as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    page = Page(browser)
    page.click("#show-grads")
    return page


def _named(data):
    return {lay["name"].strip(" ()"): lay for lay in data["layers"]}


def _last(lay):
    v = lay["values"]
    return tuple(s + t - 1 for s, t in zip(v["start"], v["tile"]))


def _sent(page):
    """The page's rows of what each input gets: input, producer, index, page's value, library's, verdict."""
    return page.driver.execute_script(
        "return Array.from(document.querySelectorAll('#detail .sent')).map(function (d) {"
        " var v = d.querySelector('.sent-verdict'); return {input: +d.dataset.input, ref: +d.dataset.ref,"
        " at: d.dataset.at.split(',').map(Number), page: d.dataset.page, lib: d.dataset.lib,"
        " verdict: v ? v.textContent : null}; })")


def test_an_add_sends_dy_unchanged_to_both_inputs(page, built):
    _, data, (sent, _) = built
    names = _named(data)
    add = names["block.add"]
    c, pos = 2, _last(add)
    page.click_value(add["index"], c, pos)
    g = page.number("grad-value")
    rows = _sent(page)
    assert [r["ref"] for r in rows] == [names["block.bn2"]["index"], names["stem_relu"]["index"]]
    for r in rows:
        want = sent["block.add"][r["input"]][(0, c, *pos)]
        assert r["at"] == [c, *pos] and float(r["lib"]) == want == g
        assert float(r["page"]) == want and r["verdict"] == "agree"
    text = page.driver.execute_script("return document.getElementById('detail').textContent")
    assert "passes dL/dy unchanged to every input" in text
    assert not page.errors()


def test_a_concat_gives_its_slice_to_one_input(page, built):
    _, data, (sent, _) = built
    names = _named(data)
    cat = names["fire.cat"]
    pos = _last(cat)
    for c, i, channel in [(1, 0, 1), (3, 1, 1)]:
        page.click_value(cat["index"], c, pos)
        rows = _sent(page)
        assert len(rows) == 1 and rows[0]["input"] == i and rows[0]["at"] == [channel, *pos]
        want = sent["fire.cat"][i][(0, channel, *pos)]
        assert float(rows[0]["lib"]) == float(rows[0]["page"]) == want == page.number("grad-value")
        assert rows[0]["verdict"] == "agree"
        text = page.driver.execute_script("return document.getElementById('detail').textContent")
        assert "nothing from this value" in text


def test_a_mul_multiplies_by_the_other_factor_and_sums_the_gate(page, built):
    _, data, (sent, _) = built
    names = _named(data)
    mul = names["se.scale"]
    c, pos = 4, _last(mul)
    page.click_value(mul["index"], c, pos)
    rows = _sent(page)
    assert [r["ref"] for r in rows] == [names["fire.cat"]["index"], names["se.gate"]["index"]]
    x_row, gate_row = rows
    assert x_row["at"] == [c, *pos] and gate_row["at"] == [c, 0, 0]
    assert float(x_row["lib"]) == sent["se.scale"][0][(0, c, *pos)]
    assert float(gate_row["lib"]) == sent["se.scale"][1][0, c, 0, 0]
    np.testing.assert_allclose(float(x_row["page"]), float(x_row["lib"]), rtol=1e-15)
    assert x_row["verdict"] == "agree"
    text = page.driver.execute_script("return document.getElementById('detail').textContent")
    assert "summed over the rows and columns" in text and "(25 products)" in text
    tiled = mul["values"]["tile"] != [5, 5]
    if tiled:                                    # the sum over H x W needs every position: not on a block
        assert gate_row["page"] == "" and gate_row["verdict"] is None
        assert "not redone on the page" in text
    else:
        np.testing.assert_allclose(float(gate_row["page"]), float(gate_row["lib"]), rtol=1e-13)
        assert gate_row["verdict"] == "agree"


def test_a_fanned_out_output_says_its_gradient_is_a_sum(page, built):
    _, data, (sent, received) = built
    names = _named(data)
    cat = names["fire.cat"]
    c, pos = 2, _last(cat)
    page.click_value(cat["index"], c, pos)
    assert int(page.attr("fanout", "data-count")) == 2 and int(page.attr("fanout", "data-parts")) == 1
    known = float(page.attr("fanout", "data-known"))
    assert known == sent["se.scale"][0][(0, c, *pos)]                        # the Mul's share, embedded
    assert page.number("grad-value") == received["fire.cat"][(0, c, *pos)]
    text = page.attr("fanout", "textContent")
    assert "sum of what each of them sends back" in text and "sends the rest" in text
    page.click_value(names["block.add"]["index"], c, _last(names["block.add"]))
    assert not page.driver.execute_script("return document.getElementById('fanout')")      # one reader
    assert not page.errors()
