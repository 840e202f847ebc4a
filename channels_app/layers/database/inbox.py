"""Local receivers of one inbox, and the single task that claims for them.

An inbox is what the database is asked about: a normal channel (shared with
receivers in other processes) or every ``!`` channel of this process that
shares one prefix (read by this process alone).  Receivers register a future
*before* anything is claimed, so a wake-up that arrives meanwhile only causes
one more claim.  Claims run in the inbox's own task, never in the receiver's,
so cancelling a ``receive()`` cannot interrupt a ``DELETE``: a row claimed for
a receiver that has gone is handed to the next local receiver, kept for its
``!`` channel, or put back under its old id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .executors import ChannelLayerUnavailable

if TYPE_CHECKING:
    from .state import LoopState

logger = logging.getLogger("channels_app.layers.database")

#: ``(id, channel, expires, body)`` as returned by a claim.
Row = tuple[int, str, float, bytes]

#: Pause before retrying a claim the database refused, growing to the second.
RETRY_DELAYS = (0.05, 2.0)


class Inbox:
    """Waiting receivers, claimed-but-undelivered rows and the claim loop."""

    def __init__(self, state: LoopState, name: str) -> None:
        self.state = state
        self.name = name
        #: Normal channels compete with other processes; ``!`` inboxes do not.
        self.shared = "!" not in name
        self.waiters: dict[str, deque[asyncio.Future]] = {}
        #: Rows claimed for a ``!`` channel whose receiver was not waiting.
        self.buffered: dict[str, deque[Row]] = {}
        #: Channels a claim found empty since the last outside wake-up.
        self.known_empty: set[str] = set()
        self.epoch = 0
        self.wanted = False
        #: True while a claim is in flight: its rows must reach someone.
        self.claiming = False
        self.task: asyncio.Task | None = None
        self.poll_delay = state.min_poll_delay
        self.poll_timer: asyncio.TimerHandle | None = None

    # -- receivers ----------------------------------------------------------

    def take(self, channel: str) -> Row | None:
        """A row already claimed for ``channel``, if one is still live."""
        queue = self.buffered.get(channel)
        if not queue:
            return None
        now = time.time()
        while queue:
            row = queue.popleft()
            if row[2] > now:
                if not queue:
                    del self.buffered[channel]
                return row
        del self.buffered[channel]
        return None

    def wait(self, channel: str) -> asyncio.Future:
        """Register a receiver; a claim follows unless ``channel`` is known empty."""
        future = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(channel, deque()).append(future)
        if channel not in self.known_empty:
            self.poke()
        return future

    def forget(self, channel: str, future: asyncio.Future) -> None:
        """A receiver was cancelled: keep whatever it had been handed."""
        if future.done() and not future.cancelled() and future.exception() is None:
            self.give_back(future.result())
            return
        queue = self.waiters.get(channel)
        if queue is not None:
            try:
                queue.remove(future)
            except ValueError:
                pass
            if not queue:
                del self.waiters[channel]

    def give_back(self, row: Row) -> None:
        if self._deliver(row):
            return
        if self.shared:
            self.state.spawn(self.state.put_back(self, [row]))
        else:
            self.buffered.setdefault(row[1], deque()).appendleft(row)

    def has_waiters(self) -> bool:
        return bool(self.waiters)

    # -- wake-ups -------------------------------------------------------------

    def wake(self) -> None:
        """Something may have arrived from outside: forget what we knew, claim."""
        self.epoch += 1
        self.known_empty.clear()
        self.poll_delay = self.state.min_poll_delay
        if self.waiters:
            self.poke()

    def poke(self) -> None:
        self.wanted = True
        if self.task is None and not self.state.closing:
            self.task = asyncio.ensure_future(self._drain())

    def _poll_due(self) -> None:
        self.poll_timer = None
        if self.waiters:
            self.poke()

    # -- claiming -------------------------------------------------------------

    async def _drain(self) -> None:
        retry = RETRY_DELAYS[0]
        try:
            await self.state.ready(self)
            while self.wanted and not self.state.closing:
                self.wanted = False
                demand = self._demand()
                if not demand:
                    break
                channels = list(demand)
                limit = sum(demand.values()) if self.shared else self.state.batch_size
                epoch = self.epoch
                self.claiming = True
                try:
                    rows = await self.state.claim(self, channels, limit)
                    if rows:
                        self.poll_delay = self.state.min_poll_delay
                        await self._hand_out(rows)
                except ChannelLayerUnavailable as exc:
                    self.claiming = False
                    logger.warning("Claim on %r failed: %s", self.name, exc)
                    self.wanted = True
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, RETRY_DELAYS[1])
                    await self.state.ready(self)
                    continue
                self.claiming = False
                retry = RETRY_DELAYS[0]
                if len(rows) >= limit:
                    self.wanted = True
                elif epoch == self.epoch and self.state.notified:
                    self.known_empty.update(channels)
        except Exception:
            logger.exception("Claiming for %r failed", self.name)
        finally:
            self.claiming = False
            self.task = None
        if self.wanted and self.waiters:
            self.poke()
        elif self.waiters and not self.state.notified:
            self._schedule_poll()

    def _demand(self) -> dict[str, int]:
        demand = {}
        for channel, queue in list(self.waiters.items()):
            live = sum(1 for future in queue if not future.done())
            if live:
                demand[channel] = live
            else:
                del self.waiters[channel]
        return demand

    async def _hand_out(self, rows: list[Any]) -> None:
        rows.sort(key=lambda row: row[0])
        unclaimed = []
        for row in rows:
            if self._deliver(row):
                continue
            if self.shared:
                unclaimed.append(row)
            else:
                self.buffered.setdefault(row[1], deque()).append(row)
        if unclaimed:
            await self.state.put_back(self, unclaimed)

    def _deliver(self, row: Row) -> bool:
        """Hand ``row`` to the oldest live receiver of its channel."""
        queue = self.waiters.get(row[1])
        while queue:
            future = queue.popleft()
            if not future.done():
                if not queue:
                    del self.waiters[row[1]]
                future.set_result(row)
                return True
        self.waiters.pop(row[1], None)
        return False

    def _schedule_poll(self) -> None:
        """Polling for databases without notifications: back off while idle."""
        if self.poll_timer is not None or self.state.closing:
            return
        delay, self.poll_delay = (
            self.poll_delay,
            min(self.poll_delay * 2, self.state.max_poll_delay),
        )
        self.poll_timer = asyncio.get_running_loop().call_later(delay, self._poll_due)

    def sweep(self, now: float) -> None:
        """Drop buffered rows that expired while nobody received them."""
        for channel in list(self.buffered):
            queue = self.buffered[channel]
            while queue and queue[0][2] <= now:
                queue.popleft()
            if not queue:
                del self.buffered[channel]

    def fail_waiters(self, error: BaseException) -> None:
        for queue in self.waiters.values():
            for future in queue:
                if not future.done():
                    future.set_exception(error)
        self.waiters.clear()
        if self.poll_timer is not None:
            self.poll_timer.cancel()
            self.poll_timer = None
