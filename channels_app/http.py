"""Django's URLconf and views as the ``"http"`` branch of a ProtocolTypeRouter.

Django's own :class:`~django.core.handlers.asgi.ASGIHandler` already parses
requests, runs middleware, spools request bodies to a temporary file, streams
responses and (from Django 5.0) cancels the view when the client goes away.
:class:`AsgiHandler` reuses all of that and adds what a long-running server
needs on top.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpResponse

from .types import Scope

logger = logging.getLogger("channels_app.http")

# Django's handler reads and sends its events as read-only mappings.
_Receive: TypeAlias = Callable[[], Awaitable[Mapping[str, Any]]]
_Send: TypeAlias = Callable[[Mapping[str, Any]], Awaitable[None]]

#: Django 5.0 added watching for ``http.disconnect`` while the view runs.
DJANGO_WATCHES_DISCONNECT = hasattr(ASGIHandler, "listen_for_disconnect")


class AsgiHandler(ASGIHandler):
    """Serve Django views over ASGI: ``ProtocolTypeRouter({"http": AsgiHandler()})``.

    On top of Django's handler:

    * Middleware is loaded at the first request rather than at construction,
      so the handler can be built in a routing module imported before
      ``django.setup()`` has run.
    * A body that Django would refuse anyway -- larger than
      ``DATA_UPLOAD_MAX_MEMORY_SIZE`` and not a ``multipart/form-data`` upload
      -- is answered with 413 as soon as its size is known (from
      ``Content-Length``, or while reading a chunked body) instead of being
      read to the end first.  File uploads are exempt, as in Django: their
      bodies are spooled to disk past ``FILE_UPLOAD_MAX_MEMORY_SIZE``.
    * When the client disconnects while the view runs, an async view (or a
      streaming response's iterator) is cancelled; a sync view runs to its
      end in its thread, but its response is dropped.  Django 5.0+ does this
      itself; on Django 4.2 this class adds it.
    """

    def __init__(self) -> None:
        BaseHandler.__init__(self)

    async def __call__(self, scope: Scope, receive: _Receive, send: _Send) -> None:
        if self._middleware_chain is None:  # type: ignore[attr-defined]
            self.load_middleware(is_async=True)
        await super().__call__(scope, receive, send)

    async def handle(self, scope: Scope, receive: _Receive, send: _Send) -> None:
        limit = body_size_limit(scope)
        if limit is not None:
            declared = declared_body_size(scope)
            if declared is not None and declared > limit:
                await self.refuse_large_body(scope, send, limit)
                return
            receive = _limit_body(receive, limit)
        try:
            if DJANGO_WATCHES_DISCONNECT:
                await super().handle(scope, receive, send)
            else:
                await self._handle_watching_disconnect(scope, receive, send)
        except RequestDataTooBig:
            await self.refuse_large_body(scope, send, limit)

    async def refuse_large_body(
        self, scope: Scope, send: _Send, limit: int | None
    ) -> None:
        """Answer 413 without running the view."""
        logger.warning(
            "Refused %s %s: request body larger than DATA_UPLOAD_MAX_MEMORY_SIZE "
            "(%s bytes)",
            scope.get("method"),
            scope.get("path"),
            limit,
        )
        response = HttpResponse(
            "Request body too large\n", status=413, content_type="text/plain"
        )
        await self.send_response(response, send)

    async def _handle_watching_disconnect(
        self, scope: Scope, receive: _Receive, send: _Send
    ) -> None:
        """Django 4.2: run the request, cancelling it if the client goes away."""
        body_complete = asyncio.Event()

        async def receive_body() -> Mapping[str, Any]:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                body_complete.set()
            return message

        request = asyncio.ensure_future(super().handle(scope, receive_body, send))
        waiting = asyncio.ensure_future(body_complete.wait())
        await asyncio.wait({request, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if request.done():
            request.result()
            return
        disconnect = asyncio.ensure_future(receive())
        try:
            await asyncio.wait(
                {request, disconnect}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not request.done():
                request.cancel()
                await asyncio.gather(request, return_exceptions=True)
            disconnect.cancel()
        if not request.cancelled():
            request.result()


def body_size_limit(scope: Scope) -> int | None:
    """The most body bytes this request may carry, or None for no limit."""
    limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None or _content_type(scope).startswith("multipart/form-data"):
        return None
    return limit


def declared_body_size(scope: Scope) -> int | None:
    """The request's ``Content-Length``, or None when absent or unreadable."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _content_type(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-type":
            content_type: str = value.decode("latin-1").lower().strip()
            return content_type
    return ""


def _limit_body(receive: _Receive, limit: int) -> _Receive:
    """Wrap ``receive`` to raise ``RequestDataTooBig`` past ``limit`` body bytes."""
    received = 0

    async def receive_limited() -> Mapping[str, Any]:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise RequestDataTooBig(
                f"Request body exceeded DATA_UPLOAD_MAX_MEMORY_SIZE ({limit} bytes)"
            )
        return message

    return receive_limited
