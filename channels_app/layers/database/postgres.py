"""The database layer on PostgreSQL, through psycopg 3.

An event loop holds three connections however many consumers wait: one
listening for wake-ups (:class:`Listener`), one :class:`.Lane` for sends and
group operations, one for claims and housekeeping.  The SQL and the
wake-ups' payloads are in :mod:`.postgres_sql`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from django.db import connections

from . import postgres_sql as sql
from .backend import FullMember, GroupLeft, Row, Settings, Wakeups, inbox_of
from .libpq_runner import Lane, LibpqRunner, close_quietly

logger = logging.getLogger("channels_app.layers.database")

#: The layer's queue tables churn, so their statistics mislead the planner
#: into sequential scans (every send reading the whole table) or JIT (tens of
#: milliseconds); every statement of the layer has an index to use.
SESSION_SETTINGS = "-c jit=off -c enable_seqscan=off"
#: First and longest pause between attempts to reconnect the listener.
RECONNECT_DELAYS = (0.05, 2.0)


def connect_kwargs(alias: str, pooled: bool = False) -> dict[str, Any]:
    """libpq parameters of ``DATABASES[alias]``, without Django's adapters.

    Statements are prepared on first use unless ``OPTIONS`` say otherwise; a
    ``pooled`` alias (PgBouncer in transaction mode) gets neither prepared
    statements (session state) nor :data:`SESSION_SETTINGS` (a pooler
    refuses startup options).
    """
    connection = connections[alias]
    params = dict(connection.get_connection_params())
    for django_only in ("cursor_factory", "context", "client_encoding"):
        params.pop(django_only, None)
    options = connection.settings_dict.get("OPTIONS", {})
    params["prepare_threshold"] = options.get(
        "prepare_threshold", None if pooled else 0
    )
    if not pooled:
        params["options"] = f"{params.get('options', '')} {SESSION_SETTINGS}".strip()
    params.setdefault("connect_timeout", 5)
    params.setdefault("application_name", "channels_app.layers.database")
    return params


class Listener:
    """One connection ``LISTEN``-ing on a growing set of keys for all inboxes.

    After a reconnection every inbox is told to look again: notifications
    sent meanwhile are gone.
    """

    def __init__(
        self,
        connect_kwargs: dict[str, Any],
        on_notify: Callable[[str, str], None],
        on_reconnect: Callable[[], None],
        health_interval: float,
    ) -> None:
        # LISTEN must reach the server itself: no prepared statements here.
        self.connect_kwargs = {
            **connect_kwargs,
            "prepare_threshold": None,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        self.on_notify = on_notify
        self.on_reconnect = on_reconnect
        self.health_interval = health_interval
        self.connected = False
        self._active: set[str] = set()
        self._requested: dict[str, asyncio.Future[None]] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None

    async def listen(self, key: str) -> None:
        if key in self._active and self.connected:
            return
        future = self._requested.get(key)
        if future is None:
            future = self._requested[key] = asyncio.get_running_loop().create_future()
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        self._changed.set()
        await asyncio.shield(future)

    async def _run(self) -> None:
        delay = RECONNECT_DELAYS[0]
        ever_connected = False
        while True:
            connection = runner = None
            try:
                connection = self._connection = await psycopg.AsyncConnection.connect(
                    autocommit=True, **self.connect_kwargs
                )
                # Notifications are dispatched straight from the runner's
                # socket reader: psycopg's ``notifies()`` re-arms the event
                # loop for each one.
                runner = LibpqRunner(connection, False, self.on_notify)
                await self._subscribe(runner, self._active | set(self._requested))
                self.connected = True
                if ever_connected:
                    logger.info("Channel layer listener reconnected to PostgreSQL")
                    self.on_reconnect()
                ever_connected = True
                delay = RECONNECT_DELAYS[0]
                await self._serve(runner)
            except (psycopg.OperationalError, OSError) as exc:
                if self.connected or not ever_connected:
                    logger.warning(
                        "Channel layer listener lost PostgreSQL (%s); receivers keep "
                        "waiting and resume after it reconnects",
                        str(exc).strip(),
                    )
                self.connected = False
            except Exception:
                logger.exception("Channel layer listener failed; reconnecting")
                self.connected = False
            finally:
                if runner is not None:
                    runner.detach()
                if connection is not None:
                    await close_quietly(connection)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAYS[1])

    async def _serve(self, runner: LibpqRunner) -> None:
        """Pause only to add keys or, when all is quiet, to check health."""
        while True:
            if self._requested:
                await self._subscribe(runner, set(self._requested))
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            waits: set[asyncio.Future[Any]] = {changed, runner.lost}
            try:
                done, _ = await asyncio.wait(
                    waits,
                    timeout=self.health_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                changed.cancel()
            if runner.lost.done():
                raise runner.lost.result() or psycopg.OperationalError("lost")
            if not done:
                await runner.execute("SELECT 1", ())  # a silent network dies here

    async def _subscribe(self, runner: LibpqRunner, keys: set[str]) -> None:
        if keys:
            await runner.pipeline([(f'LISTEN "{key}"', ()) for key in keys])
        self._active |= keys
        for key in keys:
            future = self._requested.pop(key, None)
            if future is not None and not future.done():
                future.set_result(None)

    def abandon(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            connection.pgconn.finish()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.connected = False
        for future in self._requested.values():
            future.cancel()
        self._requested.clear()


class PostgresBackend:
    """Sends on one lane, claims and housekeeping on another, wake-ups pushed."""

    pushes = True

    def __init__(self, settings: Settings, wakeups: Wakeups) -> None:
        self.settings = settings
        self.wakeups = wakeups
        pooled = settings.send_database != settings.database
        self.claim_kwargs = connect_kwargs(settings.database)
        self.sends = Lane("send", connect_kwargs(settings.send_database, pooled))
        self.claims = Lane("claim", self.claim_kwargs)
        self.listener = Listener(
            self.claim_kwargs,
            self._notified,
            wakeups.reconnected,
            settings.poll_interval,
        )
        self._inboxes: dict[str, str] = {}

    async def listen(self, inbox: str) -> None:
        key = sql.wake_key(inbox)
        self._inboxes[key] = inbox
        await self.listener.listen(key)

    def _notified(self, key: str, payload: str) -> None:
        inbox = self._inboxes.get(key)
        if inbox is None:
            return
        try:
            ids, rows = sql.read_payload(inbox, payload)
        except ValueError:  # not ours to read: look in the table instead
            ids, rows = [], []
        if rows:
            self.wakeups.carried(inbox, rows)
        else:
            self.wakeups.woken(inbox, ids or None)

    async def send(
        self, channel: str, expires: float, body: bytes, capacity: int, now: float
    ) -> bool:
        inbox = inbox_of(channel)
        carry = ""
        if inbox != channel and capacity >= sql.CARRY_MIN_CAPACITY:
            carry = sql.carry_text(expires, body, sql.CARRY_LIMIT)
        params = dict(channel=channel, expires=expires, body=body, now=now)
        params.update(capacity=capacity, key=sql.wake_key(inbox), carry=carry)
        params.update(suffix=":" + channel[len(inbox) :])
        return bool(await self.sends.run(sql.SEND, params))

    async def group_add(
        self, group: str, channel: str, expires: float, capacity: int
    ) -> None:
        params = dict(group=group, channel=channel, expires=expires, capacity=capacity)
        await self.sends.run(sql.GROUP_ADD, params)

    async def group_discard(self, group: str, channel: str) -> None:
        await self.sends.run(sql.GROUP_DISCARD, {"group": group, "channel": channel})

    async def group_send(
        self, group: str, expires: float, body: bytes, now: float
    ) -> list[FullMember]:
        carry = sql.carry_text(expires, body, sql.GROUP_CARRY_LIMIT)
        params = dict(group=group, expires=expires, body=body, now=now, carry=carry)
        params.update(room=sql.PAYLOAD_ROOM - len(carry))
        rows = await self.sends.run(sql.GROUP_SEND, params)
        return [FullMember(*row) for row in rows if row[0] is not None]

    async def claim(
        self, channels: Sequence[str], limit: int, now: float, shared: bool
    ) -> list[Row]:
        params = {"channels": list(channels), "now": now, "limit": limit}
        rows = await self.claims.run(sql.CLAIM_SHARED if shared else sql.CLAIM, params)
        return [Row(*row) for row in rows]

    async def claim_ids(
        self, ids: Sequence[int], channels: Sequence[str], now: float
    ) -> list[Row]:
        params = {"ids": _id_array(ids), "channels": list(channels), "now": now}
        return [Row(*row) for row in await self.claims.run(sql.CLAIM_IDS, params)]

    async def delete(self, ids: Sequence[int]) -> list[int]:
        rows = await self.claims.run(sql.DELETE, {"ids": _id_array(ids)})
        return [row_id for (row_id,) in rows]

    async def put_back(self, rows: Sequence[Row]) -> None:
        ids, channels, expires, bodies = (list(c) for c in zip(*rows, strict=True))
        params = {"ids": ids, "channels": channels, "expires": expires}
        await self.claims.run(sql.PUT_BACK, {**params, "bodies": bodies})

    async def cleanup(self, now: float) -> list[GroupLeft]:
        [report] = await self.claims.run(sql.CLEANUP, {"now": now})
        if sql.vacuum_due(report, self.settings.vacuum_interval):
            # On a connection of its own: statements queued behind a vacuum
            # on a lane would wait milliseconds for it.
            kwargs = {**self.claim_kwargs, "prepare_threshold": None}
            kwargs["application_name"] = f"{kwargs['application_name']} (aside)"
            async with await psycopg.AsyncConnection.connect(
                autocommit=True, **kwargs
            ) as connection:
                await connection.execute(sql.VACUUM)
        return [GroupLeft(channel, group) for channel, group in report[4] or ()]

    async def flush(self) -> None:
        for statement in sql.FLUSH:
            await self.sends.run(statement, {})

    async def close(self) -> None:
        await self.listener.close()
        await self.sends.close()
        await self.claims.close()

    def abandon(self) -> None:
        self.listener.abandon()
        self.sends.abandon()
        self.claims.abandon()


def _id_array(ids: Sequence[int]) -> str:
    """Ids as one ``bigint[]`` literal: psycopg dumps a list element by element
    (267 µs for 350 ids, 42 µs so); integers need no quoting."""
    return "{" + ",".join(map(str, ids)) + "}"


BACKEND = PostgresBackend
