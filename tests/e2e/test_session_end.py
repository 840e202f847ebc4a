"""Logging out (or changing the password) over HTTP closes the other tabs'
sockets: a real server, a real WebSocket client, real HTTP requests."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest

from tests.e2e.authsite_server import SETTINGS, Client, ask
from tests.servers import TESTPROJECT, project_env, start_server
from tests.services import REDIS_URL, require

pytestmark = pytest.mark.e2e

SESSION_ENDED = 4401


@pytest.fixture(
    scope="module",
    params=[("daphne", "inmemory"), ("daphne", "redis"), ("uvicorn", "redis")],
    ids=["daphne-inmemory", "daphne-redis", "uvicorn-redis"],
)
def server(request, tmp_path_factory):
    kind, layer = request.param
    env = {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "AUTHSITE_SESSION_ENGINE": "django.contrib.sessions.backends.db",
        "AUTHSITE_CHANNEL_LAYER": layer,
    }
    if layer == "redis":
        require("redis")
        env["AUTHSITE_REDIS_URL"] = REDIS_URL
        env["AUTHSITE_REDIS_PREFIX"] = f"sessend{uuid.uuid4().hex[:10]}"
    tmp_path = tmp_path_factory.mktemp("session-end")
    server = start_server(
        kind, tmp_path, application="tests.authsite.asgi:application", **env
    )
    server.tmp_path, server.env = tmp_path, env
    yield server
    server.stop()


@pytest.fixture
def user(server):
    """A fresh user (name, password) on the server's database."""
    name = f"u{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            f"User.objects.create_user({name!r}, password='pw-1')",
        ],
        cwd=TESTPROJECT,
        env=project_env(server.tmp_path, **server.env),
        check=True,
    )
    return name, "pw-1"


async def logged_in(server, user) -> Client:
    client = Client(server)
    await client.whoami()  # a CSRF cookie first
    name, password = user
    status, body = await asyncio.to_thread(
        client._request, "/http-login/", {"username": name, "password": password}
    )
    assert (status, body) == (200, {"user": name})
    return client


async def post(client: Client, path: str, **data) -> tuple[int, dict]:
    return await asyncio.to_thread(client._request, path, data)


async def closed(ws, timeout: float = 10) -> int | None:
    """The close code the server sent (Daphne drops close reasons, so only
    the code is compared)."""
    await asyncio.wait_for(ws.wait_closed(), timeout)
    return ws.close_code


async def test_logout_over_http_closes_the_other_tabs_socket(server, user):
    browser = await logged_in(server, user)
    async with browser.websocket() as tab_one, browser.websocket() as tab_two:
        assert await ask(tab_one, action="whoami") == {"user": user[0]}
        assert await ask(tab_two, action="whoami") == {"user": user[0]}

        assert await post(browser, "/logout/") == (200, {"user": None})

        assert await closed(tab_one) == SESSION_ENDED
        assert await closed(tab_two) == SESSION_ENDED
    assert await browser.whoami() is None
    assert "Traceback" not in server.log()


async def test_another_browsers_logout_leaves_this_one_open(server, user):
    mine = await logged_in(server, user)
    theirs = await logged_in(server, user)
    async with mine.websocket() as ws:
        assert await post(theirs, "/logout/") == (200, {"user": None})
        # Still the user: the other browser's session was its own.
        assert await ask(ws, action="whoami") == {"user": user[0]}
    assert "Traceback" not in server.log()


async def test_password_change_closes_every_socket_of_the_old_sessions(server, user):
    laptop = await logged_in(server, user)
    phone = await logged_in(server, user)
    async with laptop.websocket() as laptop_ws, phone.websocket() as phone_ws:
        assert await post(laptop, "/password-change/", password="pw-2") == (
            200,
            {"user": user[0]},
        )
        # The phone's session no longer matches the password.
        assert await closed(phone_ws) == SESSION_ENDED
        # The laptop stays logged in under a new session key, so its socket,
        # opened with the old key, ends too...
        assert await closed(laptop_ws) == SESSION_ENDED
    # ...and reconnecting with the new cookie is the user again.
    assert await laptop.whoami() == user[0]
    async with laptop.websocket() as again:
        assert await ask(again, action="whoami") == {"user": user[0]}
    # (A socket, not /whoami/: that view reads its counter after Django's
    # get_user has flushed the stale session.)
    async with phone.websocket() as stale:
        assert await ask(stale, action="whoami") == {"user": None}
    assert "Traceback" not in server.log()


async def test_a_socket_that_logged_out_itself_stays_open(server, user):
    browser = await logged_in(server, user)
    async with browser.websocket() as ws, browser.websocket() as other:
        reply = await ask(ws, action="logout")
        assert reply["user"] is None
        assert await closed(other) == SESSION_ENDED
        assert await ask(ws, action="whoami") == {"user": None}
    assert "Traceback" not in server.log()
