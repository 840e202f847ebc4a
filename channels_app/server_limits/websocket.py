"""Daphne's WebSocket protocol, closing failed connections with a close frame."""

from __future__ import annotations

import logging

# Installs Twisted's asyncio reactor before anything imports another one.
import daphne.server  # noqa: F401  # isort: skip

from daphne.ws_protocol import WebSocketProtocol

from .slow_clients import SLOW_CLIENT_CLOSE_CODE, send_buffer_of

logger = logging.getLogger("channels_app.server")


class LimitedWebSocketProtocol(WebSocketProtocol):  # type: ignore[misc]  # daphne
    """Daphne's WebSocket protocol, saying in the log why it failed a connection.

    With ``failByDrop`` off (see :func:`~channels_app.server_limits.install`)
    Autobahn closes a failed connection with a close frame: 1009 for a frame
    or message over the size limit, 1007 for text that is not UTF-8, 1002 for
    a protocol error.

    A client closed for not reading (:mod:`.slow_clients`) is aborted, so
    Autobahn would report 1006; the application is told
    :data:`~.slow_clients.SLOW_CLIENT_CLOSE_CODE` instead.
    """

    slow_client_code: int | None = None

    def close_as_slow_client(self) -> None:
        """Send the close frame, for the record; the transport is aborted next.

        ``sendCloseFrame`` because Autobahn's ``sendClose`` takes only the
        codes an application may use (1000, 3000-4999).
        """
        self.slow_client_code = SLOW_CLIENT_CLOSE_CODE
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(
                code=SLOW_CLIENT_CLOSE_CODE, reasonUtf8=b"Client too slow"
            )

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        buffer = send_buffer_of(self)
        if buffer is not None:
            buffer.connection_lost()
        if self.slow_client_code is not None:
            code = self.slow_client_code
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
