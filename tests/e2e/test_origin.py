"""Origin checks and bad cookies through a real Daphne server."""

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.authsite_server import Client, ask, start_authsite

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_authsite(tmp_path_factory.mktemp("origin"), "db")
    yield server
    server.stop()


async def refused_status(client, **kwargs):
    with pytest.raises(InvalidStatus) as refused:
        async with client.websocket(**kwargs):
            pass
    return refused.value.response.status_code


async def test_cross_origin_handshake_is_rejected(server):
    client = Client(server)
    assert await refused_status(client, origin="http://evil.example") == 403
    assert "Refused a WebSocket handshake" in server.log()
    assert "http://evil.example" in server.log()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_same_origin_handshake_is_accepted(server, host):
    client = Client(server)
    async with client.websocket(origin=f"http://{host}:{server.port}") as ws:
        assert await ask(ws, action="whoami") == {"user": None}


async def test_missing_origin_is_rejected_unless_the_route_allows_it(server):
    client = Client(server)
    assert await refused_status(client, origin=None) == 403
    async with client.websocket("/ws/account/native/", origin=None) as ws:
        assert await ask(ws, action="whoami") == {"user": None}
    # The native route still checks browsers that do send an Origin.
    assert (
        await refused_status(
            client, path="/ws/account/native/", origin="http://evil.example"
        )
        == 403
    )


@pytest.mark.parametrize("origin", ["null", "http://127.0.0.1.evil.example"])
async def test_lookalike_and_null_origins_are_rejected(server, origin):
    assert await refused_status(Client(server), origin=origin) == 403


@pytest.mark.parametrize(
    "cookie",
    [
        "sessionid=abc; pad=" + "x" * 10_000,  # Over 8 KiB: ignored.
        "sessionid=not-a-real-session-key",
        "sessionid=" + "9" * 3000,
        'sessionid="unterminated; ;;==; csrftoken',
        "sessionid=%00%01; sessionid=ünï",
    ],
)
async def test_bad_cookies_are_anonymous_and_leave_no_traceback(server, cookie):
    client = Client(server)
    async with client.websocket(cookie=cookie) as ws:
        assert await ask(ws, action="whoami") == {"user": None}
    # The server is still fine for the next client.
    async with client.websocket() as ws:
        assert await ask(ws, action="whoami") == {"user": None}
    assert "Traceback" not in server.log()


async def test_oversized_cookie_header_is_ignored_with_a_warning(server):
    client = Client(server)
    async with client.websocket(cookie="pad=" + "x" * 9000) as ws:
        assert await ask(ws, action="whoami") == {"user": None}
    assert "Ignoring a 9004-byte Cookie header on /ws/account/" in server.log()
