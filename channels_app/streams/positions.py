"""Where a message sits in its stream, and what a read of history returns.

A position is ``(epoch, offset)``.  Offsets count the stream's messages
from 1, with no holes: offset ``n + 1`` is always the message after ``n``,
which is what lets a reader tell "nothing missed" from "some were trimmed"
by arithmetic alone.  The epoch names one unbroken history: when a store
loses a stream's history (an in-memory store restarted, a stream deleted),
offsets start again under a new epoch, and a position from the old epoch
can no longer be resumed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Position:
    """A point in a stream: after the message at ``offset`` of ``epoch``.

    Offset 0 is "before the first message".
    """

    epoch: str
    offset: int

    def __post_init__(self) -> None:
        if not isinstance(self.epoch, str) or not self.epoch:
            raise TypeError(f"Position epoch must be a non-empty str: {self.epoch!r}")
        if (
            isinstance(self.offset, bool)
            or not isinstance(self.offset, int)
            or self.offset < 0
        ):
            raise TypeError(
                f"Position offset must be an int of 0 or more: {self.offset!r}"
            )

    @classmethod
    def from_dict(cls, value: Any) -> Position:
        """A position from its JSON form ``{"epoch": ..., "offset": ...}``."""
        if not isinstance(value, dict):
            raise TypeError(
                'A position must be a dict {"epoch": str, "offset": int}, '
                f"not {type(value).__name__}"
            )
        return cls(value.get("epoch"), value.get("offset"))  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "offset": self.offset}


@dataclass(frozen=True)
class StreamMessage:
    """A published message: its stream, its position and its content."""

    stream: str
    epoch: str
    offset: int
    data: dict[str, Any]
    #: When the store accepted it, in seconds since the Unix epoch.
    time: float = 0.0

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.offset)


@dataclass(frozen=True)
class History:
    """What a store holds of a stream at one instant.

    ``messages`` are those after the offset asked for, oldest first.
    ``first`` is the lowest offset still held (``last + 1`` when none is),
    ``last`` the offset of the newest message ever published in ``epoch``.
    """

    epoch: str
    first: int
    last: int
    messages: list[StreamMessage] = field(default_factory=list)


class Recovery(enum.Enum):
    """How a subscription's ``since`` position was honoured."""

    #: No position was given: the subscription starts live, at the end.
    NONE = "none"
    #: Every message after ``since`` was replayed (possibly none).
    RECOVERED = "recovered"
    #: ``since`` belongs to an epoch the store no longer has.
    EPOCH_CHANGED = "epoch_changed"
    #: Messages after ``since`` were trimmed (count or age) before it was read.
    TOO_OLD = "too_old"
    #: ``since`` is past the end of the stream: not a position it ever gave.
    UNKNOWN_POSITION = "unknown_position"

    @property
    def lost(self) -> bool:
        """True when the caller asked to recover and cannot: reload instead."""
        return self not in (Recovery.NONE, Recovery.RECOVERED)


@dataclass(frozen=True)
class Subscription:
    """The result of subscribing: what to replay and where live messages resume.

    ``position`` is the last message the subscriber holds once it has handled
    ``replay``: live messages at or before it are duplicates of the replay
    (or of what it had), and the next new one has offset ``position.offset + 1``.
    When ``recovery.lost`` is true, ``replay`` is empty and ``position`` is the
    stream's current end: the subscriber's state must be rebuilt (reload).
    """

    stream: str
    recovery: Recovery
    position: Position
    replay: list[StreamMessage] = field(default_factory=list)

    @property
    def recovered(self) -> bool:
        return self.recovery is Recovery.RECOVERED
