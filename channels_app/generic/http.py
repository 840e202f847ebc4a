"""An async consumer for plain HTTP: whole responses, long-poll and streaming."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import session_end
from ..consumer import AsyncConsumer
from ..db import aclose_old_connections  # noqa: F401 - reachable here, as in Channels
from ..exceptions import StopConsumer
from ..types import Message


def _encode_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    items = headers.items() if isinstance(headers, dict) else headers
    return [
        (
            name.encode("latin-1") if isinstance(name, str) else name,
            value.encode("latin-1") if isinstance(value, str) else value,
        )
        for name, value in items
    ]


class AsyncHttpConsumer(session_end.FollowsSession, AsyncConsumer):
    """Answer an HTTP request from ``handle(body)``.

    The instance lives until the response is complete or the client goes
    away.  A ``handle`` that sends the headers and a body part with
    ``more_body=True`` keeps the response open, so channel-layer messages
    arriving later can stream more parts (Server-Sent Events) or finish it
    (long-poll).  ``disconnect()`` runs exactly once at the end either way.

    A response that stays open outlives its request's authentication, so
    from its first ``more_body=True`` part it follows the session, as
    WebSocket consumers do: when the session ends, ``session_ended(reason)``
    runs, and by default completes the response.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Keywords from as_asgi() are for subclasses; like Channels' consumer,
        # this one ignores what reaches it.
        self.body: list[bytes] = []
        self._response_started = False
        self._response_complete = False
        self._disconnected = False
        self._following_session = False

    async def send_headers(
        self,
        *,
        status: int = 200,
        headers: Iterable[tuple[Any, Any]] | dict[Any, Any] | None = None,
    ) -> None:
        """Start the response; the server sends it with the first body part."""
        self._response_started = True
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": _encode_headers(headers or []),
            }
        )

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        """Send a part of the body; ``more_body=False`` completes the response."""
        if not isinstance(body, bytes):
            raise TypeError(f"HTTP body must be bytes, not {type(body).__name__}")
        await self.send(
            {"type": "http.response.body", "body": body, "more_body": more_body}
        )
        if not more_body:
            self._response_complete = True
        elif not self._following_session:
            # Only streams pay for it: a whole response ends with its request.
            self._following_session = True
            await session_end.watch(self)

    async def send_response(self, status: int, body: bytes, **kwargs: Any) -> None:
        """Send a whole response in one go."""
        await self.send_headers(status=status, **kwargs)
        await self.send_body(body)

    async def send_event(
        self,
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> None:
        """Send one Server-Sent Event on a ``text/event-stream`` response."""
        lines = []
        if event is not None:
            lines.append(f"event: {event}")
        if id is not None:
            lines.append(f"id: {id}")
        if retry is not None:
            lines.append(f"retry: {int(retry)}")
        lines.extend(f"data: {line}" for line in data.split("\n"))
        await self.send_body(("\n".join(lines) + "\n\n").encode(), more_body=True)

    async def handle(self, body: bytes) -> None:
        """Produce the response.  Subclasses must implement this."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must implement handle(self, body)"
        )

    async def disconnect(self) -> None:
        """Called once when the response is complete or the client left."""

    async def session_ended(self, reason: str) -> None:
        """The session this stream was opened with ended (``reason`` as for
        WebSocket consumers); ``scope["user"]`` is already anonymous.

        The default completes the response, so an ``EventSource`` reconnects
        and is authenticated afresh; override to react otherwise.
        """
        if not self._response_complete:
            await self.send_body(b"")

    async def http_request(self, message: Message) -> None:
        self.body.append(message.get("body", b""))
        if not message.get("more_body", False):
            try:
                await self.handle(b"".join(self.body))
            except BaseException:
                await self._disconnect_once()
                raise

    async def handler_failed(self, message: Message, error: Exception) -> None:
        """With ``concurrency`` above 1, a failed ``handle`` still answers:
        a 500 if nothing was sent yet, else the end of the body, and the
        instance ends (at concurrency 1 the exception reaches the server,
        which sends its own 500).  Failed layer-message handlers on a stream
        leave it open."""
        if message.get("type") != "http.request" or self._response_complete:
            return
        if not self._response_started:
            plain = [(b"content-type", b"text/plain")]
            await self.send_response(500, b"Internal Server Error", headers=plain)
        else:
            await self.send_body(b"")
        await self._disconnect_once()
        raise StopConsumer()

    async def http_disconnect(self, message: Message) -> None:
        await self._disconnect_once()
        raise StopConsumer()

    async def dispatch(self, message: Message) -> None:
        await super().dispatch(message)
        if self._response_complete:
            await self._disconnect_once()
            raise StopConsumer()

    async def _disconnect_once(self) -> None:
        if not self._disconnected:
            self._disconnected = True
            try:
                if self._following_session:
                    await session_end.unwatch(self)
            finally:
                await self.disconnect()
