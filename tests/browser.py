"""Headless Chromium for the tests that drive a page (the technician page, the monthly report):
Debian's chromium and chromium-driver through Selenium, isolated (a fresh profile, no background
networking: the browser reaches only the pages a test serves on loopback or opens from a file).

    def test_x(browser):
        browser.get(url)
        ...
        assert console_errors(browser) == []
"""
from __future__ import annotations

import shutil
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# without these, Chromium reaches out to Google's hosts at start (updates, sync, safe browsing)
_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
          "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--mute-audio",
          "--window-size=1280,900", "--force-device-scale-factor=1", "--lang=en-GB"]


def need_chromium() -> None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            pytest.skip(f"needs Debian's chromium and chromium-driver ({path} not found; scripts/test installs them)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("needs selenium (pip install -e '.[test]')")


@pytest.fixture
def browser():
    """A headless Chromium window, 1280x900, that keeps its console messages (console_errors)."""
    need_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sitevigil-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in _FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver is Debian's, given by path: Selenium Manager never downloads one
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    """The page's console errors and uncaught exceptions since the last call (warnings are not errors)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
