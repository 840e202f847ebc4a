"""Login over a WebSocket, cookie sync over HTTP: real servers, real clients."""

import pytest

from tests.e2e.authsite_server import Client, ask, start_authsite

pytestmark = pytest.mark.e2e


@pytest.fixture(
    scope="module",
    params=[("db", "daphne"), ("signed_cookies", "daphne"), ("db", "uvicorn")],
    ids=["db-daphne", "signed_cookies-daphne", "db-uvicorn"],
)
def server(request, tmp_path_factory):
    engine, kind = request.param
    server = start_authsite(tmp_path_factory.mktemp("sync"), engine, kind)
    server.engine = engine
    yield server
    server.stop()


async def test_websocket_login_reaches_http_after_the_sync(server):
    client = Client(server)
    assert await client.whoami() is None
    anonymous = client.cookie_header()

    async with client.websocket() as ws:
        reply = await ask(ws, action="login", username="alice", password="alice-pw")
        assert reply["user"] == "alice"
        status, body = await client.sync(reply["ticket"])
        assert (status, body["authenticated"]) == (200, True)
        assert await client.whoami() == "alice"
        logged_in = client.cookie_header()

        async with client.websocket() as second:
            assert await ask(second, action="whoami") == {"user": "alice"}
        async with client.websocket(cookie=anonymous) as old:
            assert await ask(old, action="whoami") == {"user": None}

        reply = await ask(ws, action="logout")
        assert reply["user"] is None
        status, body = await client.sync(reply["ticket"])
        assert (status, body["authenticated"]) == (200, False)
    assert client.cookie("sessionid") is None
    assert await client.whoami() is None

    async with client.websocket(cookie=logged_in) as stale:
        who = (await ask(stale, action="whoami"))["user"]
    # A signed cookie cannot be revoked server-side (Django's own limit).
    assert who == (None if server.engine == "db" else "alice")
    assert "Traceback" not in server.log()


async def test_wrong_password_logs_nobody_in(server):
    client = Client(server)
    async with client.websocket() as ws:
        reply = await ask(ws, action="login", username="alice", password="nope")
    assert reply == {"error": "invalid credentials"}
    assert await client.whoami() is None


async def test_a_refused_ticket_changes_nothing(server):
    client = Client(server)
    await client.whoami()
    status, body = await client.sync("forged-ticket")
    assert status == 400
    assert "not valid" in body["error"]
    assert await client.whoami() is None


async def test_tampered_session_cookie_is_anonymous(server):
    client = Client(server)
    await client.whoami()
    async with client.websocket() as ws:
        reply = await ask(ws, action="login", username="alice", password="alice-pw")
    await client.sync(reply["ticket"])
    value = client.cookie("sessionid")
    tampered = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    async with client.websocket(cookie=f"sessionid={tampered}") as ws:
        assert await ask(ws, action="whoami") == {"user": None}
    async with client.websocket(cookie=f"sessionid={value}") as ws:
        assert await ask(ws, action="whoami") == {"user": "alice"}
    assert "Traceback" not in server.log()
