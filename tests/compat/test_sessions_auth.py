"""Sessions and authentication written as Channels 4 documents them.

The authentication page: ``AuthMiddlewareStack(URLRouter(...))`` puts the
user in ``scope["user"]``; a consumer logs in with ``await
login(self.scope, user)`` (``async_to_sync(login)`` in a sync consumer) and
saves the session itself; custom middleware sets ``scope["user"]`` from
elsewhere, as a plain class or a ``BaseMiddleware`` subclass.  The sessions
page: ``SessionMiddlewareStack`` and ``self.scope["session"]`` edited and
saved by the consumer.  And what projects and their tests commonly do on
top: put a user straight into ``communicator.scope``, or subclass
``InstanceSessionWrapper`` and ``AuthMiddleware`` to find the session and
the user another way.  Only the import prefix differs from Channels.
"""

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.urls import path

from channels_app.auth import (
    AuthMiddleware,
    AuthMiddlewareStack,
    UserLazyObject,
    login,
    logout,
)
from channels_app.db import database_sync_to_async
from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    JsonWebsocketConsumer,
)
from channels_app.middleware import BaseMiddleware
from channels_app.routing import URLRouter
from channels_app.sessions import (
    CookieMiddleware,
    InstanceSessionWrapper,
    SessionMiddleware,
    SessionMiddlewareStack,
)
from channels_app.testing import WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


def username(user):
    return user.username if user.is_authenticated else None


