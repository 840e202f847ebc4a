"""Limits ``runserver``'s server puts on what clients send, and how it refuses.

Daphne inherits its request parsing from Twisted and Autobahn, and with it
three weaknesses a misbehaving client (or a slowloris attack) can use:

* Twisted's only timer on a connection is a 60 s *idle* timeout, reset by
  every byte, so a client trickling its request headers holds its socket
  (and a file descriptor) for ever; about a thousand such clients exhaust a
  1,024-descriptor limit and lock everyone out.
* A request line longer than 16 KiB, or headers beyond 16 KiB in all (a big
  ``Cookie``), make Twisted drop the connection without any answer, or
  answer a bare ``400`` -- never the ``414``/``431`` that say what is wrong.
* Autobahn "fails by drop": a frame or message over the size limit, invalid
  UTF-8 or a protocol error closes the TCP connection without a close frame,
  so the client sees 1006 rather than 1009, 1007 or 1002.

:class:`LimitedHTTPChannel` gives every connection a deadline for its
request headers (:attr:`ConnectionLimits.header_timeout`), caps how many
connections may be waiting for theirs at once (the one that has waited
longest is closed to make room for a new one), and answers oversized or
malformed requests with a real status (400, 408, 414, 431, 503) before
closing.  :func:`install` puts it, and a WebSocket protocol that closes with
a close frame, into Daphne's factories.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Installs Twisted's asyncio reactor before anything imports another one.
import daphne.server  # noqa: F401  # isort: skip

from daphne.ws_protocol import WebSocketProtocol
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol

logger = logging.getLogger("channels_app.server")

#: Seconds a connection has to send complete request headers.
DEFAULT_HEADER_TIMEOUT = 10.0
#: Connections that may be waiting for their request headers at once.
DEFAULT_MAX_PENDING = 500
#: Longest request line (method, URL, version), in bytes: beyond it, 414.
DEFAULT_MAX_REQUEST_LINE = 8 * 1024
#: Most bytes of header lines in one request: beyond it, 431.
DEFAULT_MAX_HEADER_SIZE = 16 * 1024
#: Most header lines in one request: beyond it, 431.
DEFAULT_MAX_HEADERS = 100

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


@dataclass(frozen=True)
class ConnectionLimits:
    """What ``runserver``'s server accepts from a client.

    ``header_timeout`` and ``max_pending`` may be 0 for "no limit"; the
    sizes must be positive.
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_pending: int = DEFAULT_MAX_PENDING
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_headers: int = DEFAULT_MAX_HEADERS

    def __post_init__(self) -> None:
        if self.header_timeout < 0 or self.max_pending < 0:
            raise ValueError("header_timeout and max_pending cannot be negative")
        sizes = (self.max_request_line, self.max_header_size, self.max_headers)
        if min(sizes) <= 0:
            raise ValueError(
                "max_request_line, max_header_size and max_headers must be positive"
            )


class PendingConnections:
    """The connections still waiting for their request headers, oldest first.

    When a new one would take the count over ``limits.max_pending``, the one
    that has waited longest is closed: a slow or stalled client loses its
    place, not the newcomer (who, if it is a real client, sends its headers
    at once and leaves the set again).
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        # A dict keeps insertion order, which is the order they began waiting.
        self._waiting: dict[LimitedHTTPChannel, None] = {}
        # Refused connections reading out their client's input (LINGER_*):
        # they hold a file descriptor too, so a flood of clients that ignore
        # the answer must not pile them up beyond the cap (found by
        # tests/e2e/test_slowloris.py with clients that never hang up).
        self._lingering: dict[LimitedHTTPChannel, None] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, channel: LimitedHTTPChannel) -> None:
        self._waiting.pop(channel, None)
        self._waiting[channel] = None
        cap = self.limits.max_pending
        while cap and len(self._waiting) > cap:
            oldest = next(iter(self._waiting))
            # Leaves the set before anything else happens to it.
            oldest.evict()
            self._waiting.pop(oldest, None)

    def discard(self, channel: LimitedHTTPChannel) -> None:
        self._waiting.pop(channel, None)

    def linger(self, channel: LimitedHTTPChannel) -> None:
        """``channel`` was refused and waits for its client to read the answer.

        At most ``max_pending`` linger at once, so waiting and lingering
        connections together hold at most twice ``max_pending`` descriptors
        (1,000 by default, under the usual limit of 1,024); beyond that the one
        refused longest ago -- which has had the most time to read its answer
        -- is cut off at once.  A quarter of the cap was too few: clients that
        read their answers a moment later lost them to the reset
        (tests/e2e/test_hostile_clients.py).
        """
        self._lingering[channel] = None
        cap = self.limits.max_pending
        while cap and len(self._lingering) > cap:
            oldest = next(iter(self._lingering))
            self._lingering.pop(oldest)
            oldest.transport.abortConnection()

    def stop_lingering(self, channel: LimitedHTTPChannel) -> None:
        self._lingering.pop(channel, None)


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
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.limits = limits
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
        self.loseConnection()  # type: ignore[no-untyped-call]

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

    def connectionLost(self, reason: Failure = connectionDone) -> None:
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


class LimitedWebSocketProtocol(WebSocketProtocol):  # type: ignore[misc]  # daphne
    """Daphne's WebSocket protocol, saying in the log why it failed a connection.

    With ``failByDrop`` off (see :func:`install`) Autobahn closes a failed
    connection with a close frame: 1009 for a frame or message over the size
    limit, 1007 for text that is not UTF-8, 1002 for a protocol error.
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


def install(server: Any, limits: ConnectionLimits) -> PendingConnections:
    """Put the limits into the factories Daphne's ``Server.run`` built.

    Must run before the reactor accepts the first connection.
    """
    pending = PendingConnections(limits)

    def log_refusal(channel: LimitedHTTPChannel, status: int, detail: str) -> None:
        server.log_action("http", "complete", channel.describe())

    def build_channel() -> _GenericHTTPChannelProtocol:
        return _GenericHTTPChannelProtocol(
            LimitedHTTPChannel(limits, pending, log_refusal)
        )

    # Factory.buildProtocol calls self.protocol() with no arguments.
    server.http_factory.protocol = build_channel
    server.ws_factory.protocol = LimitedWebSocketProtocol
    # setProtocolOptions resets allowNullOrigin unless it is passed: keep
    # Daphne's choice (the application's origin check decides).
    server.ws_factory.setProtocolOptions(
        failByDrop=False, allowNullOrigin=server.ws_factory.allowNullOrigin
    )
    return pending
