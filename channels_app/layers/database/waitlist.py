"""Receivers waiting on one channel, or on the ``!`` channels of one prefix.

Plain data, plus the two moves that only touch it: taking a row already
claimed, and handing a row to the oldest receiver still waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from .backend import Row


@dataclass(eq=False)
class Waitlist:
    """Receivers waiting on a channel, or on the ``!`` channels of one prefix."""

    name: str
    #: A normal channel: other processes claim its rows too.
    shared: bool
    #: A ``!`` prefix made on this loop: its wake-ups have no other listener.
    owned: bool
    waiters: dict[str, deque[asyncio.Future[Row]]] = field(default_factory=dict)
    #: ``!`` channels: rows claimed here before their receiver came.
    buffered: dict[str, deque[Row]] = field(default_factory=dict)
    #: Channels with no row in the table but those named in ``hints``.
    known_empty: set[str] = field(default_factory=set)
    hints: list[int] = field(default_factory=list)
    #: Counts wake-ups, so a claim knows whether one came while it ran.
    epoch: int = 0
    #: Highest row id handed out: a carried row at or below it is out of order.
    high_water: int = 0
    #: Arrivals are announced (or polled for): set once the backend listens.
    listening: bool = False
    wanted: bool = False
    #: A claim is in flight: its rows must reach someone.
    claiming: bool = False
    task: asyncio.Task[None] | None = None
    poll_delay: float = 0.0
    poll_timer: asyncio.TimerHandle | None = None

    def idle(self) -> bool:
        return not (self.waiters or self.buffered or self.task or self.poll_timer)

    def take(self, channel: str) -> Row | None:
        """A row already claimed for ``channel``, if one is still live."""
        queue = self.buffered.get(channel)
        now = time.time()
        while queue:
            row = queue.popleft()
            if row.expires > now:
                if not queue:
                    del self.buffered[channel]
                return row
        self.buffered.pop(channel, None)
        return None

    def deliver(self, rows: list[Row]) -> list[Row]:
        """Hand each row to the oldest live receiver of its channel; the rest.

        One call per claim or wake-up, not per row: a ``group_send`` wakes a
        thousand receivers at once.
        """
        left = []
        for row in rows:
            queue = self.waiters.get(row.channel)
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(row)
                    break
            else:
                left.append(row)
            if queue is not None and not queue:
                del self.waiters[row.channel]
        return left
