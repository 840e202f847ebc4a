"""Local receivers of one inbox, and the single task that claims for them.

An inbox is what the database is asked about: a normal channel (shared with
receivers in other processes) or every ``!`` channel of this process that
shares one prefix (read by this process alone).  Receivers register a future
*before* anything is claimed, so a wake-up that arrives meanwhile only causes
one more claim.  Claims run in the inbox's own task, never in the receiver's,
so cancelling a ``receive()`` cannot interrupt a ``DELETE``: a row claimed for
a receiver that has gone is handed to the next local receiver, or kept for
the next ``receive()`` (a ``!`` inbox) or put back under its old id at once
(a normal channel).

A normal channel's inbox may claim rows ahead of its receivers, under
backlog.  Invariant: such a row stays in the table, leased to this event
loop (see :mod:`.sql`), until the moment a receiver is handed it: the claim
task then deletes it (:meth:`Inbox._confirm`) and hands out only the rows
the delete returned.  So if the process dies, what it held but had not
handed out goes back to the channel when the lease expires, and what it
handed out is gone from the table and is never delivered again.  Rows
nobody here takes within :data:`LEASE` seconds are released at once.

With notifications (PostgreSQL) the inbox remembers which channels a claim
found empty.  Until something unannounced may have arrived, a new receiver
on such a channel costs no query, and a notification naming a row id is
claimed by primary key, which is cheaper than the ordered claim and still
FIFO because every older row is known to be gone.  A ``!`` inbox of this
loop may even take a small message straight from its notification (only
this loop listens for it): while nothing older can be waiting and no claim
is running, the row is handed out and deleted afterwards, in batches.
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
#: Most rows of a normal channel claimed ahead of its receivers, under backlog.
MAX_PREFETCH = 32
#: Seconds a normal channel's prefetched rows wait here before going back
#: (while the process lives; the database lease covers its death).
LEASE = 1.0
#: Row ids remembered from notifications before falling back to a full claim.
MAX_HINTS = 1000


class Inbox:
    """Waiting receivers, claimed-but-undelivered rows and the claim loop."""

    def __init__(self, state: LoopState, name: str) -> None:
        self.state = state
        self.name = name
        #: Normal channels compete with other processes; ``!`` inboxes do not.
        self.shared = "!" not in name
        #: Only the loop that made a ``!`` channel takes rows from notifications.
        self.owned = state.owns(name)
        #: Highest row id handed out: a notification at or below it may be stale.
        self.high_water = 0
        self.waiters: dict[str, deque[asyncio.Future[Row]]] = {}
        #: Rows claimed here whose receiver was not waiting (yet).
        self.buffered: dict[str, deque[Row]] = {}
        #: Ids of buffered rows still in the table, leased to this loop: they
        #: are deleted (confirmed) before anyone is handed them.
        self.leased: set[int] = set()
        #: Channels with no row in the database but those in ``hints``.
        self.known_empty: set[str] = set()
        #: Row ids named by notifications since the channels were known empty.
        self.hints: list[int] = []
        self.epoch = 0
        self.wanted = False
        #: True while a claim is in flight: its rows must reach someone.
        self.claiming = False
        self.task: asyncio.Task[None] | None = None
        self.prefetch = 0
        self.poll_delay = state.min_poll_delay
        self.poll_timer: asyncio.TimerHandle | None = None
        self.lease_until = 0.0
        self.lease_timer: asyncio.TimerHandle | None = None

    # -- receivers ----------------------------------------------------------

    def take(self, channel: str) -> Row | None:
        """A row already claimed for ``channel``, if one is still live."""
        queue = self.buffered.get(channel)
        if not queue:
            return None
        now = time.time()
        self.lease_until = time.monotonic() + LEASE
        while queue:
            row = queue[0]
            if row[2] <= now:
                queue.popleft()
                self.leased.discard(row[0])
                continue
            if row[0] in self.leased:
                return None  # the claim task deletes it before handing it out
            queue.popleft()
            if not queue:
                del self.buffered[channel]
            return row
        del self.buffered[channel]
        return None

    def wait(self, channel: str) -> asyncio.Future[Row]:
        """Register a receiver; claim unless nothing can be there for it."""
        future: asyncio.Future[Row] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(channel, deque()).append(future)
        if channel not in self.known_empty or self.hints or channel in self.buffered:
            self.poke()
        return future

    def forget(self, channel: str, future: asyncio.Future[Row]) -> None:
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
        """A row handed to a receiver that is gone (already deleted)."""
        if self._deliver(row):
            return
        if self.shared:
            # Deleted but handed to nobody: back in the table for anyone.
            self.state.spawn(self.state.put_back(self, [row], []))
            return
        self.buffered.setdefault(row[1], deque()).appendleft(row)
        self._start_lease()

    def has_waiters(self) -> bool:
        return bool(self.waiters)

    # -- wake-ups -------------------------------------------------------------

    def wake(self, hint: int | None = None) -> None:
        """Something arrived from outside; ``hint`` is its row id when known."""
        self.epoch += 1
        if hint is None or len(self.hints) >= MAX_HINTS:
            self.known_empty.clear()
            self.hints.clear()
            self.poll_delay = self.state.min_poll_delay
        else:
            self.hints.append(hint)
        if self.waiters:
            self.poke()

    def arrived(self, row: Row) -> None:
        """A notification carried ``row``: hand it out if FIFO allows, else claim."""
        channel = row[1]
        if (
            self.owned
            and not self.claiming
            and not self.hints
            and row[0] > self.high_water
            and channel in self.known_empty
        ):
            self.high_water = row[0]
            self.state.delivered(row)
            if not self._deliver(row):
                self.buffered.setdefault(channel, deque()).append(row)
            return
        self.wake(row[0])

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
                self.claiming = True
                try:
                    await self._claim(demand)
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
        except Exception:
            logger.exception("Claiming for %r failed", self.name)
        finally:
            self.claiming = False
            self.task = None
        if self.wanted and self.waiters:
            self.poke()
        elif self.waiters and not self.state.notified:
            self._schedule_poll()

    async def _claim(self, demand: dict[str, int]) -> None:
        if self.shared and self.buffered and await self._confirm(demand):
            return
        channels = list(demand)
        receivers = sum(demand.values())
        if self.state.notified and self.known_empty.issuperset(channels):
            if not self.hints:
                return  # every row for these channels has been taken
            # A normal channel's rows go only to receivers already waiting.
            cap = receivers if self.shared else max(receivers, MAX_PREFETCH)
            ids, self.hints = self.hints[:cap], self.hints[cap:]
            rows = await self.state.claim_ids(channels, ids)
            if len(rows) < len(ids):
                # Some named rows belong to channels nobody here waits on.
                self.known_empty.clear()
                self.wanted = True
            elif self.hints:
                self.wanted = True
        else:
            self.hints.clear()  # the ordered claim covers them
            epoch = self.epoch
            batch = receivers + self.prefetch
            limit = batch if self.shared else self.state.batch_size
            # Rows beyond the waiting receivers are leased, not deleted.
            handed = receivers if self.shared and limit > receivers else None
            rows, leased = await self.state.claim(self, channels, limit, handed)
            if leased:
                self._hold(leased)
            if len(rows) + len(leased) >= limit:
                self.wanted = True
                self.prefetch = min(max(1, 2 * self.prefetch), MAX_PREFETCH)
            else:
                self.prefetch = 0
                if epoch == self.epoch and self.state.notified:
                    self.known_empty.update(channels)
        if rows:
            self.poll_delay = self.state.min_poll_delay
            self._hand_out(rows)

    async def _confirm(self, demand: dict[str, int]) -> bool:
        """Hand leased rows to waiting receivers, deleting them first.

        Only the rows the delete returns are handed out: one whose lease this
        loop lost (it stalled past the lease and another process has the row,
        or a cleanup gave it back) is dropped here.  False when no buffered
        row is there for the demand, and a claim is needed.
        """
        now = time.time()
        picked: list[Row] = []
        for channel, count in demand.items():
            queue = self.buffered.get(channel)
            while queue and count:
                row = queue.popleft()
                if row[2] > now:
                    picked.append(row)
                    count -= 1
                else:
                    self.leased.discard(row[0])
            if queue is not None and not queue:
                del self.buffered[channel]
        if not picked:
            return False
        self.lease_until = time.monotonic() + LEASE
        # Out of ``leased`` while the delete runs: neither released nor renewed.
        ids = {row[0] for row in picked if row[0] in self.leased}
        self.leased -= ids
        try:
            kept = await self.state.confirm(list(ids)) if ids else set()
        except BaseException:
            self.leased |= ids  # still leased, or soon claimable again
            for row in reversed(picked):
                self.buffered.setdefault(row[1], deque()).appendleft(row)
            raise
        # A row whose lease is no longer ours goes to whoever has it now.
        rows = [row for row in picked if row[0] not in ids or row[0] in kept]
        self.wanted = True  # receivers may remain for a claim
        if rows:
            self._hand_out(rows)
        return True

    def _hold(self, rows: list[Any]) -> None:
        """Keep leased rows for the next receivers; renew their lease meanwhile."""
        rows.sort(key=lambda row: row[0])
        for row in rows:
            self.leased.add(row[0])
            self.buffered.setdefault(row[1], deque()).append(row)
        self.state.holding()
        self._start_lease()

    def _demand(self) -> dict[str, int]:
        demand = {}
        for channel, queue in list(self.waiters.items()):
            live = sum(1 for future in queue if not future.done())
            if live:
                demand[channel] = live
            else:
                del self.waiters[channel]
        return demand

    def _hand_out(self, rows: list[Any]) -> None:
        unconfirmed = self.state.unconfirmed
        if unconfirmed:  # already handed out from their notifications
            rows = [row for row in rows if unconfirmed.pop(row[0], None) is None]
            if not rows:
                return
        rows.sort(key=lambda row: row[0])
        self.high_water = max(self.high_water, rows[-1][0])
        kept = []
        for row in rows:
            if not self._deliver(row):
                kept.append(row)
        if kept and self.shared:
            # Deleted, and their receivers left: back in the table at once.
            self.state.spawn(self.state.put_back(self, kept, []))
        elif kept:
            for row in kept:
                self.buffered.setdefault(row[1], deque()).append(row)
            self._start_lease()

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

    # -- timers ---------------------------------------------------------------

    def _schedule_poll(self) -> None:
        """Polling for databases without notifications: back off while idle."""
        if self.poll_timer is not None or self.state.closing:
            return
        delay, self.poll_delay = (
            self.poll_delay,
            min(self.poll_delay * 2, self.state.max_poll_delay),
        )
        self.poll_timer = asyncio.get_running_loop().call_later(delay, self._poll_due)

    def _start_lease(self) -> None:
        """Normal channels: rows nobody here takes go back for other processes."""
        self.lease_until = time.monotonic() + LEASE
        if self.shared and self.lease_timer is None and not self.state.closing:
            self.lease_timer = asyncio.get_running_loop().call_later(
                LEASE, self._lease_due
            )

    def _lease_due(self) -> None:
        self.lease_timer = None
        left = self.lease_until - time.monotonic()
        if left > 0 and self.buffered:
            self.lease_timer = asyncio.get_running_loop().call_later(
                left, self._lease_due
            )
            return
        rows, leased = self.release()
        if rows or leased:
            self.state.spawn(self.state.put_back(self, rows, leased))

    def release(self) -> tuple[list[Row], list[int]]:
        """Every buffered row of a normal channel, to be put back.

        ``(deleted rows, ids of leased rows)``: the first are re-inserted,
        the leases of the others are given up.
        """
        if not self.shared:
            return [], []
        rows = [row for queue in self.buffered.values() for row in queue]
        self.buffered.clear()
        leased = [row[0] for row in rows if row[0] in self.leased]
        deleted = [row for row in rows if row[0] not in self.leased]
        self.leased.clear()
        return deleted, leased

    def sweep(self, now: float) -> None:
        """Drop buffered rows that expired while nobody received them."""
        for channel in list(self.buffered):
            queue = self.buffered[channel]
            while queue and queue[0][2] <= now:
                self.leased.discard(queue.popleft()[0])
            if not queue:
                del self.buffered[channel]

    def forget_rows(self) -> None:
        """The table was emptied (``flush``): nothing held is there any more."""
        self.buffered.clear()
        self.leased.clear()

    def idle(self) -> bool:
        """Nothing waits, nothing is held: the inbox can be forgotten."""
        timers = self.poll_timer or self.lease_timer
        return not (self.waiters or self.buffered or self.task or timers)

    def fail_waiters(self, error: BaseException) -> None:
        for queue in self.waiters.values():
            for future in queue:
                if not future.done():
                    future.set_exception(error)
        self.waiters.clear()
        for timer in (self.poll_timer, self.lease_timer):
            if timer is not None:
                timer.cancel()
        self.poll_timer = self.lease_timer = None
