"""Heartbeats and requests from the browser client (``streams.js``).

Two small exchanges the client needs beside subscriptions:

* ``{"type": "stream.ping", "id": n}`` is answered ``{"type": "stream.pong",
  "id": n}`` at once: a client that hears nothing for a while pings, and a
  ping left unanswered tells it the connection is dead even when TCP has not
  noticed (a laptop lid, a NAT that forgot the flow).
* ``{"type": "stream.request", "id": n, "data": ...}`` calls the consumer's
  :meth:`RequestsMixin.handle_request` and answers ``{"type": "stream.reply",
  "id": n, "ok": true, "data": ...}`` with what it returned, or ``"ok":
  false`` with an ``"error"``: the text of a :class:`RequestRefused` it
  raised, or a generic one (the exception is logged, not shown) for any
  other failure.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

logger = logging.getLogger("channels_app.streams")

PING = "stream.ping"
REQUEST = "stream.request"

if TYPE_CHECKING:
    from ..consumer import AsyncConsumer

    _Base = AsyncConsumer
else:
    _Base = object


class RequestRefused(Exception):
    """Raise it in ``handle_request`` to answer the client with its message."""


class RequestsMixin(_Base):
    """The ping and request half of the client protocol (see the module)."""

    async def send_stream_frame(self, frame: dict[str, Any]) -> None:
        raise NotImplementedError  # StreamsMixin's

    async def before_pong(self) -> None:
        """Runs before a ping is answered (StreamsMixin catches up there)."""

    def handle_request(self, data: Any) -> Any:
        """Answer a client's ``request(data)``; override it (a coroutine, or a
        plain method run in a thread where the ORM may be used).  What it
        returns must be JSON-serialisable; raise :class:`RequestRefused` to
        answer with an error the client may see."""
        raise RequestRefused(f"{type(self).__qualname__} takes no requests")

    async def handle_client_frame(self, content: dict[str, Any]) -> bool:
        """Answer ``content`` if it is a ping or a request; say whether it was."""
        kind = content.get("type")
        if kind == PING:
            await self.before_pong()
            pong = {"type": "stream.pong", "id": content.get("id")}
            await self.send_stream_frame(pong)
            return True
        if kind != REQUEST:
            return False
        request_id = content.get("id")
        if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
            await self.send_stream_frame(
                {
                    "type": "stream.reply",
                    "id": None,
                    "ok": False,
                    "error": "a request needs an integer or string id",
                }
            )
            return True
        try:
            answer = await self.call_hook(self.handle_request, content.get("data"))
        except RequestRefused as refusal:
            reply = {"ok": False, "error": str(refusal)}
        except Exception:
            logger.exception(
                "%s.handle_request failed on %r", type(self).__qualname__, content
            )
            reply = {"ok": False, "error": "the server could not answer the request"}
        else:
            reply = {"ok": True, "data": answer}
        reply = {"type": "stream.reply", "id": request_id, **reply}
        await self.send_stream_frame(reply)
        return True
