"""Running SQL scripts for the database layer without blocking the event loop.

:class:`DjangoExecutor` goes through Django's own connection in the ORM's
worker thread (any vendor; used for SQLite).  :class:`PsycopgExecutor` keeps
one async psycopg 3 connection per *lane* and sends every script queued while
the lane was busy in one pipeline: many concurrent sends cost one round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.db import connections

from .sql import Rows, Script

if TYPE_CHECKING:
    from .libpq_runner import LibpqRunner

logger = logging.getLogger("channels_app.layers.database")


class ChannelLayerUnavailable(ConnectionError):
    """The database could not be reached; the operation did not complete.

    For a ``send`` the message may or may not have been queued: the layer
    delivers at most once, so it never retries a send on its own.
    """


class DjangoExecutor:
    """Runs scripts through Django's backend for ``alias`` in a thread of its own.

    The thread owns a private Django connection (one per process and event
    loop), so the layer's frequent small queries never queue behind the ORM
    work of consumers, never run inside someone else's transaction, and keep
    the connection open between queries: reopening it for every message
    would cost more than the query.
    """

    def __init__(self, alias: str, wal: bool = True) -> None:
        self.alias = alias
        self.wal = wal
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="channels-db-layer")
        self._connection: Any = None

    async def run(self, script: Script, guard: Script | None = None) -> list[Rows]:
        """Run ``script``; with a ``guard``, only if the guard's query finds rows."""
        call = sync_to_async(self._run, thread_sensitive=False, executor=self._thread)
        return await call(script, guard)

    def _run(self, script: Script, guard: Script | None = None) -> list[Rows]:
        if self._connection is None:
            self._connection = connections.create_connection(self.alias)
            if self._connection.vendor == "sqlite":
                self._tune_sqlite(self._connection)
        connection = self._connection
        if guard is not None:
            with connection.cursor() as cursor:
                if not _execute(cursor, *guard[0]):
                    return [[]]
        with connection.cursor() as cursor:
            if len(script) == 1:
                return [_execute(cursor, *script[0])]
            # On SQLite take the write lock up front: a deferred transaction
            # that reads first and writes later fails at once under contention
            # instead of waiting for the busy timeout.
            immediate = connection.vendor == "sqlite"
            cursor.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                results = [_execute(cursor, sql, params) for sql, params in script]
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
            return results

    def _tune_sqlite(self, connection: Any) -> None:
        """WAL and ``synchronous=NORMAL``: ten times faster writes, same safety.

        In WAL mode readers and the writer do not block each other, which is
        what runserver and runworker sharing one file need; ``NORMAL`` (for
        this connection only) skips the fsync per commit, and loses at most
        the last transactions on a power cut, never consistency.  WAL is a
        property of the database file: ``sqlite_wal=False`` leaves it alone.
        """
        with connection.cursor() as cursor:
            if self.wal:
                cursor.execute("PRAGMA journal_mode")
                if cursor.fetchone()[0].lower() != "wal":
                    try:
                        cursor.execute("PRAGMA journal_mode=WAL")
                    except Exception as exc:  # busy: another connection holds it
                        logger.warning("Could not switch SQLite to WAL: %s", exc)
            cursor.execute("PRAGMA synchronous=NORMAL")

    async def close(self) -> None:
        call = sync_to_async(self._close, thread_sensitive=False, executor=self._thread)
        await call()
        self._thread.shutdown(wait=False)

    def abandon(self) -> None:
        self._thread.submit(self._close)
        self._thread.shutdown(wait=False)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _execute(cursor: Any, sql: str, params: Sequence[Any]) -> Rows:
    cursor.execute(sql, params)
    return cursor.fetchall() if cursor.description else None


class _Job:
    __slots__ = ("future", "script")

    def __init__(self, script: Script, future: asyncio.Future[list[Rows]]) -> None:
        self.script = script
        self.future = future


