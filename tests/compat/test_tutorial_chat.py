"""The migrated Channels tutorial chat passes its own browser test.

Part 4 of the Channels 4 tutorial tests the chat with Selenium: two windows
in one room see each other's messages, a window in another room does not.
These are the same two tests, driving Debian's Chromium through Playwright
against the project migrated by docs/migrating.rst and served by a real
server from its directory: our ``manage.py runserver`` (Daphne), and uvicorn
on the project's ``mysite.asgi:application``.
"""

import contextlib
import re

import pytest
from playwright.async_api import async_playwright, expect

from tests.browser.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Browser,
    chromium_available,
)
from tests.compat.migration_guide import migrated_tutorial, start
from tests.services import IN_CI, require

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

#: The tutorial waits two seconds for each message.
WAIT_MS = 2000


def require_chromium() -> None:
    if chromium_available():
        return
    reason = (
        f"Chromium is not installed at {CHROMIUM}; install it with "
        f"'apt-get install -y chromium' or set CHROMIUM_PATH"
    )
    if IN_CI:
        pytest.fail(f"CI=true and the browser tests cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(
    scope="module",
    params=[("runserver", "sync"), ("runserver", "async"), ("uvicorn", "sync")],
    ids=lambda param: "-".join(param),
)
def server(request, tmp_path_factory):
    """The migrated tutorial, served: (server, tutorial part 2 or 3 consumer)."""
    require_chromium()
    require("redis")
    kind, consumer = request.param
    migrated = migrated_tutorial(
        tmp_path_factory.mktemp(f"tutorial-{kind}-{consumer}"), consumer
    )
    server = start(migrated.project, migrated.env, kind)
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def open_browser(server, request):
    """Chromium on ``server``; screenshots of its windows if the test fails."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        browser = Browser(chromium, server.url)
        try:
            yield browser
        except BaseException:
            await browser.screenshot_all(request.node.nodeid)
            raise
        finally:
            await chromium.close()


async def enter_chat_room(browser: Browser, room_name: str):
    """A new window on the index page, the room name typed and Enter pressed,
    as the tutorial's ``_enter_chat_room`` does; then its socket is open."""
    page = await browser.new_page()
    await page.goto("/chat/")
    await page.keyboard.type(room_name)
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(f"/chat/{room_name}/$"), timeout=WAIT_MS)
    # Selenium is slow enough not to post before the socket opens; Playwright
    # is not.  ``chatSocket`` is the room page's own variable.
    await page.wait_for_function("chatSocket.readyState === WebSocket.OPEN")
    return page


async def post_message(page, message: str) -> None:
    """Type into the focused message box and press Enter, as the tutorial does."""
    await page.keyboard.type(message)
    await page.keyboard.press("Enter")


def chat_log(page):
    return page.locator("#chat-log")


def containing(text: str):
    return re.compile(re.escape(text))


async def test_when_chat_message_posted_then_seen_by_everyone_in_same_room(
    server, request
):
    async with open_browser(server, request) as browser:
        first = await enter_chat_room(browser, "room_1")
        second = await enter_chat_room(browser, "room_1")

        await post_message(first, "hello")

        # Window 1 gets its own message back, and window 2 gets it too.
        for page in (first, second):
            await expect(chat_log(page)).to_have_value(
                containing("hello"), timeout=WAIT_MS
            )


async def test_when_chat_message_posted_then_not_seen_by_anyone_in_different_room(
    server, request
):
    async with open_browser(server, request) as browser:
        first = await enter_chat_room(browser, "room_1")
        second = await enter_chat_room(browser, "room_2")

        await post_message(first, "hello")
        await expect(chat_log(first)).to_have_value(
            containing("hello"), timeout=WAIT_MS
        )

        await post_message(second, "world")
        await expect(chat_log(second)).to_have_value(
            containing("world"), timeout=WAIT_MS
        )
        # "world" came back after anything of room_1 could have arrived.
        assert await chat_log(second).input_value() == "world\n", (
            "Message was improperly received by window 2 from window 1"
        )


def test_the_server_logged_no_errors(server):
    """Runs after the browser tests of the same server (module order)."""
    log = server.log()
    assert "Traceback" not in log, log
