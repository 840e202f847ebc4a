"""Daphne's WebSocket protocol, closing failed connections with a close frame."""

from __future__ import annotations

import logging

# Installs Twisted's asyncio reactor before anything imports another one.
import daphne.server  # noqa: F401  # isort: skip

from daphne.ws_protocol import WebSocketProtocol

logger = logging.getLogger("channels_app.server")


class LimitedWebSocketProtocol(WebSocketProtocol):  # type: ignore[misc]  # daphne
    """Daphne's WebSocket protocol, saying in the log why it failed a connection.

    With ``failByDrop`` off (see :func:`~channels_app.server_limits.install`)
    Autobahn closes a failed connection with a close frame: 1009 for a frame
    or message over the size limit, 1007 for text that is not UTF-8, 1002 for
    a protocol error.
    """

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if getattr(self, "failedByMe", False) and hasattr(self, "request"):
            local_reason = self.localCloseReason or b""
            logger.warning(
                "WebSocket %s closed by the server with %s: %s [%s]",
                self.request.path,
                self.localCloseCode,
                local_reason.decode("utf-8", "replace"),
                ":".join(map(str, self.client_addr or ())) or "-",
            )
        super().onClose(wasClean, code, reason)
