"""What the server holds for a client that does not read, and when it gives up.

Daphne writes whatever an application sends straight into the connection's
Twisted transport, whose buffer has no bound: a WebSocket client that stops
reading while a group broadcast runs makes the server keep every message for
it until memory runs out, and its consumer never learns the client is gone.
Twisted does say when a buffer fills: the transport pauses its registered
producer -- the connection's HTTP channel, which stays registered after a
WebSocket upgrade -- once more than ``bufferSize`` (64 KiB) waits, and
resumes it once the kernel has taken everything.  :class:`SendBuffer`
listens to those calls:

* a WebSocket message is written at once, as with Daphne (a consumer's
  ``send`` never waits), but one that finds the buffer full and would take
  it past ``send_buffer_bytes`` or ``send_buffer_messages`` closes the
  connection instead, so the server's memory stays bounded;
* a part of an HTTP response body (a download, server-sent events) that
  finds the buffer full waits until it has drained -- the application's
  ``send`` returns once the client has read -- so a large download to a slow
  client is paced, not buffered; more than ``send_buffer_messages`` parts
  waiting at once close the connection;
* a full buffer of which the client reads nothing for ``send_timeout``
  seconds closes the connection, WebSocket or HTTP.

A closed connection is aborted (a client that does not read would never read
a close frame either), the application gets its ``websocket.disconnect``
(with :data:`SLOW_CLIENT_CLOSE_CODE`) or ``http.disconnect``, and one
warning names the client, the bytes it left unread and for how long.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

# Installs Twisted's asyncio reactor before anything imports another one.
import daphne.server  # noqa: F401  # isort: skip

from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor

from .. import metrics
from .limits import ConnectionLimits

logger = logging.getLogger("channels_app.server")

#: The WebSocket close code of a client closed for not reading: 1013, "Try
#: Again Later" (IANA registry), rather than 1008, "Policy Violation".  1008
#: is about a message the endpoint *received*, and tells the client it did
#: something it should not repeat; a client that fell behind usually has a
#: stalled network or a busy tab -- a passing condition -- and the right
#: thing for it is to reconnect and catch up, which is what 1013 asks for.
SLOW_CLIENT_CLOSE_CODE = 1013

#: The messages that carry data to the client (others are always passed on).
WEBSOCKET_DATA = "websocket.send"
HTTP_DATA = "http.response.body"

#: How many times per ``send_timeout`` a full buffer is checked for progress:
#: a client is closed between 1 and 1.25 timeouts after it last read.
CHECKS_PER_TIMEOUT = 4

#: Passes one ASGI message on to the protocol (the server's part of
#: ``handle_reply``).
Deliver = Callable[[Any, dict[str, Any]], None]


def _on_slow_client_closed(protocol: Any) -> None:
    """Called once for each connection closed for not reading: counted."""
    is_websocket = isinstance(protocol, WebSocketProtocol)
    metrics.record_slow_client_close("websocket" if is_websocket else "http")


def unsent_bytes(transport: Any) -> int:
    """Bytes ``transport`` holds that the kernel has not taken yet.

    Reads the buffers of Twisted's ``FileDescriptor`` (the current block
    from its offset, plus the list of later writes); 0 for a transport
    without them.
    """
    current = getattr(transport, "dataBuffer", b"")
    later: int = getattr(transport, "_tempDataLen", 0)
    offset: int = getattr(transport, "offset", 0)
    return len(current) - offset + later


def send_buffer_of(protocol: Any) -> SendBuffer | None:
    """The buffer of the connection ``protocol`` (a Daphne request or WebSocket)
    sends on, or None if it has none (not served through the limits)."""
    channel = getattr(protocol, "channel", None)  # an HTTP request
    if channel is None:  # a WebSocket: its transport's producer is the channel
        channel = getattr(getattr(protocol, "transport", None), "producer", None)
    buffer = getattr(channel, "send_buffer", None)
    return buffer if isinstance(buffer, SendBuffer) else None


def payload_size(message: dict[str, Any]) -> int:
    """About how many bytes ``message`` puts on the wire (its payload)."""
    data = message.get("bytes") or message.get("text") or message.get("body") or b""
    return len(data.encode() if isinstance(data, str) else data)


class SendBuffer:
    """One connection's outgoing buffer, watched through its producer calls.

    ``channel`` is the connection's HTTP channel (its ``transport`` is the
    TCP transport); ``clock`` gives ``callLater`` and ``seconds``.  A server
    holds one per connection by the thousand, so it has slots and allocates
    its queues only when a client falls behind.
    """

    __slots__ = (
        "_check",
        "_full_since",
        "_last_progress",
        "_message_ends",
        "_progress_mark",
        "_waiters",
        "_writing",
        "_written",
        "channel",
        "clock",
        "closed",
        "closed_as_slow",
        "full",
        "limits",
        "protocol",
    )

    def __init__(
        self, limits: ConnectionLimits, channel: Any, clock: Any = None
    ) -> None:
        self.limits = limits
        self.channel = channel
        self.clock: Any = reactor if clock is None else clock
        #: The transport has paused us and not resumed yet.
        self.full = False
        #: Closed for not reading, or the connection is gone.
        self.closed = False
        self.closed_as_slow = False
        #: The protocol that sent last (the one to close and name).
        self.protocol: Any = None
        # Bytes deliveries handed to the transport since it was last empty;
        # minus what it still holds, that is what the client has taken since
        # (the progress measure).  Writes made outside deliveries (pings)
        # make it lag by their few bytes until the buffer next empties.
        self._written = 0
        self._writing = False
        self._progress_mark = 0
        self._full_since = 0.0
        self._last_progress = 0.0
        self._check: Any = None
        self._waiters: list[asyncio.Future[None]] | None = None
        # Where each data message still in the transport ends, counted like
        # _written: the transport sends in order, so those ending at or
        # before what the client has taken are gone.
        self._message_ends: deque[int] | None = None

    # -- what the transport says ------------------------------------------------

    def paused(self) -> None:
        """The transport holds more than its ``bufferSize``: watch for progress."""
        if self.full or self.closed:
            return
        self.full = True
        self._full_since = self._last_progress = self.clock.seconds()
        if not self._writing:  # else _write() sets it, once it has counted
            self._progress_mark = self._taken()
        self._schedule_check()

    @property
    def messages(self) -> int:
        """Data messages the transport still holds, whole or in part."""
        return self._forget_sent_messages()

    def _forget_sent_messages(self) -> int:
        """Drop the messages the client has taken; how many are left."""
        ends = self._message_ends
        if not ends:
            return 0
        taken = self._taken()
        while ends and ends[0] <= taken:
            ends.popleft()
        return len(ends)

    def resumed(self) -> None:
        """The transport has handed everything to the kernel."""
        self.full = False
        self._cancel_check()
        self._wake_waiters()

    def connection_lost(self) -> None:
        self.closed = True
        self._cancel_check()
        self._wake_waiters()

    # -- what the application sends ---------------------------------------------

    async def send(
        self, protocol: Any, message: dict[str, Any], deliver: Deliver
    ) -> None:
        """Pass ``message`` on, wait for room, or close the connection."""
        self.protocol = protocol
        kind = message.get("type")
        if self.closed_as_slow:
            return  # dropped: the connection is being aborted
        if self.full and kind == HTTP_DATA:
            await self._wait_for_room()
            if self.closed_as_slow:
                return
        elif self.full and kind == WEBSOCKET_DATA:
            refusal = self._overflow(payload_size(message))
            if refusal:
                self.close_as_slow(refusal)
                return
        self._write(protocol, message, deliver)

    def _overflow(self, size: int) -> str | None:
        """Why one more message of ``size`` bytes is too many, or None."""
        limits = self.limits
        if limits.send_buffer_messages and self.messages >= limits.send_buffer_messages:
            return f"its send buffer holds {limits.send_buffer_messages} messages"
        unsent = unsent_bytes(self.channel.transport)
        if limits.send_buffer_bytes and unsent + size > limits.send_buffer_bytes:
            return (
                f"{size} more bytes would pass its {limits.send_buffer_bytes}-byte "
                f"send buffer"
            )
        return None

    def _write(self, protocol: Any, message: dict[str, Any], deliver: Deliver) -> None:
        transport = self.channel.transport
        before = unsent_bytes(transport)
        if not before:
            # Everything written so far has left: start counting afresh, so
            # neither the count nor the list of messages grows for ever.
            self._written = 0
            self._message_ends = None
        was_full = self.full
        self._writing = True
        try:
            deliver(protocol, message)
        finally:
            self._writing = False
            # Twisted's write() only appends to the buffer (the kernel is
            # written to later, by the reactor), so the growth is exactly
            # what this message added.
            added = unsent_bytes(transport) - before
            if added > 0:
                self._written += added
                if message.get("type") in (WEBSOCKET_DATA, HTTP_DATA):
                    self._note_message_end()
            if self.full and not was_full:  # this message filled it
                self._progress_mark = self._taken()

    def _note_message_end(self) -> None:
        if self._message_ends is None:
            self._message_ends = deque()
        else:
            self._forget_sent_messages()  # amortised O(1): each leaves once
        self._message_ends.append(self._written)

    async def _wait_for_room(self) -> None:
        if self._waiters is None:
            self._waiters = []
        while self.full and not self.closed:
            cap = self.limits.send_buffer_messages
            if cap and len(self._waiters) >= cap:
                self.close_as_slow(f"{cap} response parts wait to be sent")
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _wake_waiters(self) -> None:
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    # -- the timeout ------------------------------------------------------------

    def _taken(self) -> int:
        return self._written - unsent_bytes(self.channel.transport)

    def _schedule_check(self) -> None:
        timeout = self.limits.send_timeout
        if timeout and not self.closed:
            self._check = self.clock.callLater(
                timeout / CHECKS_PER_TIMEOUT, self._check_progress
            )

    def _cancel_check(self) -> None:
        if self._check is not None and self._check.active():
            self._check.cancel()
        self._check = None

    def _check_progress(self) -> None:
        self._check = None
        if not self.full or self.closed:
            return
        now = self.clock.seconds()
        taken = self._taken()
        if taken > self._progress_mark:
            self._progress_mark = taken
            self._last_progress = now
        elif now - self._last_progress >= self.limits.send_timeout:
            self.close_as_slow(
                f"it read nothing for {self.limits.send_timeout:g} seconds"
            )
            return
        self._schedule_check()

    # -- closing ------------------------------------------------------------------

    def close_as_slow(self, reason: str) -> None:
        """Abort the connection of a client that does not read, and say why."""
        if self.closed:
            return
        self.closed = self.closed_as_slow = True
        self._cancel_check()
        transport = self.channel.transport
        protocol = self.protocol
        logger.warning(
            "Closed slow client %s (%s): %d bytes unsent, buffer full for %.1f s; %s",
            describe_peer(protocol, transport),
            describe_protocol(protocol),
            unsent_bytes(transport),
            self.clock.seconds() - self._full_since if self.full else 0.0,
            reason,
        )
        mark_closed = getattr(protocol, "close_as_slow_client", None)
        try:
            if mark_closed is not None:
                mark_closed()
        finally:
            transport.abortConnection()
            self._wake_waiters()
        try:
            _on_slow_client_closed(protocol)
        except Exception:
            logger.exception("The slow-client hook failed")


def describe_peer(protocol: Any, transport: Any) -> str:
    address = getattr(protocol, "client_addr", None)
    if address:
        return ":".join(map(str, address))
    peer: Any = getattr(transport, "getPeer", lambda: None)()
    if hasattr(peer, "host") and hasattr(peer, "port"):
        return f"{peer.host}:{peer.port}"
    return "-"


def describe_protocol(protocol: Any) -> str:
    request = getattr(protocol, "request", None)
    if request is not None and hasattr(request, "path"):  # Autobahn's request
        return f"WebSocket {request.path}"
    method = getattr(protocol, "method", b"") or b""
    uri = getattr(protocol, "uri", b"") or b""
    shown = b"%s %s" % (method, uri[:100])
    return "HTTP " + shown.decode("ascii", "replace")
