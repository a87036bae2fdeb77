"""A ShuffleNet unit's Split on the explainer page: the layer that reads the Split's second
piece names it (piece, range, link to the Split's card) instead of "input: ?", its window
text says where it reads, and a click on it still agrees with the library."""

import numpy as np
import pytest

from convscope import nn
from convscope.viz import explain_model_html, forward_layers

from .conftest import Page
from .test_explainer_slices import _data


def split_graph():
    g = nn.GraphBuilder()
    stem = g.add("stem", nn.Conv2d(1, 4, 3, padding=1, rng=0), g.input)
    split = g.add("split", nn.Split((3, 1)), stem)
    branch = g.add("branch", nn.Conv2d(1, 2, 3, padding=1, rng=1), f"{split}:1")
    cat = g.add("cat", nn.Concat(), f"{split}:0", branch)
    flat = g.add("flat", nn.Flatten(), cat)
    return g.build(g.add("fc", nn.Linear(5 * 6 * 6, 3, rng=2), flat))


def _x():
    return np.random.default_rng(0).random((1, 6, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = explain_model_html(split_graph(), _x(), tmp_path_factory.mktemp("split") / "split.html")
    return path, path.read_text()


def _index(name):
    return next(a.index for a in forward_layers(split_graph(), _x())[1] if a.name == name)


def test_the_second_piece_is_named_not_a_question_mark(built):
    text, split, branch, cat = built[1], _index("split"), _index("branch"), _index("cat")
    card = text[text.index(f'id="layer-{branch}"'):text.index(f'id="layer-{branch + 1}"')]
    assert (f'input: <a href="#layer-{split}">piece 2 of layer {split}&#x27;s split (channels 4..4 of '
            f'its input)</a>') in card
    merge = text[text.index(f'id="layer-{cat}"'):text.index(f'id="layer-{cat + 1}"')]
    assert "?" not in merge.split('merge (concat) of:')[1].split("</p>")[0]
    lay = next(lay for lay in _data(text)["layers"] if lay["index"] == branch)
    assert lay["input_ref"] is None and lay["input_label"].startswith(f"piece 2 of layer {split}")


@pytest.fixture(scope="module")
def page(browser, built):
    browser.get(built[0].resolve().as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    return Page(browser)


def test_a_click_on_the_piece_reader_names_its_window_and_agrees(page):
    branch, split = _index("branch"), _index("split")
    act = {a.index: a for a in forward_layers(split_graph(), _x())[1]}[branch]
    page.click_value(branch, 1, (2, 3))
    assert page.number("calc-lib") == float(act.y[0, 1, 2, 3])
    assert page.attr("calc-verdict", "textContent") == "agree"
    panel = page.driver.execute_script("return document.getElementById('win-text').parentNode.textContent")
    assert panel.startswith(f"Window on piece 2 of layer {split}'s split (channels 4..4 of its input) "
                            f"(its maps are not drawn; channel")
    assert not page.errors()


def test_the_split_card_shows_its_copy_and_the_identity_branch_names_its_piece(page, built):
    split = _index("split")
    act = {a.index: a for a in forward_layers(split_graph(), _x())[1]}[split]
    page.click_value(split, 2, (4, 1))
    assert page.attr("calc-kind", "data-kind") == "split"
    assert page.number("calc-lib") == float(act.y[0, 2, 4, 1]) == page.number("calc-js")
    assert page.attr("calc-verdict", "textContent") == "agree"
    assert not page.errors()
    block = built[1][built[1].index('class="branch identity"'):]
    assert (f"piece 1 of <a href=\"#layer-{split}\">layer {split}</a>'s split (channels 1..3 of its input), "
            "unchanged (the skip connection)") in block.split("</div>")[0]
