"""Delivering one subscription's messages once each, in offset order.

Live messages reach a subscriber through the channel layer, which neither
orders messages from different publishers nor guarantees delivery.  Offsets
have no holes, so a subscriber that knows the last offset it delivered can
drop what it has already seen, hold back what comes early, and notice a
hole -- which it then fills from the store (see :mod:`.consumer`).
"""

from __future__ import annotations

from .positions import Position, StreamMessage


class Sequencer:
    """The ordering state of one subscription: epoch, last offset delivered,
    and messages that arrived ahead of a missing one."""

    def __init__(self, position: Position) -> None:
        self.reset(position)

    def reset(self, position: Position) -> None:
        """Continue after ``position`` (a new subscription, or after a gap)."""
        self.epoch = position.epoch
        self.delivered = position.offset
        self.early: dict[int, StreamMessage] = {}

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.delivered)

    @property
    def has_hole(self) -> bool:
        """Messages arrived after one that has not: it must be fetched."""
        return bool(self.early)

    def offer(self, message: StreamMessage) -> list[StreamMessage]:
        """The messages ready to deliver now that ``message`` has arrived, in
        order: none for a duplicate or an early one.  The caller checks the
        epoch first (a message of another epoch is not comparable)."""
        if message.epoch != self.epoch:
            raise ValueError(
                f"message of epoch {message.epoch!r} offered to a subscription "
                f"in epoch {self.epoch!r}"
            )
        if message.offset <= self.delivered:
            return []
        self.early[message.offset] = message
        ready = []
        while self.delivered + 1 in self.early:
            self.delivered += 1
            ready.append(self.early.pop(self.delivered))
        return ready
