"""Streams: named, ordered message logs with history, and recovery after a
reconnect (see docs/topics/streams.rst).

::

    from channels_app.streams import publish, publish_sync

    await publish("chat.lobby", {"user": "ann", "text": "hi"})
"""

from typing import Any

from .consumer import StreamsMixin
from .defaults import get_streams, publish, publish_sync, subscribe, unsubscribe
from .hub import Streams
from .names import InvalidStreamName
from .positions import History, Position, Recovery, StreamMessage, Subscription
from .requests import RequestRefused, RequestsMixin
from .store import HistoryLimits, StreamStore
from .store_memory import InMemoryStreamStore
from .store_redis import RedisStreamStore

__all__ = [
    "DatabaseStreamStore",
    "History",
    "HistoryLimits",
    "InMemoryStreamStore",
    "InvalidStreamName",
    "Position",
    "Recovery",
    "RedisStreamStore",
    "RequestRefused",
    "RequestsMixin",
    "StreamMessage",
    "StreamStore",
    "Streams",
    "StreamsMixin",
    "Subscription",
    "get_streams",
    "publish",
    "publish_sync",
    "subscribe",
    "unsubscribe",
]


def __getattr__(name: str) -> Any:
    # The database store defines models, which need Django's app registry:
    # imported on first use, so importing channels_app.streams never does.
    if name == "DatabaseStreamStore":
        from .store_database import DatabaseStreamStore

        return DatabaseStreamStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
