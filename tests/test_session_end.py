"""Open sockets learn that their session ended: logout, flush, password, expiry."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth import get_user_model
from django.utils import timezone

from channels_app import session_end
from channels_app.auth import AuthMiddlewareStack, login, logout
from channels_app.db import database_sync_to_async
from channels_app.generic.http import AsyncHttpConsumer
from channels_app.generic.websocket import (
    SESSION_ENDED,
    AsyncJsonWebsocketConsumer,
    JsonWebsocketConsumer,
)
from channels_app.layers import get_channel_layer
from channels_app.sessions import SessionMiddlewareStack, session_store_class
from channels_app.testing import WebsocketCommunicator, session_cookie_header
from tests.auth_support import SERVER_SIDE, Browser, all_databases, ask
from tests.serving import redis_layers
from tests.support.waiting import eventually

pytestmark = all_databases

IN_MEMORY = {"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}}


@pytest.fixture(params=["inmemory", "redis"])
def layer(request, settings):
    settings.CHANNEL_LAYERS = (
        IN_MEMORY if request.param == "inmemory" else redis_layers()
    )
    return get_channel_layer()


@pytest.fixture
def memory_layer(settings):
    settings.CHANNEL_LAYERS = IN_MEMORY
    return get_channel_layer()


def username(user):
    return user.get_username() if user.is_authenticated else None


class Account(AsyncJsonWebsocketConsumer):
    """whoami / logout / login (by username) over the socket."""

    async def receive_json(self, content):
        action = content["action"]
        if action == "logout":
            await logout(self.scope)
        elif action == "login":
            user = await database_sync_to_async(get_user_model().objects.get)(
                username=content["username"]
            )
            await login(self.scope, user, "django.contrib.auth.backends.ModelBackend")
            await self.scope["session"].asave()
            await self.send_json(
                {
                    "user": username(self.scope["user"]),
                    "key": self.scope["session"].session_key,
                }
            )
            return
        await self.send_json({"user": username(self.scope["user"])})


class SyncAccount(JsonWebsocketConsumer):
    def receive_json(self, content):
        self.send_json({"user": username(self.scope["user"])})


class Keeps(AsyncJsonWebsocketConsumer):
    """Stays open when the session ends, and says so."""

    async def receive_json(self, content):
        await self.send_json({"user": username(self.scope["user"])})

    async def session_ended(self, reason):
        await self.send_json({"ended": reason, "user": username(self.scope["user"])})


def app(consumer=Account):
    return AuthMiddlewareStack(consumer.as_asgi())


async def connected(cookie, consumer=Account, application=None):
    communicator = WebsocketCommunicator(
        application or app(consumer), "/", headers=[cookie] if cookie else []
    )
    assert (await communicator.connect(timeout=10))[0]
    return communicator


async def closed_with(communicator, timeout=10):
    message = await communicator.receive_output(timeout)
    assert message["type"] == "websocket.close", message
    return message.get("code"), message.get("reason")


def key_of(cookie) -> str:
    _name, value = cookie
    return value.decode().split("sessionid=")[1].split(";")[0]


async def other_user(name="bob"):
    return await database_sync_to_async(get_user_model().objects.create_user)(
        name, password=f"{name}-pw"
    )


# --- logout ------------------------------------------------------------------


async def test_logout_in_another_tab_closes_this_tab(alice, layer):
    cookie = await session_cookie_header(alice)
    tab_one = await connected(cookie)
    tab_two = await connected(cookie)
    assert await ask(tab_two, action="whoami") == {"user": "alice"}

    assert await ask(tab_one, action="logout") == {"user": None}

    assert await closed_with(tab_two) == (SESSION_ENDED, "session ended: logout")
    # The tab that logged out knows it did; it stays open, anonymous.
    assert await ask(tab_one, action="whoami") == {"user": None}
    await tab_one.disconnect()


async def test_logout_over_http_closes_the_socket(site, alice, memory_layer):
    browser = Browser(site)
    await browser.whoami()
    login_reply = await browser.request(
        "POST", "/http-login/", {"username": "alice", "password": "alice-pw"}
    )
    assert login_reply["json"] == {"user": "alice"}
    socket = browser.websocket()
    assert (await socket.connect(timeout=10))[0]
    assert await ask(socket, action="whoami") == {"user": "alice"}

    response = await browser.request("POST", "/logout/")
    assert response["json"] == {"user": None}

    assert await closed_with(socket) == (SESSION_ENDED, "session ended: logout")


async def test_the_sync_consumer_closes_too(alice, memory_layer):
    cookie = await session_cookie_header(alice)
    watcher = await connected(cookie, SyncAccount)
    await ask(await connected(cookie), action="logout")
    assert (await closed_with(watcher))[0] == SESSION_ENDED


@pytest.mark.parametrize("session_engine", SERVER_SIDE, indirect=True)
async def test_a_socket_that_logged_in_is_closed_by_a_later_logout(
    alice,
    memory_layer,
):
    # Anonymous at connect; logs in over the socket itself (new key, user).
    anonymous = await connected(None)
    reply = await ask(anonymous, action="login", username="alice")
    assert reply["user"] == "alice"
    # It now follows its new session and user.
    assert len(memory_layer.groups) == 2
    # Another tab with the session the socket created logs out.
    other = await connected((b"cookie", f"sessionid={reply['key']}".encode()))
    assert await ask(other, action="logout") == {"user": None}
    assert (await closed_with(anonymous))[0] == SESSION_ENDED


@pytest.mark.parametrize("session_engine", SERVER_SIDE, indirect=True)
async def test_a_logout_of_someone_elses_session_leaves_this_socket_alone(
    alice,
    memory_layer,
):
    mine = await connected(await session_cookie_header(alice))
    theirs = await connected(await session_cookie_header(alice))
    await ask(theirs, action="logout")
    assert await ask(mine, action="whoami") == {"user": "alice"}
    assert await mine.receive_nothing()
    await mine.disconnect()


# --- flush, password change, expiry ----------------------------------------


@pytest.mark.parametrize("session_engine", ["db", "db-postgres"], indirect=True)
async def test_flushing_a_database_session_closes_its_sockets(
    alice,
    memory_layer,
):
    cookie = await session_cookie_header(alice)
    socket = await connected(cookie)

    def flush():
        store = session_store_class()(key_of(cookie))
        store.load()
        store.flush()

    await database_sync_to_async(flush)()
    assert await closed_with(socket) == (SESSION_ENDED, "session ended: deleted")


async def test_end_session_reaches_every_engine(alice, memory_layer):
    cookie = await session_cookie_header(alice)
    socket = await connected(cookie)
    await database_sync_to_async(session_end.end_session)(key_of(cookie), "revoked")
    assert await closed_with(socket) == (SESSION_ENDED, "session ended: revoked")


async def test_password_change_closes_the_users_other_sessions(
    alice,
    layer,
):
    phone = await connected(await session_cookie_header(alice))
    laptop = await connected(await session_cookie_header(alice))
    bob = await connected(await session_cookie_header(await other_user()))

    def change_password():
        alice.set_password("new-pw")
        alice.save()

    await database_sync_to_async(change_password)()

    for socket in (phone, laptop):
        assert await closed_with(socket) == (
            SESSION_ENDED,
            "session ended: password_changed",
        )
    assert await ask(bob, action="whoami") == {"user": "bob"}
    await bob.disconnect()


async def test_saving_a_user_without_a_new_password_closes_nothing(
    alice,
    memory_layer,
):
    socket = await connected(await session_cookie_header(alice))

    def edit_profile():
        alice.first_name = "Alice"
        alice.save()

    await database_sync_to_async(edit_profile)()
    assert await ask(socket, action="whoami") == {"user": "alice"}
    assert await socket.receive_nothing()
    await socket.disconnect()


@pytest.mark.parametrize(
    "session_engine", ["db", "db-postgres", "cache-redis", "file"], indirect=True
)
async def test_a_session_that_expires_closes_its_sockets(alice, memory_layer):
    cookie = await session_cookie_header(alice)

    def expire_soon():
        store = session_store_class()(key_of(cookie))
        store.load()
        store.set_expiry(timezone.now() + timedelta(seconds=2))
        store.save()

    await database_sync_to_async(expire_soon)()
    socket = await connected(cookie)
    assert await ask(socket, action="whoami") == {"user": "alice"}
    assert await closed_with(socket, timeout=15) == (
        SESSION_ENDED,
        "session ended: expired",
    )


@pytest.mark.parametrize("session_engine", ["db"], indirect=True)
async def test_a_session_extended_before_its_expiry_stays_open(
    alice,
    memory_layer,
):
    cookie = await session_cookie_header(alice)
    store = session_store_class()(key_of(cookie))

    def set_expiry(seconds):
        store.load()
        store.set_expiry(seconds)
        store.save()

    await database_sync_to_async(set_expiry)(2)
    socket = await connected(cookie)
    await database_sync_to_async(set_expiry)(3600)  # activity in another tab
    # The re-check at the old expiry finds it alive: the socket stays.
    checks = []
    original = session_end.session_still_holds

    def spy(*args):
        checks.append(original(*args))
        return checks[-1]

    session_end.session_still_holds = spy
    try:
        assert await socket.receive_nothing(timeout=4, interval=0.1)
    finally:
        session_end.session_still_holds = original
    assert checks == [True]
    assert await ask(socket, action="whoami") == {"user": "alice"}
    await socket.disconnect()


# --- overriding, no layer, cost ----------------------------------------------


async def test_session_ended_can_be_overridden(alice, memory_layer):
    cookie = await session_cookie_header(alice)
    keeper = await connected(cookie, Keeps)
    await ask(await connected(cookie), action="logout")
    assert await keeper.receive_json_from(timeout=10) == {
        "ended": "logout",
        "user": None,
    }
    # Still open, and no longer acting as alice.
    assert await ask(keeper, action="whoami") == {"user": None}
    assert await keeper.receive_nothing()
    await keeper.disconnect()


async def test_without_a_layer_consumers_work_and_learn_nothing(
    alice,
    settings,
):
    settings.CHANNEL_LAYERS = {}
    cookie = await session_cookie_header(alice)
    socket = await connected(cookie)
    await ask(await connected(cookie), action="logout")
    assert await ask(socket, action="whoami") == {"user": "alice"}
    await socket.disconnect()


class CountingStore:
    """Counts loads of the configured session store class."""

    def __init__(self, monkeypatch):
        self.loads = 0
        cls = session_store_class()
        original = cls.load

        def load(store):
            self.loads += 1
            return original(store)

        monkeypatch.setattr(cls, "load", load)


@pytest.mark.parametrize("session_engine", ["db"], indirect=True)
async def test_a_connection_costs_two_groups_and_nothing_per_frame(
    alice,
    memory_layer,
    monkeypatch,
):
    cookie = await session_cookie_header(alice)
    socket = await connected(cookie)
    memberships = {
        group: set(members) for group, members in memory_layer.groups.items()
    }
    assert len(memberships) == 2
    assert all(len(members) == 1 for members in memberships.values())
    # Named from hashes: neither the session key nor the user id shows.
    key = key_of(cookie)
    assert not any(key in group for group in memberships)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    assert f"channels_app.session.{digest}" in memberships

    calls = []
    for name in ("group_add", "group_discard", "group_send", "send"):
        original = getattr(memory_layer, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(memory_layer, name, spy)
    counting = CountingStore(monkeypatch)
    for _ in range(20):
        assert await ask(socket, action="whoami") == {"user": "alice"}
    assert (calls, counting.loads) == ([], 0)

    await socket.disconnect()
    assert calls == ["group_discard", "group_discard"]
    assert not any(memory_layer.groups.values())


async def test_anonymous_connections_cost_at_most_one_group(memory_layer, settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    no_cookie = await connected(None)
    assert not memory_layer.groups

    def anonymous_session():
        store = session_store_class()()
        store["cart"] = [1]
        store.save()
        return store.session_key

    key = await database_sync_to_async(anonymous_session)()
    with_session = await connected((b"cookie", f"sessionid={key}".encode()))
    assert len(memory_layer.groups) == 1
    await with_session.disconnect()
    await no_cookie.disconnect()


async def test_a_stale_cookie_without_auth_middleware_is_not_ended(
    memory_layer,
    settings,
):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"

    class Plain(AsyncJsonWebsocketConsumer):
        async def receive_json(self, content):
            await self.send_json({"ok": True})

    application = SessionMiddlewareStack(Plain.as_asgi())
    cookie = (b"cookie", b"sessionid=nosuchsessionkey123")
    socket = await connected(cookie, application=application)
    # The timer looks the unvalidated key up, finds nothing and stops
    # following it -- without ending a session that never was.
    await eventually(
        lambda: not any(memory_layer.groups.values()),
        timeout=10,
        describe=lambda: dict(memory_layer.groups),
    )
    assert await ask(socket) == {"ok": True}
    await socket.disconnect()


def test_group_names_are_valid_layer_group_names():
    from channels_app.layers import InMemoryChannelLayer

    class User:
        class _meta:
            label_lower = "auth.user"

            class pk:
                @staticmethod
                def value_to_string(user):
                    return "ünïcode id/with spaces"

    layer = InMemoryChannelLayer()
    assert layer.require_valid_group_name(session_end.session_group("x" * 4000))
    assert layer.require_valid_group_name(session_end.user_group(User()))


# --- streaming HTTP responses ------------------------------------------------


class Stream(AsyncHttpConsumer):
    """An event stream that stays open until something ends it."""

    async def handle(self, body):
        await self.send_headers(headers=[(b"content-type", b"text/event-stream")])
        await self.send_event(username(self.scope["user"]) or "-", event="hello")


class KeepsStreaming(Stream):
    async def session_ended(self, reason):
        await self.send_event(reason, event="ended")


async def streaming(cookie, consumer=Stream):
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/events/",
        "headers": [cookie],
    }
    communicator = ApplicationCommunicator(app(consumer), scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    assert start["type"] == "http.response.start"
    hello = await communicator.receive_output(10)
    assert hello["more_body"] and b"data: alice" in hello["body"]
    return communicator


async def test_a_logout_completes_an_open_event_stream(alice, layer):
    cookie = await session_cookie_header(alice)
    stream = await streaming(cookie)
    await database_sync_to_async(session_end.end_session)(
        key_of(cookie), session_end.LOGOUT
    )
    last = await stream.receive_output(10)
    assert last == {"type": "http.response.body", "body": b"", "more_body": False}
    await stream.wait(10)  # the consumer ended


async def test_an_event_stream_can_react_otherwise(alice, memory_layer):
    cookie = await session_cookie_header(alice)
    stream = await streaming(cookie, KeepsStreaming)
    await database_sync_to_async(session_end.end_session)(key_of(cookie), "revoked")
    event = await stream.receive_output(10)
    assert event["more_body"] and event["body"] == b"event: ended\ndata: revoked\n\n"
    await stream.send_input({"type": "http.disconnect"})
    await stream.wait(10)


async def test_a_whole_response_costs_no_group(alice, memory_layer):
    class Whole(AsyncHttpConsumer):
        async def handle(self, body):
            await self.send_response(200, b"ok")

    cookie = await session_cookie_header(alice)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [cookie]}
    communicator = ApplicationCommunicator(app(Whole), scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    assert (await communicator.receive_output(10))["status"] == 200
    assert (await communicator.receive_output(10))["body"] == b"ok"
    await communicator.wait(10)
    assert not memory_layer.groups
