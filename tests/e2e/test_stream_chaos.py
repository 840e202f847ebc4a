"""Chaos: streams keep every client whole while connections and servers die.

Two ``runserver`` processes share a layer and a stream store (the database
layer on PostgreSQL, then channels_redis with the Redis store).  Three real
WebSocket clients, each behaving as ``streams.js`` does (resubscribe with
the last position, keep the highest offset), and Chromium running
``streams.js`` itself, read one stream while 2,000 messages are published.
Meanwhile each client's connection is cut at random moments, one server is
killed with SIGKILL and replaced every 500 messages, and Chromium goes
offline (Playwright's emulation) and back at random.  Every client must end
with all 2,000 messages, in publish order, none shown twice.

The browser reads from the server that is never killed (a page cannot
follow its origin to a new port); publishing goes through it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import urllib.request

import pytest
import websockets

from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS, chromium_available
from tests.services import IN_CI
from tests.serving import E2EProject
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

STREAM = "chaos.room"
TOTAL = 2000
BATCH = 50
KILL_EVERY = 500  # messages between two kills of a server
CLIENTS = 3


@pytest.fixture(params=["postgres", "redis"])
def project(request, tmp_path):
    project = E2EProject(tmp_path, request.param)
    yield project
    project.stop_all()


def publish(server, start: int, count: int) -> list[int]:
    url = f"{server.url}/e2e/publish/{STREAM}/?start={start}&count={count}"
    with urllib.request.urlopen(url, timeout=30) as response:
        offsets: list[int] = json.loads(response.read())["offsets"]
        return offsets


class Client:
    """A stream reader that reconnects and recovers, as streams.js does."""

    def __init__(self, name: str, servers: list, rng: random.Random) -> None:
        self.name = name
        self.servers = servers
        self.rng = rng
        self.position: dict | None = None
        self.shown: list[int] = []
        self.connections = 0
        self.cuts = 0
        self.problems: list[str] = []
        self.subscribed = False

    async def run(self) -> None:
        while len(self.shown) < TOTAL:
            server = self.rng.choice(self.servers)
            try:
                async with websockets.connect(
                    f"{server.ws_url}/ws/feed/", open_timeout=5
                ) as ws:
                    self.connections += 1
                    await self.read(ws)
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
                pass  # a server killed, a cut: come back, as the client would
            await asyncio.sleep(self.rng.uniform(0, 0.2))  # the back-off

    async def read(self, ws) -> None:
        frame: dict = {"type": "stream.subscribe", "stream": STREAM}
        if self.position is not None:
            frame["since"] = self.position
        await ws.send(json.dumps(frame))
        # This connection is cut after a random while (the client's network).
        cut = asyncio.get_running_loop().call_later(
            self.rng.uniform(0.1, 1.5), self.cut, ws
        )
        try:
            while len(self.shown) < TOTAL:
                self.handle(json.loads(await asyncio.wait_for(ws.recv(), 20)))
        finally:
            cut.cancel()

    def cut(self, ws) -> None:
        self.cuts += 1
        ws.transport.abort()

    def handle(self, frame: dict) -> None:
        kind = frame["type"]
        if kind == "stream.subscribed":
            if frame["recovery"] not in ("none", "recovered"):
                self.problems.append(f"recovery impossible: {frame}")
            # As streams.js: continue from where the server says, so a cut
            # before the first message still recovers from offset 0.
            self.position = {"epoch": frame["epoch"], "offset": frame["offset"]}
            self.subscribed = True
        elif kind == "stream.gap":
            self.problems.append(f"gap: {frame}")
        elif kind == "stream.message":
            last = self.position
            if last and last["epoch"] == frame["epoch"]:
                if frame["offset"] <= last["offset"]:
                    return  # seen before the reconnect: shown once only
                if frame["offset"] != last["offset"] + 1:
                    self.problems.append(f"skipped to {frame['offset']} after {last}")
            self.position = {"epoch": frame["epoch"], "offset": frame["offset"]}
            self.shown.append(frame["data"]["n"])


@contextlib.asynccontextmanager
async def chromium_page(url: str):
    """A Chromium page at ``url``; without Chromium the test skips (fails in CI)."""
    if not chromium_available():
        reason = f"Chromium is not installed at {CHROMIUM}: apt-get install chromium"
        if IN_CI:
            raise RuntimeError(f"CI=true and Chromium is missing: {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(url)
            yield page
        finally:
            await browser.close()


async def test_every_client_gets_every_message_once_in_order(project):
    # servers[0] is killed and replaced; servers[1] stays (the browser's).
    servers = [project.runserver("--noworker") for _ in range(2)]
    rng = random.Random(20261203)
    clients = [Client(f"client{n}", servers, rng) for n in range(CLIENTS)]
    async with chromium_page(f"{servers[1].url}/e2e/feed-page/") as page:
        # Subscribers before anything is published, so history covers it all.
        readers = [asyncio.create_task(client.run()) for client in clients]
        await eventually(lambda: all(c.subscribed for c in clients), 30)
        await page.wait_for_function("window.seen !== undefined")

        offline = False
        for start in range(0, TOTAL, BATCH):
            if start and start % KILL_EVERY == 0:
                # Kill a server (its clients lose their connections) and
                # start its replacement; publishing goes on through the other.
                await asyncio.to_thread(servers[0].stop, signal.SIGKILL)
                servers[0] = await asyncio.to_thread(project.runserver, "--noworker")
            if rng.random() < 0.3:  # the browser's network comes and goes
                offline = not offline
                gone = await page.evaluate("window.seen.disconnects")
                await page.context.set_offline(offline)
                if offline:  # publish only once the page knows it is cut off
                    await page.wait_for_function(
                        f"window.seen.disconnects > {gone}", timeout=15000
                    )
            offsets = await asyncio.to_thread(publish, servers[1], start, BATCH)
            assert len(offsets) == BATCH
        await page.context.set_offline(False)

        await asyncio.wait_for(asyncio.gather(*readers), 120)
        try:
            await page.wait_for_function(
                f"window.seen.messages.length >= {TOTAL}", timeout=60000
            )
        finally:
            browser_saw = await page.evaluate("window.seen")
            missing = sorted(set(range(TOTAL)) - set(browser_saw["messages"]))
            print(
                f"browser: {len(browser_saw['messages'])} shown, missing "
                f"{missing[:10]}, {browser_saw['disconnects']} disconnects"
            )
    for client in clients:
        assert client.problems == [], (client.name, client.problems[:3])
        assert client.shown == list(range(TOTAL)), client.name
        assert client.cuts >= 3, f"{client.name} was cut only {client.cuts} times"
    assert browser_saw["messages"] == list(range(TOTAL))
    assert browser_saw["disconnects"] >= 2, "the browser never went offline"
