"""The interface between the layer and a database module (:mod:`.postgres`,
:mod:`.sqlite`), each owning its SQL, connections and wake-up strategy."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ...exceptions import InvalidChannelLayerError
from ...types import Message


class ChannelLayerUnavailable(ConnectionError):
    """The database could not be reached; the operation did not complete.

    A ``send`` may or may not have been queued: delivery is at most once, so
    the layer never retries one by itself.
    """


class Row(NamedTuple):
    id: int
    channel: str
    expires: float
    body: bytes


class FullMember(NamedTuple):
    channel: str
    capacity: int


class GroupLeft(NamedTuple):
    channel: str
    group: str


@dataclass(frozen=True)
class Settings:
    database: str
    send_database: str
    poll_interval: float
    vacuum_interval: float | None
    sqlite_wal: bool


class Wakeups(Protocol):
    """How a backend tells its loop's receivers that rows arrived on
    ``channels`` of ``inbox`` (``None``: on any), or came with the wake-up."""

    def woken(self, inbox: str, channels: list[str] | None) -> None: ...
    def carried(self, inbox: str, rows: list[Row]) -> None: ...
    def reconnected(self) -> None: ...


class Backend(Protocol):
    """One database from one event loop; each method is one round trip.

    ``claim`` deletes and returns the oldest live rows; ``shared`` channels
    skip rows other processes are claiming.  ``delete`` removes rows that
    came with a wake-up (``carried``), ``put_back`` re-inserts rows nobody
    took under their old ids, ``cleanup`` drops expired rows (and the groups
    of channels whose messages expired), ``group_send`` returns the number of
    members and those that were full.
    """

    #: Arrivals are announced; without it receivers poll.
    pushes: bool

    def __init__(self, settings: Settings, wakeups: Wakeups) -> None: ...
    async def listen(self, inbox: str) -> None: ...
    async def send(
        self, channel: str, expires: float, body: bytes, capacity: int, now: float
    ) -> bool: ...
    async def group_add(
        self, group: str, channel: str, expires: float, capacity: int
    ) -> None: ...
    async def group_discard(self, group: str, channel: str) -> None: ...
    async def group_send(
        self, group: str, expires: float, body: bytes, now: float
    ) -> tuple[int, list[FullMember]]: ...
    async def claim(
        self, channels: Sequence[str], limit: int, now: float, shared: bool
    ) -> list[Row]: ...
    async def delete(self, ids: Sequence[int]) -> list[int]: ...
    async def put_back(self, rows: Sequence[Row]) -> None: ...
    async def cleanup(self, now: float) -> list[GroupLeft]: ...
    async def flush(self) -> None: ...
    async def close(self) -> None: ...
    def abandon(self) -> None: ...


class Layer(Protocol):
    """What the receivers (:mod:`.receiver`) use of their layer."""

    backend_class: type[Backend]
    settings: Settings
    cleanup_interval: float
    batch_size: int

    def get_capacity(self, channel: str) -> int: ...
    async def send(self, channel: str, message: Message) -> None: ...


def backend_for(vendor: str) -> type[Backend]:
    module = {"postgresql": "postgres", "sqlite": "sqlite"}.get(vendor)
    if module is None:
        raise InvalidChannelLayerError(
            f"The database channel layer supports PostgreSQL and SQLite, not {vendor!r}"
        )
    backend: type[Backend] = importlib.import_module(f"{__package__}.{module}").BACKEND
    return backend


def inbox_of(channel: str) -> str:
    """What receivers wait on together: the channel, or its prefix up to ``!``."""
    bang = channel.find("!")
    return channel if bang == -1 else channel[: bang + 1]
