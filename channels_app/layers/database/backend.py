"""What the database channel layer needs from a database, named once.

The layer and its receivers speak only this interface.  Each database has
one module implementing it (:mod:`.postgres`, :mod:`.sqlite`) that owns its
SQL, its connections and the way receivers learn that something arrived:
PostgreSQL pushes wake-ups, SQLite is polled.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ...exceptions import InvalidChannelLayerError
from ...types import Message


class ChannelLayerUnavailable(ConnectionError):
    """The database could not be reached; the operation did not complete.

    For a ``send`` the message may or may not have been queued: the layer
    delivers at most once, so it never retries a send on its own.
    """


class Row(NamedTuple):
    """A queued message, as a claim returns it."""

    id: int
    channel: str
    expires: float
    body: bytes


class FullMember(NamedTuple):
    """A group member a ``group_send`` skipped: its channel was full."""

    channel: str
    capacity: int


class GroupLeft(NamedTuple):
    """A membership the expiry cleanup removed."""

    channel: str
    group: str


@dataclass(frozen=True)
class Settings:
    """The layer configuration a backend acts on."""

    database: str
    send_database: str
    poll_interval: float
    vacuum_interval: float | None
    sqlite_wal: bool


class Wakeups(Protocol):
    """How a backend tells the receivers of its event loop what arrived."""

    def woken(self, inbox: str, ids: list[int] | None) -> None:
        """Rows arrived for ``inbox``: their ids, or ``None`` when unknown."""

    def carried(self, inbox: str, rows: list[Row]) -> None:
        """Rows arrived for ``inbox`` together with their contents."""

    def reconnected(self) -> None:
        """Wake-ups may have been missed: every inbox should look again."""


class Backend(Protocol):
    """One database, used from one event loop.  Each method is one round trip."""

    #: Rows that arrive are announced (:class:`Wakeups`); without it the
    #: receivers poll, and only sends from this event loop wake them.
    pushes: bool

    def __init__(self, settings: Settings, wakeups: Wakeups) -> None: ...

    @staticmethod
    def validate(settings: Settings) -> None:
        """Raise :class:`InvalidChannelLayerError` for a setup that cannot work."""

    async def listen(self, inbox: str) -> None:
        """Return once arrivals for ``inbox`` will be announced."""

    async def send(
        self, channel: str, expires: float, body: bytes, capacity: int, now: float
    ) -> bool:
        """Queue unless ``channel`` holds ``capacity`` live messages (``False``)."""

    async def group_add(
        self, group: str, channel: str, expires: float, capacity: int
    ) -> None: ...

    async def group_discard(self, group: str, channel: str) -> None: ...

    async def group_send(
        self, group: str, expires: float, body: bytes, now: float
    ) -> list[FullMember]:
        """Queue on every live member below its capacity; the others."""

    async def claim(
        self, channels: Sequence[str], limit: int, now: float, shared: bool
    ) -> list[Row]:
        """Delete and return the oldest live rows of ``channels``, oldest first.

        ``shared`` channels may be claimed by other processes at the same
        moment: their claims skip each other's rows instead of waiting.
        """

    async def claim_ids(
        self, ids: Sequence[int], channels: Sequence[str], now: float
    ) -> list[Row]:
        """Delete and return the live rows among ``ids`` that are on ``channels``."""

    async def delete(self, ids: Sequence[int]) -> list[int]:
        """Remove rows already handed out from a wake-up; the ids removed."""

    async def put_back(self, rows: Sequence[Row]) -> None:
        """Re-insert claimed rows nobody took, under their old ids (FIFO kept)."""

    async def cleanup(self, now: float) -> list[GroupLeft]:
        """Drop expired rows; a channel whose messages expired leaves its groups."""

    async def flush(self) -> None: ...

    async def close(self) -> None: ...

    def abandon(self) -> None:
        """The event loop is closed: release sockets without awaiting."""


class Layer(Protocol):
    """What the the receivers (:mod:`.receiver`) use of their layer."""

    backend_class: type[Backend]
    settings: Settings
    poll_interval: float
    cleanup_interval: float
    batch_size: int

    def get_capacity(self, channel: str) -> int: ...

    async def send(self, channel: str, message: Message) -> None: ...


#: Django's database vendors and the module serving each.
MODULES = {"postgresql": "postgres", "sqlite": "sqlite"}


def backend_for(vendor: str) -> type[Backend]:
    """The backend class for a Django database vendor."""
    try:
        module = MODULES[vendor]
    except KeyError:
        raise InvalidChannelLayerError(
            f"The database channel layer supports PostgreSQL and SQLite, not {vendor!r}"
        )
    backend: type[Backend] = importlib.import_module(f"{__package__}.{module}").BACKEND
    return backend


def inbox_of(channel: str) -> str:
    """What receivers wait on together: the channel, or its prefix up to ``!``."""
    bang = channel.find("!")
    return channel if bang == -1 else channel[: bang + 1]
