"""One redis-py asyncio client per event loop, with its Lua scripts registered.

redis-py's asyncio connections belong to the loop that opened them, while a
store (streams, presence) is shared by every loop of a process: the server's
and each ``async_to_sync`` call's.  So a store keeps one client per loop, and
forgets it when the loop is collected.  Needs the ``redis`` extra.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Any

try:
    import redis.asyncio as aioredis
except ImportError:  # pragma: no cover - depends on the installed extras
    aioredis = None  # type: ignore[assignment]


class LoopClient:
    """A client and its registered scripts (by name), for one event loop."""

    def __init__(self, url: str, options: dict[str, Any], scripts: Mapping[str, str]):
        self.client = aioredis.Redis.from_url(url, **options)
        self.scripts = {
            name: self.client.register_script(source)
            for name, source in scripts.items()
        }


class LoopClients:
    """The :class:`LoopClient` of each running event loop, made on first use."""

    def __init__(
        self,
        owner: str,
        url: str,
        options: dict[str, Any],
        scripts: Mapping[str, str],
    ) -> None:
        if aioredis is None:
            raise ImportError(
                f"{owner} needs redis-py: pip install 'channels_app[redis]'"
            )
        self.url, self.options, self.sources = url, options, dict(scripts)
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, LoopClient
        ] = weakref.WeakKeyDictionary()

    def current(self) -> LoopClient:
        """This event loop's client (it must be called from a coroutine)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = LoopClient(
                self.url, self.options, self.sources
            )
        return client

    def __len__(self) -> int:
        """How many event loops hold a client now."""
        return len(self._clients)

    async def close(self) -> None:
        """Close this event loop's client (others close with their loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.client.aclose()


def text(value: Any) -> str:
    """A reply as ``str``: redis-py returns bytes unless ``decode_responses``."""
    return value.decode() if isinstance(value, bytes) else str(value)
