"""Cookies and Django sessions in the scope of HTTP and WebSocket connections.

``CookieMiddleware`` puts the handshake's cookies in ``scope["cookies"]``;
``SessionMiddleware`` turns the session cookie into ``scope["session"]``, a
store of the configured ``SESSION_ENGINE`` that is only built and loaded when
something uses it.  On HTTP the session is saved and its cookie set or deleted
when the response starts, as Django's own middleware does; on WebSocket no
response can carry a cookie, so nothing is saved for you (see
``channels_app.session_sync`` for getting a changed session back into the
browser).
"""

from __future__ import annotations

import functools
import logging
import time
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.http import HttpResponseBase, parse_cookie
from django.utils.functional import SimpleLazyObject
from django.utils.http import http_date

from .db import database_sync_to_async
from .middleware import BaseMiddleware
from .types import Message, Receive, Scope, Send

__all__ = [
    "CookieMiddleware",
    "InstanceSessionWrapper",
    "LazySession",
    "SessionMiddleware",
    "SessionMiddlewareStack",
    "session_cookie_options",
]

logger = logging.getLogger("channels_app.sessions")


class CookieMiddleware(BaseMiddleware):
    """Parse the ``cookie`` header(s) into ``scope["cookies"]`` (a dict of str).

    Several ``cookie`` headers (HTTP/2 may split them) are joined.  A header
    longer than ``max_header_size`` is ignored as a whole: the connection
    goes on without cookies (so without a session) and a warning is logged.
    8 KiB is the per-header limit of nginx's and Apache's defaults, so a
    legitimate browser behind either never gets near it.  Parsing itself
    never fails: malformed pairs are skipped the way Django skips them.
    """

    max_header_size = 8192

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if "headers" not in scope:
            raise ValueError(
                "CookieMiddleware needs a scope with 'headers'; wrap only HTTP "
                "and WebSocket applications in it"
            )
        if "cookies" in scope:
            # An outer CookieMiddleware already did the work.
            return await self.inner(scope, receive, send)
        return await self.inner({**scope, "cookies": self.parse(scope)}, receive, send)

    @classmethod
    def parse(cls, scope: Scope) -> dict[str, str]:
        """The cookies of ``scope``'s headers, or ``{}`` if they are oversized."""
        values = [
            value for name, value in scope["headers"] if name.lower() == b"cookie"
        ]
        if not values:
            return {}
        size = sum(len(value) for value in values)
        if size > cls.max_header_size:
            logger.warning(
                "Ignoring a %d-byte Cookie header on %s (limit %d bytes)",
                size,
                scope.get("path", "?"),
                cls.max_header_size,
            )
            return {}
        return parse_cookie("; ".join(value.decode("latin-1") for value in values))

    @staticmethod
    def set_cookie(
        message: Message,
        key: str,
        value: str = "",
        max_age: Any = None,
        expires: Any = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
    ) -> None:
        """Add a ``Set-Cookie`` header to an ``http.response.start`` message.

        The arguments mean what they mean for ``HttpResponse.set_cookie`` and
        are handled by it: ``expires`` may be a string, a naive UTC datetime
        or an aware datetime in any zone; ``max_age`` seconds or a timedelta.
        """
        response = HttpResponseBase()
        response.set_cookie(
            key,
            value,
            max_age=max_age,
            expires=expires,
            path=path,  # type: ignore[arg-type]  # passed on as given
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,  # type: ignore[arg-type]
        )
        _append_cookie_header(message, response, key)

    @staticmethod
    def delete_cookie(
        message: Message,
        key: str,
        path: str | None = "/",
        domain: str | None = None,
        samesite: str | None = None,
    ) -> None:
        """Add a ``Set-Cookie`` header that makes the browser drop ``key``."""
        response = HttpResponseBase()
        response.delete_cookie(
            key,
            path=path,  # type: ignore[arg-type]  # passed on as given
            domain=domain,
            samesite=samesite,  # type: ignore[arg-type]
        )
        _append_cookie_header(message, response, key)


def _append_cookie_header(
    message: Message, response: HttpResponseBase, key: str
) -> None:
    header = response.cookies[key].OutputString().encode("latin-1")
    message["headers"] = [*message.get("headers", ()), (b"set-cookie", header)]


def _add_vary_cookie(message: Message) -> None:
    """Make caches key the response on the Cookie header, like Django does."""
    headers = list(message.get("headers", ()))
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            fields = {field.strip().lower() for field in value.split(b",")}
            if not fields & {b"cookie", b"*"}:
                headers[index] = (name, value + b", Cookie")
            break
    else:
        headers.append((b"vary", b"Cookie"))
    message["headers"] = headers


def session_cookie_options(session: SessionBase) -> dict[str, Any]:
    """``set_cookie`` keyword arguments for ``session`` per ``SESSION_COOKIE_*``.

    Shared by the ASGI middleware and the session-sync view so both issue
    exactly the cookie Django's ``SessionMiddleware`` would.
    """
    if session.get_expire_at_browser_close():
        max_age = expires = None
    else:
        max_age = session.get_expiry_age()
        expires = http_date(time.time() + max_age)
    return {
        "max_age": max_age,
        "expires": expires,
        "domain": settings.SESSION_COOKIE_DOMAIN,
        "path": settings.SESSION_COOKIE_PATH,
        "secure": settings.SESSION_COOKIE_SECURE,
        "httponly": settings.SESSION_COOKIE_HTTPONLY,
        "samesite": settings.SESSION_COOKIE_SAMESITE,
    }


def session_store_class() -> type[SessionBase]:
    """The ``SessionStore`` of the configured ``SESSION_ENGINE``."""
    store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore
    return store


