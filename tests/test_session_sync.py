"""Login and logout over a WebSocket, then the browser's cookie is synced.

Runs the auth site in-process (Django views through Django's ASGI handler,
AccountConsumer through AuthMiddlewareStack) on every real session engine.
"""

import asyncio
import json
import threading

import pytest
from django.conf import settings as django_settings
from django.core import signing
from django.db import connections
from django.test import RequestFactory

from channels_app import session_sync
from tests.auth_support import SERVER_SIDE, Browser, all_databases, ask

pytestmark = all_databases


async def login_over_socket(browser, password="alice-pw"):
    socket = browser.websocket()
    assert (await socket.connect(timeout=10))[0]
    reply = await ask(socket, action="login", username="alice", password=password)
    return socket, reply


@pytest.fixture
def server_side_site(site, alice, session_engine):
    """The site on engines that keep sessions server-side (not signed cookies)."""
    if session_engine not in SERVER_SIDE:
        pytest.skip("signed cookies keep nothing server-side: no single use, no key")
    return site


async def logged_in_over_socket(application):
    """A browser that has visited the site, and the reply to its socket login."""
    browser = Browser(application)
    await browser.whoami()
    socket, reply = await login_over_socket(browser)
    await socket.disconnect()
    return browser, reply


async def test_login_over_websocket_then_http_sees_the_user(
    site,
    alice,
    session_engine,
):
    browser = Browser(site)
    assert await browser.whoami() is None
    anonymous_key = browser.cookies["sessionid"]

    socket, reply = await login_over_socket(browser)
    assert reply["user"] == "alice"
    # The cookie cannot change on an open socket: HTTP is still anonymous.
    assert await browser.whoami() is None
    browser.cookies["sessionid"] = anonymous_key

    synced = await browser.sync(reply["ticket"])
    assert synced["status"] == 200, synced
    assert synced["json"]["authenticated"] is True
    logged_in_key = browser.cookies["sessionid"]
    assert logged_in_key != anonymous_key
    assert await browser.whoami() == "alice"

    # A second connection with the synced cookie is alice too...
    second = browser.websocket()
    assert (await second.connect(timeout=10))[0]
    assert (await ask(second, action="whoami"))["user"] == "alice"
    await second.disconnect()
    # ...and one with the cookie from before the login is not (no fixation).
    old = browser.websocket(
        cookies=[(b"cookie", f"sessionid={anonymous_key}".encode())]
    )
    assert (await old.connect(timeout=10))[0]
    assert (await ask(old, action="whoami"))["user"] is None
    await old.disconnect()

    # Logout on the first socket; its ticket binds to the synced cookie.
    reply = await ask(socket, action="logout")
    assert reply["user"] is None
    await socket.disconnect()
    synced = await browser.sync(reply["ticket"])
    assert synced["status"] == 200, synced
    assert synced["json"]["authenticated"] is False
    assert "sessionid" not in browser.cookies
    assert await browser.whoami() is None

    stale = browser.websocket(
        cookies=[(b"cookie", f"sessionid={logged_in_key}".encode())]
    )
    assert (await stale.connect(timeout=10))[0]
    who = (await ask(stale, action="whoami"))["user"]
    await stale.disconnect()
    if session_engine in SERVER_SIDE:
        assert who is None  # Logout invalidated the key.
    else:
        # Django's signed-cookie sessions cannot be revoked server-side: the
        # copy the browser dropped would still work if someone kept it.
        assert who == "alice"


async def test_a_ticket_works_once(server_side_site):
    browser = Browser(server_side_site)
    await browser.whoami()
    before = dict(browser.cookies)
    socket, reply = await login_over_socket(browser)
    await socket.disconnect()
    assert (await browser.sync(reply["ticket"]))["status"] == 200
    browser.cookies = before  # Replay from the same browser state.
    again = await browser.sync(reply["ticket"])
    assert again["status"] == 400
    assert "already used" in again["json"]["error"]


async def test_a_ticket_is_bound_to_the_browser_that_asked(server_side_site):
    victim, reply = await logged_in_over_socket(server_side_site)

    thief = Browser(server_side_site)
    await thief.whoami()  # Own session and CSRF cookie, so only the binding differs.
    stolen = await thief.sync(reply["ticket"])
    assert stolen["status"] == 400
    assert "another browser" in stolen["json"]["error"]
    assert await thief.whoami() is None
    # The failed attempt did not use the ticket up.
    assert (await victim.sync(reply["ticket"]))["status"] == 200
    assert await victim.whoami() == "alice"


