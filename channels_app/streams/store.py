"""The interface every stream store implements, and the limits it enforces.

A store keeps each stream's numbered history.  It is deliberately small --
append, read, delete, close -- so that a new backend (another database, a
hosted log) needs only those four coroutines; ordering, recovery decisions
and fan-out live above it, in :mod:`channels_app.streams.hub`, and are the
same for every store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .positions import History, StreamMessage


@dataclass(frozen=True)
class HistoryLimits:
    """How much of a stream's history a store keeps.

    ``max_messages``: the newest that many messages (None: no count limit).
    ``max_age``: messages younger than that many seconds (None: no age limit).
    Both apply when both are set.
    """

    max_messages: int | None = 1000
    max_age: float | None = 3600.0

    def __post_init__(self) -> None:
        for name, integer in (("max_messages", True), ("max_age", False)):
            value: Any = getattr(self, name)
            if value is None:
                continue
            number = isinstance(value, int) or (
                not integer and isinstance(value, float)
            )
            if isinstance(value, bool) or not number or value <= 0:
                kind = "a positive integer" if integer else "a positive number"
                raise ValueError(
                    f"Stream history {name} must be {kind} or None, not {value!r}"
                )


@runtime_checkable
class StreamStore(Protocol):
    """Where streams' histories live.

    Every method is a coroutine, safe to call concurrently from one event
    loop.  Stores shared between processes (Redis) must give one order: two
    appends never get the same offset, and every reader sees offsets in the
    order they were assigned.
    """

    async def append(
        self, stream: str, data: dict[str, Any], limits: HistoryLimits
    ) -> StreamMessage:
        """Add ``data`` after the stream's newest message and return it with
        its position; trim the history to ``limits``.  A stream that does not
        exist (or lost its history) starts under a new epoch at offset 1."""
        ...

    async def read(
        self, stream: str, after: int | None, limits: HistoryLimits
    ) -> History:
        """The stream's epoch and bounds, and the messages held after offset
        ``after`` (none when ``after`` is None), messages older than
        ``limits.max_age`` left out.  A stream never published to (or whose
        history was lost) reports ``first == 1`` and ``last == 0`` with any
        epoch other than a lost one's, and stores nothing: reading must not
        create state, or clients could fill a store by subscribing."""
        ...

    async def delete(self, stream: str) -> None:
        """Forget the stream: its next message starts a new epoch."""
        ...

    async def close(self) -> None:
        """Release connections; the store may be used again afterwards."""
        ...
