"""Everything a database layer holds for one event loop.

Async database connections belong to the event loop that opened them, so a
layer keeps one :class:`LoopState` per loop it is used from: normally just the
server's or worker's loop.  On PostgreSQL a state holds at most three
connections, whatever the number of consumers: one that listens, one for
sends and group operations, one for claims and cleanup.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ...exceptions import ChannelFull
from ..base import GROUPS_LOST
from .executors import ChannelLayerUnavailable, DjangoExecutor, PsycopgExecutor
from .inbox import Inbox, Row
from .listener import Listener
from .sql import PostgresStatements, Rows, Script, inbox_of, uncarry, wake_key

if TYPE_CHECKING:
    from .layer import DatabaseChannelLayer

logger = logging.getLogger("channels_app.layers.database")

#: Seconds a delivered row may wait to be deleted together with others.
DELETE_DELAY = 0.01
#: Delivered rows that are deleted at once without waiting.
DELETE_BATCH = 32


class LoopState:
    """Connections, inboxes and housekeeping of one layer on one event loop."""

    def __init__(self, layer: DatabaseChannelLayer) -> None:
        self.layer = layer
        self.statements = layer.statements
        self.batch_size = layer.batch_size
        self.closing = False
        #: Names ``!`` channels made on this loop: only this loop listens for them.
        self.client_prefix = secrets.token_hex(6)
        #: Whose lease a row claimed ahead of its receivers is (see :mod:`.sql`).
        self.lease_owner = secrets.token_hex(8)
        self.lease = layer.lease
        self._renewal: asyncio.Task[None] | None = None
        self.inboxes: dict[str, Inbox] = {}
        #: Rows delivered from a notification: id -> expiry, until deleted.
        self.unconfirmed: dict[int, float] = {}
        self._to_delete: list[int] = []
        #: Rows per channel in ``_to_delete``: a channel near its capacity
        #: cannot wait for company, or senders would see it full.
        self._to_delete_per_channel: dict[str, int] = {}
        self._delete_now = False
        self._deleting = False
        self._delete_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_cleanup = 0.0
        self._cleaning = False
        self._safety_poll: asyncio.Task[None] | None = None
        if layer.statements.vendor == "postgresql":
            self.executor: Any = PsycopgExecutor(
                layer.connect_kwargs(layer.database),
                layer.connect_kwargs(layer.send_database),
            )
            self.listener: Listener | None = Listener(
                layer.connect_kwargs(layer.database),
                on_notify=self._notified,
                on_reconnect=self._wake_all,
                health_interval=layer.poll_interval,
            )
            self.notified = True
            self.min_poll_delay = self.max_poll_delay = layer.poll_interval
        else:
            self.executor = DjangoExecutor(layer.database, wal=layer.sqlite_wal)
            self.listener = None
            self.notified = False
            self.min_poll_delay = min(0.005, layer.poll_interval)
            self.max_poll_delay = layer.poll_interval
        self._keys: dict[str, Inbox] = {}

    # -- inboxes ------------------------------------------------------------

    def inbox(self, channel: str) -> Inbox:
        name = inbox_of(channel)
        inbox = self.inboxes.get(name)
        if inbox is None:
            inbox = self.inboxes[name] = Inbox(self, name)
            self._keys[wake_key(name)] = inbox
            if self.listener is not None and self._safety_poll is None:
                self._safety_poll = asyncio.ensure_future(self._poll_safely())
        return inbox

    async def ready(self, inbox: Inbox) -> None:
        """Return once the database will wake ``inbox`` for new messages."""
        if self.listener is not None:
            await self.listener.listen(wake_key(inbox.name))

    def owns(self, inbox_name: str) -> bool:
        """Is ``inbox_name`` the ``!`` prefix of channels made on this loop?"""
        return inbox_name.endswith(f".{self.client_prefix}!")

    def _notified(self, key: str, payload: str) -> None:
        inbox = self._keys.get(key)
        if inbox is None:
            return
        try:
            row = uncarry(payload)
        except ValueError:  # not ours to read: look in the table instead
            row = None
            payload = ""
        if row is not None:
            inbox.arrived(row)
        else:
            inbox.wake(int(payload) if payload.isdigit() else None)

    def delivered(self, row: Row) -> None:
        """``row`` was handed out from its notification: delete it from the table.

        Deletes wait up to :data:`DELETE_DELAY` to go out together, unless a
        quarter of the channel's capacity is waiting (the rows count against
        it until deleted).  Until a delete confirms, a claim that returns the
        row anyway (one already running, or after an outage) drops it.
        """
        row_id, channel = row[0], row[1]
        self.unconfirmed[row_id] = row[2]
        self._to_delete.append(row_id)
        waiting = self._to_delete_per_channel.get(channel, 0) + 1
        self._to_delete_per_channel[channel] = waiting
        if waiting * 4 >= self.layer.get_capacity(channel):
            self._delete_now = True
        if self._deleting:
            return
        if self._delete_now or len(self._to_delete) >= DELETE_BATCH:
            self._start_deleting()
        else:
            self._delete_soon()

    def _start_deleting(self) -> None:
        if self._delete_timer is not None:
            self._delete_timer.cancel()
            self._delete_timer = None
        if not self._deleting and self._to_delete:
            self._deleting = True
            self.spawn(self._delete_delivered())

    async def _delete_delivered(self) -> None:
        retry = 0.05
        try:
            while self._to_delete:
                ids, self._to_delete = self._to_delete, []
                self._to_delete_per_channel.clear()
                self._delete_now = False
                try:
                    [rows] = await self.executor.run_claim(
                        self._postgres_statements().delete_ids(ids)
                    )
                except Exception as exc:
                    # Still filtered from claims until they expire: never twice.
                    logger.warning("Could not delete delivered messages: %s", exc)
                    if self.closing:
                        return
                    self._to_delete[:0] = ids
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, 2.0)
                    continue
                for (row_id,) in rows or ():
                    self.unconfirmed.pop(row_id, None)
                if (
                    len(self._to_delete) < DELETE_BATCH
                    and not self._delete_now
                    and not self.closing
                ):
                    break  # the rest waits for company
        finally:
            self._deleting = False
            if self._to_delete and not self.closing:
                self._delete_soon()

    def _delete_soon(self) -> None:
        if self._delete_timer is None:
            loop = asyncio.get_running_loop()
            self._delete_timer = loop.call_later(DELETE_DELAY, self._start_deleting)

    def _wake_all(self) -> None:
        for inbox in list(self.inboxes.values()):
            inbox.wake()

    def woke(self, channels: Any) -> None:
        """Without notifications, wake local inboxes we just sent to ourselves."""
        if self.notified:
            return
        for channel in channels:
            inbox = self.inboxes.get(inbox_of(channel))
            if inbox is not None:
                inbox.wake()

    async def _poll_safely(self) -> None:
        """Recover from a lost notification; in the steady state nothing is lost.

        Receivers of normal channels also run the cleanup now and then while
        they wait, so rows a dead process had leased come back (with a
        notification) even when no traffic triggers it.
        """
        interval = self.layer.poll_interval
        tick = min(interval, self.lease / 2)
        next_poll = time.monotonic() + interval
        while not self.closing:
            await asyncio.sleep(tick)
            inboxes = list(self.inboxes.values())
            if any(inbox.shared and inbox.has_waiters() for inbox in inboxes):
                self.maybe_clean_up()
            if time.monotonic() < next_poll:
                continue
            next_poll = time.monotonic() + interval
            now = time.time()
            for inbox in inboxes:
                inbox.sweep(now)
                if inbox.has_waiters():
                    inbox.wake()

    # -- statements -----------------------------------------------------------

    async def run(self, script: Script) -> list[Rows]:
        self.maybe_clean_up()
        results: list[Rows] = await self.executor.run(script)
        return results

    def _postgres_statements(self) -> PostgresStatements:
        """The statements of the paths only PostgreSQL takes (psycopg lanes)."""
        statements = self.statements
        assert isinstance(statements, PostgresStatements)
        return statements

    async def claim(
        self, inbox: Inbox, channels: list[str], limit: int, handed: int | None = None
    ) -> tuple[list[Row], list[Row]]:
        """``(rows deleted for receivers, rows leased to this loop)``.

        Without ``handed`` every row claimed is deleted; with it only the
        oldest ``handed`` are, and the others (up to ``limit``) are leased.
        """
        now = time.time()
        self.maybe_clean_up()
        lease = None if handed is None else (handed, self.lease_owner, now + self.lease)
        script = self.statements.claim(channels, limit, now, inbox.shared, lease)
        if isinstance(self.executor, DjangoExecutor):
            guard = self.statements.peek(channels, now)
            results = await self.executor.run(script, guard=guard)
        else:
            results = await self.executor.run_claim(script)
        return self.statements.claimed(results, lease is not None)

    async def confirm(self, ids: list[int]) -> set[int]:
        """Delete leased rows about to be handed out: those that were still ours."""
        [rows] = await self._run_claim(self.statements.confirm(ids, self.lease_owner))
        return {row[0] for row in rows or ()}

    def holding(self) -> None:
        """Rows are leased to this loop: renew their leases while it lives."""
        if self._renewal is None and not self.closing:
            self._renewal = asyncio.ensure_future(self._renew_leases())

    async def _renew_leases(self) -> None:
        """One statement per third of a lease renews every row this loop holds."""
        try:
            while not self.closing:
                await asyncio.sleep(self.lease / 3)
                ids = [i for inbox in self.inboxes.values() for i in inbox.leased]
                if not ids:
                    return
                until = time.time() + self.lease
                script = self.statements.renew(ids, self.lease_owner, until)
                try:
                    await self._run_claim(script)
                except Exception as exc:
                    # Leases that lapse meanwhile go back to their channels;
                    # confirming such a row then fails, so none goes out twice.
                    logger.warning("Could not renew message leases: %s", exc)
        finally:
            self._renewal = None

    async def _run_claim(self, script: Script) -> list[Rows]:
        results: list[Rows]
        if isinstance(self.executor, DjangoExecutor):
            results = await self.executor.run(script)
        else:
            results = await self.executor.run_claim(script)
        return results

    async def claim_ids(self, channels: list[str], ids: list[int]) -> list[Row]:
        script = self._postgres_statements().claim_ids(ids, channels, time.time())
        return (await self.executor.run_claim(script))[-1] or []

    async def put_back(self, inbox: Inbox, rows: list[Row], leased: list[int]) -> None:
        """Return rows no local receiver took, so another process can have them.

        ``rows`` were deleted and are re-inserted under their old ids;
        ``leased`` are the ids of rows still in the table whose leases this
        loop gives up (should that fail, they come back when they expire).
        """
        if leased:
            try:
                await self._run_claim(self.statements.release(leased, self.lease_owner))
            except Exception as exc:
                logger.warning(
                    "Could not release %d leased message(s) on %r; they go back "
                    "when their lease expires: %s",
                    len(leased),
                    inbox.name,
                    exc,
                )
        if rows:
            try:
                await self._run_claim(self.statements.put_back(rows))
            except Exception as exc:
                logger.error(
                    "Could not put back %d claimed message(s) on %r; they are lost: %s",
                    len(rows),
                    inbox.name,
                    exc,
                )
                return
        inbox.known_empty.clear()
        self.woke([inbox.name])

    def maybe_clean_up(self) -> None:
        """Piggy-back expiry cleanup on normal traffic, at most once per interval."""
        now = time.monotonic()
        if now < self._next_cleanup or self._cleaning or self.closing:
            return
        self._next_cleanup = now + self.layer.cleanup_interval
        self._cleaning = True
        self.spawn(self._clean_up())

    async def _clean_up(self) -> None:
        self._sweep_inboxes(time.time())
        try:
            script = self.statements.cleanup(time.time())
            if isinstance(self.executor, DjangoExecutor):
                done = await self.executor.run(script)
            else:
                done = await self.executor.run_claim(script)
                if self.statements.vacuum_due(done[0], self.layer.vacuum_interval):
                    await self.executor.run_aside(self._postgres_statements().vacuum())
            await self._tell_groups_lost(self.statements.groups_left(done))
        except Exception as exc:
            logger.debug("Channel layer cleanup skipped: %s", exc)
        finally:
            self._cleaning = False

    async def _tell_groups_lost(self, left: list[tuple[str, str]]) -> None:
        """Send each channel the cleanup dropped from groups a GROUPS_LOST.

        Its consumer may be alive (it only fell behind, or outlived
        ``group_expiry``) and in another process, so the news travels on the
        channel itself.  A dead consumer's notice simply expires in turn; as
        it has no groups left by then, that ends there.
        """
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

    def _sweep_inboxes(self, now: float) -> None:
        """Drop expired claimed rows, and inboxes nobody uses any more."""
        for row_id, expires in list(self.unconfirmed.items()):
            if expires <= now:  # no claim can return it any more
                del self.unconfirmed[row_id]
        for name, inbox in list(self.inboxes.items()):
            inbox.sweep(now)
            if inbox.idle():
                del self.inboxes[name]
                self._keys.pop(wake_key(name), None)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- shutdown -------------------------------------------------------------

    def abandon(self) -> None:
        """Its event loop is closed: release the sockets without awaiting."""
        self.closing = True
        if self._delete_timer is not None:
            self._delete_timer.cancel()
        if self._renewal is not None:
            self._renewal.cancel()  # the leases lapse: the cleanup returns the rows
        self.executor.abandon()
        if self.listener is not None:
            self.listener.abandon()

    async def close(self) -> None:
        """Finish in-flight claims (their rows are kept), then disconnect."""
        self.closing = True
        if self._safety_poll is not None:
            self._safety_poll.cancel()
        if self.listener is not None:
            await self.listener.close()
        self._start_deleting()  # delivered rows leave the table before we go
        drains = [inbox.task for inbox in self.inboxes.values() if inbox.task]
        for inbox in self.inboxes.values():
            if inbox.task is not None and not inbox.claiming:
                inbox.task.cancel()  # waiting or backing off: nothing in hand
        await asyncio.gather(*drains, *self._tasks, return_exceptions=True)
        if self._renewal is not None:
            self._renewal.cancel()
            await asyncio.gather(self._renewal, return_exceptions=True)
        for inbox in self.inboxes.values():
            rows, leased = inbox.release()
            if rows or leased:
                await self.put_back(inbox, rows, leased)
        error = ChannelLayerUnavailable("The channel layer was closed")
        for inbox in self.inboxes.values():
            inbox.fail_waiters(error)
        await self.executor.close()
        if self._safety_poll is not None:
            await asyncio.gather(self._safety_poll, return_exceptions=True)
