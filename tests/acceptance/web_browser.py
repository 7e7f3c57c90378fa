"""A real headless browser for the live-view tests: Debian's chromium driven by Debian's
chromedriver through selenium (the one module importing selenium). Nothing is downloaded: the
driver and the browser are given by path, and Selenium Manager is told it is offline.

The browser trusts exactly the console's certificate (its public key is pinned with
--ignore-certificate-errors-spki-list), so TLS is still verified, against that one key.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (360, 800)


class Browser:
    """One chromium with a fresh profile, its viewport a 360 x 800 phone."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def get(self, url: str) -> None:
        self.driver.get(url)

    def text(self, css: str = "body") -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, pred: Callable[[], Any], timeout_s: float, poll_s: float = 0.02) -> Any:
        """`pred()`'s first true value, polled every `poll_s`; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = pred()
            except Exception as exc:  # the element may be mid-replace: look again
                last = exc
            else:
                if last:
                    return last
            time.sleep(poll_s)
        raise AssertionError(f"not within {timeout_s} s (last: {last!r})")

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path


@contextmanager
def chromium(spki_pins: tuple[str, ...] = ()) -> Iterator[Browser]:
    """Start chromium headless (closed network, fresh profile) and stop it afterwards."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise RuntimeError(
                f"{path} is missing: run scripts/bootstrap.sh (chromium, chromium-driver)"
            )
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a driver or browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="milkconsole-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={PHONE[0]},{PHONE[1]}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    if spki_pins:
        options.add_argument(f"--ignore-certificate-errors-spki-list={','.join(spki_pins)}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        # The page's viewport exactly a 360 x 800 phone (the window has no frame headless, but
        # say so rather than rely on it).
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True},
        )
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
