"""Stream histories in Redis Streams, shared by every process.

One Redis Stream per stream (entry ID ``<offset>-0``), plus a small hash for
its epoch; appends and reads are Lua scripts (:mod:`.redis_scripts`), so
offsets are assigned in one order across processes and trimming by count
(``XADD ... MAXLEN``) and age (``XTRIM ... MINID``) happens in the same
atomic step.  Needs the ``redis`` extra (redis-py's asyncio client).
"""

from __future__ import annotations

import json
from typing import Any

from ..redis_clients import LoopClient, LoopClients, text
from .codec import decode, encode
from .positions import History, StreamMessage
from .redis_scripts import APPEND, READ
from .store import HistoryLimits
from .store_memory import new_epoch

#: A stream nobody publishes to is forgotten after this long (its next
#: message starts a new epoch), unless its MAX_AGE is longer.
DEFAULT_IDLE_TIMEOUT = 7 * 24 * 3600


class RedisStreamStore:
    """:class:`~channels_app.streams.store.StreamStore` on Redis Streams.

    ``url``: the Redis server (``redis://`` or ``rediss://``); ``prefix``
    starts every key, so several projects (or test runs) share a server;
    ``idle_timeout``: seconds after which an idle stream's keys expire (None:
    never); other keywords go to ``redis.asyncio.Redis.from_url``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "channels_app:",
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        **options: Any,
    ) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        self.url = url
        self.prefix = prefix
        self.idle_timeout = idle_timeout
        self.options = options
        scripts = {"append": APPEND, "read": READ}
        self._clients = LoopClients("RedisStreamStore", url, options, scripts)

    def _connection(self) -> LoopClient:
        return self._clients.current()

    def keys(self, stream: str) -> list[str]:
        """The Redis keys of ``stream``: the Redis Stream, then its hash."""
        base = f"{self.prefix}stream:{stream}"
        return [base, base + ":meta"]

    def _keep(self, limits: HistoryLimits) -> int:
        if self.idle_timeout is None:
            return 0
        return int(max(self.idle_timeout, limits.max_age or 0)) + 1

    async def append(
        self, stream: str, data: dict[str, Any], limits: HistoryLimits
    ) -> StreamMessage:
        encoded = encode(data)
        max_age_ms = int(limits.max_age * 1000) if limits.max_age else 0
        epoch, offset, ms = await self._connection().scripts["append"](
            keys=self.keys(stream),
            args=[
                encoded,
                new_epoch(),
                limits.max_messages or 0,
                max_age_ms,
                self._keep(limits),
            ],
        )
        return StreamMessage(
            stream, text(epoch), int(offset), decode(encoded), int(ms) / 1000
        )

    async def read(
        self, stream: str, after: int | None, limits: HistoryLimits
    ) -> History:
        max_age_ms = int(limits.max_age * 1000) if limits.max_age else 0
        epoch, first, last, entries = await self._connection().scripts["read"](
            keys=self.keys(stream),
            args=[-1 if after is None else after, new_epoch(), max_age_ms],
        )
        epoch = text(epoch)
        # One JSON text (see redis_scripts.READ): [[offset, ms, data], ...].
        messages = [
            StreamMessage(stream, epoch, offset, data, ms / 1000)
            for offset, ms, data in json.loads(entries)
        ]
        return History(epoch, int(first), int(last), messages)

    async def delete(self, stream: str) -> None:
        await self._connection().client.delete(*self.keys(stream))

    async def close(self) -> None:
        """Close this event loop's connections (others close with their loop)."""
        await self._clients.close()
