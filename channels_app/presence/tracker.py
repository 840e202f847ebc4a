"""Presence across processes: who is connected to a topic, kept honest by leases.

Each process tracks its own connections in a :class:`Presence`.  Joining
records the connection in the shared store with a lease; while a process has
connections, one task per event loop renews their leases every third of a
lease and sweeps the store for leases that ended -- those of a process that
died without leaving (SIGKILL, a lost machine) -- so its members disappear
within one lease.  The store says when a join is a user's first connection
in the topic, or a leave their last, and only then does a ``join`` or
``leave`` event go to the topic's group: several tabs of one user count once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync

from ..layers import get_channel_layer
from ..streams.names import require_valid_stream_name
from .store import Key, PresenceStore

logger = logging.getLogger("channels_app.presence")

#: The layer group a topic's presence events are sent to.
GROUP_PREFIX = "channels_app.presence."
#: The message type of those events (handled by ``PresenceMixin``).
EVENT = "channels_app.presence.event"
MAX_TOPIC_LENGTH = 99 - len(GROUP_PREFIX)


def group_for(topic: str) -> str:
    """The layer group carrying ``topic``'s presence events."""
    require_valid_stream_name(topic)
    if len(topic) > MAX_TOPIC_LENGTH:
        raise ValueError(
            f"Presence topic {topic!r} is too long: at most {MAX_TOPIC_LENGTH} "
            f"characters"
        )
    return GROUP_PREFIX + topic


class Presence:
    """This process's view of presence: its connections, and the store's."""

    def __init__(
        self, store: PresenceStore, layer: Any = "default", lease: float = 30.0
    ) -> None:
        """``layer``: a channel layer alias, or a layer instance."""
        if not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds: {lease!r}")
        self.store = store
        self._layer = layer
        self.lease = lease
        #: This process's present connections, and the loop each lives on.
        self._local: dict[Key, asyncio.AbstractEventLoop] = {}
        self._renewers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    @property
    def layer(self) -> Any:
        if isinstance(self._layer, str):
            return get_channel_layer(self._layer)
        return self._layer

    async def join(
        self, topic: str, connection: str, user: str, meta: dict[str, Any]
    ) -> bool:
        """``connection`` of ``user`` is present in ``topic``; True if this
        made the user present (their first connection there)."""
        group = group_for(topic)
        first = await self.store.join(
            topic, connection, user, meta, time.time() + self.lease
        )
        loop = asyncio.get_running_loop()
        self._local[(topic, connection)] = loop
        if loop not in self._renewers:
            self._renewers[loop] = loop.create_task(self._keep_leases(loop))
        if first:
            await self._announce(group, topic, "join", user, meta)
        return first

    async def update(
        self, topic: str, connection: str, user: str, meta: dict[str, Any]
    ) -> None:
        """New metadata for a present connection (an ``update`` event)."""
        if await self.store.update(topic, connection, meta):
            await self._announce(group_for(topic), topic, "update", user, meta)

    async def leave(self, topic: str, connection: str) -> str | None:
        """``connection`` left ``topic``; the user if that was their last one."""
        self._local.pop((topic, connection), None)
        user = await self.store.leave(topic, connection)
        if user is not None:
            await self._announce(group_for(topic), topic, "leave", user, {})
        return user

    async def members(self, topic: str) -> dict[str, list[dict[str, Any]]]:
        """User -> metadata of each of their live connections in ``topic``."""
        group_for(topic)
        return await self.store.members(topic, time.time())

    def members_sync(self, topic: str) -> dict[str, list[dict[str, Any]]]:
        """:meth:`members` for synchronous code (views, commands)."""
        return async_to_sync(self.members)(topic)

    async def sweep(self) -> list[tuple[str, str]]:
        """Forget expired leases now and announce who left: one event per
        topic however many left at once (a process's worth, when it died)."""
        gone = await self.store.sweep(time.time())
        by_topic: dict[str, list[str]] = {}
        for topic, user in gone:
            by_topic.setdefault(topic, []).append(user)
        for topic, users in by_topic.items():
            await self.layer.group_send(
                group_for(topic),
                {"type": EVENT, "topic": topic, "event": "leave", "users": users},
            )
        return gone

    async def _announce(
        self, group: str, topic: str, event: str, user: str, meta: dict[str, Any]
    ) -> None:
        message: dict[str, Any] = {
            "type": EVENT,
            "topic": topic,
            "event": event,
            "user": user,
        }
        if meta:
            message["meta"] = meta
        await self.layer.group_send(group, message)

    async def _keep_leases(self, loop: asyncio.AbstractEventLoop) -> None:
        """Renew this loop's leases and sweep for dead ones until it has none."""
        try:
            while True:
                await asyncio.sleep(self.lease / 3)
                mine = [key for key, where in self._local.items() if where is loop]
                try:
                    if mine:
                        await self.store.renew(mine, time.time() + self.lease)
                    await self.sweep()
                except Exception:  # an unreachable store: try again next time
                    logger.exception("Renewing presence leases failed")
                # No await between this check and the pop in ``finally``: a
                # join cannot slip in and find a renewer that is leaving.
                if not any(where is loop for where in self._local.values()):
                    return
        finally:
            self._renewers.pop(loop, None)
