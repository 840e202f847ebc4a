"""The browser harness itself: a failing test leaves screenshots behind."""

import pytest

from tests.browser.harness import ARTIFACTS, BrowserTestCase
from tests.demo.demo_settings import demo_settings

pytestmark = pytest.mark.browser


@demo_settings
class ScreenshotOnFailure(BrowserTestCase):
    async def test_a_failure_saves_every_open_page(self):
        with pytest.raises(AssertionError, match="deliberate"):
            async with self.open_browser() as browser:
                for title in ("one", "two"):
                    page = await browser.new_page()
                    await page.goto("/accounts/login/")
                    await page.set_content(f"<h1>{title}</h1>")
                raise AssertionError("deliberate")
        saved = sorted(ARTIFACTS.glob("*test_a_failure_saves_every_open_page-page*"))
        assert [p.name.rsplit("-", 1)[1] for p in saved] == ["page1.png", "page2.png"]
        for path in saved:
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            path.unlink()
