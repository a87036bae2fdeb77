"""The live explainer: the app's answers (Flask test client) and the page in headless Chromium.

The browser half starts the real server on 127.0.0.1 on a free port, draws a stroke with the
mouse and uploads a file, and stops the server at the end (bounded in time).
"""

import io
import time

import numpy as np
import pytest

pytest.importorskip("flask", reason="the live explainer needs Flask (the serve extra)")
Image = pytest.importorskip("PIL.Image", reason="the live explainer reads uploads with Pillow")

from convscope import nn  # noqa: E402
from convscope.errors import ArgumentTypeError, ConfigError, DataError  # noqa: E402
from convscope.viz import forward_layers  # noqa: E402
from convscope.viz.serve import LiveServer, check_host, create_app, image_from_bytes  # noqa: E402

from .conftest import Page  # noqa: E402

SHAPE = (1, 12, 12)


def _model():
    """Blank canvas -> class 0 ("empty"), any ink -> class 1 ("ink"): the stroke must change the prediction."""
    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(2 * 6 * 6, 2, rng=1))
    m[0].weight.data[...] = 0.0
    m[0].weight.data[:, 0, 1, 1] = 1.0                 # each map copies the input
    m[0].bias.data[...] = 0.0
    m[4].weight.data[...] = 0.0
    m[4].weight.data[1] = 1.0                          # score of "ink": the sum of the pooled maps
    m[4].bias.data[...] = np.array([1.0, 0.0], dtype=np.float32)
    return m


def _png(array, mode="L"):
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def client():
    return create_app(_model(), SHAPE, class_names=["empty", "ink"]).test_client()


def _post(client, data, name="x.png"):
    return client.post("/api/explain", data={"image": (io.BytesIO(data), name)})


def test_an_uploaded_image_is_explained_like_the_library_predicts(client):
    img = np.zeros((40, 40), dtype=np.uint8)
    img[10:30, 18:22] = 255
    r = _post(client, _png(img))
    assert r.status_code == 200
    reply = r.get_json()
    x = image_from_bytes(_png(img), SHAPE)
    y = _model().eval()(x[None])
    assert reply["prediction"] == int(np.argmax(y)) == 1 and reply["class_names"] == ["empty", "ink"]
    assert 'id="convscope-data"' in reply["body"] and 'class="fmap"' in reply["body"]
    blank = _post(client, _png(np.zeros((12, 12), dtype=np.uint8))).get_json()
    assert blank["prediction"] == 0


def test_the_page_holds_canvas_upload_and_the_explainer(client):
    r = client.get("/")
    text = r.get_data(as_text=True)
    assert r.status_code == 200 and '<canvas id="draw"' in text and 'id="file"' in text
    assert 'id="explainer"' in text and "convscopeExplainer" in text
    assert "http://" not in text and "https://" not in text
    assert "<b>Draw</b> (white on black, as MNIST and the built-in digits are written)" in text


def test_the_drawing_pad_says_what_a_colour_model_gets():
    colour = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1, rng=0), nn.Flatten(), nn.Linear(2 * 12 * 12, 2, rng=1))
    text = create_app(colour, (3, 12, 12)).test_client().get("/").get_data(as_text=True)
    assert "<b>Draw</b> (white on black: a grey image, the same in all 3 channels" in text


@pytest.mark.parametrize("data, words", [
    (b"this is not an image", "not an image convscope can read"),
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image convscope can read"),
])
def test_bad_uploads_get_a_message_not_a_traceback(client, data, words):
    r = _post(client, data, "bad.png")
    reply = r.get_json()
    assert r.status_code == 400 and reply["ok"] is False and words in reply["error"]
    assert "Traceback" not in reply["error"]


def test_upload_size_and_image_dimensions_are_capped():
    app = create_app(_model(), SHAPE, max_upload_bytes=2000, max_side=64)
    c = app.test_client()
    big = np.random.default_rng(0).integers(0, 256, (80, 80), dtype=np.uint8)
    r = _post(c, _png(big))
    assert r.status_code == 413 and "larger than" in r.get_json()["error"]
    wide = _png(np.zeros((10, 100), dtype=np.uint8))           # small file, too many pixels per side
    r = _post(c, wide)
    assert r.status_code == 400 and "100x10 pixels" in r.get_json()["error"]
    assert c.post("/api/explain", data={}).get_json()["error"].startswith("No image")


def test_only_loopback_is_served_unless_told_otherwise():
    assert check_host("127.0.0.1") == "127.0.0.1" and check_host("::1") == "::1" and check_host("localhost")
    for host in ("0.0.0.0", "192.168.1.5", "example.org", "::"):
        with pytest.raises(ConfigError, match="refusing to listen"):
            check_host(host)
    assert check_host("0.0.0.0", allow_remote=True) == "0.0.0.0"
    with pytest.raises(ArgumentTypeError):
        check_host("")
    with pytest.raises(ConfigError, match="refusing"):
        LiveServer(create_app(_model(), SHAPE), host="0.0.0.0")


