"""Open a WebSocket in tests as a logged-in user, through the real auth stack."""

from __future__ import annotations

from typing import Any

from django.test import Client

from ..db import database_sync_to_async
from .websocket import WebsocketCommunicator


@database_sync_to_async
def session_cookie_header(user: Any, backend: str | None = None) -> tuple[bytes, bytes]:
    """A ``cookie`` header carrying a fresh session logged in as ``user``.

    The session is made by Django's ``Client.force_login`` and stored by the
    configured ``SESSION_ENGINE``, so ``AuthMiddleware`` resolves the user
    exactly as it does for a browser.  Usable with ``HttpCommunicator`` too.
    """
    client = Client()
    client.force_login(user, backend=backend)
    cookies = "; ".join(f"{m.key}={m.coded_value}" for m in client.cookies.values())
    return b"cookie", cookies.encode("latin-1")


async def communicator_for(
    user: Any,
    application: Any,
    path: str,
    *,
    backend: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    **kwargs: Any,
) -> WebsocketCommunicator:
    """A ``WebsocketCommunicator`` whose handshake carries ``user``'s session.

    ``communicator = await communicator_for(user, application, "/ws/chat/")``;
    then ``await communicator.connect()`` as usual.  Other arguments go to
    ``WebsocketCommunicator`` (add an ``origin`` header to ``headers`` if the
    application checks origins).  Needs database access that outlives one
    thread's transaction: ``transactional_db`` or ``TransactionTestCase``.
    """
    cookie = await session_cookie_header(user, backend=backend)
    return WebsocketCommunicator(
        application, path, headers=[*(headers or []), cookie], **kwargs
    )
