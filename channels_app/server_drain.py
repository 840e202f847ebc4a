"""Stopping one server process without failing its clients.

Daphne stops by cancelling every application and dropping every
connection, so a request in flight fails and every WebSocket client sees a
1006 at the same instant.  ``manage.py serve`` restarts its processes
instead with :class:`GracefulDrain`: the process stops accepting (the
listening socket is shared, so the other processes take the new
connections), lets its HTTP requests finish, closes its WebSockets with
1012 ("service restart") spread over a window so that their clients do not
all reconnect in the same second, and only then stops the reactor -- whose
shutdown still drains in-process workers and runs the lifespan shutdown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

# Installs Twisted's asyncio reactor before anything imports another one.
import daphne.server  # noqa: F401  # isort: skip

from daphne.http_protocol import WebRequest
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor

logger = logging.getLogger("channels_app.server")

_reactor: Any = reactor  # untyped, as in server.py

#: The close code RFC 6455's registry names "Service Restart": the client
#: may reconnect, preferably after a short random delay.
SERVICE_RESTART = 1012

#: How often the drain looks at what is still running; it only decides when
#: the process may stop, so a tenth of a second is prompt enough.
POLL_INTERVAL = 0.1

#: A connection accepted just before the drain began may not have sent its
#: request yet; for this long, one still waiting for its headers keeps the
#: process up.  Not for longer: an idle keep-alive connection waits for
#: headers too, and would hold the restart until its header timeout.
ACCEPT_GRACE = 1.0


@dataclass(frozen=True)
class DrainTimes:
    """How long a drain may take, in seconds."""

    #: WebSocket closes are spread evenly over this window.
    window: float = 5.0
    #: Past this, whatever is still running is cut off and the process stops.
    timeout: float = 30.0


class GracefulDrain:
    """Drains ``server`` (a running :class:`~channels_app.server.DevelopmentServer`)."""

    def __init__(self, server: Any, times: DrainTimes) -> None:
        self.server = server
        self.times = times
        self.started: float | None = None

    def begin(self) -> None:
        """Stop accepting, schedule the WebSocket closes and watch the rest.

        A second call (a second SIGTERM) stops at once, as Daphne would.
        """
        if self.started is not None:
            logger.warning("Second stop signal: stopping without waiting")
            self.server.stop()
            return
        self.started = time.monotonic()
        for port in self.server.listening_ports:
            port.stopListening()
        sockets = [p for p in self.server.connections if _is_websocket(p)]
        logger.info(
            "Draining: %d WebSocket(s) to close over %.1fs, %d HTTP request(s) "
            "in flight",
            len(sockets),
            self.times.window,
            self._requests_in_flight(),
        )
        for index, protocol in enumerate(sockets):
            delay = self.times.window * index / len(sockets)
            _reactor.callLater(delay, _close_for_restart, protocol)
        _reactor.callLater(POLL_INTERVAL, self._check)

    def _requests_in_flight(self) -> int:
        return sum(
            1
            for protocol, details in self.server.connections.items()
            if isinstance(protocol, WebRequest) and "disconnected" not in details
        )

    def _busy(self, elapsed: float) -> bool:
        """Whether any connection is still open or any application running."""
        pending = self.server.pending
        if elapsed < ACCEPT_GRACE and pending is not None and len(pending):
            return True
        for details in self.server.connections.values():
            if "disconnected" not in details:
                return True
            instance = details.get("application_instance")
            if instance is not None and not instance.done():
                return True
        return False

    def _check(self) -> None:
        assert self.started is not None
        elapsed = time.monotonic() - self.started
        if not self._busy(elapsed):
            logger.info("Drained in %.1fs", elapsed)
            self.server.stop()
        elif elapsed > self.times.timeout:
            logger.warning(
                "Drain timeout (%.0fs) reached with %d connection(s) still open; "
                "stopping anyway",
                self.times.timeout,
                sum("disconnected" not in d for d in self.server.connections.values()),
            )
            self.server.stop()
        else:
            _reactor.callLater(POLL_INTERVAL, self._check)


def _is_websocket(protocol: Any) -> bool:
    return isinstance(protocol, WebSocketProtocol)


def _close_for_restart(protocol: Any) -> None:
    """Close one WebSocket with 1012; one still in its handshake is refused.

    Autobahn's ``sendClose`` refuses every code outside 1000 and 3000-4999
    ("invalid close code"), though 1012 is a registered code a server may
    send; its ``sendCloseFrame``, which ``sendClose`` ends in and which
    keeps the close handshake and its timeout, takes it.
    """
    if protocol.state == protocol.STATE_CONNECTING:
        protocol.serverReject()
    elif protocol.state == protocol.STATE_OPEN:
        protocol.sendCloseFrame(code=SERVICE_RESTART, reasonUtf8=b"service restart")
