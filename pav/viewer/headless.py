"""Driving a running viewer from headless Chromium (through Playwright): screenshots, appearance switches and the
time from a switch to the new image on screen. Used by the browser test, bench/viewer.py and the README shot."""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
VIEWPORT = (1000, 700)  # (W, H) CSS pixels
SCENE_REGION = (slice(100, 650), slice(250, 650))  # rows, columns around the centre: clear of panel and notices


def find_chromium() -> str | None:
    """$PAV_CHROMIUM, else the first Chromium on PATH."""
    if os.environ.get("PAV_CHROMIUM"):
        return os.environ["PAV_CHROMIUM"]
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def unavailable_reason() -> str | None:
    """Why no headless browser can be driven here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    if find_chromium() is None:
        return f"no Chromium on PATH ({', '.join(CHROMIUM_NAMES)}; apt install chromium) and PAV_CHROMIUM unset"
    return None


class Tab:
    """One browser tab showing the viewer."""

    def __init__(self, page) -> None:
        self.page = page

    def screenshot(self) -> np.ndarray:
        """The whole tab -> uint8 [H, W, 3]."""
        return np.asarray(Image.open(io.BytesIO(self.page.screenshot())).convert("RGB"))

    def scene(self) -> np.ndarray:
        """The middle of the 3D view, where the avatar is -> uint8 [h, w, 3]."""
        return self.screenshot()[SCENE_REGION]

    def dismiss_notices(self) -> None:
        """Closes notifications (Chromium without a GPU gets a software-WebGL notice)."""
        for button in self.page.locator(".mantine-Notification-closeButton").all():
            button.click()

    def choose(self, label: str, option: str) -> None:
        """Picks an option of the panel's dropdown `label`."""
        self.page.get_by_role("combobox", name=label).click()
        self.page.get_by_role("option", name=option, exact=True).click()

    def click(self, button: str) -> None:
        self.page.get_by_role("button", name=button, exact=True).click()

    def wait_for_change(self, before: np.ndarray, timeout: float, threshold: float = 1.0) -> tuple[np.ndarray, float]:
        """Screenshots the scene until it differs from `before` by more than `threshold` grey levels on average
        -> (the new scene, seconds waited); raises TimeoutError."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            now = self.scene()
            if np.abs(now.astype(np.float32) - before.astype(np.float32)).mean() > threshold:
                return now, time.monotonic() - start
            time.sleep(0.02)
        raise TimeoutError(f"the viewer's image did not change within {timeout:.0f} s")


class Browser:
    def __init__(self, browser) -> None:
        self.browser = browser

    def open(self, url: str, viewport: tuple[int, int] = VIEWPORT) -> Tab:
        page = self.browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        page.goto(url)
        page.get_by_role("combobox", name="Appearance").wait_for(timeout=30_000)
        return Tab(page)


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """Starts Chromium with the flags a machine without display or GPU needs; RuntimeError when it cannot."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"no headless browser: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_FLAGS))
        try:
            yield Browser(browser)
        finally:
            browser.close()
