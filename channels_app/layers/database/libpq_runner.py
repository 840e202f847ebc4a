"""PostgreSQL connections of the layer: statements and pipelines run straight
through libpq, with psycopg's C adapters for parameters and rows.

Why not ``AsyncConnection.execute``: for statements this small its machinery
(query conversion, a cursor, a wait that re-registers the socket) costs a
quarter of the round trip: a send took 238 µs through it and 188 µs here
(2026-12-07), and one-to-one throughput is bound by sends.  The socket stays
registered with the event loop for the connection's life and is read as soon
as data arrives: one wake-up of the caller per result, notifications
dispatched from the same reader.  Statements use libpq's ``$1`` placeholders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import AsyncConnection, errors, pq
from psycopg.adapt import PyFormat, Transformer

from .backend import ChannelLayerUnavailable

Rows = list[tuple[Any, ...]]
Statement = tuple[str, Sequence[Any]]

#: Prepared statements kept per connection; past it statements run unnamed.
MAX_PREPARED = 64
_BIN = pq.Format.BINARY


class LibpqRunner:
    """Runs statements on an ``AsyncConnection`` nothing else uses, one call at
    a time (a :class:`Lane` sees to it).  Statements with parameters are
    prepared on first use if ``prepare``; the others (``LISTEN``) never are."""

    def __init__(
        self,
        connection: Any,
        prepare: bool,
        on_notify: Callable[[str, str], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.connection, self.pgconn = connection, connection.pgconn
        self.prepare, self.on_notify, self.on_lost = prepare, on_notify, on_lost
        self._transformer = Transformer.from_context(connection)
        self._prepared: dict[tuple[str, Any], bytes] = {}
        self._ready: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._socket: int | None = self.pgconn.socket
        self._loop.add_reader(self._socket, self._readable)

    async def pipeline(self, statements: Sequence[Statement]) -> list[Rows]:
        """Each statement's rows.  One statement runs alone; more share one
        round trip and one implicit transaction: if one fails, nothing was
        committed and its error is raised."""
        pgconn = self.pgconn
        bound = [await self._bind(sql, params) for sql, params in statements]
        piped = len(bound) > 1
        if piped:
            pgconn.enter_pipeline_mode()
        try:
            for sql, values, types, formats, name in bound:
                if name is None:
                    pgconn.send_query_params(sql.encode(), values, types, formats, _BIN)
                else:
                    pgconn.send_query_prepared(name, values, formats, _BIN)
            if piped:
                pgconn.pipeline_sync()
            results = await self._collect(piped)
        finally:
            if pgconn.pipeline_status != pq.PipelineStatus.OFF:
                try:
                    pgconn.exit_pipeline_mode()
                except errors.OperationalError:  # cancelled or lost mid-way:
                    self.detach()  # results unread, the connection is done for
        return [self._rows(result) for result in results]

    @property
    def broken(self) -> bool:
        return self._socket is None or self.pgconn.status == pq.ConnStatus.BAD

    def detach(self) -> None:
        """Stop watching the socket (before the connection closes)."""
        if self._socket is None:
            return
        self._loop.remove_reader(self._socket)
        self._socket = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        if self.on_lost is not None:
            self.on_lost()

    async def _bind(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...]:
        transformer = self._transformer
        values = transformer.dump_sequence(params, [PyFormat.AUTO] * len(params))
        types, formats = transformer.types, transformer.formats
        name = self._prepared.get((sql, types))
        room = self.prepare and len(self._prepared) < MAX_PREPARED
        if name is None and params and room:
            name = f"channels_app_{len(self._prepared)}".encode()
            self.pgconn.send_prepare(name, sql.encode(), param_types=types)
            await self._collect(False)
            self._prepared[(sql, types)] = name
        return sql, values, types, formats, name

    async def _collect(self, piped: bool) -> list[Any]:
        """The last result of each statement, up to the server's ready point;
        errors raised after reading it all, so the connection is ready for the
        next statement."""
        pgconn = self.pgconn
        while pgconn.flush():
            await self._wait(writable=True)
        results: list[Any] = []
        last = None
        while True:
            if pgconn.is_busy():
                await self._wait()
                continue
            result = pgconn.get_result()
            if result is None:  # the end of one statement's results
                results.append(last)
                if not piped:
                    break
            elif result.status == pq.ExecStatus.PIPELINE_SYNC:
                break
            else:
                last = result
        for result in results:
            if result is not None and result.status == pq.ExecStatus.FATAL_ERROR:
                if result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":
                    self._prepared.clear()  # dropped by someone (``DISCARD ALL``)
                raise errors.error_from_result(result, self.connection.info.encoding)
        return results

    def _rows(self, result: Any) -> Rows:
        if result is None or result.status != pq.ExecStatus.TUPLES_OK:
            return []
        self._transformer.set_pgresult(result)
        return self._transformer.load_rows(0, result.ntuples, tuple)

    def _readable(self) -> None:
        """Read at once, wake the caller only for a whole result: read later,
        the socket would still look readable at the loop's next poll."""
        ready = self._ready
        try:
            self.pgconn.consume_input()
            busy = self.pgconn.is_busy()  # parses it (and drops stray notices)
        except errors.OperationalError as exc:
            if ready is not None and not ready.done():
                ready.set_exception(exc)
            self.detach()  # the next statement finds the connection broken
            return
        while self.on_notify and (notify := self.pgconn.notifies()) is not None:
            self.on_notify(notify.relname.decode(), notify.extra.decode())
        if ready is not None and not busy and not ready.done():
            ready.set_result(None)

    async def _wait(self, writable: bool = False) -> None:
        if self._socket is None:
            raise errors.OperationalError("the connection to the server was lost")
        socket, ready = self._socket, self._loop.create_future()
        if writable:
            self._loop.add_writer(socket, _settle, ready, None)
        else:
            self._ready = ready
        try:
            await ready
        finally:
            if writable:
                self._loop.remove_writer(socket)
            self._ready = None


