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
a close frame, into Daphne's factories.  Each channel also bounds what waits
to be sent to a client that does not read (:mod:`.slow_clients`).


The pieces: the numbers (:mod:`.limits`), the connections waiting for their
headers or being refused (:mod:`.pending`), the HTTP parser that applies the
limits (:mod:`.http_channel`), the send buffer (:mod:`.slow_clients`) and the
WebSocket protocol (:mod:`.websocket`);
this module puts them into Daphne.
"""

from __future__ import annotations

from typing import Any

# Installs Twisted's asyncio reactor before anything imports another one.
import daphne.server  # noqa: F401  # isort: skip

from twisted.web.http import _GenericHTTPChannelProtocol

from .http_channel import LINGER_BYTES, LINGER_SECONDS, LimitedHTTPChannel
from .limits import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_REQUEST_LINE,
    DEFAULT_SEND_BUFFER_BYTES,
    DEFAULT_SEND_BUFFER_MESSAGES,
    DEFAULT_SEND_TIMEOUT,
    ConnectionLimits,
)
from .pending import PendingConnections
from .slow_clients import SLOW_CLIENT_CLOSE_CODE, SendBuffer
from .websocket import LimitedWebSocketProtocol

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_REQUEST_LINE",
    "DEFAULT_SEND_BUFFER_BYTES",
    "DEFAULT_SEND_BUFFER_MESSAGES",
    "DEFAULT_SEND_TIMEOUT",
    "LINGER_BYTES",
    "LINGER_SECONDS",
    "SLOW_CLIENT_CLOSE_CODE",
    "ConnectionLimits",
    "LimitedHTTPChannel",
    "LimitedWebSocketProtocol",
    "PendingConnections",
    "SendBuffer",
    "install",
]


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