async def test_a_browser_without_a_session_gets_a_ticket_only_it_can_redeem(
    server_side_site,
):
    victim = Browser(server_side_site)
    await victim.request("GET", "/login-page/")
    assert "sessionid" not in victim.cookies
    assert session_sync.BINDING_COOKIE_NAME in victim.cookies
    socket, reply = await login_over_socket(victim)
    await socket.disconnect()

    # Another browser on the login page, and one that dropped the binding
    # cookie: neither can use the ticket (both had matched an empty binding).
    thief = Browser(server_side_site)
    await thief.request("GET", "/login-page/")
    cookieless = Browser(server_side_site)
    await cookieless.request("GET", "/login-page/")
    del cookieless.cookies[session_sync.BINDING_COOKIE_NAME]
    for browser in (thief, cookieless):
        stolen = await browser.sync(reply["ticket"])
        assert stolen["status"] == 400
        assert "another browser" in stolen["json"]["error"]
        assert await browser.whoami() is None

    assert (await victim.sync(reply["ticket"]))["status"] == 200
    assert await victim.whoami() == "alice"


async def test_no_ticket_for_a_socket_without_a_secret_cookie(server_side_site):
    browser = Browser(server_side_site)  # never loaded a page of the site
    socket = browser.websocket()
    assert (await socket.connect(timeout=10))[0]
    with pytest.raises(ValueError, match="ensure_sync_binding"):
        await ask(socket, action="login", username="alice", password="alice-pw")


async def test_two_processes_never_both_redeem_one_ticket(server_side_site):
    """Each ticket is redeemed by two threads at once (as by two servers)."""
    store_class = session_sync.session_store_class()
    cookies = {"sessionid": "the-browsers-cookie"}
    tickets = []
    for n in range(20):
        session = store_class()
        session["n"] = n
        await asyncio.to_thread(session.save)
        scope = {"session": session, "cookies": dict(cookies)}
        tickets.append(await session_sync.create_sync_ticket(scope))

    def redeem(ticket, barrier):
        request = RequestFactory().post("/session-sync/")
        request.COOKIES = dict(cookies)
        barrier.wait()
        try:
            session_sync.redeem_sync_ticket(request, ticket)
            return True
        except session_sync.InvalidSyncTicket:
            return False
        finally:
            connections.close_all()

    for ticket in tickets:
        barrier = threading.Barrier(2)
        outcomes = await asyncio.gather(
            asyncio.to_thread(redeem, ticket, barrier),
            asyncio.to_thread(redeem, ticket, barrier),
        )
        assert sorted(outcomes) == [False, True]


async def test_expired_and_tampered_tickets_are_refused(
    site,
    alice,
    monkeypatch,
):
    browser, reply = await logged_in_over_socket(site)
    ticket = reply["ticket"]

    tampered = await browser.sync(ticket[:-2] + ("AA" if ticket[-2:] != "AA" else "BB"))
    assert tampered["status"] == 400
    assert "not valid" in tampered["json"]["error"]
    assert (await browser.sync("garbage"))["status"] == 400

    monkeypatch.setattr(session_sync, "TICKET_MAX_AGE", -1)
    expired = await browser.sync(ticket)
    assert expired["status"] == 400
    assert "expired" in expired["json"]["error"]
    assert await browser.whoami() is None


async def test_the_ticket_does_not_reveal_the_session_key(server_side_site):
    browser, reply = await logged_in_over_socket(server_side_site)
    payload = signing.loads(reply["ticket"], salt="channels_app.session_sync")
    assert (await browser.sync(reply["ticket"]))["status"] == 200
    key = browser.cookies["sessionid"]
    assert key not in reply["ticket"]
    assert key not in json.dumps(payload)


async def test_sync_view_needs_post_and_the_csrf_token(site, alice):
    browser, reply = await logged_in_over_socket(site)
    assert (await browser.request("GET", "/session-sync/"))["status"] == 405
    forged = await browser.request(
        "POST",
        "/session-sync/",
        {"ticket": reply["ticket"]},
        headers=[(b"x-csrftoken", b"x" * 32)],
    )
    # Cross-site forms cannot know the token: no login CSRF through the view.
    assert forged["status"] == 403


async def test_sync_rotates_the_csrf_token(site, alice):
    browser = Browser(site)
    await browser.whoami()
    old_csrf = browser.cookies["csrftoken"]
    socket, reply = await login_over_socket(browser)
    await socket.disconnect()
    synced = await browser.sync(reply["ticket"])
    assert browser.cookies["csrftoken"] != old_csrf
    assert synced["json"]["csrftoken"]
    assert (await browser.whoami()) == "alice"


async def test_cookie_from_sync_follows_the_session_settings(
    site,
    alice,
    settings,
):
    settings.SESSION_COOKIE_AGE = 600
    settings.SESSION_COOKIE_SAMESITE = "Strict"
    browser, reply = await logged_in_over_socket(site)
    synced = await browser.sync(reply["ticket"])
    [header] = [
        value.decode()
        for name, value in synced["headers"]
        if name.lower() == b"set-cookie" and value.startswith(b"sessionid=")
    ]
    assert "Max-Age=600" in header
    assert "SameSite=Strict" in header
    assert "HttpOnly" in header
    assert django_settings.SESSION_COOKIE_NAME == "sessionid"
