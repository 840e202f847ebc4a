"""One PostgreSQL connection of the layer, its statements run straight through
libpq with psycopg's C adapters for parameters and rows.

Why not psycopg's ``AsyncConnection.execute``, ``pipeline()`` and
``notifies()``: the same lanes written with them (237 lines instead of 288)
measured, medians of 3 alternating runs of ``benchmarks/layers.py --preset
postgres`` (2026-12-07): one-to-one 6,814 msgs/s against 8,445 here (-19%),
ping-pong p50 0.394 against 0.282 ms (+40%), group_send to 1,000 all received
15.9 against 11.3 ms (+41%), 200 pairs 19,208 against 32,819 msgs/s (-41%).
The difference: this socket stays registered with the event loop for the
connection's life and is read as soon as data arrives (one wake-up of the
caller per result, notifications dispatched from the same reader, a lost
connection noticed while idle), where psycopg re-registers it for every wait.
Statements use libpq's ``$1`` placeholders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from psycopg import AsyncConnection, errors, pq
from psycopg.adapt import PyFormat, Transformer

from .backend import ChannelLayerUnavailable

Rows = list[tuple[Any, ...]]
Statement = tuple[str, Sequence[Any]]
Pipeline = Callable[[Sequence[Statement]], Awaitable[list[Rows]]]

#: Prepared statements kept per connection; past it statements run unnamed.
MAX_PREPARED = 64
_BIN = pq.Format.BINARY


class Lane:
    """One connection; statements that arrive while it is busy share a pipeline.

    An idle lane runs the statement in the caller's task (no task switch);
    statements arriving meanwhile go out together, in one round trip: 200
    tasks sending at once got 25,200-29,600 sends/s so, 4,500-5,100 with one
    statement per round trip (2026-12-07).  A pipeline is one transaction: if
    a statement fails (not the connection), nothing was committed and each
    runs again alone, so one bad statement cannot fail its neighbours.
    Statements with parameters are prepared on first use unless
    ``prepare_threshold`` is ``None``.  ``on_connect`` runs first on every new
    connection (given :meth:`_pipeline`); ``on_lost`` hears of each lost one.
    """

    def __init__(
        self,
        name: str,
        connect_kwargs: dict[str, Any],
        on_connect: Callable[[Pipeline], Awaitable[Any]] | None = None,
        on_notify: Callable[[str, str], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.name, self.connect_kwargs = name, connect_kwargs
        self.on_connect, self.on_notify, self.on_lost = on_connect, on_notify, on_lost
        self.prepare = connect_kwargs.get("prepare_threshold") is not None
        self.connection: Any = None
        self._live = False  # connected, and ``on_connect`` is done
        self._socket: int | None = None
        self._ready: asyncio.Future[None] | None = None
        self._transformer: Any = None
        self._prepared: dict[tuple[str, Any], bytes] = {}
        self._queue: list[tuple[str, Sequence[Any], asyncio.Future[Rows]]] = []
        self._busy = False
        self._worker: asyncio.Task[None] | None = None

    @property
    def broken(self) -> bool:
        return not self._live or self.connection.pgconn.status == pq.ConnStatus.BAD

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
            if self.broken:
                await self._connect()
            return await self._pipeline(statements)
        except (errors.OperationalError, OSError) as exc:
            self._drop()
            raise ChannelLayerUnavailable(
                f"PostgreSQL is unreachable for the channel layer ({self.name}): "
                f"{exc}".strip()
            ) from exc
        except asyncio.CancelledError:
            self._drop()  # a statement may be in flight
            raise

    async def _connect(self) -> None:
        self._drop()  # a broken connection, if any
        self.connection = connection = await AsyncConnection.connect(
            autocommit=True, **self.connect_kwargs
        )
        self._transformer = Transformer.from_context(connection)
        self._prepared.clear()
        self._socket = connection.pgconn.socket
        asyncio.get_running_loop().add_reader(self._socket, self._readable)
        if self.on_connect is not None:
            await self.on_connect(self._pipeline)
        self._live = True

    async def _pipeline(self, statements: Sequence[Statement]) -> list[Rows]:
        """Each statement's rows.  One statement runs alone; more share one
        round trip and one implicit transaction: if one fails, nothing was
        committed and its error is raised."""
        pgconn = self.connection.pgconn
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
                    self._drop()  # results unread, the connection is done for
        return [self._rows(result) for result in results]

    async def _bind(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...]:
        transformer = self._transformer
        values = transformer.dump_sequence(params, [PyFormat.AUTO] * len(params))
        types, formats = transformer.types, transformer.formats
        name = self._prepared.get((sql, types))
        room = self.prepare and len(self._prepared) < MAX_PREPARED
        if name is None and params and room:  # ``LISTEN`` is never prepared
            name = f"channels_app_{len(self._prepared)}".encode()
            self.connection.pgconn.send_prepare(name, sql.encode(), param_types=types)
            await self._collect(False)
            self._prepared[(sql, types)] = name
        return sql, values, types, formats, name

    async def _collect(self, piped: bool) -> list[Any]:
        """The last result of each statement, up to the server's ready point;
        errors raised after reading it all, so the connection is ready for the
        next statement."""
        pgconn = self.connection.pgconn
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
        rows: Rows = self._transformer.load_rows(0, result.ntuples, tuple)
        return rows

    def _readable(self) -> None:
        """Read at once, wake the caller only for a whole result: read later,
        the socket would still look readable at the loop's next poll."""
        pgconn, ready = self.connection.pgconn, self._ready
        try:
            pgconn.consume_input()
            busy = pgconn.is_busy()  # parses it (and drops stray notices)
        except errors.OperationalError as exc:
            if ready is not None and not ready.done():
                ready.set_exception(exc)
            self._drop()  # the next statement finds the connection broken
            return
        while self.on_notify and (notify := pgconn.notifies()) is not None:
            self.on_notify(notify.relname.decode(), notify.extra.decode())
        if ready is not None and not busy and not ready.done():
            ready.set_result(None)

    async def _wait(self, writable: bool = False) -> None:
        if self._socket is None:
            raise errors.OperationalError("the connection to the server was lost")
        loop, socket = asyncio.get_running_loop(), self._socket
        ready = loop.create_future()
        if writable:
            loop.add_writer(socket, _settle, ready, None)
        else:
            self._ready = ready
        try:
            await ready
        finally:
            if writable:
                loop.remove_writer(socket)
            self._ready = None

    def _drop(self, loop_alive: bool = True) -> None:
        """Stop watching the socket and close the connection; a connection that
        served (``on_connect`` done) is reported lost."""
        served, self._live = self._live, False
        if self._socket is not None and loop_alive:
            asyncio.get_running_loop().remove_reader(self._socket)
        self._socket = None
        if self._ready is not None and not self._ready.done() and loop_alive:
            self._ready.set_result(None)
        connection, self.connection = self.connection, None
        if connection is not None and not connection.closed:
            connection.pgconn.finish()
        if served and self.on_lost is not None:
            self.on_lost()

    async def close(self) -> None:
        self.on_lost = None
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)
        self._drop()

    def abandon(self) -> None:
        """Its event loop is gone, and the reader with it."""
        self.on_lost = None
        self._drop(loop_alive=False)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
