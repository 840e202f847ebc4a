"""Streams through a real Daphne server and real WebSocket clients: a client
that goes away, misses messages and comes back with its last position gets
exactly the missed ones, then live ones."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
import websockets

from tests.servers import start_server
from tests.services import REDIS_URL, require
from tests.streams.backends import new_prefix

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["memory", "database", "redis"])
def site(request, tmp_path):
    """``site()`` starts the streams site (again, for a restart) on one backend."""
    environment = {
        "DJANGO_SETTINGS_MODULE": "tests.streamsite.settings",
        "STREAMSITE_BACKEND": request.param,
    }
    if request.param == "redis":
        require("redis")
        environment.update(
            STREAMSITE_REDIS_URL=REDIS_URL, STREAMSITE_REDIS_PREFIX=new_prefix()
        )
    servers = []

    def start():
        if servers:
            servers[-1].stop()
        server = start_server(
            "daphne",
            tmp_path,
            application="tests.streamsite.asgi:application",
            **environment,
        )
        servers.append(server)
        return server

    start.backend = request.param
    yield start
    servers[-1].stop()
    if request.param == "redis":
        from asgiref.sync import async_to_sync

        from tests.streams.conftest import delete_prefixed

        async_to_sync(delete_prefixed)(environment["STREAMSITE_REDIS_PREFIX"])


def post(server, stream, data):
    request = urllib.request.Request(
        f"{server.url}/publish/{stream}/",
        data=json.dumps(data).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def publish(server, stream, count, start):
    return [
        await asyncio.to_thread(post, server, stream, {"n": n})
        for n in range(start, start + count)
    ]


async def receive(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def nothing_more(ws, period=0.3):
    """Whether nothing arrives for ``period`` seconds (a deliberate wait)."""
    try:
        frame = await asyncio.wait_for(ws.recv(), period)
    except TimeoutError:
        return True
    pytest.fail(f"unexpected frame {frame!r}")


async def subscribe(server, since=None):
    ws = await websockets.connect(f"{server.ws_url}/ws/feed/")
    frame = {"type": "stream.subscribe", "stream": "feed.news"}
    if since is not None:
        frame["since"] = since
    await ws.send(json.dumps(frame))
    return ws, await receive(ws)


async def test_a_client_that_reconnects_gets_exactly_what_it_missed(site):
    server = site()
    ws, subscribed = await subscribe(server)
    assert (subscribed["type"], subscribed["recovery"]) == ("stream.subscribed", "none")
    await publish(server, "feed.news", 5, start=0)
    seen = [await receive(ws) for _ in range(5)]
    assert [f["data"]["n"] for f in seen] == [0, 1, 2, 3, 4]
    last = {"epoch": seen[-1]["epoch"], "offset": seen[-1]["offset"]}
    await ws.close()

    missed = await publish(server, "feed.news", 10, start=5)  # while away

    ws, subscribed = await subscribe(server, since=last)
    assert subscribed["recovery"] == "recovered"
    replayed = [await receive(ws) for _ in range(10)]
    assert [f["type"] for f in replayed] == ["stream.message"] * 10
    assert [f["data"]["n"] for f in replayed] == list(range(5, 15))
    assert [f["offset"] for f in replayed] == [p["offset"] for p in missed]
    assert await nothing_more(ws)
    await publish(server, "feed.news", 1, start=15)
    live = await receive(ws)
    assert (live["offset"], live["data"]) == (16, {"n": 15})
    await ws.close()


async def test_after_a_server_restart_recovery_depends_on_the_store(site):
    """Redis and the database keep the history across a restart; memory
    cannot, and says so."""
    server = site()
    ws, _ = await subscribe(server)
    await publish(server, "feed.news", 3, start=0)
    seen = [await receive(ws) for _ in range(3)]
    last = {"epoch": seen[-1]["epoch"], "offset": seen[-1]["offset"]}
    await ws.close()

    server = site()  # restarted
    await publish(server, "feed.news", 2, start=3)
    ws, subscribed = await subscribe(server, since=last)
    if site.backend in ("redis", "database"):
        assert subscribed["recovery"] == "recovered"
        replayed = [await receive(ws) for _ in range(2)]
        assert [f["data"]["n"] for f in replayed] == [3, 4]
    else:
        assert subscribed["recovery"] == "epoch_changed"
        assert subscribed["epoch"] != last["epoch"]
        assert subscribed["offset"] == 2  # live messages continue after it
    assert await nothing_more(ws)
    await ws.close()