class WhoAmI(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.user = self.scope["user"]
        await self.accept()
        await self.send_json({"user": username(self.user)})


class AsyncLogin(AsyncJsonWebsocketConsumer):
    """The authentication page's async login and logout."""

    async def connect(self):
        await self.accept()

    async def receive_json(self, content):
        if content["action"] == "login":
            user = await database_sync_to_async(get_user_model().objects.get)(
                username=content["username"]
            )
            await login(self.scope, user)
            await database_sync_to_async(self.scope["session"].save)()
        else:
            await logout(self.scope)
        await self.send_json(
            {
                "user": username(self.scope["user"]),
                "session_key": self.scope["session"].session_key,
            }
        )


class SyncLogin(JsonWebsocketConsumer):
    """The authentication page's sync login."""

    def connect(self):
        self.accept()

    def receive_json(self, content):
        user = get_user_model().objects.get(username=content["username"])
        async_to_sync(login)(self.scope, user)
        self.scope["session"].save()
        self.send_json(
            {
                "user": username(self.scope["user"]),
                "session_key": self.scope["session"].session_key,
            }
        )


application = AuthMiddlewareStack(
    URLRouter(
        [
            path("ws/whoami/", WhoAmI.as_asgi()),
            path("ws/login/", AsyncLogin.as_asgi()),
            path("ws/sync-login/", SyncLogin.as_asgi()),
        ]
    )
)


@database_sync_to_async
def make_user(name="alice"):
    return get_user_model().objects.create_user(name, password=f"{name}-pw")


@database_sync_to_async
def django_session_cookie(user):
    """The session cookie Django's own login gives a browser."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def cookie(key):
    return [(b"cookie", f"sessionid={key}".encode())]


async def whoami(app=application, headers=(), path="/ws/whoami/"):
    communicator = WebsocketCommunicator(app, path, headers=list(headers))
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    reply = await communicator.receive_json_from(timeout=10)
    await communicator.disconnect()
    return reply["user"]


async def ask(path, content, headers=()):
    communicator = WebsocketCommunicator(application, path, headers=list(headers))
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    await communicator.send_json_to(content)
    reply = await communicator.receive_json_from(timeout=10)
    await communicator.disconnect()
    return reply


async def test_the_user_of_a_django_login_is_in_the_scope():
    user = await make_user()
    assert await whoami() is None
    key = await django_session_cookie(user)
    assert await whoami(headers=cookie(key)) == "alice"


@pytest.mark.parametrize("path", ["/ws/login/", "/ws/sync-login/"])
async def test_login_in_a_consumer_logs_the_session_in(path):
    await make_user()
    reply = await ask(path, {"action": "login", "username": "alice"})
    assert reply["user"] == "alice"
    # The saved session now belongs to alice, for the next connection too.
    assert await whoami(headers=cookie(reply["session_key"])) == "alice"


async def test_logout_in_a_consumer_ends_the_session():
    user = await make_user()
    key = await django_session_cookie(user)
    reply = await ask("/ws/login/", {"action": "logout"}, headers=cookie(key))
    assert reply["user"] is None
    assert await whoami(headers=cookie(key)) is None


async def test_a_test_can_put_the_user_in_the_communicator_scope():
    user = await make_user()
    communicator = WebsocketCommunicator(application, "/ws/whoami/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    assert await communicator.receive_json_from(timeout=10) == {"user": "alice"}
    await communicator.disconnect()


# --- the sessions page --------------------------------------------------------


class Counter(JsonWebsocketConsumer):
    def connect(self):
        self.accept()

    def receive_json(self, content):
        self.scope["session"]["count"] = self.scope["session"].get("count", 0) + 1
        self.scope["session"].save()
        self.send_json(
            {
                "count": self.scope["session"]["count"],
                "session_key": self.scope["session"].session_key,
            }
        )


async def test_a_consumer_saves_its_session_itself():
    counter = SessionMiddlewareStack(Counter.as_asgi())
    communicator = WebsocketCommunicator(counter, "/")
    assert (await communicator.connect(timeout=10))[0]
    await communicator.send_json_to({})
    first = await communicator.receive_json_from(timeout=10)
    await communicator.disconnect()
    assert first["count"] == 1

    again = WebsocketCommunicator(counter, "/", headers=cookie(first["session_key"]))
    assert (await again.connect(timeout=10))[0]
    await again.send_json_to({})
    assert (await again.receive_json_from(timeout=10))["count"] == 2
    await again.disconnect()


# --- custom authentication middleware -----------------------------------------


@database_sync_to_async
def get_user(user_id):
    try:
        return get_user_model().objects.get(id=user_id)
    except get_user_model().DoesNotExist:
        return AnonymousUser()


class QueryAuthMiddleware:
    """The docs' plain middleware: the user id is the query string."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        scope["user"] = await get_user(int(scope["query_string"]))
        return await self.app(scope, receive, send)


class QueryAuthBaseMiddleware(BaseMiddleware):
    """The same, built on BaseMiddleware."""

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        scope["user"] = await get_user(int(scope["query_string"]))
        return await super().__call__(scope, receive, send)


@pytest.mark.parametrize("middleware", [QueryAuthMiddleware, QueryAuthBaseMiddleware])
async def test_custom_middleware_sets_the_user(middleware):
    user = await make_user()
    app = middleware(URLRouter([path("ws/whoami/", WhoAmI.as_asgi())]))
    assert await whoami(app, path=f"/ws/whoami/?{user.id}") == "alice"
    assert await whoami(app, path="/ws/whoami/?0") is None


# --- session and user found another way (as projects subclass them) -----------


class HeaderSessionWrapper(InstanceSessionWrapper):
    """The session key comes in an ``x-session`` header, not the cookie."""

    async def resolve_session(self):
        headers = dict(self.scope["headers"])
        key = headers.get(b"x-session", b"").decode() or None
        self.scope["session"]._wrapped = await database_sync_to_async(
            self.session_store
        )(key)


class HeaderSessionMiddleware(SessionMiddleware):
    async def __call__(self, scope, receive, send):
        wrapper = HeaderSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, wrapper.send)


@database_sync_to_async
def user_of_session(scope):
    from django.contrib.auth import SESSION_KEY

    user_id = scope["session"].get(SESSION_KEY)
    if user_id is None:
        return AnonymousUser()
    return get_user_model().objects.get(pk=user_id)


class SessionUserMiddleware(AuthMiddleware):
    """populate_scope and resolve_scope overridden, __call__ as Channels'."""

    def populate_scope(self, scope):
        if "session" not in scope:
            raise ValueError("SessionUserMiddleware needs a session")
        if "user" not in scope:
            scope["user"] = UserLazyObject()

    async def resolve_scope(self, scope):
        scope["user"]._wrapped = await user_of_session(scope)


async def test_subclassed_session_wrapper_and_auth_middleware():
    user = await make_user()
    key = await django_session_cookie(user)
    app = CookieMiddleware(
        HeaderSessionMiddleware(
            SessionUserMiddleware(URLRouter([path("ws/whoami/", WhoAmI.as_asgi())]))
        )
    )
    assert await whoami(app, headers=[(b"x-session", key.encode())]) == "alice"
    assert await whoami(app, headers=cookie(key)) is None  # The cookie is ignored.
