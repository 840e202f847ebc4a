"""What consumers and workers record, when ``prometheus_client`` is installed.

Each function is called once per connection, consumer or worker message and
returns the callables that do the per-message counting, with their label
children looked up in advance: a frame then costs one counter increment per
metric, not a label lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from prometheus_client import start_http_server

from ..exceptions import StopConsumer
from ..types import Message, Receive, Scope, Send
from . import families
from .labels import BoundedLabel, route_of

#: The scope types whose connections are counted in ``connections_open``.
CONNECTION_PROTOCOLS = ("websocket", "http")

_routes = BoundedLabel()
_consumers = BoundedLabel()
_handlers = BoundedLabel()
_channels = BoundedLabel()
_handler_series: dict[tuple[str, str], tuple[Any, Any]] = {}


def _nothing() -> None:
    """What ``open_connection`` returns as the close callback for other scopes."""


def open_connection(
    consumer: object, scope: Scope, receive: Receive, send: Send
) -> tuple[Receive, Send, Callable[[], None]]:
    """Count the connection as open; return its receive and send (counting
    WebSocket frames) and the callback to run once when the consumer ends."""
    protocol = scope.get("type")
    if protocol not in CONNECTION_PROTOCOLS:
        return receive, send, _nothing
    route = _routes(route_of(scope, consumer))
    gauge = families.connections_open.labels(protocol, route)
    gauge.inc()
    if protocol == "websocket":
        receive, send = _count_frames(route, receive, send)
    return receive, send, gauge.dec


def payload_size(message: Message) -> int:
    """Bytes of a frame's payload; text is measured as UTF-8."""
    text = message.get("text")
    if text is not None:
        # Invariant: an ASCII str has one UTF-8 byte per character, and
        # str.isascii() is O(1) in CPython, so most frames skip the encoding.
        return len(text) if text.isascii() else len(text.encode("utf-8"))
    data = message.get("bytes")
    return len(data) if data is not None else 0


def _count_frames(route: str, receive: Receive, send: Send) -> tuple[Receive, Send]:
    in_frames = families.websocket_messages.labels(route, "in")
    in_bytes = families.websocket_bytes.labels(route, "in")
    out_frames = families.websocket_messages.labels(route, "out")
    out_bytes = families.websocket_bytes.labels(route, "out")

    async def counted_receive() -> Message:
        message = await receive()
        if message.get("type") == "websocket.receive":
            in_frames.inc()
            in_bytes.inc(payload_size(message))
        return message

    async def counted_send(message: Message) -> None:
        await send(message)
        # Counted once the server took it: a refused send sent nothing.
        if message.get("type") == "websocket.send":
            out_frames.inc()
            out_bytes.inc(payload_size(message))

    return counted_receive, counted_send


def _handler_children(consumer: str, message: Any) -> tuple[Any, Any]:
    kind = message.get("type") if isinstance(message, dict) else None
    handler = _handlers(kind.replace(".", "_") if isinstance(kind, str) else "?")
    key = (consumer, handler)
    children = _handler_series.get(key)
    if children is None:
        children = _handler_series[key] = (
            families.handler_duration.labels(consumer, handler),
            families.handler_errors.labels(consumer, handler),
        )
    return children


def timed_dispatch(
    consumer: object, dispatch: Callable[[Message], Awaitable[None]]
) -> Callable[[Message], Awaitable[None]]:
    """``dispatch`` timing each handler and counting those that raise."""
    consumer_name = _consumers(type(consumer).__qualname__)

    async def timed(message: Message) -> None:
        duration, errors = _handler_children(consumer_name, message)
        started = perf_counter()
        try:
            await dispatch(message)
        except StopConsumer:  # the normal way for a consumer to end
            raise
        except Exception:
            errors.inc()
            raise
        finally:
            duration.observe(perf_counter() - started)

    return timed


def worker_message_started(channel: str) -> Callable[[BaseException | None], None]:
    """Count a worker message as in flight; call the result with its error."""
    label = _channels(channel)
    in_flight = families.worker_in_flight.labels(label)
    in_flight.inc()

    def finished(error: BaseException | None) -> None:
        in_flight.dec()
        outcome = "handled" if error is None else "failed"
        families.worker_messages.labels(label, outcome).inc()

    return finished


def record_slow_client_close(protocol: str) -> None:
    """A connection was closed because its client read too slowly."""
    families.slow_client_closes.labels(protocol).inc()


def start_metrics_server(port: int, address: str = "127.0.0.1") -> None:
    """Serve the default registry over HTTP from a daemon thread."""
    start_http_server(port, addr=address)
