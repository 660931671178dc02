"""Headless Chromium from the system packages, driven by selenium through the system
chromedriver: nothing is downloaded. Screenshots go to `$OPUS_TEST_ARTIFACTS` (else the
test's tmp dir)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30.0
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--window-size=1400,1000")

needs_browser = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists() and shutil.which("chromium")),
    reason="the system chromium and chromedriver are not installed (apt-get install "
           "chromium chromium-driver)",
)


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A fresh headless Chromium with its own profile dir; always quit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str,
             timeout_s: float = WAIT_S) -> Any:
    """Wait (bounded) until `condition(driver)` is truthy, failing with `what`."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(
        condition, message=f"timed out after {timeout_s}s waiting for {what}")


def card_in(lane: str, fr: str) -> Callable[[Any], Any]:
    from selenium.webdriver.common.by import By

    selector = f'section[data-lane="{lane}"] article[data-fr="{fr}"]'
    return lambda driver: driver.find_elements(By.CSS_SELECTOR, selector)


def live(driver: Any) -> bool:
    return bool(driver.execute_script("return document.body.dataset.live === 'on'"))


def mark_page(driver: Any) -> None:
    """A value that survives only as long as this very page: a reload loses it."""
    driver.execute_script("window.__samePage = 'yes'")


def same_page(driver: Any) -> bool:
    return bool(driver.execute_script("return window.__samePage === 'yes'"))


def screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("OPUS_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dashboard-{name}.png"
    driver.save_screenshot(str(path))
    return path
