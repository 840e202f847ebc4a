"""Rows handed out straight from their wake-ups, deleted from the table later.

Such a row is still in the table when its receiver gets it; until its delete
confirms, its id is remembered and a claim that returns it anyway (one
already running, or after an outage) drops it: it is never handed out twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from .backend import Backend, Row

logger = logging.getLogger("channels_app.layers.database")

#: Seconds a row may wait to be deleted together with others.  Deleting each
#: at once costs a statement per message: ping-pong's p50 went from 0.43 ms
#: to 1.5 ms in ``benchmarks/layers.py --preset postgres``.
DELETE_DELAY = 0.01
#: Rows that are deleted at once without waiting.
DELETE_BATCH = 32
#: Pause before retrying a delete the database refused, growing to the second.
RETRY_DELAYS = (0.05, 2.0)


class Deletions:
    """Batches the deletes of one event loop's handed-out rows."""

    def __init__(
        self,
        backend: Backend,
        capacity_of: Callable[[str], int],
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
    ) -> None:
        self.backend = backend
        self.capacity_of = capacity_of
        self.spawn = spawn
        self.closing = False
        #: Handed out, not yet deleted: id -> expiry.
        self.pending: dict[int, float] = {}
        self._queue: list[int] = []
        #: Rows per channel in the queue: a channel near its capacity cannot
        #: wait for company, or its senders would see it full.
        self._per_channel: Counter[str] = Counter()
        self._now = False
        self._running = False
        self._timer: asyncio.TimerHandle | None = None

    def add(self, rows: list[Row]) -> None:
        """``rows`` were handed out: delete them within :data:`DELETE_DELAY`, or
        at once when a quarter of a channel's capacity is waiting (the rows
        count against it until deleted)."""
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
        """The claimed ``rows`` that were not handed out already."""
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
                    # Still dropped from claims until they expire: never twice.
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
