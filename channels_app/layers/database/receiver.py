"""The receivers of one event loop, and the claims that serve them.

A layer keeps one :class:`Receivers` per event loop (async connections belong
to their loop).  Receivers waiting on one inbox (a channel, or the ``!``
channels of one prefix) form a :class:`Waitlist`, served by one task that
claims rows for them; a cancelled ``receive()`` cannot interrupt a claim: its
row goes to the next local receiver, is kept (``!`` channels) or is put back
under its old id.

Invariant, at most once: a row leaves the table only through a ``DELETE``
that returns it to one event loop, or through expiry; a row handed out from
its wake-up stays until its batched delete (:mod:`.deletions`).  A channel a
claim found empty stays ``known_empty`` until a wake-up names it (or names
none, meaning any), so new receivers there cost no query; a claim during
which a wake-up came marks nothing empty.  Every ``poll_interval`` each inbox
looks at all its channels again, in case a wake-up was lost.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from ...exceptions import ChannelFull
from ..base import GROUPS_LOST
from .backend import Backend, ChannelLayerUnavailable, GroupLeft, Layer, Row, inbox_of
from .deletions import RETRY_DELAYS, Deletions

logger = logging.getLogger("channels_app.layers.database")


@dataclass(eq=False)
class Waitlist:
    """Receivers waiting on a channel, or on the ``!`` channels of one prefix."""

    name: str
    #: A normal channel: other processes claim its rows too.
    shared: bool
    waiters: dict[str, deque[asyncio.Future[Row]]] = field(default_factory=dict)
    #: ``!`` channels: rows claimed here before their receiver came.
    buffered: dict[str, deque[Row]] = field(default_factory=dict)
    known_empty: set[str] = field(default_factory=set)
    #: Set by wake-ups and new receivers; cleared before each look.
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    #: When to look at every channel again, and the pause after that.
    look_again: float = 0.0
    delay: float = 0.0
    #: Highest row id handed out: a carried row at or below it is out of order.
    high_water: int = 0
    listening: bool = False
    task: asyncio.Task[None] | None = None

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

    def demand(self) -> Counter[str]:
        """Receivers still waiting, per channel."""
        return Counter(
            {
                channel: live
                for channel, queue in self.waiters.items()
                if (live := sum(not future.done() for future in queue))
            }
        )


class Receivers:
    """Waitlists, the backend and housekeeping of one layer on one event loop."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.closing = False
        #: Names the ``!`` channels made on this loop: only this loop reads them.
        self.client_prefix = secrets.token_hex(6)
        self.backend: Backend = layer.backend_class(layer.settings, self)
        self.waitlists: dict[str, Waitlist] = {}
        self.deletions = Deletions(self.backend.delete, layer.get_capacity)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_cleanup = 0.0
        self._cleaning = False
        interval = layer.settings.poll_interval
        self.min_poll = interval if self.backend.pushes else min(0.005, interval)
        #: Longest pause of a waitlist with nothing to claim: expiry cleanup
        #: runs meanwhile, so members of quiet groups hear that they left.
        self.idle_tick = min(interval, max(layer.cleanup_interval, 0.5))

    async def receive(self, channel: str) -> Row:
        name = inbox_of(channel)
        waitlist = self.waitlists.get(name)
        if waitlist is None:
            waitlist = self.waitlists[name] = Waitlist(name, not name.endswith("!"))
            waitlist.delay = self.min_poll
        row = waitlist.take(channel)
        if row is not None:
            return row
        future: asyncio.Future[Row] = asyncio.get_running_loop().create_future()
        waitlist.waiters.setdefault(channel, deque()).append(future)
        if channel not in waitlist.known_empty:
            waitlist.woken.set()
        if waitlist.task is None and not self.closing:
            waitlist.task = asyncio.ensure_future(self._serve(waitlist))
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

    async def _serve(self, waitlist: Waitlist) -> None:
        """Claim rows for the waiting receivers until none is left."""
        retry = RETRY_DELAYS[0]
        try:
            while not self.closing and (demand := waitlist.demand()):
                waitlist.woken.clear()
                now = time.monotonic()
                if now >= waitlist.look_again:
                    waitlist.known_empty.clear()
                    waitlist.look_again = now + waitlist.delay
                    waitlist.delay = min(
                        waitlist.delay * 2, self.layer.settings.poll_interval
                    )
                channels = [c for c in demand if c not in waitlist.known_empty]
                if not channels:
                    self.maybe_clean_up()
                    await self._pause(waitlist, waitlist.look_again - now)
                    continue
                try:
                    await self.backend.listen(waitlist.name)
                    waitlist.listening = True
                    rows = await self._claim(waitlist, channels, demand)
                except Exception as exc:  # the database is gone, usually
                    unexpected = not isinstance(exc, ChannelLayerUnavailable)
                    logger.warning(
                        "Claim on %r failed: %s",
                        waitlist.name,
                        exc,
                        exc_info=unexpected,
                    )
                    await self._pause(waitlist, retry)
                    retry = min(retry * 2, RETRY_DELAYS[1])
                    continue
                retry = RETRY_DELAYS[0]
                if rows:
                    waitlist.delay = self.min_poll
                    waitlist.look_again = min(waitlist.look_again, now + self.min_poll)
                self._keep(waitlist, rows)
        finally:
            waitlist.task = None

    async def _pause(self, waitlist: Waitlist, seconds: float) -> None:
        """Until a wake-up, or ``seconds`` (at most :attr:`idle_tick`)."""
        delay = max(0.0, min(seconds, self.idle_tick))
        timer = asyncio.get_running_loop().call_later(delay, waitlist.woken.set)
        try:
            await waitlist.woken.wait()
        finally:
            timer.cancel()

    async def _claim(
        self, waitlist: Waitlist, channels: list[str], demand: Counter[str]
    ) -> list[Row]:
        """The oldest rows of ``channels``: for a normal channel only as many
        as wait, since other processes claim it too."""
        self.maybe_clean_up()
        limit = demand.total() if waitlist.shared else self.layer.batch_size
        rows = await self.backend.claim(channels, limit, time.time(), waitlist.shared)
        if len(rows) < limit and not waitlist.woken.is_set():
            waitlist.known_empty.update(channels)
        if rows := sorted(self.deletions.unseen(rows)):
            waitlist.high_water = max(waitlist.high_water, rows[-1].id)
        return rows

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
        self.woken(waitlist.name, None)

    def woken(self, inbox: str, channels: list[str] | None) -> None:
        waitlist = self.waitlists.get(inbox)
        if waitlist is None:
            return
        if channels is None:
            waitlist.known_empty.clear()
        else:
            waitlist.known_empty.difference_update(channels)
        waitlist.woken.set()

    def carried(self, inbox: str, rows: list[Row]) -> None:
        """Hand out rows that came with their wake-up, if FIFO allows: nothing
        older can be in the table (their channels are known empty, and they
        are newer than any row handed out); else claim them.

        Handed out and queued for deletion together (receiving CPU of a
        1,000-member wake-up: 9.6-10.3 ms row by row, 7.6-9.1 ms so).
        """
        waitlist = self.waitlists.get(inbox)
        if waitlist is None:
            return
        ours = inbox.endswith(f".{self.client_prefix}!")
        if not ours or any(
            row.id <= waitlist.high_water or row.channel not in waitlist.known_empty
            for row in rows
        ):
            self.woken(inbox, [row.channel for row in rows])
            return
        waitlist.high_water = rows[-1].id
        for row in waitlist.deliver(rows):
            waitlist.buffered.setdefault(row.channel, deque()).append(row)
        self.deletions.add(rows)

    def reconnected(self) -> None:
        for name in list(self.waitlists):
            self.woken(name, None)

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
            if not (waitlist.waiters or waitlist.buffered or waitlist.task):
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
        self.closing = True
        self.deletions.cancel()
        self.backend.abandon()

    async def close(self) -> None:
        """Finish in-flight claims (their rows are kept), then disconnect."""
        self.closing = True
        for waitlist in self.waitlists.values():
            waitlist.woken.set()  # out of any pause
        await asyncio.gather(
            *(w.task for w in self.waitlists.values() if w.task),
            return_exceptions=True,
        )
        await asyncio.gather(*self._tasks, return_exceptions=True)  # put-backs
        await self.deletions.finish()  # delivered rows leave the table first
        error = ChannelLayerUnavailable("The channel layer was closed")
        for waitlist in self.waitlists.values():
            for queue in waitlist.waiters.values():
                for future in queue:
                    if not future.done():
                        future.set_exception(error)
            waitlist.waiters.clear()
        await self.backend.close()
