"""scope["user"], login and logout on real session engines."""

import logging

import pytest
from django.contrib.auth import user_logged_in, user_logged_out
from django.contrib.auth.models import AnonymousUser

from channels_app.auth import (
    AuthMiddleware,
    AuthMiddlewareStack,
    UserLazyObject,
    get_user,
    login,
    logout,
)
from channels_app.db import database_sync_to_async
from channels_app.sessions import SessionMiddlewareStack
from channels_app.testing import (
    HttpCommunicator,
    WebsocketCommunicator,
    communicator_for,
    session_cookie_header,
)
from tests.auth_support import SERVER_SIDE, all_databases

pytestmark = all_databases


class ScopeSocket:
    """Raw WebSocket app that runs test code against its scope on each frame."""

    def __init__(self, wrap=AuthMiddlewareStack):
        self.scopes = []
        self.application = wrap(self)
        self.on_frame = None

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif message["type"] == "websocket.receive":
                reply = await self.on_frame(scope)
                await send({"type": "websocket.send", "text": str(reply)})
            else:
                return


def username(user):
    return user.get_username() if user.is_authenticated else None


async def whoami_over(headers):
    """The username the app's AuthMiddleware resolves for these headers."""
    app = ScopeSocket()
    app.on_frame = lambda scope: _username_of(scope)
    communicator = WebsocketCommunicator(app.application, "/", headers=headers)
    assert (await communicator.connect(timeout=10))[0]
    await communicator.send_to("?")
    name = await communicator.receive_from(timeout=10)
    await communicator.disconnect()
    return None if name == "None" else name


async def _username_of(scope):
    return username(scope["user"])


# --- AuthMiddleware / get_user ----------------------------------------------


async def test_logged_in_communicator_sees_its_user(alice):
    app = ScopeSocket()
    app.on_frame = _username_of
    communicator = await communicator_for(alice, app.application, "/ws/")
    assert (await communicator.connect(timeout=10))[0]
    await communicator.send_to("?")
    assert await communicator.receive_from(timeout=10) == "alice"
    await communicator.disconnect()


async def test_session_cookie_header_works_for_http_too(alice):
    seen = []

    async def app(scope, receive, send):
        seen.append(username(scope["user"]))
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    cookie = await session_cookie_header(alice)
    await HttpCommunicator(
        AuthMiddlewareStack(app), "GET", "/", headers=[cookie]
    ).get_response(timeout=10)
    assert seen == ["alice"]


async def test_no_cookie_is_anonymous_without_a_thread_hop(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "channels_app.auth._get_user", lambda scope: calls.append(scope)
    )
    assert await whoami_over(headers=[]) is None
    assert calls == []


async def test_reading_the_user_before_it_is_ready_raises():
    with pytest.raises(ValueError, match="before AuthMiddleware resolved it"):
        _ = UserLazyObject().is_authenticated

    class Unresolved(AuthMiddleware):
        async def resolve_scope(self, scope):
            pass

    app = ScopeSocket(lambda inner: SessionMiddlewareStack(Unresolved(inner)))
    app.on_frame = _username_of
    communicator = WebsocketCommunicator(app.application, "/")
    assert (await communicator.connect())[0]
    await communicator.send_to("?")
    with pytest.raises(ValueError, match="before AuthMiddleware resolved it"):
        await communicator.receive_from()


async def test_auth_middleware_needs_a_session():
    with pytest.raises(ValueError, match="SessionMiddleware"):
        await AuthMiddleware(None)({"type": "websocket", "headers": []}, None, None)


async def test_a_user_already_in_the_scope_is_kept():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["user"])

    marker = object()
    await AuthMiddlewareStack(app)(
        {"type": "websocket", "headers": [], "user": marker}, None, None
    )
    assert seen == [marker]


async def test_get_user_needs_a_session():
    with pytest.raises(ValueError, match="SessionMiddleware"):
        await get_user({})


async def test_password_change_logs_out_other_sessions(alice):
    cookie = await session_cookie_header(alice)
    assert await whoami_over([cookie]) == "alice"

    def change_password():
        alice.set_password("new-pw")
        alice.save()

    await database_sync_to_async(change_password)()
    assert await whoami_over([cookie]) is None


# --- login / logout ---------------------------------------------------------


class Recorder:
    def __init__(self, signal):
        self.calls = []
        self.signal = signal

    def __call__(self, sender, **kwargs):
        self.calls.append(kwargs)

    def __enter__(self):
        self.signal.connect(self)
        return self

    def __exit__(self, *exc):
        self.signal.disconnect(self)


async def login_over_socket(user, headers, save=True):
    """Log ``user`` in inside a consumer; return (session key, scope)."""
    app = ScopeSocket()

    async def do_login(scope):
        await login(scope, user)
        if save:
            await scope["session"].asave()
        return scope["session"].session_key

    app.on_frame = do_login
    communicator = WebsocketCommunicator(
        app.application,
        "/ws/login/",
        headers=[*headers, (b"user-agent", b"test-agent")],
    )
    assert (await communicator.connect(timeout=10))[0]
    await communicator.send_to("login")
    key = await communicator.receive_from(timeout=10)
    await communicator.disconnect()
    return key, app.scopes[0]


