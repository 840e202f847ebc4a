"""Plain data of one event loop's receivers: the receivers waiting on an inbox
(:class:`Waitlist`), and the rows handed out whose deletes are batched
(:class:`Deletions`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .backend import Backend, Row

logger = logging.getLogger("channels_app.layers.database")

#: Seconds a handed-out row may wait to be deleted with others: a delete per
#: message took ping-pong's p50 from 0.43 ms to 1.5 ms.
DELETE_DELAY = 0.01
DELETE_BATCH = 32
#: Pause before retrying a statement the database refused, growing to the second.
RETRY_DELAYS = (0.05, 2.0)


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
        """A live row already claimed for ``channel``."""
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
        """Hand each row to the oldest live receiver of its channel; the rest."""
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


class Deletions:
    """Rows handed out straight from their wake-ups, deleted in batches.

    Invariant (never twice): until its delete confirms, a row's id stays in
    ``pending`` and a claim that returns it anyway drops it (:meth:`unseen`).
    """

    def __init__(
        self,
        backend: Backend,
        capacity_of: Callable[[str], int],
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
    ) -> None:
        self.backend, self.capacity_of, self.spawn = backend, capacity_of, spawn
        self.closing = False
        self.pending: dict[int, float] = {}  # id -> expiry
        self._queue: list[int] = []
        self._per_channel: Counter[str] = Counter()
        self._now = self._running = False
        self._timer: asyncio.TimerHandle | None = None

    def add(self, rows: list[Row]) -> None:
        """Delete ``rows`` within :data:`DELETE_DELAY`, or at once when a quarter
        of a channel's capacity waits: they count against it until deleted."""
        if not rows:
            return
        self.pending.update({row.id: row.expires for row in rows})
        self._queue += [row.id for row in rows]
        counts = self._per_channel
        counts.update([row.channel for row in rows])
        self._now = self._now or any(
            counts[row.channel] * 4 >= self.capacity_of(row.channel) for row in rows
        )
        if self._now or len(self._queue) >= DELETE_BATCH:
            self.start()
        elif not self._running:
            self._later()

    def unseen(self, rows: list[Row]) -> list[Row]:
        if not self.pending:
            return rows
        return [row for row in rows if self.pending.pop(row.id, None) is None]

    def sweep(self, now: float) -> None:
        """Forget expired rows: no claim can return them any more."""
        for row_id, expires in list(self.pending.items()):
            if expires <= now:
                del self.pending[row_id]

    def start(self) -> None:
        self.cancel()
        if not self._running and self._queue:
            self._running = True
            self.spawn(self._delete())

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _later(self) -> None:
        if self._timer is None and not self.closing:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(DELETE_DELAY, self.start)

    async def _delete(self) -> None:
        retry = RETRY_DELAYS[0]
        try:
            while self._queue:
                ids, self._queue = self._queue, []
                self._per_channel.clear()
                self._now = False
                try:
                    deleted = await self.backend.delete(ids)
                except Exception as exc:
                    logger.warning("Could not delete delivered messages: %s", exc)
                    if self.closing:
                        return
                    self._queue[:0] = ids
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, RETRY_DELAYS[1])
                    continue
                for row_id in deleted:
                    self.pending.pop(row_id, None)
                if len(self._queue) < DELETE_BATCH and not (self._now or self.closing):
                    break  # the rest waits for company
        finally:
            self._running = False
            if self._queue:
                self._later()
