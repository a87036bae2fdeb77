"""Headless Chromium for the browser tests of the HTML explainer and its live mode.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``) and the pip package ``selenium``; skips, naming the missing piece,
when one is absent. Chromium runs headless, sandbox-free, with a fresh profile and no
background networking.
"""

import shutil
import tempfile

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-quic", "--window-size=1400,1000"]


def _find(names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("the browser test needs the pip package selenium (pip install selenium)")
    chromium = _find(["chromium", "chromium-browser"])
    if chromium is None:
        pytest.skip("the browser test needs Chromium: apt-get install chromium (Debian package chromium)")
    driver_path = _find(["chromedriver"])
    if driver_path is None:
        pytest.skip("the browser test needs chromedriver: apt-get install chromium-driver "
                    "(Debian package chromium-driver)")
    profile = tempfile.mkdtemp(prefix="convscope-chromium-")
    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """What the tests do on an explainer page: click a value as a user would, read a result."""

    def __init__(self, driver):
        self.driver = driver

    def click_value(self, layer, channel, pixel):
        """Click the centre of ``pixel`` of a feature map (or entry of a vector strip)."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        sel = (f'img.fmap[data-layer="{layer}"][data-channel="{channel}"]' if len(pixel) == 2 or channel is not None
               else f'img.fvec[data-layer="{layer}"]')
        img = self.driver.find_element(By.CSS_SELECTOR, sel)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
        w, h, nw, nh = self.driver.execute_script(
            "var i = arguments[0]; return [i.clientWidth, i.clientHeight, i.naturalWidth, i.naturalHeight]", img)
        row, col = (0, pixel[0]) if len(pixel) == 1 else pixel
        dx = (col + 0.5) * w / nw - w / 2          # Selenium 4 offsets are from the element's centre
        dy = (row + 0.5) * h / nh - h / 2
        ActionChains(self.driver).move_to_element_with_offset(img, int(round(dx)), int(round(dy))).click().perform()

    def click(self, css):
        from selenium.webdriver.common.by import By

        element = self.driver.find_element(By.CSS_SELECTOR, css)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def attr(self, element_id, name="data-value"):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id).get_attribute(name)

    def number(self, element_id):
        return float(self.attr(element_id))

    def errors(self):
        """Severe messages of the page's console (script errors)."""
        try:
            return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]
        except Exception:                      # a driver without the log endpoint
            return []
