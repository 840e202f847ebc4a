"""The stream client (``channels_app/streams.js``) in Chromium, on a live server.

Each test loads tests/browser/streams_site.py's page, which subscribes to
``room.lobby`` and records in ``window.seen`` every message handed to the
handler and every event; the test publishes through a view and cuts the
connection from the server side or by muting its heartbeat answers.
"""

import json
import urllib.request

import pytest
from django.test import override_settings

from tests.browser.harness import BrowserTestCase

pytestmark = pytest.mark.browser

#: Quick heartbeats and a back-off long enough to publish while disconnected.
FAST = "?heartbeatInterval=300&heartbeatTimeout=600&backoffInitial=1500&backoffMax=2000"


@override_settings(
    ROOT_URLCONF="tests.browser.streams_site",
    ASGI_APPLICATION="tests.browser.streams_site.application",
    CHANNEL_LAYERS={"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}},
    CHANNELS_APP_STREAMS={"DEFAULT_HISTORY": {"MAX_MESSAGES": 30, "MAX_AGE": 600}},
)
class StreamClientInChromium(BrowserTestCase):
    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.live_server_url}{path}", timeout=10) as r:
            return json.loads(r.read())

    def publish(self, start: int, count: int) -> list[int]:
        return self.get(f"/publish/?start={start}&count={count}")["offsets"]

    async def open(self, browser, query: str = FAST):
        page = await browser.new_page()
        await page.goto(f"/{query}")
        await self.wait_for_event(page, "subscribed")
        return page

    async def wait_for_event(self, page, kind: str, count: int = 1) -> None:
        await page.wait_for_function(
            f"window.seen.events.filter(e => e.type === {kind!r}).length >= {count}",
            timeout=10000,
        )

    async def messages(self, page, count: int, timeout: float = 10000) -> list[int]:
        await page.wait_for_function(
            f"window.seen.messages.length >= {count}", timeout=timeout
        )
        return await page.evaluate("window.seen.messages")

    async def events(self, page, kind: str) -> list[dict]:
        return await page.evaluate(
            f"window.seen.events.filter(e => e.type === {kind!r})"
        )

    async def test_messages_sent_while_disconnected_arrive_once_in_order(self):
        async with self.open_browser() as browser:
            page = await self.open(browser)
            await self.async_publish(0, 5)
            assert await self.messages(page, 5) == [0, 1, 2, 3, 4]

            await self.async_get("/kick/")
            await self.wait_for_event(page, "disconnected")
            (gone,) = await self.events(page, "disconnected")
            assert gone["code"] == 4001 and gone["willRetry"] is True
            await self.async_publish(5, 20)  # while the client waits to retry

            assert await self.messages(page, 25) == list(range(25))
            await self.wait_for_event(page, "recovered")
            assert await self.events(page, "gap") == []
            await self.async_publish(25, 1)  # and live again afterwards
            assert await self.messages(page, 26) == list(range(26))

    async def test_a_page_navigation_resumes_from_the_last_position(self):
        async with self.open_browser() as browser:
            page = await self.open(browser)
            await self.async_publish(0, 3)
            await self.messages(page, 3)
            await page.goto("/static/channels_app/streams.js")  # leave the page
            await self.async_publish(3, 4)
            await page.goto(f"/{FAST}")  # same tab: sessionStorage kept
            assert await self.messages(page, 4) == [3, 4, 5, 6]
            await self.wait_for_event(page, "recovered")

    async def test_missing_more_than_the_history_holds_is_reported_as_a_gap(self):
        async with self.open_browser() as browser:
            page = await self.open(browser)
            await self.async_publish(0, 2)
            await self.messages(page, 2)
            await self.async_get("/kick/")
            await self.wait_for_event(page, "disconnected")
            await self.async_publish(2, 40)  # history keeps the last 30
            await self.wait_for_event(page, "gap")
            (gap,) = await self.events(page, "gap")
            assert gap["stream"] == "room.lobby" and gap["reason"] == "too_old"
            await self.async_publish(42, 2)  # live after the gap
            assert await self.messages(page, 4) == [0, 1, 42, 43]

    async def test_a_silent_connection_is_found_dead_by_heartbeat(self):
        async with self.open_browser() as browser:
            page = await self.open(browser)
            assert await page.evaluate("client.request('mute')") == "muted"
            await self.wait_for_event(page, "disconnected")
            (dead,) = await self.events(page, "disconnected")
            assert dead["reason"] == "no heartbeat" and dead["willRetry"] is True
            await self.wait_for_event(page, "connected", count=2)
            await self.async_publish(0, 1)
            assert await self.messages(page, 1) == [0]

    async def test_going_offline_and_back_recovers_what_was_posted(self):
        async with self.open_browser() as browser:
            page = await self.open(browser)
            await page.context.set_offline(True)
            await self.wait_for_event(page, "disconnected")
            await self.async_publish(0, 20)
            await page.context.set_offline(False)
            # Back online, the browser's "online" event skips the back-off:
            # all 20 are there within 2 s, without a reload.
            assert await self.messages(page, 20, timeout=2000) == list(range(20))
            await self.wait_for_event(page, "recovered")

    async def test_presence_shows_a_user_away_and_back(self):
        # Only ada and bob are looked at: connections of earlier tests on
        # this live server ("anonymous") may still be leaving.
        both = "present().includes('ada') && present().includes('bob')"
        async with self.open_browser() as browser:
            ada = await self.open(browser, FAST + "&name=ada")
            bob = await self.open(browser, FAST + "&name=bob")
            for page in (ada, bob):
                await page.wait_for_function(both, timeout=10000)
            await ada.evaluate("client.close()")  # ada's laptop lid closes
            await bob.wait_for_function("!present().includes('ada')", timeout=10000)
            await ada.evaluate("client.connect()")
            await bob.wait_for_function(both, timeout=10000)
            changes = [
                (e["change"], e["user"])
                for e in await self.events(bob, "presence")
                if e["user"] == "ada"
            ]
            # Bob learnt of ada from the state he got on connecting.
            assert changes == [("leave", "ada"), ("join", "ada")]
            await ada.wait_for_function(both, timeout=10000)

    async def test_requests_get_the_answer_a_refusal_or_a_timeout(self):
        async with self.open_browser() as browser:
            page = await self.open(browser)
            assert await page.evaluate("client.request({x: [1, 2]})") == {
                "echo": {"x": [1, 2]}
            }
            outcome = """([data, timeout]) => client.request(data, {timeout}).then(
                () => "answered",
                (error) => `${error.constructor.name}: ${error.message}`)"""
            refused = await page.evaluate(outcome, ["refuse", 5000])
            assert refused == "RequestFailed: not today"
            failed = await page.evaluate(outcome, ["boom", 5000])
            assert failed == "RequestFailed: the server could not answer the request"
            late = await page.evaluate(outcome, ["slow", 300])
            assert late == "RequestTimeout: no reply within 300 ms"

    async def async_publish(self, start: int, count: int) -> list[int]:
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.publish)(start, count)

    async def async_get(self, path: str) -> dict:
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.get)(path)


@override_settings(
    ROOT_URLCONF="tests.browser.streams_site",
    ASGI_APPLICATION="tests.browser.streams_site.application",
    CHANNEL_LAYERS={"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}},
    CHANNELS_APP_STREAMS={"DEFAULT_HISTORY": {"MAX_MESSAGES": 30, "MAX_AGE": 600}},
)
class StreamClientClosedByTheApplication(BrowserTestCase):
    """A server of its own: what these tests leave on the server (presence,
    positions) cannot reach the tests above."""

    get = StreamClientInChromium.get
    open = StreamClientInChromium.open
    wait_for_event = StreamClientInChromium.wait_for_event
    async_get = StreamClientInChromium.async_get

    async def test_close_in_a_disconnected_listener_stops_the_retries(self):
        async with self.open_browser() as browser:
            page = await self.open(browser)
            # What a page falling back to another transport does.
            await page.evaluate(
                "client.addEventListener('disconnected', () => client.close())"
            )
            await self.async_get("/kick/")
            await self.wait_for_event(page, "disconnected")
            # lost() runs to its end before anything else: a retry it
            # scheduled after the listener would be there by now.
            assert await page.evaluate(
                "client.reconnectTimer === null && client.socket === null"
            )
