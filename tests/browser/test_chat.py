"""Two people chatting in real browsers, against a live demo server.

The room page runs ``chat/chat.js`` on channels_app's stream client, so a
browser that was offline gets what it missed when it is back.
"""

from urllib.parse import urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import override_settings
from playwright.async_api import expect

from chat.models import Message, Room
from tests.browser.harness import BrowserTestCase
from tests.demo.demo_settings import demo_settings

pytestmark = pytest.mark.browser

PASSWORD = "a-long-pass-42"


async def log_in(browser, username: str):
    """A fresh browser context that logged in through the login form."""
    page = await browser.new_page()
    await page.goto("/")
    await expect(page).to_have_url("/accounts/login/?next=/")
    await page.fill("#id_username", username)
    await page.fill("#id_password", PASSWORD)
    await page.click("button:text('Log in')")
    await expect(page.locator("#me")).to_have_text(username)
    return page


async def enter_room(page, title: str) -> None:
    await page.click(f"a:text('{title}')")
    await expect(page.locator("h1")).to_contain_text(title)
    await expect(page.locator("#status")).to_have_text("live")


async def say(page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


@demo_settings
class ChatInTwoBrowsers(BrowserTestCase):
    def setUp(self):
        for name in ("ada", "bob"):
            User.objects.create_user(name, password=PASSWORD)
        Room.objects.create(slug="lobby", title="Lobby")

    async def test_messages_presence_and_typing_between_two_users(self):
        async with self.open_browser() as browser:
            ada = await log_in(browser, "ada")
            bob = await log_in(browser, "bob")
            await enter_room(ada, "Lobby")
            await enter_room(bob, "Lobby")

            for page in (ada, bob):
                await expect(page.locator("#online li")).to_have_text(["ada", "bob"])

            await say(ada, "hello from ada")
            await expect(bob.locator("#messages li").last).to_have_text(
                "ada hello from ada", timeout=1000
            )
            await say(bob, "hi ada")
            await expect(ada.locator("#messages li").last).to_have_text(
                "bob hi ada", timeout=1000
            )

            await bob.type("#text", "typing slowly")
            await expect(ada.locator("#typing")).to_have_text("bob is typing…")
            await expect(bob.locator("#typing")).to_have_text("")

            await bob.context.close()
            await expect(ada.locator("#online li")).to_have_text(["ada"])

        texts = await sync_to_async(list)(
            Message.objects.order_by("id").values_list("text", flat=True)
        )
        assert texts == ["hello from ada", "hi ada"]

    async def test_history_survives_a_reload_and_bad_input_is_explained(self):
        async with self.open_browser() as browser:
            ada = await log_in(browser, "ada")
            await enter_room(ada, "Lobby")
            await say(ada, "remember me")
            await expect(ada.locator("#messages li")).to_have_text(["ada remember me"])
            await ada.reload()
            await expect(ada.locator("#messages li")).to_have_text(["ada remember me"])
            await expect(ada.locator("#status")).to_have_text("live")
            # Over the limit the server answers with an error and posts nothing.
            await ada.evaluate("document.getElementById('text').maxLength = 5000")
            await say(ada, "x" * 2001)
            await expect(ada.locator("#error")).to_contain_text("at most 2000")
            await expect(ada.locator("#messages li")).to_have_count(1)

    async def test_event_stream_fallback_chats_with_a_websocket_user(self):
        async with self.open_browser() as browser:
            ada = await log_in(browser, "ada")
            bob = await log_in(browser, "bob")
            await ada.goto("/rooms/lobby/?transport=sse")
            await expect(ada.locator("#status")).to_have_text("live (event stream)")
            await enter_room(bob, "Lobby")
            for page in (ada, bob):
                await expect(page.locator("#online li")).to_have_text(["ada", "bob"])

            await say(bob, "to the stream")
            await expect(ada.locator("#messages li").last).to_have_text(
                "bob to the stream", timeout=1000
            )
            # The request itself may be slow on a loaded machine (the view's
            # first run); the second is for delivering what it published.
            async with ada.expect_response(
                lambda r: r.request.method == "POST" and r.url.endswith("/messages/")
            ) as posted:
                await say(ada, "posted over http")
            assert (await posted.value).status == 201
            await expect(bob.locator("#messages li").last).to_have_text(
                "ada posted over http", timeout=1000
            )
            await bob.type("#text", "x")
            await expect(ada.locator("#typing")).to_have_text("bob is typing…")
            await ada.context.close()
            await expect(bob.locator("#online li")).to_have_text(["bob"])


#: History for 25 messages per room: 20 missed are replayed, 30 are a gap.
#: Quick heartbeats (a dead link found within a second, by the client and
#: by the server) and a back-off long enough for Bob to post while Ada's
#: client waits to retry.
SHORT_HISTORY = override_settings(
    CHANNELS_APP_STREAMS={
        "HISTORY": [{"PATTERN": "chat.*", "MAX_MESSAGES": 25, "MAX_AGE": 600}]
    },
    CHAT_CLIENT_OPTIONS={
        "heartbeatInterval": 300,
        "heartbeatTimeout": 600,
        "backoffInitial": 1500,
        "backoffMax": 2000,
    },
    CHAT_PING_SECONDS=0.3,
)


@demo_settings
@SHORT_HISTORY
class ChatOfflineAndBack(BrowserTestCase):
    def setUp(self):
        for name in ("ada", "bob"):
            User.objects.create_user(name, password=PASSWORD)
        Room.objects.create(slug="lobby", title="Lobby")

    async def two_in_the_lobby(self, browser):
        ada = await log_in(browser, "ada")
        bob = await log_in(browser, "bob")
        await enter_room(ada, "Lobby")
        await enter_room(bob, "Lobby")
        for page in (ada, bob):
            await expect(page.locator("#online li")).to_have_text(["ada", "bob"])
        return ada, bob

    async def bob_posts_while_ada_is_offline(self, ada, bob, count: int) -> list:
        await ada.context.set_offline(True)
        await expect(ada.locator("#status")).to_have_text("reconnecting…")
        # Bob's list shows Ada away.
        await expect(bob.locator("#online li")).to_have_text(["bob"])
        texts = [f"missed {n}" for n in range(count)]
        for text in texts:
            await say(bob, text)
        await expect(bob.locator("#messages li")).to_have_count(count)
        assert await ada.locator("#messages li").count() == 0
        return texts

    async def test_messages_posted_while_offline_appear_when_back(self):
        async with self.open_browser() as browser:
            ada, bob = await self.two_in_the_lobby(browser)
            ada_page_loads = []
            ada.on("load", lambda page: ada_page_loads.append(page.url))
            texts = await self.bob_posts_while_ada_is_offline(ada, bob, 20)

            await ada.context.set_offline(False)
            # All 20 within 2 s, in order, without a reload.
            await expect(ada.locator("#messages li .text")).to_have_text(
                texts, timeout=2000
            )
            await expect(ada.locator("#status")).to_have_text("live")
            assert ada_page_loads == []
            # Bob's list shows her back.
            await expect(bob.locator("#online li")).to_have_text(["ada", "bob"])
            # And the conversation goes on both ways.
            await say(ada, "back now")
            await expect(bob.locator("#messages li").last).to_have_text(
                "ada back now", timeout=1000
            )

    async def test_more_than_the_history_holds_reloads_the_recent_messages(self):
        async with self.open_browser() as browser:
            ada, bob = await self.two_in_the_lobby(browser)
            texts = await self.bob_posts_while_ada_is_offline(ada, bob, 30)
            await ada.context.set_offline(False)
            # The stream holds the last 25 only: the client reports a gap and
            # the page reloads the room's recent messages from the server.
            await expect(ada.locator("#messages li .text")).to_have_text(texts)
            await expect(ada.locator("#status")).to_have_text("live")


@demo_settings
class LoginOverWebSocket(BrowserTestCase):
    def setUp(self):
        User.objects.create_user("ada", password=PASSWORD)
        Room.objects.create(slug="lobby", title="Lobby")

    async def test_the_login_form_uses_the_socket_and_the_cookie_follows(self):
        async with self.open_browser() as browser:
            page = await browser.new_page()
            posts = []
            page.on(
                "request",
                lambda r: (
                    posts.append(urlsplit(r.url).path) if r.method == "POST" else None
                ),
            )
            await page.goto("/accounts/login/?next=/rooms/lobby/")
            await page.fill("#id_username", "ada")
            await page.fill("#id_password", "not the password")
            await page.click("button:text('Log in')")
            await expect(page.locator("#login-error")).to_have_text(
                "Your username and password did not match."
            )
            await expect(page).to_have_url("/accounts/login/?next=/rooms/lobby/")

            await page.fill("#id_password", PASSWORD)
            await page.click("button:text('Log in')")
            await expect(page).to_have_url("/rooms/lobby/")
            await expect(page.locator("#me")).to_have_text("ada")
            # The room's own WebSocket is authenticated by the synced cookie.
            await expect(page.locator("#status")).to_have_text("live")
            await expect(page.locator("#online li")).to_have_text(["ada"])
        assert posts == ["/accounts/session-sync/"]


@demo_settings
class NewcomerInABrowser(BrowserTestCase):
    async def test_sign_up_create_a_room_and_post(self):
        async with self.open_browser() as browser:
            page = await browser.new_page()
            await page.goto("/accounts/signup/")
            await page.fill("#id_username", "grace")
            await page.fill("#id_password1", PASSWORD)
            await page.fill("#id_password2", PASSWORD)
            await page.click("button:text('Create account')")
            await expect(page.locator("#me")).to_have_text("grace")
            await page.fill("input[name=title]", "Compilers")
            await page.click("button:text('Create room')")
            await expect(page).to_have_url("/rooms/compilers/")
            await expect(page.locator("#status")).to_have_text("live")
            await expect(page.locator("#online li")).to_have_text(["grace"])
            await say(page, "first!")
            await expect(page.locator("#messages li")).to_have_text(["grace first!"])
