"""The HTML explainer in a real browser: headless Chromium driven by Selenium.

The ``browser`` fixture (tests/viz/conftest.py) skips, naming the missing piece, without
Chromium, chromedriver or selenium. The page loads from a file:// URL.
"""

import numpy as np
import pytest

from convscope import nn
from convscope.explain import receptive_field
from convscope.shapes import axis_arithmetic, key_equation_48_ceil, key_equation_48_floor
from convscope.viz import explain_model_html, forward_layers


def _model():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, rng=1),
        nn.Conv2d(4, 2, 2, stride=2, bias=False, rng=2),
        nn.Flatten(), nn.Linear(2 * 2 * 2, 3, rng=3),
    )


def _x():
    return np.random.default_rng(7).random((8, 8))


@pytest.fixture(scope="module")
def loaded(browser, tmp_path_factory):
    path = explain_model_html(_model(), _x(), tmp_path_factory.mktemp("browser") / "report.html")
    browser.get(path.resolve().as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1", "the page script did not run"
    return browser


def _click(driver, layer, channel, pixel):
    """Click the centre of ``pixel`` (row, col) of a feature map, as a user would."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    img = driver.find_element(By.CSS_SELECTOR, f'img.fmap[data-layer="{layer}"][data-channel="{channel}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
    w, h, nw, nh = driver.execute_script(
        "var i = arguments[0]; return [i.clientWidth, i.clientHeight, i.naturalWidth, i.naturalHeight]", img)
    row, col = pixel
    dx = (col + 0.5) * w / nw - w / 2          # Selenium 4 offsets are from the element's centre
    dy = (row + 0.5) * h / nh - h / 2
    ActionChains(driver).move_to_element_with_offset(img, int(round(dx)), int(round(dy))).click().perform()


def _attr(driver, element_id, name="data-value"):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).get_attribute(name)


def test_layers_and_every_image_render(loaded):
    n_layers = len(forward_layers(_model(), _x())[1])
    assert loaded.execute_script("return document.querySelectorAll('section.card.layer').length") == n_layers
    bad = loaded.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
    total = loaded.execute_script("return document.images.length")
    assert total > 20 and bad == 0
    assert loaded.execute_script("return document.querySelectorAll('img.fmap').length") == 18


@pytest.mark.parametrize("layer, channel, pixel", [(1, 0, (0, 0)), (1, 3, (5, 2)), (4, 3, (1, 2)), (5, 1, (1, 0))])
def test_click_shows_the_dot_product_equal_to_the_library(loaded, layer, channel, pixel):
    model = _model()
    _, acts = forward_layers(model, _x())
    expected = float(acts[layer - 1].y[0, channel, pixel[0], pixel[1]])
    _click(loaded, layer, channel, pixel)
    title = loaded.find_element("id", "detail").text
    assert f"channel {channel + 1} of" in title and f"pixel ({pixel[0]}, {pixel[1]})" in title
    lib = float(_attr(loaded, "calc-lib"))
    page = float(_attr(loaded, "calc-js"))
    assert lib == expected                                    # the library's value, embedded exactly
    # the page's own sum of products, from the embedded window and filter: equal up to the
    # float32 rounding of the library's sum (the bound the page states)
    tol = float(_attr(loaded, "calc-tol"))
    assert abs(page - lib) <= tol and tol < 1e-4 * max(1.0, abs(lib)) + 1e-5
    assert _attr(loaded, "calc-verdict", "textContent") == "agree"
    region = receptive_field(model, (1, 1, 8, 8), pixel=pixel, layer=layer).region
    assert _attr(loaded, "rf-text", "data-region") == ", ".join(f"{s.start}:{s.stop}" for s in region)
    box = loaded.execute_script("var b = document.querySelector('.rf-box'); return getComputedStyle(b).display")
    assert box == "block"


def test_click_on_a_pooling_map_shows_its_receptive_field_and_its_maximum(loaded):
    _click(loaded, 3, 2, (3, 1))
    region = receptive_field(_model(), (1, 1, 8, 8), pixel=(3, 1), layer=3).region
    assert _attr(loaded, "rf-text", "data-region") == ", ".join(f"{s.start}:{s.stop}" for s in region)
    _, acts = forward_layers(_model(), _x())
    assert float(_attr(loaded, "calc-js")) == float(acts[2].y[0, 2, 3, 1])   # the window's maximum, exactly
    assert _attr(loaded, "calc-kind", "data-kind") == "max_pool"


@pytest.mark.parametrize("n, k, p, s, d", [(7, 3, 1, 2, 1), (64, 2, 0, 2, 1), (10, 3, 0, 1, 1), (9, 3, 0, 1, 2),
                                           (5, 3, 1, 3, 1), (4, 5, 0, 1, 1)])
def test_playground_output_size_both_forms(loaded, n, k, p, s, d):
    loaded.execute_script(
        "var v = arguments[0]; ['n', 'k', 'p', 's', 'd'].forEach(function (id, i) {"
        " var e = document.getElementById('pg-' + id); e.value = v[i];"
        " e.dispatchEvent(new Event('input', {bubbles: true})); });", [n, k, p, s, d])
    span = d * (k - 1) + 1
    fits = n + 2 * p >= span
    forms = axis_arithmetic(n, span, p, s)            # the numbers also where nothing fits
    if fits:
        assert (forms.ceil_form, forms.floor_form) == (key_equation_48_ceil(n, span, p, s),
                                                       key_equation_48_floor(n, span, p, s))
    assert int(_attr(loaded, "pg-out")) == (forms.floor_form if fits else 0)
    assert int(_attr(loaded, "pg-ceil", "textContent")) == forms.ceil_form
    assert int(_attr(loaded, "pg-floor", "textContent")) == forms.floor_form
    rows = loaded.execute_script("return document.querySelectorAll('#pg-diagram .pg-row').length")
    out = forms.floor_form
    drawn = fits and n + 2 * p <= 60 and out <= 30          # the page draws small cases only
    assert rows == (out + 1 if drawn else 0)             # the padded input, then one row per window


def test_playground_preset_is_the_notes_example(loaded):
    from selenium.webdriver.common.by import By

    button = loaded.find_element(By.CSS_SELECTOR, 'button[data-preset="64,2,0,2,1"]')
    loaded.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    assert _attr(loaded, "pg-out") == "32"
