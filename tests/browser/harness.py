"""Playwright driving Debian's Chromium against a ChannelsLiveServerTestCase.

Playwright's own browser downloads are never used: Chromium comes from the
system (``apt-get install chromium``; ``.ci/run`` does it).  Without it the
tests skip, except under ``CI=true`` where they fail.  When a test fails,
every page it opened is saved as a screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import unittest
from collections.abc import AsyncIterator
from pathlib import Path

from channels_app.testing import ChannelsLiveServerTestCase
from tests.services import IN_CI

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM) is not None


class Browser:
    """One Chromium; each :meth:`new_page` is a separate browser context,
    i.e. a separate user with its own cookies."""

    def __init__(self, browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.pages: list = []

    async def new_page(self):
        context = await self.browser.new_context(base_url=self.base_url)
        context.set_default_timeout(5000)
        page = await context.new_page()
        self.pages.append(page)
        return page

    async def screenshot_all(self, test_id: str) -> list[Path]:
        ARTIFACTS.mkdir(exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "_", test_id)
        saved = []
        for number, page in enumerate(self.pages, 1):
            if page.is_closed():
                continue
            path = ARTIFACTS / f"{stem}-page{number}.png"
            with contextlib.suppress(Exception):
                await page.screenshot(path=str(path), full_page=True)
                saved.append(path)
        return saved


class BrowserTestCase(ChannelsLiveServerTestCase):
    """A live server plus a way to open Chromium from async tests."""

    @classmethod
    def setUpClass(cls) -> None:
        if not chromium_available():
            reason = (
                f"Chromium is not installed at {CHROMIUM}; install it with "
                f"'apt-get install -y chromium' or set CHROMIUM_PATH"
            )
            if IN_CI:
                raise RuntimeError(
                    f"CI=true and the browser tests cannot run: {reason}"
                )
            raise unittest.SkipTest(reason)
        super().setUpClass()

    @contextlib.asynccontextmanager
    async def open_browser(self) -> AsyncIterator[Browser]:
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:
            chromium = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            browser = Browser(chromium, self.live_server_url)
            try:
                yield browser
            except BaseException:
                await browser.screenshot_all(self.id())
                raise
            finally:
                await chromium.close()
