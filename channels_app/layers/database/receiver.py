"""The receivers of one event loop, and the claims that serve them.

A layer keeps one :class:`Receivers` per event loop (async connections belong
to their loop).  A receiver registers its future before anything is claimed,
and claims run in the waitlist's task, never the receiver's, so a cancelled
``receive()`` cannot interrupt a ``DELETE``: its row goes to the next local
receiver, is kept (``!`` channels) or is put back under its old id.

Invariant, at most once: a row leaves the table only through a ``DELETE``
that returns it to one event loop, or through expiry; a row handed out from
its wake-up stays until its batched delete, and a claim returning it
meanwhile drops it.  With pushed wake-ups, a channel a claim found empty
stays ``known_empty`` until a wake-up says otherwise: new receivers there
cost no query, and rows a wake-up names are claimed by id, still FIFO since
every older row is gone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Coroutine
from typing import Any

from ...exceptions import ChannelFull
from ..base import GROUPS_LOST
from .backend import Backend, ChannelLayerUnavailable, GroupLeft, Layer, Row, inbox_of
from .waitlist import RETRY_DELAYS, Deletions, Waitlist

logger = logging.getLogger("channels_app.layers.database")

#: Row ids of a ``!`` waitlist claimed by primary key at once, at least.
MIN_ID_CLAIM = 32
#: Row ids remembered from wake-ups before falling back to an ordered claim.
MAX_HINTS = 1000


class Receivers:
    """Waitlists, the backend and housekeeping of one layer on one event loop."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.closing = False
        #: Names the ``!`` channels made on this loop: only this loop reads them.
        self.client_prefix = secrets.token_hex(6)
        self.backend: Backend = layer.backend_class(layer.settings, self)
        self.waitlists: dict[str, Waitlist] = {}
        self.deletions = Deletions(self.backend, layer.get_capacity, self.spawn)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_cleanup = 0.0
        self._cleaning = False
        self._safety_poll: asyncio.Task[None] | None = None
        interval = layer.poll_interval
        self.min_poll = interval if self.backend.pushes else min(0.005, interval)

    async def receive(self, channel: str) -> Row:
        waitlist = self._waitlist(channel)
        row = waitlist.take(channel)
        if row is not None:
            return row
        future: asyncio.Future[Row] = asyncio.get_running_loop().create_future()
        waitlist.waiters.setdefault(channel, deque()).append(future)
        if channel not in waitlist.known_empty or waitlist.hints:
            self._poke(waitlist)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and not future.exception():
                self._keep(waitlist, [future.result()], first=True)
            elif future in (queue := waitlist.waiters.get(channel, deque())):
                queue.remove(future)
                if not queue:
                    del waitlist.waiters[channel]
            raise

    def _waitlist(self, channel: str) -> Waitlist:
        name = inbox_of(channel)
        waitlist = self.waitlists.get(name)
        if waitlist is None:
            shared = not name.endswith("!")
            owned = name.endswith(f".{self.client_prefix}!")
            waitlist = Waitlist(name, shared, owned, poll_delay=self.min_poll)
            self.waitlists[name] = waitlist
            if self.backend.pushes and self._safety_poll is None:
                self._safety_poll = asyncio.ensure_future(self._poll_safely())
        return waitlist

    def _keep(self, waitlist: Waitlist, rows: list[Row], first: bool = False) -> None:
        """Deliver claimed rows (oldest first); keep or put back the others.

        ``first``: a cancelled receiver's row, older than any kept so far.
        """
        rows = waitlist.deliver(rows)
        if rows and waitlist.shared:  # deleted: back in the table at once
            self.spawn(self._put_back(waitlist, rows))
            return
        for row in reversed(rows) if first else rows:
            queue = waitlist.buffered.setdefault(row.channel, deque())
            queue.appendleft(row) if first else queue.append(row)

    async def _put_back(self, waitlist: Waitlist, rows: list[Row]) -> None:
        try:
            await self.backend.put_back(rows)
        except Exception as exc:
            logger.error(
                "Could not put back %d claimed message(s) on %r; they are lost: %s",
                len(rows),
                waitlist.name,
                exc,
            )
        waitlist.known_empty.clear()

    def woken(self, inbox: str, ids: list[int] | None) -> None:
        waitlist = self.waitlists.get(inbox)
        if waitlist is None:
            return
        waitlist.epoch += 1
        if ids is None or len(waitlist.hints) + len(ids) > MAX_HINTS:
            waitlist.known_empty.clear()
            waitlist.hints.clear()
            waitlist.poll_delay = self.min_poll
        else:
            waitlist.hints += ids
        if waitlist.waiters:
            self._poke(waitlist)

    def carried(self, inbox: str, rows: list[Row]) -> None:
        """Hand out carried rows while FIFO allows; claim the rest by id.

        Handed out and queued for deletion together (receiving CPU of a
        1,000-member wake-up: 9.6-10.3 ms row by row, 7.6-9.1 ms so).
        Invariant: nothing else runs during this call, so each row's decision
        is the one a row-by-row pass would make.
        """
        waitlist = self.waitlists.get(inbox)
        if waitlist is None:
            return
        if waitlist.owned and not waitlist.claiming and not waitlist.hints:
            ready, high = 0, waitlist.high_water
            for row in rows:
                if row.id <= high or row.channel not in waitlist.known_empty:
                    break
                ready, high = ready + 1, row.id
            handed, rows = rows[:ready], rows[ready:]
            waitlist.high_water = high
            for row in waitlist.deliver(handed):
                waitlist.buffered.setdefault(row.channel, deque()).append(row)
            self.deletions.add(handed)
            if not rows:
                return
        self.woken(inbox, [row.id for row in rows])

    def reconnected(self) -> None:
        for waitlist in list(self.waitlists.values()):
            self.woken(waitlist.name, None)

    def _poke(self, waitlist: Waitlist) -> None:
        waitlist.wanted = True
        if waitlist.task is None and not self.closing:
            waitlist.task = asyncio.ensure_future(self._drain(waitlist))

    async def _drain(self, waitlist: Waitlist) -> None:
        retry = RETRY_DELAYS[0]
        try:
            await self.backend.listen(waitlist.name)
            waitlist.listening = True
            while waitlist.wanted and not self.closing:
                waitlist.wanted = False
                demand = Counter(
                    {
                        channel: live
                        for channel, queue in waitlist.waiters.items()
                        if (live := sum(not future.done() for future in queue))
                    }
                )
                if not demand:
                    break
                waitlist.claiming = True
                try:
                    rows = await self._claim(waitlist, demand)
                except ChannelLayerUnavailable as exc:
                    logger.warning("Claim on %r failed: %s", waitlist.name, exc)
                    waitlist.claiming, waitlist.wanted = False, True
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, RETRY_DELAYS[1])
                    await self.backend.listen(waitlist.name)
                    continue
                waitlist.claiming = False
                retry = RETRY_DELAYS[0]
                if rows:
                    waitlist.poll_delay = self.min_poll
                if rows := sorted(self.deletions.unseen(rows)):
                    waitlist.high_water = max(waitlist.high_water, rows[-1].id)
                    self._keep(waitlist, rows)
        except Exception:
            logger.exception("Claiming for %r failed", waitlist.name)
        finally:
            waitlist.claiming = False
            waitlist.task = None
        if waitlist.wanted and waitlist.waiters:
            self._poke(waitlist)
        elif waitlist.waiters and not self.backend.pushes:
            self._schedule_poll(waitlist)

    async def _claim(self, waitlist: Waitlist, demand: Counter[str]) -> list[Row]:
        """Rows for the waiting receivers: by id when wake-ups named them."""
        self.maybe_clean_up()
        channels, receivers, now = list(demand), demand.total(), time.time()
        if self.backend.pushes and waitlist.known_empty.issuperset(channels):
            if not waitlist.hints:
                return []  # every row of these channels has been taken
            # A normal channel's rows go only to receivers already waiting.
            take = receivers if waitlist.shared else max(receivers, MIN_ID_CLAIM)
            ids, waitlist.hints = waitlist.hints[:take], waitlist.hints[take:]
            rows = await self.backend.claim_ids(ids, channels, now)
            if len(rows) < len(ids):
                # Some named rows are gone, or on channels nobody here waits on.
                waitlist.known_empty.clear()
                waitlist.wanted = True
            elif waitlist.hints:
                waitlist.wanted = True
            return rows
        waitlist.hints.clear()  # the ordered claim covers them
        epoch = waitlist.epoch
        limit = receivers if waitlist.shared else self.layer.batch_size
        rows = await self.backend.claim(channels, limit, now, waitlist.shared)
        if len(rows) >= limit:
            waitlist.wanted = True
        elif epoch == waitlist.epoch and self.backend.pushes:
            waitlist.known_empty.update(channels)
        return rows

    def _schedule_poll(self, waitlist: Waitlist) -> None:
        """Without pushed wake-ups: look again, backing off while idle."""
        if waitlist.poll_timer is not None or self.closing:
            return
        delay = waitlist.poll_delay
        waitlist.poll_delay = min(delay * 2, self.layer.poll_interval)

        def due() -> None:
            waitlist.poll_timer = None
            if waitlist.waiters:
                self._poke(waitlist)

        waitlist.poll_timer = asyncio.get_running_loop().call_later(delay, due)

    async def _poll_safely(self) -> None:
        """Recover from a lost wake-up, and run the expiry cleanup while only
        receivers wait (members of quiet groups must hear that they left)."""
        interval = self.layer.poll_interval
        tick = min(interval, max(self.layer.cleanup_interval, 0.5))
        next_poll = time.monotonic() + interval
        while not self.closing:
            await asyncio.sleep(tick)
            waitlists = [w for w in self.waitlists.values() if w.waiters]
            if waitlists:
                self.maybe_clean_up()
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + interval
                for waitlist in waitlists:
                    self.woken(waitlist.name, None)

    def maybe_clean_up(self) -> None:
        """Expiry cleanup rides on traffic, at most once per interval."""
        now = time.monotonic()
        if now < self._next_cleanup or self._cleaning or self.closing:
            return
        self._next_cleanup = now + self.layer.cleanup_interval
        self._cleaning = True
        self.spawn(self._clean_up())

    async def _clean_up(self) -> None:
        try:
            self._sweep(time.time())
            await self._tell_groups_lost(await self.backend.cleanup(time.time()))
        except Exception as exc:
            logger.debug("Channel layer cleanup skipped: %s", exc)
        finally:
            self._cleaning = False

    async def _tell_groups_lost(self, left: list[GroupLeft]) -> None:
        """Tell each channel dropped from groups, on the channel itself: its
        consumer may be alive in another process.  A dead one's notice expires
        in turn, and with no groups left that ends there."""
        lost: dict[str, list[str]] = {}
        for channel, group in left:
            lost.setdefault(channel, []).append(group)
        for channel, groups in lost.items():
            try:
                await self.layer.send(
                    channel, {"type": GROUPS_LOST, "groups": sorted(groups)}
                )
            except ChannelFull:
                pass  # it has messages waiting: it is not deaf yet

    def _sweep(self, now: float) -> None:
        """Drop expired rows held here, and waitlists nobody uses any more."""
        self.deletions.sweep(now)
        for name, waitlist in list(self.waitlists.items()):
            for channel, queue in list(waitlist.buffered.items()):
                while queue and queue[0].expires <= now:
                    queue.popleft()
                if not queue:
                    del waitlist.buffered[channel]
            if waitlist.idle():
                del self.waitlists[name]

    def forget_rows(self) -> None:
        """After ``flush``: nothing held here is in the tables any more."""
        for waitlist in self.waitlists.values():
            waitlist.buffered.clear()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def abandon(self) -> None:
        """Its event loop is closed: release the sockets without awaiting."""
        self.closing = self.deletions.closing = True
        self.deletions.cancel()
        self.backend.abandon()

    async def close(self) -> None:
        """Finish in-flight claims (their rows are kept), then disconnect."""
        self.closing = self.deletions.closing = True
        if self._safety_poll is not None:
            self._safety_poll.cancel()
        self.deletions.start()  # delivered rows leave the table before we go
        drains = [w.task for w in self.waitlists.values() if w.task]
        for waitlist in self.waitlists.values():
            if waitlist.task is not None and not waitlist.claiming:
                waitlist.task.cancel()  # waiting or backing off: nothing in hand
            if waitlist.poll_timer is not None:
                waitlist.poll_timer.cancel()
                waitlist.poll_timer = None
        await asyncio.gather(*drains, *self._tasks, return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)  # put-backs
        error = ChannelLayerUnavailable("The channel layer was closed")
        for waitlist in self.waitlists.values():
            for queue in waitlist.waiters.values():
                for future in queue:
                    if not future.done():
                        future.set_exception(error)
            waitlist.waiters.clear()
        await self.backend.close()
        if self._safety_poll is not None:
            await asyncio.gather(self._safety_poll, return_exceptions=True)
