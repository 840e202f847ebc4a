"""Getting a session changed over a WebSocket back into the browser's cookie.

An open WebSocket cannot set cookies.  After ``login`` over a socket the
session has a new key (the old one stops working, which is what prevents
session fixation), but the browser still sends the old cookie on its next
page load, and is anonymous there.  After ``logout`` the browser keeps a
cookie for a session that no longer exists (harmless, except with the
``signed_cookies`` engine, where the old cookie *is* the session).

The fix is a round trip through plain HTTP, which can set cookies:

1. The consumer saves the session and asks for a ticket::

       await login(self.scope, user)
       ticket = await create_sync_ticket(self.scope)   # also saves the session
       await self.send_json({"type": "session.sync", "ticket": ticket})

2. The page posts the ticket to ``session_sync_view`` with its CSRF token::

       const body = new URLSearchParams({ticket: message.ticket});
       const r = await fetch("/session-sync/", {method: "POST", body,
           headers: {"X-CSRFToken": csrftoken}, credentials: "same-origin"});
       // r.ok: the cookie is set; (await r.json()).csrftoken is the new
       // CSRF token (rotated as on any Django login).  Not ok: reload.

3. The view answers with the ``Set-Cookie`` Django's ``SessionMiddleware``
   would have sent (or deletes the cookie after a logout).

Why it is safe (db, cache, cached_db, file and other server-side engines):

- A ticket is signed with ``SECRET_KEY`` (it cannot be forged or altered)
  and expires after ``TICKET_MAX_AGE`` seconds.
- It is single-use: it points at a short-lived record kept by the session
  engine itself (an ordinary session expiring with the ticket, so
  ``clearsessions`` removes unredeemed ones), which redeeming deletes.
  It never contains the session key, so a script on the page cannot
  learn the key the ``HttpOnly`` cookie hides.
- Redeeming is atomic in the session engine's own store (a database row
  deleted by exactly one request, a cache key or a file removed once), so
  two servers sharing that store never both accept one ticket.
- It is bound to the ``HttpOnly`` cookies the browser held when the socket
  opened: the session cookie and the binding cookie (an HMAC of them, never
  the values).  A script that steals the ticket (XSS) cannot redeem it from
  another browser, since it cannot read those cookies.  A browser on a login
  page usually has no session yet, so that page's view must set the binding
  cookie (decorate it with :func:`ensure_sync_binding`); without either
  cookie ``create_sync_ticket`` refuses, rather than issue a ticket any
  cookie-less browser could redeem.  The consumer's ``scope["cookies"]`` is
  updated to the new session, so a later ticket on the same socket (logout
  after login) binds to the cookie the browser got from the previous one.
- The view wants POST with Django's CSRF token (and passes its Origin
  check), so another site cannot make a victim's browser redeem the
  attacker's ticket and be logged in as the attacker (login CSRF).

Redeem the ticket at once: if the browser's session cookie changes in
between (another tab logged in over HTTP, say), the ticket is refused with
400 and the page should reload; the user then logs in again.

With ``signed_cookies`` there is nothing server-side: the ticket carries
the new cookie value itself, so it is exactly as sensitive as the cookie
(anyone who reads it can decode it), cannot be used up, and is not bound
(the cookie changes with every session write).  Signature, expiry and the
CSRF check still apply.  Prefer a server-side engine for WebSocket logins.
Django's ``CSRF_USE_SESSIONS`` is not supported: the CSRF secret would
live in the session the login just replaced, so the view's CSRF check
fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib import auth as django_auth
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.cache import SessionStore as CacheStore
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.contrib.sessions.backends.file import SessionStore as FileStore
from django.contrib.sessions.backends.signed_cookies import (
    SessionStore as SignedCookieStore,
)
from django.core import signing
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token, rotate_token
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from .db import database_sync_to_async
from .sessions import session_cookie_options, session_store_class, usable_session_key
from .types import Scope

__all__ = [
    "BINDING_COOKIE_NAME",
    "TICKET_MAX_AGE",
    "InvalidSyncTicket",
    "create_sync_ticket",
    "ensure_sync_binding",
    "redeem_sync_ticket",
    "session_sync_view",
]

#: Seconds a ticket stays valid; the page redeems it right away.
TICKET_MAX_AGE = 60

#: The ``HttpOnly`` cookie that ties a ticket to a browser without a session.
BINDING_COOKIE_NAME = "channels_app_sync"

_SALT = "channels_app.session_sync"
_TARGET = "_channels_app_sync_target"


class InvalidSyncTicket(Exception):
    """The ticket is forged, expired, already used or for another browser."""


def _binding(cookies: dict[str, str]) -> str | None:
    """An HMAC of the browser's secret cookies, or None if it holds neither."""
    session_cookie = cookies.get(settings.SESSION_COOKIE_NAME) or ""
    binding_cookie = cookies.get(BINDING_COOKIE_NAME) or ""
    if not session_cookie and not binding_cookie:
        return None
    value = f"{session_cookie}\n{binding_cookie}"
    return salted_hmac(f"{_SALT}.binding", value).hexdigest()


