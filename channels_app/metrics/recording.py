"""What consumers and workers record, when ``prometheus_client`` is installed.

Each function runs once per connection, consumer or worker message, finds
its tallies (:mod:`.tallies`) there, and returns the callables that count
each frame or message with a few integer additions.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from asgiref.sync import markcoroutinefunction
from prometheus_client import start_http_server

from ..exceptions import StopConsumer
from ..types import Message, Receive, Scope, Send
from . import exposition, tallies  # noqa: F401 - exposition registers the collector
from .labels import BoundedLabel, route_of
from .tallies import BOUNDS

#: The scope types whose connections are counted in ``connections_open``.
CONNECTION_PROTOCOLS = ("websocket", "http")

_routes = BoundedLabel()
_consumers = BoundedLabel()
_handlers = BoundedLabel()
_channels = BoundedLabel()


def _nothing() -> None:
    """What ``open_connection`` returns as the close callback for other scopes."""


def open_connection(
    consumer: Any, scope: Scope, receive: Receive, send: Send
) -> tuple[Receive, Send, Callable[[], None]]:
    """Prepare the connection's tally; return its receive, its send (counting
    WebSocket frames sent) and the callback to run when the consumer ends.

    The connection counts as open from :func:`timed_dispatch`, which the
    consumer calls inside the ``try`` whose ``finally`` runs the callback:
    a consumer failing before that (its layer unreachable) never leaves the
    gauge one too high.  Frames received are counted there too, as it sees
    every message anyway: ``receive`` comes back as it is.
    """
    protocol = scope.get("type")
    if protocol not in CONNECTION_PROTOCOLS:
        return receive, send, _nothing
    route = _routes(route_of(scope, consumer))
    key = (protocol, route)
    tally = tallies.find(tallies.connections, key, tallies.ConnectionTally)
    consumer._metrics_connection = tally
    consumer._metrics_open = False
    if protocol == "websocket":
        send = _counting_sends(tally, send)
    return receive, send, _ConnectionEnd(consumer, tally)


class _ConnectionEnd:
    """The callback ``open_connection`` returns: the connection closed.

    A slotted object rather than a closure, as every open connection holds
    it: 56 bytes instead of about 200.
    """

    __slots__ = ("consumer", "tally")

    def __init__(self, consumer: Any, tally: tallies.ConnectionTally) -> None:
        self.consumer = consumer
        self.tally = tally

    def __call__(self) -> None:
        if self.consumer._metrics_open:
            self.consumer._metrics_open = False
            self.tally.open -= 1


def payload_size(message: Message) -> int:
    """Bytes of a frame's payload; text is measured as UTF-8."""
    text = message.get("text")
    if text is not None:
        # Invariant: an ASCII str has one UTF-8 byte per character, and
        # str.isascii() is O(1) in CPython, so most frames skip the encoding.
        return len(text) if text.isascii() else len(text.encode("utf-8"))
    data = message.get("bytes")
    return len(data) if data is not None else 0


def _counting_sends(tally: tallies.ConnectionTally, send: Send) -> Send:
    # A plain function returning send's awaitable, not a coroutine of its
    # own: one coroutine frame less per frame.  So a frame is counted when
    # handed to the server; marked as a coroutine function for the checks
    # (async_to_sync's among them) that ask.
    def counted_send(message: Message) -> Awaitable[None]:
        if message.get("type") == "websocket.send":
            tally.out_frames += 1
            text = message.get("text")
            if text is not None:  # as in payload_size, inlined
                tally.out_bytes += (
                    len(text) if text.isascii() else len(text.encode("utf-8"))
                )
            else:
                tally.out_bytes += len(message.get("bytes") or b"")
        return send(message)

    return markcoroutinefunction(counted_send)


def timed_dispatch(
    consumer: Any, dispatch: Callable[[Message], Awaitable[None]]
) -> Callable[[Message], Awaitable[None]]:
    """``dispatch`` timing each handler, counting those that raise and the
    WebSocket frames received."""
    consumer_name = _consumers(type(consumer).__qualname__)
    connection: tallies.ConnectionTally | None = getattr(
        consumer, "_metrics_connection", None
    )
    if connection is not None and not consumer._metrics_open:
        consumer._metrics_open = True
        connection.open += 1
    by_type: dict[object, tallies.HandlerTally] = {}

    async def timed(message: Message) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        tally = by_type.get(kind)
        if tally is None:
            tally = by_type[kind] = _handler_tally(consumer_name, kind)
        if connection is not None and kind == "websocket.receive":
            connection.in_frames += 1
            connection.in_bytes += payload_size(message)
        started = perf_counter()
        try:
            await dispatch(message)
        except StopConsumer:  # the normal way for a consumer to end
            raise
        except Exception:
            tally.errors += 1
            raise
        finally:
            # Inlined (it runs for every message): the bucket and the sum.
            seconds = perf_counter() - started
            tally.buckets[bisect_left(BOUNDS, seconds)] += 1
            tally.total += seconds

    return timed


def _handler_tally(consumer: str, kind: object) -> tallies.HandlerTally:
    name = _handlers(kind.replace(".", "_") if isinstance(kind, str) else "?")
    return tallies.find(tallies.handlers, (consumer, name), tallies.HandlerTally)


def worker_message_started(channel: str) -> Callable[[BaseException | None], None]:
    """Count a worker message as in flight; call the result with its error."""
    tally = tallies.find(tallies.workers, _channels(channel), tallies.WorkerTally)
    tally.in_flight += 1

    def finished(error: BaseException | None) -> None:
        tally.in_flight -= 1
        if error is None:
            tally.handled += 1
        else:
            tally.failed += 1

    return finished


def record_slow_client_close(protocol: str) -> None:
    """A connection was closed because its client read too slowly."""
    with tallies.lock:
        closes = tallies.slow_client_closes
        closes[protocol] = closes.get(protocol, 0) + 1


def start_metrics_server(port: int, address: str = "127.0.0.1") -> None:
    """Serve the default registry over HTTP from a daemon thread."""
    start_http_server(port, addr=address)
