"""The demo project's consumers through real servers (Daphne, uvicorn, gunicorn
running uvicorn workers), real clients."""

import asyncio
import json
import urllib.request

import pytest
import websockets

from tests.servers import start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["daphne", "uvicorn", "gunicorn"])
def server(request, tmp_path_factory):
    server = start_server(request.param, tmp_path_factory.mktemp(request.param))
    yield server
    server.stop()


async def test_websocket_echo_over_the_network(server):
    async with websockets.connect(f"{server.ws_url}/ws/echo/") as ws:
        for text in ["hello", "ünïcode ✓", json.dumps({"n": 1})]:
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), 10) == text
        await ws.send(b"\x00\x01binary")
        assert await asyncio.wait_for(ws.recv(), 10) == b"\x00\x01binary"


async def test_many_concurrent_echo_clients(server):
    async def client(n):
        async with websockets.connect(f"{server.ws_url}/ws/echo/") as ws:
            for i in range(20):
                await ws.send(f"{n}:{i}")
                assert await ws.recv() == f"{n}:{i}"

    await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(20))), 30)


async def test_unknown_websocket_path_is_refused(server):
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(f"{server.ws_url}/ws/nowhere/"):
            pass


def test_server_sent_events_stream_over_http(server):
    request = urllib.request.Request(f"{server.url}/stream/countdown/?n=3")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream"
        first = response.readline()
        assert first == b"event: tick\n"
        rest = response.read()
    events = (first + rest).decode().strip().split("\n\n")
    assert [e.splitlines()[-1] for e in events] == ["data: 3", "data: 2", "data: 1"]


def test_django_view_is_served_alongside(server):
    with urllib.request.urlopen(f"{server.url}/health/", timeout=10) as response:
        assert response.read() == b"channels_app demo is running\n"