async def anonymous_session_cookie():
    """A saved anonymous session holding some data, as after browsing a while."""
    from importlib import import_module

    from django.conf import settings

    def make():
        store = import_module(settings.SESSION_ENGINE).SessionStore()
        store["cart"] = ["book"]
        store.save()
        return store.session_key

    key = await database_sync_to_async(make)()
    return (b"cookie", f"sessionid={key}".encode()), key


async def test_login_rotates_the_key_and_keeps_the_data(alice, session_engine):
    cookie, old_key = await anonymous_session_cookie()
    with Recorder(user_logged_in) as logged_in:
        new_key, scope = await login_over_socket(alice, [cookie])
    assert new_key != old_key
    assert username(scope["user"]) == "alice"
    assert scope["session"]["cart"] == ["book"]
    # Receivers get a request made from the handshake.
    [call] = logged_in.calls
    assert call["user"] == alice
    assert call["request"].META["HTTP_USER_AGENT"] == "test-agent"
    assert call["request"].META["REMOTE_ADDR"] == "127.0.0.1"
    assert call["request"].path == "/ws/login/"

    assert await whoami_over([(b"cookie", f"sessionid={new_key}".encode())]) == (
        "alice"
    )
    if session_engine in SERVER_SIDE:
        # Session fixation: a key known before the login is worth nothing.
        assert await whoami_over([cookie]) is None


async def test_login_does_not_save(alice, session_engine):
    cookie, _ = await anonymous_session_cookie()
    new_key, _ = await login_over_socket(alice, [cookie], save=False)
    assert await whoami_over([(b"cookie", f"sessionid={new_key}".encode())]) is None


async def test_login_over_another_users_session_discards_it(
    alice,
    session_engine,
    django_user_model,
):
    bob = await database_sync_to_async(django_user_model.objects.create_user)(
        "bob", password="bob-pw"
    )
    bobs_cookie = await session_cookie_header(bob)
    alices_key, scope = await login_over_socket(alice, [bobs_cookie])
    assert username(scope["user"]) == "alice"
    assert await whoami_over([(b"cookie", f"sessionid={alices_key}".encode())]) == (
        "alice"
    )
    if session_engine in SERVER_SIDE:
        # Flushed, as Django's login() does: nothing of Bob's session is left.
        assert await whoami_over([bobs_cookie]) is None


async def test_login_needs_a_backend_when_several_are_configured(
    alice,
    settings,
):
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "django.contrib.auth.backends.AllowAllUsersModelBackend",
    ]
    scope = {"type": "websocket", "headers": []}
    app = ScopeSocket()
    outcome = []

    async def try_login(scope):
        try:
            await login(scope, alice)
        except ValueError as exc:
            outcome.append(str(exc))
        await login(scope, alice, backend=settings.AUTHENTICATION_BACKENDS[1])
        await scope["session"].asave()
        return scope["session"].session_key

    app.on_frame = try_login
    communicator = WebsocketCommunicator(app.application, "/", headers=scope["headers"])
    assert (await communicator.connect(timeout=10))[0]
    await communicator.send_to("go")
    key = await communicator.receive_from(timeout=10)
    await communicator.disconnect()
    assert "backend" in outcome[0]
    assert await whoami_over([(b"cookie", f"sessionid={key}".encode())]) == "alice"


async def test_login_without_any_user_is_refused():
    with pytest.raises(ValueError, match="needs a user"):
        await login({"session": object()}, None)


async def test_logout_flushes_and_signals(alice, session_engine):
    cookie = await session_cookie_header(alice)
    app = ScopeSocket()

    async def do_logout(scope):
        await logout(scope)
        return scope["session"].session_key

    app.on_frame = do_logout
    communicator = WebsocketCommunicator(app.application, "/", headers=[cookie])
    assert (await communicator.connect(timeout=10))[0]
    with Recorder(user_logged_out) as logged_out:
        await communicator.send_to("logout")
        assert await communicator.receive_from(timeout=10) == "None"
    await communicator.disconnect()
    assert isinstance(app.scopes[0]["user"], AnonymousUser)
    assert [call["user"] for call in logged_out.calls] == [alice]
    if session_engine in SERVER_SIDE:
        # The old key no longer exists.  (A signed cookie cannot be revoked;
        # the browser must drop it, see channels_app.session_sync.)
        assert await whoami_over([cookie]) is None


# --- bad input --------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::django.core.cache.backends.base.CacheKeyWarning")
async def test_bad_cookies_leave_the_user_anonymous_without_tracebacks(
    alice,
    session_engine,
    caplog,
):
    _, value = (await session_cookie_header(alice))[1].decode().split("=", 1)
    tampered = value[:-3] + ("aaa" if not value.endswith("aaa") else "bbb")
    headers = [
        [(b"cookie", b"sessionid=" + value.encode() + b"; pad=" + b"x" * 9000)],
        [(b"cookie", b"sessionid=not-a-real-session-key")],
        [(b"cookie", b"sessionid=\x00\x01\x02binary")],
        [(b"cookie", b"sessionid=" + tampered.encode())],
        [(b"cookie", b"sessionid=" + b"9" * 4000)],
    ]
    with caplog.at_level(logging.INFO):
        for header in headers:
            assert await whoami_over(header) is None, header
        assert await whoami_over([(b"cookie", f"sessionid={value}".encode())])
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