class Lane:
    """One connection; statements that arrive while it is busy share a pipeline.

    An idle lane runs the statement in the caller's task (no task switch);
    statements arriving meanwhile go out together, in one round trip: 200
    tasks sending at once got 25,200-29,600 sends/s so, 4,500-5,100 with one
    statement per round trip (2026-12-07).  A
    pipeline is one transaction: if a statement fails (not the connection),
    nothing was committed and each runs again alone, so one bad statement
    cannot fail its neighbours.  ``on_connect`` runs first on every new
    connection; ``on_lost`` hears of each lost one.
    """

    def __init__(
        self,
        name: str,
        connect_kwargs: dict[str, Any],
        on_connect: Callable[[LibpqRunner], Any] | None = None,
        on_notify: Callable[[str, str], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.name, self.connect_kwargs = name, connect_kwargs
        self.on_connect, self.on_notify, self.on_lost = on_connect, on_notify, on_lost
        self.connection: Any = None
        self._runner: LibpqRunner | None = None
        self._queue: list[tuple[str, Sequence[Any], asyncio.Future[Rows]]] = []
        self._busy = False
        self._worker: asyncio.Task[None] | None = None

    @property
    def broken(self) -> bool:
        return self._runner is None or self._runner.broken

    async def run(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        """The rows of one statement, run in a transaction of its own."""
        if self._busy:
            future: asyncio.Future[Rows] = asyncio.get_running_loop().create_future()
            self._queue.append((sql, params, future))
            return await future
        self._busy = True
        try:
            [rows] = await self._run([(sql, params)])
            return rows
        finally:
            if self._queue:  # still busy: the worker takes the connection over
                self._worker = asyncio.ensure_future(self._work())
            else:
                self._busy = False

    async def _work(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                outcomes: list[Any]
                try:
                    outcomes = await self._run([(sql, p) for sql, p, _ in batch])
                except errors.Error as exc:  # rolled back as a whole: each alone
                    outcomes = [exc]
                    if len(batch) > 1:
                        outcomes = [await self._outcome(s, p) for s, p, _ in batch]
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                except BaseException as exc:
                    for *_, future in batch:
                        _settle(future, exc)
                    raise
                for (*_, future), outcome in zip(batch, outcomes, strict=True):
                    _settle(future, outcome)
        finally:
            self._busy = False
            self._worker = None

    async def _outcome(self, sql: str, params: Sequence[Any]) -> Any:
        try:
            return (await self._run([(sql, params)]))[0]
        except Exception as exc:
            return exc

    async def _run(self, statements: list[Statement]) -> list[Rows]:
        try:
            return await (await self._connect()).pipeline(statements)
        except (errors.OperationalError, OSError) as exc:
            await self._drop_connection()
            raise ChannelLayerUnavailable(
                f"PostgreSQL is unreachable for the channel layer ({self.name}): "
                f"{exc}".strip()
            ) from exc
        except asyncio.CancelledError:
            await self._drop_connection()  # a statement may be in flight
            raise

    async def _connect(self) -> LibpqRunner:
        if self._runner is not None and not self._runner.broken:
            return self._runner
        await self._drop_connection()  # a broken one, if any
        self.connection = await AsyncConnection.connect(
            autocommit=True, **self.connect_kwargs
        )
        prepare = self.connect_kwargs.get("prepare_threshold") is not None
        runner = LibpqRunner(self.connection, prepare, self.on_notify, self.on_lost)
        try:
            if self.on_connect is not None:
                await self.on_connect(runner)
        except BaseException:
            runner.on_lost = None  # it never served: nothing was lost
            runner.detach()
            raise
        self._runner = runner  # only now: ``broken`` until ``on_connect`` is done
        return runner

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
        self.on_lost = None
        if self._runner is not None:
            self._runner.on_lost = None
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