class Lane:
    """One connection; scripts queued while it is busy go out as one pipeline.

    When the lane is idle the caller's own task runs its script (no task
    switch on the fast path); scripts arriving meanwhile queue up and a
    worker sends them together.  A pipeline is one transaction: if a
    statement in it fails for a reason other than the connection, nothing was
    committed and every script is re-run alone, so one bad script cannot
    fail its neighbours.
    """

    def __init__(self, name: str, connect_kwargs: dict[str, Any]) -> None:
        self.name = name
        self.connect_kwargs = connect_kwargs
        self.connection: Any = None
        self.backend_pid: int | None = None
        self._runner: LibpqRunner | None = None
        self._queue: list[_Job] = []
        self._busy = False
        self._worker: asyncio.Task[None] | None = None

    async def run(self, script: Script) -> list[Rows]:
        """Run ``script`` (one transaction) and return each statement's rows."""
        if self._busy:
            future: asyncio.Future[list[Rows]] = (
                asyncio.get_running_loop().create_future()
            )
            self._queue.append(_Job(script, future))
            return await future
        self._busy = True
        try:
            return await self._run_alone(script)
        finally:
            if self._queue:
                # Still busy: the worker takes over the connection, and a
                # caller arriving before it starts must queue behind it.
                self._worker = asyncio.ensure_future(self._work())
            else:
                self._busy = False

    async def _work(self) -> None:
        self._busy = True
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                if len(batch) == 1:
                    await self._settle_alone(batch[0])
                else:
                    await self._run_batch(batch)
        finally:
            self._busy = False
            self._worker = None

    async def _settle_alone(self, job: _Job) -> None:
        try:
            result = await self._run_alone(job.script)
        except BaseException as exc:
            _settle(job.future, exception=exc)
            if not isinstance(exc, Exception):
                raise
        else:
            _settle(job.future, result=result)

    async def _run_alone(self, script: Script) -> list[Rows]:
        import psycopg

        try:
            runner = await self._connect()
            if len(script) == 1:
                return [await runner.execute(*script[0])]
            return await runner.pipeline(script)
        except psycopg.OperationalError as exc:
            raise await self._unavailable(exc)
        except asyncio.CancelledError:
            await self._drop_connection()
            raise

    async def _run_batch(self, batch: list[_Job]) -> None:
        import psycopg

        try:
            runner = await self._connect()
            rows = await runner.pipeline(
                [statement for job in batch for statement in job.script]
            )
        except psycopg.OperationalError as exc:
            error = await self._unavailable(exc)
            for job in batch:
                _settle(job.future, exception=error)
            return
        except psycopg.Error:
            # Rolled back as a whole: run each script on its own.
            for job in batch:
                await self._settle_alone(job)
            return
        except BaseException as exc:
            await self._drop_connection()
            for job in batch:
                _settle(job.future, exception=exc)
            raise
        start = 0
        for job in batch:
            end = start + len(job.script)
            _settle(job.future, result=rows[start:end])
            start = end

    async def _unavailable(self, exc: Exception) -> ChannelLayerUnavailable:
        await self._drop_connection()
        return ChannelLayerUnavailable(
            f"PostgreSQL is unreachable for the channel layer ({self.name}): "
            f"{exc}".strip()
        )

    async def _connect(self) -> LibpqRunner:
        """The connection's runner, connecting first if there is none that works."""
        if self._runner is not None and not self._runner.broken:
            return self._runner
        import psycopg

        from .libpq_runner import LibpqRunner

        await self._drop_connection()  # a broken one, if any
        self.connection = await psycopg.AsyncConnection.connect(
            autocommit=True, **self.connect_kwargs
        )
        prepare = self.connect_kwargs.get("prepare_threshold") is not None
        self._runner = LibpqRunner(self.connection, prepare)
        self.backend_pid = self.connection.info.backend_pid
        return self._runner

    async def _drop_connection(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.detach()
        connection, self.connection, self.backend_pid = self.connection, None, None
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
        _finish(connection)


def _settle(
    future: asyncio.Future[Any],
    result: Any = None,
    exception: BaseException | None = None,
) -> None:
    if future.done():
        return
    if isinstance(exception, asyncio.CancelledError):
        future.cancel()
    elif exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)


class PsycopgExecutor:
    """Two lanes: sends and group operations on one, claims and cleanup on the other.

    Separate lanes let a send and a claim be in flight together; within a
    lane, concurrent scripts share a round trip.
    """

    def __init__(
        self, connect_kwargs: dict[str, Any], send_kwargs: dict[str, Any]
    ) -> None:
        self.send_lane = Lane("send", send_kwargs)
        self.claim_lane = Lane("claim", connect_kwargs)

    def backend_pids(self) -> set[int]:
        return {
            lane.backend_pid
            for lane in (self.send_lane, self.claim_lane)
            if lane.backend_pid is not None
        }

    async def run(self, script: Script) -> list[Rows]:
        return await self.send_lane.run(script)

    async def run_claim(self, script: Script) -> list[Rows]:
        return await self.claim_lane.run(script)

    async def run_aside(self, script: Script) -> None:
        """Run ``script`` on a connection opened for it and closed afterwards.

        For maintenance such as ``VACUUM``, which takes milliseconds: on a
        lane it would hold up the sends or deliveries queued behind it.
        """
        import psycopg

        kwargs = {**self.claim_lane.connect_kwargs, "prepare_threshold": None}
        kwargs["application_name"] = f"{kwargs.get('application_name', '')} (aside)"
        async with await psycopg.AsyncConnection.connect(
            autocommit=True, **kwargs
        ) as connection:
            for sql, params in script:
                await connection.execute(sql, params)

    async def close(self) -> None:
        await self.send_lane.close()
        await self.claim_lane.close()

    def abandon(self) -> None:
        self.send_lane.abandon()
        self.claim_lane.abandon()


def _finish(connection: Any) -> None:
    """Close a psycopg connection whose event loop is gone (no await possible)."""
    if connection is not None and not connection.closed:
        connection.pgconn.finish()


#: Settings of the layer's own sessions.  Its queue tables churn, so their
#: statistics rarely describe them: a table that held a burst looks huge and
#: a fresh one empty, and the planner then prefers sequential scans (every
#: send reading the whole table) or even compiles a statement with JIT (tens
#: of milliseconds).  Every statement of the layer has an index to use.
SESSION_SETTINGS = "-c jit=off -c enable_seqscan=off"


def psycopg_connect_kwargs(
    alias: str, prepare_threshold: int | None = 0, pooled: bool = False
) -> dict[str, Any]:
    """libpq parameters for Django's ``DATABASES[alias]``, for our own connections.

    Django's adapters and cursor classes are left out; everything else
    (host, port, credentials, sslmode, options) is kept.  Statements are
    prepared on first use (the layer runs a handful of statements millions
    of times) unless ``prepare_threshold`` or the entry's ``OPTIONS`` say
    otherwise.  Connections that are not ``pooled`` get
    :data:`SESSION_SETTINGS` (a pooler such as PgBouncer refuses or drops
    startup options).
    """
    connection = connections[alias]
    params = dict(connection.get_connection_params())
    for django_only in ("cursor_factory", "context", "client_encoding"):
        params.pop(django_only, None)
    options = connection.settings_dict.get("OPTIONS", {})
    params["prepare_threshold"] = options.get("prepare_threshold", prepare_threshold)
    if not pooled:
        params["options"] = f"{params.get('options', '')} {SESSION_SETTINGS}".strip()
    params.setdefault("connect_timeout", 5)
    params.setdefault("application_name", "channels_app.layers.database")
    return params
