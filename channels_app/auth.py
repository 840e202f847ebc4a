"""The Django user of a connection: ``scope["user"]``, login and logout.

The work is done by Django's own ``django.contrib.auth`` functions (session
auth-hash checks, ``SECRET_KEY_FALLBACKS``, backend selection, key rotation,
signals), run in a thread with a request built from the connection's scope.
That request is also what ``user_logged_in``/``user_logged_out`` receivers get,
so they can read the client address and headers of the WebSocket handshake.

After ``login``/``logout`` over a WebSocket the browser still holds the old
session cookie; ``channels_app.session_sync`` explains how it gets the new one.
"""

from __future__ import annotations

import io
from typing import Any

from django.contrib import auth as django_auth
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from django.utils.functional import LazyObject, empty

from . import session_end
from .db import database_sync_to_async
from .middleware import BaseMiddleware
from .sessions import CookieMiddleware, SessionMiddleware
from .types import Receive, Scope, Send

__all__ = [
    "AuthMiddleware",
    "AuthMiddlewareStack",
    "UserLazyObject",
    "get_user",
    "login",
    "logout",
]

_HTTP_SCHEMES = {"ws": "http", "wss": "https"}


class UserLazyObject(LazyObject):  # type: ignore[type-arg]  # not generic at runtime
    """Placeholder for ``scope["user"]`` until ``AuthMiddleware`` resolves it."""

    def _setup(self) -> None:
        raise ValueError(
            "scope['user'] was read before AuthMiddleware resolved it; read it "
            "inside the application AuthMiddleware wraps"
        )


def _require_session(scope: Scope) -> None:
    if "session" not in scope:
        raise ValueError(
            "No session in the scope; wrap the application in SessionMiddleware "
            "(or AuthMiddlewareStack)"
        )


def _is_resolved(user: Any) -> bool:
    return not isinstance(user, UserLazyObject) or user._wrapped is not empty


def request_for_scope(scope: Scope) -> HttpRequest:
    """A Django request standing for the connection described by ``scope``.

    It carries the scope's session (and its user, once resolved), path,
    headers and client address; a WebSocket handshake is a GET request.
    """
    scope = {"path": "/", "headers": [], **scope}
    scope["method"] = scope.get("method", "GET")
    scheme = scope.get("scheme")
    scope["scheme"] = _HTTP_SCHEMES.get(scheme, scheme)  # type: ignore[arg-type]
    request = ASGIRequest(scope, io.BytesIO())
    request.session = scope["session"]
    user = scope.get("user")
    if user is not None and _is_resolved(user):
        request.user = user
    return request


async def get_user(scope: Scope) -> Any:
    """The user the scope's session belongs to, or an ``AnonymousUser``.

    A session whose auth hash no longer matches (the password changed) is
    flushed, as in Django.  An empty session needs no thread hop.
    """
    _require_session(scope)
    if scope["session"].is_empty():
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return await database_sync_to_async(_get_user)(scope)


def _get_user(scope: Scope) -> Any:
    return django_auth.get_user(request_for_scope(scope))


async def login(scope: Scope, user: Any, backend: str | None = None) -> None:
    """Log ``user`` in on the scope's session and set ``scope["user"]``.

    The session gets a new key (or is flushed if it belonged to someone
    else), so a key known before the login is worthless after it.  Nothing
    is saved: call ``await scope["session"].asave()`` — or use
    ``channels_app.session_sync.create_sync_ticket``, which saves too.
    """
    _require_session(scope)
    if user is None:
        user = scope.get("user")
    if user is None:
        raise ValueError("login() needs a user, either passed or in scope['user']")
    await database_sync_to_async(_login)(scope, user, backend)
    scope["user"] = user
    # A connection's new session key and user: its groups follow them.
    await session_end.scope_changed(scope)


def _login(scope: Scope, user: Any, backend: str | None) -> None:
    django_auth.login(request_for_scope(scope), user, backend)


async def logout(scope: Scope) -> None:
    """Flush the scope's session (its key stops working) and forget the user."""
    _require_session(scope)
    await database_sync_to_async(_logout)(scope)
    if "user" in scope:
        from django.contrib.auth.models import AnonymousUser

        scope["user"] = AnonymousUser()
    await session_end.scope_changed(scope)


def _logout(scope: Scope) -> None:
    django_auth.logout(request_for_scope(scope))


class AuthMiddleware(BaseMiddleware):
    """Set ``scope["user"]`` from the session before the inner app runs.

    Needs ``SessionMiddleware`` outside it.  ``scope["user"]`` is a lazy
    object filled in by ``resolve_scope``; subclasses may override that hook
    (token authentication, for instance).  A scope that already has a user
    is passed through untouched.
    """

    def populate_scope(self, scope: Scope) -> None:
        if "session" not in scope:
            raise ValueError(
                "AuthMiddleware found no session in the scope; put "
                "SessionMiddleware outside it (or use AuthMiddlewareStack)"
            )
        if "user" not in scope:
            scope["user"] = UserLazyObject()

    async def resolve_scope(self, scope: Scope) -> None:
        scope["user"]._wrapped = await get_user(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if "user" in scope:
            return await self.inner(scope, receive, send)
        scope = dict(scope)
        self.populate_scope(scope)
        await self.resolve_scope(scope)
        return await self.inner(scope, receive, send)


def AuthMiddlewareStack(inner: Any) -> CookieMiddleware:
    """Cookies, session and user: ``Cookie(Session(Auth(inner)))``."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))
