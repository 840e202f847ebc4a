"""Streams: named, ordered message logs with history, and recovery after a
reconnect (see docs/topics/streams.rst).

::

    from channels_app.streams import publish, publish_sync

    await publish("chat.lobby", {"user": "ann", "text": "hi"})
"""

from .consumer import StreamsMixin
from .defaults import get_streams, publish, publish_sync, subscribe, unsubscribe
from .hub import Streams
from .names import InvalidStreamName
from .positions import History, Position, Recovery, StreamMessage, Subscription
from .store import HistoryLimits, StreamStore
from .store_memory import InMemoryStreamStore
from .store_redis import RedisStreamStore

__all__ = [
    "History",
    "HistoryLimits",
    "InMemoryStreamStore",
    "InvalidStreamName",
    "Position",
    "Recovery",
    "RedisStreamStore",
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