def usable_session_key(value: str | None) -> str | None:
    """``value`` if it can be a session key, else ``None`` (an empty session).

    Keys that cannot be valid (control characters, spaces, non-ASCII) are
    dropped before any backend sees them: some databases reject such strings
    with an error instead of simply finding no row.
    """
    if value and value.isascii() and value.isprintable() and " " not in value:
        return value
    return None


class LazySession(SimpleLazyObject):  # type: ignore[type-arg]  # not generic at runtime
    """A session store built on first use, with async methods on every Django.

    The first read loads the data, which the database engine refuses to do
    on the event loop: read with ``await session.aget(key)`` (loads in a
    thread; plain reads are fine after that), or rely on ``AuthMiddleware``,
    which loads a non-empty session while resolving the user.  ``aget``,
    ``asave``, ``aflush`` and ``acycle_key`` run in a thread that tidies
    database connections first, which a connection open for hours needs;
    on Django 5.1+ the store's other ``a*`` methods are there too.
    """

    async def aget(self, key: str, default: Any = None) -> Any:
        return await database_sync_to_async(self.get)(key, default)

    async def asave(self, must_create: bool = False) -> None:
        await database_sync_to_async(self.save)(must_create=must_create)

    async def aflush(self) -> None:
        await database_sync_to_async(self.flush)()

    async def acycle_key(self) -> None:
        await database_sync_to_async(self.cycle_key)()


class SessionMiddleware(BaseMiddleware):
    """Add ``scope["session"]`` from the session cookie; needs CookieMiddleware.

    If the scope already has a session (an outer SessionMiddleware, or a
    test helper), it is left alone and this middleware does nothing else.
    The per-connection work is :class:`InstanceSessionWrapper`'s, as in
    Channels, so a subclass of it that chooses the session differently can
    be used from a ``SessionMiddleware`` subclass the same way.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if "session" in scope:
            return await self.inner(scope, receive, send)
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        if scope["type"] == "http":
            # Only an HTTP response can carry the cookie; WebSocket frames
            # skip the extra hop.
            send = wrapper.send
        return await self.inner(wrapper.scope, receive, send)


class InstanceSessionWrapper:
    """One connection's session: puts it in a copy of the scope and wraps
    ``send`` so that it is saved, and its cookie set or deleted, when the
    response starts.

    The rules are those of Django's ``SessionMiddleware.process_response``.
    ``scope["session"]`` is a :class:`LazySession` for the cookie's key,
    built on first use; ``resolve_session`` is where a subclass may choose
    the session another way, by setting ``self.scope["session"]._wrapped``
    to a store (Channels' subclasses do exactly that).  A scope that already
    has a session is passed through, and ``send`` then does nothing extra
    (``activated`` is false).
    """

    #: Message types on which a changed session is saved.
    save_message_types = ["http.response.start"]
    #: Message types that can carry the session cookie back to the browser.
    cookie_response_message_types = ["http.response.start"]

    def __init__(self, scope: Scope, send: Send) -> None:
        self.cookie_name = settings.SESSION_COOKIE_NAME
        self.session_store = session_store_class()
        self.scope = dict(scope)
        self.real_send = send
        self.activated = "session" not in self.scope
        if self.activated:
            if "cookies" not in self.scope:
                raise ValueError(
                    "SessionMiddleware found no 'cookies' in the scope; put it "
                    "inside CookieMiddleware (or use SessionMiddlewareStack)"
                )
            key = usable_session_key(self.scope["cookies"].get(self.cookie_name))
            self.scope["session"] = LazySession(
                functools.partial(self.session_store, key)
            )

    async def resolve_session(self) -> None:
        """Nothing by default: the session is built when first used."""

    async def send(self, message: Message) -> None:
        if self.activated and message["type"] in self.save_message_types:
            message = await self.finish_session(dict(message))
        await self.real_send(message)

    async def finish_session(self, message: Message) -> dict[str, Any]:
        """Save the session if it needs saving and set the cookie to match."""
        session: SessionBase = self.scope["session"]
        carries_cookies = message["type"] in self.cookie_response_message_types
        empty_session = session.is_empty()
        if self.cookie_name in self.scope["cookies"] and empty_session:
            if carries_cookies:
                CookieMiddleware.delete_cookie(
                    message,
                    self.cookie_name,
                    path=settings.SESSION_COOKIE_PATH,
                    domain=settings.SESSION_COOKIE_DOMAIN,
                    samesite=settings.SESSION_COOKIE_SAMESITE,
                )
            vary = True
        else:
            vary = session.accessed
            wants_save = session.modified or settings.SESSION_SAVE_EVERY_REQUEST
            if wants_save and not empty_session and message.get("status", 200) < 500:
                await self.save_session()
                if carries_cookies:
                    CookieMiddleware.set_cookie(
                        message,
                        self.cookie_name,
                        session.session_key,  # type: ignore[arg-type]  # saved
                        **session_cookie_options(session),
                    )
                vary = True
        if vary and carries_cookies:
            _add_vary_cookie(message)
        return message

    async def save_session(self) -> None:
        """Save the session in a thread that tidies database connections."""
        await database_sync_to_async(self._save)(self.scope["session"])

    @staticmethod
    def _save(session: SessionBase) -> None:
        try:
            session.save()
        except UpdateError:
            raise SessionInterrupted(
                "The session was deleted before the request completed; the user "
                "may have logged out in a concurrent request."
            )


def SessionMiddlewareStack(inner: Any) -> CookieMiddleware:
    """Cookies and sessions in one wrapper: ``CookieMiddleware(SessionMiddleware)``."""
    return CookieMiddleware(SessionMiddleware(inner))
