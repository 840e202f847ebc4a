"""Presence: who is connected to a topic, across processes.

See ``docs/topics/presence.rst``.  :class:`PresenceMixin` tracks a
consumer's connection; :func:`presence_of` (and :func:`presence_of_sync`)
answer who is present from anywhere.
"""

from __future__ import annotations

from typing import Any

from .consumer import PresenceMixin
from .settings import get_presence
from .store import InMemoryPresenceStore, PresenceStore
from .store_redis import RedisPresenceStore
from .tracker import Presence

__all__ = [
    "DatabasePresenceStore",
    "InMemoryPresenceStore",
    "Presence",
    "PresenceMixin",
    "PresenceStore",
    "RedisPresenceStore",
    "get_presence",
    "presence_of",
    "presence_of_sync",
]


async def presence_of(topic: str) -> dict[str, list[dict[str, Any]]]:
    """User -> metadata of each of their live connections in ``topic``."""
    return await get_presence().members(topic)


def presence_of_sync(topic: str) -> dict[str, list[dict[str, Any]]]:
    """:func:`presence_of` for synchronous code (views, commands, tasks)."""
    return get_presence().members_sync(topic)


def __getattr__(name: str) -> Any:
    # Imported on first use: it needs the app registry (its models), and
    # importing channels_app.presence must work before django.setup().
    if name == "DatabasePresenceStore":
        from .store_database import DatabasePresenceStore

        return DatabasePresenceStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
