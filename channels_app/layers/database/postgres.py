"""The database layer on PostgreSQL, through psycopg 3.

An event loop holds three connections however many consumers wait: one that
listens for wake-ups (:mod:`.listener`), one for sends and group operations,
one for claims and housekeeping.  The statements and the wake-ups' payloads
are in :mod:`.postgres_sql`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from django.db import connections

from ...exceptions import InvalidChannelLayerError
from .backend import (
    ChannelLayerUnavailable,
    FullMember,
    GroupLeft,
    Row,
    Settings,
    Wakeups,
    inbox_of,
)
from .libpq_runner import LibpqRunner, Params
from .listener import Listener
from .postgres_sql import (
    CARRY_LIMIT,
    CARRY_MIN_CAPACITY,
    CLAIM,
    CLAIM_IDS,
    CLAIM_SHARED,
    CLEANUP,
    DELETE,
    FLUSH,
    GROUP_ADD,
    GROUP_CARRY_LIMIT,
    GROUP_DISCARD,
    GROUP_SEND,
    PAYLOAD_ROOM,
    PUT_BACK,
    SEND,
    VACUUM,
    carry_text,
    read_payload,
    vacuum_due,
    wake_key,
)

logger = logging.getLogger("channels_app.layers.database")


class Lane:
    """One connection; statements that arrive while it is busy share a pipeline.

    Statements go through :class:`.LibpqRunner`.  When the lane is idle the
    caller's task runs its statement (no task switch on the fast path);
    statements arriving meanwhile queue up and a worker sends them in one
    pipeline, one round trip.  A pipeline is one
    implicit transaction: if a statement fails for a reason other than the
    connection, nothing was committed and each is run again alone, so one
    bad statement cannot fail its neighbours.
    """

    def __init__(self, name: str, connect_kwargs: dict[str, Any]) -> None:
        self.name = name
        self.connect_kwargs = connect_kwargs
        self.connection: Any = None
        self._runner: LibpqRunner | None = None
        self._queue: list[tuple[str, Params, asyncio.Future[list[Any]]]] = []
        self._busy = False
        self._worker: asyncio.Task[None] | None = None

    async def run(self, sql: str, params: Params) -> list[Any]:
        """The rows of one statement, run in a transaction of its own."""
        if self._busy:
            future: asyncio.Future[list[Any]] = (
                asyncio.get_running_loop().create_future()
            )
            self._queue.append((sql, params, future))
            return await future
        self._busy = True
        try:
            return await self._run_alone(sql, params)
        finally:
            if self._queue:  # still busy: the worker takes the connection over
                self._worker = asyncio.ensure_future(self._work())
            else:
                self._busy = False

    async def _work(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                if len(batch) > 1 and await self._run_batch(batch):
                    continue
                for sql, params, future in batch:
                    try:
                        _settle(future, await self._run_alone(sql, params))
                    except Exception as exc:
                        _settle(future, exc)
        finally:
            self._busy = False
            self._worker = None

    async def _run_alone(self, sql: str, params: Params) -> list[Any]:
        import psycopg

        try:
            return (await (await self._connect()).execute(sql, params)) or []
        except psycopg.OperationalError as exc:
            raise await self._unavailable(exc)
        except asyncio.CancelledError:
            await self._drop_connection()  # a statement may be in flight
            raise

    async def _run_batch(
        self, batch: list[tuple[str, Params, asyncio.Future[list[Any]]]]
    ) -> bool:
        """Run ``batch`` in one pipeline; ``False`` to run each alone instead."""
        import psycopg

        try:
            runner = await self._connect()
            results = await runner.pipeline([(sql, p) for sql, p, _ in batch])
        except psycopg.OperationalError as exc:
            error = await self._unavailable(exc)
            for *_, future in batch:
                _settle(future, error)
            return True
        except psycopg.Error:
            return False  # rolled back as a whole
        except BaseException as exc:
            await self._drop_connection()
            for *_, future in batch:
                _settle(future, exc)
            raise
        for (*_, future), rows in zip(batch, results, strict=True):
            _settle(future, rows or [])
        return True

    async def _unavailable(self, exc: Exception) -> ChannelLayerUnavailable:
        await self._drop_connection()
        return ChannelLayerUnavailable(
            f"PostgreSQL is unreachable for the channel layer ({self.name}): "
            f"{exc}".strip()
        )

    async def _connect(self) -> LibpqRunner:
        if self._runner is not None and not self._runner.broken:
            return self._runner
        import psycopg

        await self._drop_connection()  # a broken one, if any
        self.connection = await psycopg.AsyncConnection.connect(
            autocommit=True, **self.connect_kwargs
        )
        prepare = self.connect_kwargs.get("prepare_threshold") is not None
        self._runner = LibpqRunner(self.connection, prepare)
        return self._runner

    async def _drop_connection(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.detach()
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                await connection.close()
            except Exception:  # already broken: nothing left to release
                pass

    async def close(self) -> None:
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)
        await self._drop_connection()

    def abandon(self) -> None:
        self._runner = None  # its event loop is gone, and the reader with it
        connection, self.connection = self.connection, None
        if connection is not None and not connection.closed:
            connection.pgconn.finish()


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


#: Settings of the layer's own sessions.  Its queue tables churn, so their
#: statistics rarely describe them: a table that held a burst looks huge and
#: a fresh one empty, and the planner then prefers sequential scans (every
#: send reading the whole table) or even compiles a statement with JIT (tens
#: of milliseconds).  Every statement of the layer has an index to use.
SESSION_SETTINGS = "-c jit=off -c enable_seqscan=off"


def connect_kwargs(alias: str, pooled: bool = False) -> dict[str, Any]:
    """libpq parameters for Django's ``DATABASES[alias]``, for our connections.

    Django's adapters and cursor classes are left out; everything else
    (host, port, credentials, sslmode, options) is kept.  Statements are
    prepared on first use (the layer runs a handful of statements millions
    of times) unless the entry's ``OPTIONS`` say otherwise.  A ``pooled``
    alias, such as PgBouncer in transaction mode, gets neither prepared
    statements (session state, which breaks before PgBouncer 1.21) nor
    :data:`SESSION_SETTINGS` (a pooler refuses startup options).
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
            on_notify=self._notified,
            on_reconnect=wakeups.reconnected,
            health_interval=settings.poll_interval,
        )
        self._inboxes: dict[str, str] = {}

    @staticmethod
    def validate(settings: Settings) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise InvalidChannelLayerError(
                "The database channel layer needs psycopg 3 on PostgreSQL: "
                "pip install 'channels_app[postgres]'"
            )

    async def listen(self, inbox: str) -> None:
        key = wake_key(inbox)
        self._inboxes[key] = inbox
        await self.listener.listen(key)

    def _notified(self, key: str, payload: str) -> None:
        inbox = self._inboxes.get(key)
        if inbox is None:
            return
        try:
            ids, rows = read_payload(inbox, payload)
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
        if inbox != channel and capacity >= CARRY_MIN_CAPACITY:
            carry = carry_text(expires, body, CARRY_LIMIT)
        suffix = ":" + channel[len(inbox) :]
        params = dict(channel=channel, expires=expires, body=body, now=now)
        params.update(capacity=capacity, key=wake_key(inbox), carry=carry)
        params.update(suffix=suffix)
        return bool(await self.sends.run(SEND, params))

    async def group_add(
        self, group: str, channel: str, expires: float, capacity: int
    ) -> None:
        params = dict(group=group, channel=channel, expires=expires, capacity=capacity)
        await self.sends.run(GROUP_ADD, params)

    async def group_discard(self, group: str, channel: str) -> None:
        await self.sends.run(GROUP_DISCARD, {"group": group, "channel": channel})

    async def group_send(
        self, group: str, expires: float, body: bytes, now: float
    ) -> list[FullMember]:
        carry = carry_text(expires, body, GROUP_CARRY_LIMIT)
        params = dict(group=group, expires=expires, body=body, now=now, carry=carry)
        params.update(room=PAYLOAD_ROOM - len(carry))
        rows = await self.sends.run(GROUP_SEND, params)
        return [FullMember(*row) for row in rows if row[0] is not None]

    async def claim(
        self, channels: Sequence[str], limit: int, now: float, shared: bool
    ) -> list[Row]:
        params = {"channels": list(channels), "now": now, "limit": limit}
        rows = await self.claims.run(CLAIM_SHARED if shared else CLAIM, params)
        return [Row(*row) for row in rows]

    async def claim_ids(
        self, ids: Sequence[int], channels: Sequence[str], now: float
    ) -> list[Row]:
        params = {"ids": _id_array(ids), "channels": list(channels), "now": now}
        return [Row(*row) for row in await self.claims.run(CLAIM_IDS, params)]

    async def delete(self, ids: Sequence[int]) -> list[int]:
        rows = await self.claims.run(DELETE, {"ids": _id_array(ids)})
        return [row_id for (row_id,) in rows]

    async def put_back(self, rows: Sequence[Row]) -> None:
        ids, channels, expires, bodies = (list(c) for c in zip(*rows, strict=True))
        params = {"ids": ids, "channels": channels, "expires": expires}
        await self.claims.run(PUT_BACK, {**params, "bodies": bodies})

    async def cleanup(self, now: float) -> list[GroupLeft]:
        [report] = await self.claims.run(CLEANUP, {"now": now})
        if vacuum_due(report, self.settings.vacuum_interval):
            await self._vacuum()
        return [GroupLeft(channel, group) for channel, group in report[4] or ()]

    async def _vacuum(self) -> None:
        """On a connection of its own: a vacuum takes milliseconds, and on a
        lane the statements queued behind it would wait for it."""
        import psycopg

        kwargs = {**self.claim_kwargs, "prepare_threshold": None}
        kwargs["application_name"] = f"{kwargs['application_name']} (aside)"
        async with await psycopg.AsyncConnection.connect(
            autocommit=True, **kwargs
        ) as connection:
            await connection.execute(VACUUM)

    async def flush(self) -> None:
        for statement in FLUSH:
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
    """Row ids as one ``bigint[]`` literal, for the deletes after a fan-out.

    psycopg dumps a list element by element (267 µs for 350 ids, 42 µs this
    way); integers need no quoting in an array literal.
    """
    return "{" + ",".join(map(str, ids)) + "}"


BACKEND = PostgresBackend