def ensure_sync_binding(view: Callable[..., Any]) -> Callable[..., Any]:
    """Give the browser a binding cookie with the page, unless it has one.

    Use it on every page that may log in (or otherwise ask for a ticket) over
    a WebSocket before the browser has a session, such as a login page.
    """

    def add_cookie(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not request.COOKIES.get(BINDING_COOKIE_NAME):
            response.set_cookie(
                BINDING_COOKIE_NAME,
                secrets.token_urlsafe(32),
                path=settings.SESSION_COOKIE_PATH,
                domain=settings.SESSION_COOKIE_DOMAIN,
                secure=settings.SESSION_COOKIE_SECURE or None,  # type: ignore[arg-type]
                httponly=True,
                samesite=settings.SESSION_COOKIE_SAMESITE,
            )
        return response

    if iscoroutinefunction(view):

        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            return add_cookie(request, await view(request, *args, **kwargs))

        return markcoroutinefunction(wraps(view)(async_view))

    @wraps(view)
    def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return add_cookie(request, view(request, *args, **kwargs))

    return sync_view


def _keeps_data_server_side(store_class: type[SessionBase]) -> bool:
    return not issubclass(store_class, SignedCookieStore)


async def create_sync_ticket(scope: Scope) -> str:
    """Save the scope's session and return a ticket for ``session_sync_view``.

    Call it after ``login``/``logout`` (or any session change the browser's
    HTTP requests must see) and send the ticket to the page.
    """
    if "session" not in scope:
        raise ValueError("create_sync_ticket() needs scope['session']")
    ticket: str = await database_sync_to_async(_create_sync_ticket)(scope)
    return ticket


def _create_sync_ticket(scope: Scope) -> str:
    session = scope["session"]
    if session.modified and not session.is_empty():
        session.save()
    target = "" if session.is_empty() else session.session_key
    cookies = scope.setdefault("cookies", {})
    binding = _binding(cookies)
    if binding is None:
        raise ValueError(
            "create_sync_ticket() found neither a session cookie nor the "
            f"{BINDING_COOKIE_NAME!r} cookie on this socket, so a ticket could "
            "be redeemed by any browser. Decorate the view of the page that "
            "opens the socket with channels_app.session_sync.ensure_sync_binding."
        )

    store_class = session_store_class()
    if _keeps_data_server_side(store_class):
        record = store_class()
        record[_TARGET] = target
        record.set_expiry(TICKET_MAX_AGE)
        record.save()
        reference = record.session_key
    else:
        reference = target

    # What the browser will hold once it redeems this ticket.
    if target:
        cookies[settings.SESSION_COOKIE_NAME] = target
    else:
        cookies.pop(settings.SESSION_COOKIE_NAME, None)
    return signing.dumps({"r": reference, "b": binding}, salt=_SALT, compress=True)


def redeem_sync_ticket(request: HttpRequest, ticket: str) -> SessionBase:
    """Check and use up ``ticket``; return the session the browser should hold.

    Raises ``InvalidSyncTicket``.  The returned session may be empty (the
    ticket was made after a logout, or the session has since ended).
    """
    try:
        payload = signing.loads(ticket, salt=_SALT, max_age=TICKET_MAX_AGE)
    except signing.SignatureExpired:
        raise InvalidSyncTicket("the ticket has expired")
    except signing.BadSignature:
        raise InvalidSyncTicket("the ticket is not valid")
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("r"), str)
        and isinstance(payload.get("b"), str)
    ):
        raise InvalidSyncTicket("the ticket is not valid")
    store_class = session_store_class()
    target: Any = payload["r"]
    if _keeps_data_server_side(store_class):
        current = _binding(request.COOKIES) or ""
        if not constant_time_compare(payload["b"], current):
            raise InvalidSyncTicket("the ticket was issued to another browser session")
        record = store_class(usable_session_key(payload["r"]))
        target = record.get(_TARGET)
        if target is None or not _use_up(record):
            raise InvalidSyncTicket("the ticket was already used or has expired")
    return store_class(usable_session_key(target))


def _use_up(record: SessionBase) -> bool:
    """Delete the ticket's record; True only for the one caller that did.

    Reading and then deleting is not enough with two processes: both may
    read before either deletes.  Each engine's store decides it instead.
    """
    key = record.session_key
    if key is None:
        return False
    if isinstance(record, DatabaseStore):  # db and cached_db
        deleted: int
        deleted, _ = record.get_model_class().objects.filter(session_key=key).delete()
        record.delete()  # cached_db: the cached copy too
        return deleted > 0
    if isinstance(record, CacheStore):
        return bool(caches[settings.SESSION_CACHE_ALIAS].delete(record.cache_key))
    if isinstance(record, FileStore):
        try:
            os.remove(record._key_to_file(key))  # type: ignore[attr-defined]
        except FileNotFoundError:
            return False
        return True
    # Another engine: as atomic as its own delete().
    record.delete()
    return True


@require_POST
@sensitive_post_parameters("ticket")
@csrf_protect
@never_cache
def session_sync_view(request: HttpRequest) -> JsonResponse:
    """Set the session cookie named by a ticket from ``create_sync_ticket``.

    POST ``ticket`` with the CSRF token.  Answers ``{"authenticated": bool,
    "csrftoken": str}`` (the CSRF token is rotated, as Django's login
    does), or 400 ``{"error": ...}`` when the ticket is refused, in which
    case the page should reload.  Mount it with
    ``path("session-sync/", session_sync_view)``.
    """
    try:
        session = redeem_sync_ticket(request, request.POST.get("ticket", ""))
    except InvalidSyncTicket as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    # Django's SessionMiddleware, if installed, must finish this response
    # with the synced session, not delete the cookie of the stale one.
    request.session = session
    user = django_auth.get_user(request)
    request.user = user
    rotate_token(request)
    response = JsonResponse(
        {"authenticated": user.is_authenticated, "csrftoken": get_token(request)}
    )
    name = settings.SESSION_COOKIE_NAME
    if session.modified and not session.is_empty():
        session.save()  # get_user() may have moved it to a new key.
    if session.is_empty() or not session.keys():
        response.delete_cookie(
            name,
            path=settings.SESSION_COOKIE_PATH,
            domain=settings.SESSION_COOKIE_DOMAIN,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
    else:
        response.set_cookie(
            name,
            session.session_key,  # type: ignore[arg-type]  # saved: it has a key
            **session_cookie_options(session),
        )
    return response
