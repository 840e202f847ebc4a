"""The connections still sending their request headers, and those being refused.

Each holds a file descriptor; capping both sets keeps a flood of slow or
hostile clients from taking every descriptor the process has.  A connection
closed to keep a cap releases its descriptor at once (:func:`close_now`),
not on the reactor's next turn.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.python.failure import Failure

from .limits import ConnectionLimits
from .slow_clients import unsent_bytes


def close_now(transport: Any, *, abort: bool) -> None:
    """Close ``transport`` and release its descriptor before returning.

    Twisted's ``abortConnection`` closes the socket on the reactor's next
    turn (``callLater(0)``), and ``loseConnection`` once the next write
    event comes.  But Twisted accepts up to 100 connections and more in one
    turn (``Port.numberAccepts``), each of which may push another out of a
    cap: with deferred closes the descriptors of the pushed-out ones add up
    within the turn, past the caps' budget.  Under load, when the backlog is
    accepted in big batches, a server limited to 1,024 descriptors reached
    all 1,024 during tests/e2e/test_slowloris.py, and on ``EMFILE`` Twisted
    accepts and closes every connection in the backlog -- other clients are
    reset.  So the transport's own ``connectionLost`` (what the deferred
    call would run; Twisted makes a second call a no-op) runs now.

    An orderly close with bytes still unsent (a kept-alive connection whose
    last response is still being written) waits for them as before.  A
    transport without ``connectionLost`` (not TCP) closes its own way.
    """
    if abort:
        transport.abortConnection()
        reason = Failure(ConnectionAborted())  # type: ignore[no-untyped-call]
    else:
        transport.loseConnection()
        if unsent_bytes(transport):
            return
        reason = Failure(ConnectionDone())  # type: ignore[no-untyped-call]
    lost = getattr(transport, "connectionLost", None)
    if lost is not None and getattr(transport, "socket", None) is not None:
        lost(reason)


class WaitingConnection(Protocol):
    """What the sets need of a connection (a :mod:`.http_channel` channel)."""

    transport: Any

    def evict(self) -> None:
        """Close the connection: it waited longest for its request."""


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
        self._waiting: dict[WaitingConnection, None] = {}
        # Refused connections reading out their client's input (LINGER_*):
        # they hold a file descriptor too, so a flood of clients that ignore
        # the answer must not pile them up beyond the cap (found by
        # tests/e2e/test_slowloris.py with clients that never hang up).
        self._lingering: dict[WaitingConnection, None] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, channel: WaitingConnection) -> None:
        self._waiting.pop(channel, None)
        self._waiting[channel] = None
        cap = self.limits.max_pending
        while cap and len(self._waiting) > cap:
            oldest = next(iter(self._waiting))
            # Leaves the set before anything else happens to it.
            oldest.evict()
            self._waiting.pop(oldest, None)

    def discard(self, channel: WaitingConnection) -> None:
        self._waiting.pop(channel, None)

    def linger(self, channel: WaitingConnection) -> None:
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
            close_now(oldest.transport, abort=True)

    def stop_lingering(self, channel: WaitingConnection) -> None:
        self._lingering.pop(channel, None)
