"""Where presence lives: the store protocol, and the in-memory store.

A store records which connections are present in which topic, under which
user, with what metadata, until when (the connection's lease).  It answers
the two questions events need -- was this the user's first connection in the
topic (a join), was it the last (a leave) -- atomically, so that with many
processes sharing a store exactly one of them announces each join and leave.
Times are wall-clock seconds (``time.time()``): leases are compared across
processes, which share no monotonic clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

#: ``(topic, connection)``: one connection's place in one topic.
Key = tuple[str, str]


@dataclass
class Present:
    """One connection in one topic."""

    user: str
    meta: dict[str, Any]
    expires_at: float


class PresenceStore(Protocol):
    """What :class:`~channels_app.presence.tracker.Presence` needs of a store."""

    async def join(
        self,
        topic: str,
        connection: str,
        user: str,
        meta: dict[str, Any],
        expires_at: float,
    ) -> bool:
        """Record the connection; True if it is ``user``'s only one in ``topic``."""

    async def update(self, topic: str, connection: str, meta: dict[str, Any]) -> bool:
        """Replace the connection's metadata; False if it is not present."""

    async def leave(self, topic: str, connection: str) -> str | None:
        """Forget the connection; its user if that was their last one here."""

    async def renew(self, keys: Iterable[Key], expires_at: float) -> None:
        """Extend the leases of these connections (those still present)."""

    async def sweep(self, now: float) -> list[tuple[str, str]]:
        """Forget connections whose lease ended; ``(topic, user)`` for each user
        left with none in a topic."""

    async def members(self, topic: str, now: float) -> dict[str, list[dict[str, Any]]]:
        """User -> the metadata of each live connection, for ``topic``."""

    async def close(self) -> None: ...


@dataclass
class InMemoryPresenceStore:
    """Presence within one process: enough for development and tests.

    Connections per user are counted per topic, so a join or leave costs the
    same however many others are present.
    """

    _topics: dict[str, dict[str, Present]] = field(default_factory=dict)
    _users: dict[str, dict[str, int]] = field(default_factory=dict)

    async def join(
        self,
        topic: str,
        connection: str,
        user: str,
        meta: dict[str, Any],
        expires_at: float,
    ) -> bool:
        earlier = self._topics.get(topic, {}).get(connection)
        if earlier is not None and earlier.user == user:  # the same one again
            earlier.meta, earlier.expires_at = meta, expires_at
            return False
        await self.leave(topic, connection)  # joining as someone else replaces it
        self._topics.setdefault(topic, {})[connection] = Present(user, meta, expires_at)
        users = self._users.setdefault(topic, {})
        users[user] = users.get(user, 0) + 1
        return users[user] == 1

    async def update(self, topic: str, connection: str, meta: dict[str, Any]) -> bool:
        present = self._topics.get(topic, {}).get(connection)
        if present is None:
            return False
        present.meta = meta
        return True

    async def leave(self, topic: str, connection: str) -> str | None:
        present = self._topics.get(topic, {}).pop(connection, None)
        if present is None:
            return None
        users = self._users[topic]
        users[present.user] -= 1
        if not self._topics[topic]:
            del self._topics[topic], self._users[topic]
            return present.user
        if users[present.user] == 0:
            del users[present.user]
            return present.user
        return None

    async def renew(self, keys: Iterable[Key], expires_at: float) -> None:
        for topic, connection in keys:
            present = self._topics.get(topic, {}).get(connection)
            if present is not None:
                present.expires_at = expires_at

    async def sweep(self, now: float) -> list[tuple[str, str]]:
        gone = []
        for topic, present in list(self._topics.items()):
            for connection in [c for c, p in present.items() if p.expires_at <= now]:
                user = await self.leave(topic, connection)
                if user is not None:
                    gone.append((topic, user))
        return gone

    async def members(self, topic: str, now: float) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for present in self._topics.get(topic, {}).values():
            if present.expires_at > now:
                found.setdefault(present.user, []).append(present.meta)
        return found

    async def close(self) -> None:
        pass
