"""Twisted's HTTP/1.1 parser, with a deadline for request headers and limits
that are answered with a status instead of a dropped connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

# Installs Twisted's asyncio reactor before anything imports another one.
import daphne.server  # noqa: F401  # isort: skip

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

from .limits import ConnectionLimits
from .pending import PendingConnections, close_now
from .slow_clients import SendBuffer

logger = logging.getLogger("channels_app.server")

#: After refusing a request the server keeps reading, and discarding, what
#: the client is still sending, for this long or this many bytes, so that
#: the client gets to read the answer: closing a socket with unread input
#: makes the kernel send a reset, which can destroy the answer in flight.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024

REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}

#: Longest request path written to the log for a refused request.
LOGGED_PATH_LENGTH = 100


#: ``(channel, status, detail)``: told about every request the channel refuses.
RefusalLogger = Callable[["LimitedHTTPChannel", int, str], None]


class LimitedHTTPChannel(HTTPChannel):
    """Twisted's HTTP/1.1 parser with a header deadline and answered limits.

    The deadline runs from the moment the connection opens -- or, on a
    kept-alive connection, from the end of the previous response -- to the
    blank line that ends the request headers.  A connection that has sent
    nothing by then is closed quietly (it is an idle keep-alive); one that
    has sent part of a request gets a 408 first.
    """

    # Twisted types it as an optional ITransport, whose methods mypy reads
    # with their first argument taken for ``self``.
    transport: Any

    def __init__(
        self,
        limits: ConnectionLimits,
        pending: PendingConnections,
        on_refusal: RefusalLogger | None = None,
        clock: Any = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.limits = limits
        #: What waits to be sent to the client (this channel stays the
        #: transport's producer after a WebSocket upgrade, so it serves both).
        self.send_buffer = SendBuffer(limits, self, clock)
        self.pending = pending
        self.on_refusal = on_refusal
        # Twisted's own limits, set so that ours always apply first.
        self.MAX_LENGTH = max(limits.max_request_line, limits.max_header_size)
        self.totalHeadersSize = limits.max_request_line + limits.max_header_size
        self.maxHeaders = limits.max_headers
        self.refused: int | None = None
        self._deadline: Any = None
        self._linger: Any = None
        self._lingered_bytes = 0
        self._in_headers = False
        self._header_bytes = 0
        self._header_lines = 0
        self._request_line = b""
        self._waiting_since = time.monotonic()

    # -- waiting for headers -----------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[no-untyped-call]
        self._start_waiting()

    def _start_waiting(self) -> None:
        self._in_headers = False
        self._header_bytes = self._header_lines = 0
        self._request_line = b""
        self._waiting_since = time.monotonic()
        self._cancel_deadline()
        if self.limits.header_timeout:
            self._deadline = self.callLater(  # type: ignore[no-untyped-call]
                self.limits.header_timeout, self._headers_overdue
            )
        self.pending.add(self)

    def _stop_waiting(self) -> None:
        self._cancel_deadline()
        self.pending.discard(self)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _has_partial_request(self) -> bool:
        return self._in_headers or bool(self._buffer)

    def _headers_overdue(self) -> None:
        self._deadline = None
        if self._has_partial_request():
            self.refuse(
                408,
                f"The request headers did not arrive within "
                f"{self.limits.header_timeout:g} seconds.",
            )
        else:
            self._close_quietly()

    def evict(self) -> None:
        """Make room for a newer connection (see :class:`PendingConnections`)."""
        if self._has_partial_request():
            self.refuse(
                503, "Too many connections are sending request headers at once."
            )
        else:
            self._close_quietly()

    def _close_quietly(self) -> None:
        self._stop_waiting()
        self._networkProducer.unregisterProducer()
        close_now(self.transport, abort=False)

    # -- parsing -----------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        if self.refused is not None:
            self._buffer = b""
            return
        limits = self.limits
        if not self._in_headers:
            if len(line) > limits.max_request_line:
                self._refuse_request_line(line)
                return
            if line:  # Twisted tolerates one empty line before a request.
                self._in_headers = True
                self._request_line = line
            super().lineReceived(line)  # type: ignore[no-untyped-call]
            return
        if not line:
            self._in_headers = False
            self._stop_waiting()
            super().lineReceived(line)  # type: ignore[no-untyped-call]
            return
        self._header_bytes += len(line)
        self._header_lines += 1
        if self._header_bytes > limits.max_header_size:
            self.refuse(
                431, f"The request headers exceed {limits.max_header_size} bytes."
            )
            return
        if self._header_lines > limits.max_headers:
            self.refuse(431, f"The request has more than {limits.max_headers} headers.")
            return
        super().lineReceived(line)  # type: ignore[no-untyped-call]

    def lineLengthExceeded(self, line: bytes) -> None:
        """A line longer than ``MAX_LENGTH``, or that much data with no line end."""
        if self._in_headers:
            self.refuse(
                431,
                f"A request header exceeds {self.limits.max_header_size} bytes.",
            )
        else:
            self._refuse_request_line(line)

    def _refuse_request_line(self, line: bytes) -> None:
        self._request_line = line.split(b"\r\n", 1)[0]
        self.refuse(
            414, f"The request line exceeds {self.limits.max_request_line} bytes."
        )

    def allHeadersReceived(self) -> None:
        hosts = self.requests[-1].requestHeaders.getRawHeaders(b"host") or []
        if self._version == b"HTTP/1.1" and len(hosts) != 1:
            # RFC 9112, section 3.2: exactly one Host header, or a 400.
            self.length = None  # so that Twisted does not run the request
            self.refuse(400, "An HTTP/1.1 request needs exactly one Host header.")
            return
        super().allHeadersReceived()  # type: ignore[no-untyped-call]

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's answer to everything malformed: a bare 400 and a close.
        self.refuse(400, "The request is malformed.")
        self.length = None

    def requestDone(self, request: Any) -> None:
        # Before Twisted replays pipelined data, which may hold the next
        # request's headers already.
        if self.persistent and self.refused is None:
            self._start_waiting()
        super().requestDone(request)  # type: ignore[no-untyped-call]

    # -- sending ------------------------------------------------------------------

    def pauseProducing(self) -> None:
        """The transport's buffer is full (see :mod:`.slow_clients`)."""
        self.send_buffer.paused()
        super().pauseProducing()  # type: ignore[no-untyped-call]

    def resumeProducing(self) -> None:
        """The transport's buffer is empty again."""
        super().resumeProducing()  # type: ignore[no-untyped-call]
        self.send_buffer.resumed()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.send_buffer.connection_lost()
        self._stop_waiting()
        self.pending.stop_lingering(self)
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    # -- refusing ----------------------------------------------------------------

    def refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` and close, reading what the client still sends."""
        if self.refused is not None:
            return
        self.refused = status
        self._stop_waiting()
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self._buffer = b""
        self.dataReceived = self._discard  # type: ignore[method-assign]
        body = f"{status} {REASONS[status]}\n\n{detail}\n".encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status].encode())
            + b"Content-Type: text/plain; charset=utf-8\r\n"
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            + body
        )
        if self.on_refusal is not None:
            try:
                self.on_refusal(self, status, detail)
            except Exception:
                logger.exception("Could not log a refused request")
        self._networkProducer.unregisterProducer()
        close_writing = getattr(self.transport, "loseWriteConnection", None)
        if close_writing is None:
            self.transport.loseConnection()
            return
        close_writing()
        self._linger = self.callLater(  # type: ignore[no-untyped-call]
            LINGER_SECONDS, self.transport.abortConnection
        )
        self.pending.linger(self)

    def _discard(self, data: bytes) -> None:
        self._lingered_bytes += len(data)
        if self._lingered_bytes > LINGER_BYTES:
            self.transport.abortConnection()

    # -- for the log ---------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The details Daphne's access log takes, for a refused request."""
        method, _, rest = self._request_line.partition(b" ")
        path = rest.rpartition(b" ")[0] if b" HTTP/" in rest else rest
        shown = path[:LOGGED_PATH_LENGTH].decode("ascii", "replace")
        if len(path) > LOGGED_PATH_LENGTH:
            shown += f"... ({len(path)} bytes)"
        peer: Any = getattr(self.transport, "getPeer", lambda: None)()
        client = (
            f"{peer.host}:{peer.port}"
            if hasattr(peer, "host") and hasattr(peer, "port")
            else None
        )
        return {
            "method": method[:20].decode("ascii", "replace") or "-",
            "path": shown or "-",
            "status": self.refused,
            "client": client,
            "time_taken": time.monotonic() - self._waiting_since,
            "size": 0,
        }