def test_requests_for_other_host_names_are_refused(client):
    r = client.get("/api/health", headers={"Host": "attacker.example:8000"})
    assert r.status_code == 400 and "127.0.0.1 or localhost" in r.get_json()["error"]
    assert client.get("/api/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "[::1]:8000"}).status_code == 200


def test_rgb_and_transparent_uploads_are_converted():
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[5:15, 5:15] = [255, 255, 255, 255]              # white square, transparent elsewhere
    x = image_from_bytes(_png(rgba, "RGBA"), SHAPE)
    assert x.shape == SHAPE and x.dtype == np.float32 and x.max() > 0.9 and x[0, 0, 0] == 0.0
    x3 = image_from_bytes(_png(rgba[..., :3], "RGB"), (3, 8, 8))
    assert x3.shape == (3, 8, 8)
    with pytest.raises(DataError, match="not an image"):
        image_from_bytes(b"GIF89a nonsense", SHAPE)


def test_create_app_checks_its_arguments():
    with pytest.raises(ConfigError, match="image_shape"):
        create_app(_model(), (12, 12))
    with pytest.raises(ConfigError, match="max_side"):
        create_app(_model(), SHAPE, max_side=0)
    with pytest.raises(ArgumentTypeError, match="Module"):
        create_app("model.npz", SHAPE)


# ----------------------------------------------------------------------------- in the browser

@pytest.fixture(scope="module")
def live(browser):
    server = LiveServer(create_app(_model(), SHAPE, class_names=["empty", "ink"])).start()
    try:
        browser.get(server.url)
        deadline = time.time() + 20
        while browser.execute_script("return document.body.dataset.liveReady") != "1":
            assert time.time() < deadline, "the live page did not start"
            time.sleep(0.1)
        yield Page(browser), server
    finally:
        server.stop(timeout=10)


def _wait_count(driver, count, timeout=20):
    """Until ``count`` answers have been shown and no request is in flight or queued."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: int(d.find_element("id", "live-status").get_attribute("data-count") or 0) >= count
        and d.execute_script("return document.body.dataset.liveBusy") == "0")


def test_drawing_a_stroke_changes_the_prediction(live):
    from selenium.webdriver.common.action_chains import ActionChains

    page, _ = live
    d = page.driver
    assert d.find_element("id", "prediction").get_attribute("data-class") == "0"   # blank canvas: "empty"
    canvas = d.find_element("id", "draw")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    before = int(d.find_element("id", "live-status").get_attribute("data-count") or 0)
    ActionChains(d).move_to_element_with_offset(canvas, -20, -60).click_and_hold().move_by_offset(10, 40) \
        .move_by_offset(10, 40).move_by_offset(5, 30).release().perform()
    _wait_count(d, before + 1)
    assert d.find_element("id", "live-prediction").get_attribute("data-class") == "1"
    assert d.find_element("id", "prediction").get_attribute("data-class") == "1"
    assert d.find_element("id", "live-prediction").text == "ink"
    # the explainer in the live page is the static page's: a click shows the library's arithmetic
    page.click_value(1, 0, (5, 6))
    assert page.attr("calc-verdict", "textContent") == "agree"
    assert not page.errors()


def test_uploading_a_non_image_shows_the_message_in_the_page(live, tmp_path):
    page, _ = live
    d = page.driver
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image at all")
    d.find_element("id", "file").send_keys(str(bad))
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(d, 20).until(lambda dd: "not an image" in dd.find_element("id", "message").text)
    msg = d.find_element("id", "message")
    assert msg.get_attribute("class") == "error" and "Traceback" not in msg.text
    assert d.find_element("id", "explainer").is_displayed()           # the last explanation stays


def test_uploading_an_image_explains_it(live, tmp_path):
    page, _ = live
    d = page.driver
    img = np.zeros((28, 28), dtype=np.uint8)
    path = tmp_path / "blank.png"
    Image.fromarray(img, "L").save(path)
    before = int(d.find_element("id", "live-status").get_attribute("data-count") or 0)
    d.find_element("id", "file").send_keys(str(path))
    _wait_count(d, before + 1)
    assert d.find_element("id", "live-prediction").get_attribute("data-class") == "0"
    assert d.find_element("id", "message").text == ""


def test_forward_layers_of_the_test_model_are_what_the_page_shows():
    _, acts = forward_layers(_model(), np.zeros((12, 12)))
    assert [a.module.layer_kind for a in acts] == ["conv", "relu", "max_pool", "flatten", "linear"]
