"""Every way a consumer ends a WebSocket, through real Daphne and uvicorn.

What a browser sees when a consumer closes is decided by the server, and
servers differ: Daphne (Autobahn) refuses close codes other than 1000 and
3000-4999, where uvicorn sends any the RFC allows.  So each path runs under
both, with a real client, checking the close code the client receives and
that the server logged no traceback.  The consumers are in
``tests/compat/consumer_site.py``, written as Channels documents them.
"""

import asyncio
import json

import pytest
import websockets

from tests.servers import start_server

pytestmark = pytest.mark.e2e

#: How long a client waits for any one thing from the server.
WAIT = 10


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(request, tmp_path_factory):
    server = start_server(
        request.param,
        tmp_path_factory.mktemp(request.param),
        "tests.compat.consumer_site:application",
    )
    server.kind = request.param
    yield server
    server.stop()


@pytest.fixture
def new_log(server):
    """``new_log()``: what the server logged since the test started."""
    start = len(server.log())
    return lambda: server.log()[start:]


@pytest.fixture(params=["sync", "async"])
def flavour(request):
    return request.param


async def closed_with(ws) -> tuple[int | None, str]:
    """Wait for the server's close frame: its code and reason."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), WAIT)
    frame = closed.value.rcvd
    assert frame is not None, f"no close frame from the server: {closed.value!r}"
    return frame.code, frame.reason


def assert_no_traceback(log: str) -> None:
    assert "Traceback" not in log, log


async def test_malformed_json_closes_with_4007(server, flavour, new_log):
    async with websockets.connect(f"{server.ws_url}/ws/{flavour}/json/") as ws:
        await ws.send(json.dumps({"fine": True}))
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT)) == {"fine": True}
        await ws.send("{not json")
        code, _ = await closed_with(ws)
    assert code == 4007
    log = new_log()
    warnings = [line for line in log.splitlines() if "with code 4007" in line]
    assert len(warnings) == 1, log
    assert f"/ws/{flavour}/json/" in warnings[0] and "malformed JSON" in warnings[0]
    assert_no_traceback(log)


async def test_binary_frame_to_a_json_consumer_closes_with_4003(
    server, flavour, new_log
):
    async with websockets.connect(f"{server.ws_url}/ws/{flavour}/json/") as ws:
        await ws.send(b"\x00\x01")
        code, _ = await closed_with(ws)
    assert code == 4003
    log = new_log()
    assert "with code 4003" in log
    assert_no_traceback(log)


@pytest.mark.parametrize(
    "command, expected_code", [("close", 1000), ("close-4000", 4000)]
)
async def test_close_from_receive(server, flavour, new_log, command, expected_code):
    async with websockets.connect(f"{server.ws_url}/ws/{flavour}/closing/") as ws:
        await ws.send("still open?")
        assert await asyncio.wait_for(ws.recv(), WAIT) == "still open?"
        await ws.send(command)
        code, _ = await closed_with(ws)
    assert code == expected_code
    assert_no_traceback(new_log())


async def test_send_with_close_sends_then_closes(server, flavour, new_log):
    async with websockets.connect(f"{server.ws_url}/ws/{flavour}/closing/") as ws:
        await ws.send("send-close")
        assert await asyncio.wait_for(ws.recv(), WAIT) == "bye"
        code, _ = await closed_with(ws)
    assert code == 1000
    assert_no_traceback(new_log())


@pytest.mark.parametrize("route", ["deny", "refuse"])
async def test_refusing_in_connect_answers_the_handshake_with_403(
    server, flavour, new_log, route
):
    # DenyConnection raised, or close() called, before accept(): no WebSocket
    # is opened at all, the handshake gets an HTTP 403.
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{server.ws_url}/ws/{flavour}/{route}/"):
            pass
    assert refused.value.response.status_code == 403
    assert_no_traceback(new_log())


async def test_tutorial_sync_chat_echoes(server, new_log):
    async with websockets.connect(f"{server.ws_url}/ws/chat/lobby/") as ws:
        await ws.send(json.dumps({"message": "hello"}))
        reply = await asyncio.wait_for(ws.recv(), WAIT)
    assert json.loads(reply) == {"message": "hello"}
    assert_no_traceback(new_log())


async def test_tutorial_async_chat_reaches_everyone_in_the_room(server, new_log):
    url = f"{server.ws_url}/ws/async-chat/lobby/"
    async with websockets.connect(url) as alice, websockets.connect(url) as bob:
        await alice.send(json.dumps({"message": "hi bob"}))
        for ws in (alice, bob):
            reply = await asyncio.wait_for(ws.recv(), WAIT)
            assert json.loads(reply) == {"message": "hi bob"}
    assert_no_traceback(new_log())


async def test_as_asgi_keywords_configure_each_route(server):
    for route, greeting in [("greet", "hello"), ("greet-fr", "bonjour")]:
        async with websockets.connect(f"{server.ws_url}/ws/{route}/") as ws:
            await ws.send("ada")
            assert await asyncio.wait_for(ws.recv(), WAIT) == f"{greeting}, ada"


async def test_accept_headers_given_as_lists(server, new_log):
    async with websockets.connect(f"{server.ws_url}/ws/headers/") as ws:
        sent = ws.response.headers.get("x-compat")
    # uvicorn sends accept()'s headers; Daphne ignores them (it takes only the
    # subprotocol from websocket.accept), but still accepts the connection.
    assert sent == {"uvicorn": "as-given", "daphne": None}[server.kind]
    assert_no_traceback(new_log())
