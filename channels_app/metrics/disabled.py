"""The recording functions when ``prometheus_client`` is not installed.

Invariant: each is a no-op that hands back what it was given (the same
receive, send, dispatch and layer objects), so a project without the
``metrics`` extra runs exactly the code it would run without this package:
nothing is collected and no frame or message pays for a wrapper.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ..types import Message, Receive, Scope, Send

LayerT = TypeVar("LayerT")

#: What the views and ``runworker --metrics-port`` say without the library.
MISSING = (
    "Metrics are off: prometheus_client is not installed. Install it with "
    "pip install 'channels_app[metrics]' (prometheus_client>=0.17) and restart."
)


class MetricsUnavailable(RuntimeError):
    """Metrics were asked for but ``prometheus_client`` is not installed."""


def _nothing() -> None:
    pass


def _finished(error: BaseException | None) -> None:
    pass


def open_connection(
    consumer: object, scope: Scope, receive: Receive, send: Send
) -> tuple[Receive, Send, Callable[[], None]]:
    return receive, send, _nothing


def timed_dispatch(
    consumer: object, dispatch: Callable[[Message], Awaitable[None]]
) -> Callable[[Message], Awaitable[None]]:
    return dispatch


def worker_message_started(channel: str) -> Callable[[BaseException | None], None]:
    return _finished


def record_slow_client_close(protocol: str) -> None:
    pass


def instrument_layer(layer: LayerT) -> LayerT:
    return layer


def watch_queue_depth(layer: Any, channels: Iterable[str]) -> None:
    pass


def start_metrics_server(port: int, address: str = "127.0.0.1") -> None:
    raise MetricsUnavailable(MISSING)
