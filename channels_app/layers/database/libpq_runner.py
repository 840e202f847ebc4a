"""Statements and pipelines straight through libpq, with psycopg's adapters.

The layer's statements are tiny and run millions of times; for them
psycopg's async cursor machinery (query conversion, prepare bookkeeping,
result description, a timer and two ``epoll`` changes per wait) costs more
than PostgreSQL spends on the statement: measured on one connection, a
send took 583 µs through ``AsyncConnection.execute`` and 164 µs here, and
the benchmark's ping-pong p50 went from 0.4 ms to 1.5 ms without it.  This runner keeps
psycopg's C adapters (``Transformer``) for parameters and rows, prepares each
statement once per connection, and drives libpq itself.  Its socket stays
registered with the event loop for the connection's whole life and is read
as soon as data arrives, so a round trip costs no ``epoll_ctl`` calls, no
reads that can only come back empty and one wake-up of the caller.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer

#: A statement's parameters: named or positional.
Params = Mapping[str, Any] | Sequence[Any]
#: A statement's rows, or ``None`` when it returns no result set.
Rows = list[tuple[Any, ...]] | None

#: Prepared statements kept per connection; past it statements run unnamed.
MAX_PREPARED = 64

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_FATAL_ERROR = pq.ExecStatus.FATAL_ERROR
_PIPELINE_SYNC = pq.ExecStatus.PIPELINE_SYNC
_BINARY = pq.Format.BINARY
_BAD = pq.ConnStatus.BAD

#: A statement ready to send: its SQL, dumped values, their types and
#: formats, and the name of its prepared statement (None: not prepared).
_Bound = tuple[str, Any, Any, Any, bytes | None]


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """``%s`` and ``%(name)s`` placeholders as libpq's ``$1, $2, ...`` (and
    ``%%`` as ``%``), with the names in the order of their numbers."""
    names: dict[str, int] = {}
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        if match.group() == "%%":
            return "%"
        name = match.group(1)
        if name is None:
            count += 1
            return f"${count}"
        return f"${names.setdefault(name, len(names) + 1)}"

    return _PLACEHOLDER.sub(replace, sql).encode(), tuple(names)


@functools.lru_cache(maxsize=32)
def _auto_formats(count: int) -> list[PyFormat]:
    return [PyFormat.AUTO] * count


class LibpqRunner:
    """Runs statements on a psycopg ``AsyncConnection`` that nothing else uses.

    The caller guarantees one call at a time (a lane runs one script at a
    time) and calls :meth:`detach` before closing the connection.
    ``prepare=False`` sends every statement unnamed, for poolers where
    prepared statements do not survive.
    """

    def __init__(self, connection: Any, prepare: bool = True) -> None:
        self.connection = connection
        self.pgconn = connection.pgconn
        self.prepare = prepare
        self._transformer = Transformer.from_context(connection)
        self._prepared: dict[tuple[str, tuple[int, ...] | None], bytes] = {}
        self._ready: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._socket: int | None = self.pgconn.socket
        self._loop.add_reader(self._socket, self._readable)

    async def execute(self, sql: str, params: Params) -> Rows:
        """Run ``sql`` with ``params``; its rows, or ``None`` for no result set."""
        self._send(await self._bind(sql, params))
        results = await self._collect()
        if not results:
            raise errors.OperationalError("the server sent no result")
        return self._rows(results[-1])

    async def pipeline(self, statements: Sequence[tuple[str, Params]]) -> list[Any]:
        """Run ``statements`` in one round trip and one implicit transaction.

        If one fails, nothing was committed and its error is raised; the
        statements after it were not run.
        """
        bound = [await self._bind(sql, params) for sql, params in statements]
        pgconn = self.pgconn
        pgconn.enter_pipeline_mode()
        try:
            for statement in bound:
                self._send(statement)
            pgconn.pipeline_sync()
            results = await self._collect(pipelined=True)
        finally:
            if pgconn.pipeline_status != pq.PipelineStatus.OFF:
                pgconn.exit_pipeline_mode()
        rows: list[Rows] = []
        last = None
        for result in results:
            if result is not None:
                last = result
            else:  # the end of one statement's results
                rows.append(None if last is None else self._rows(last))
                last = None
        return rows

    @property
    def broken(self) -> bool:
        """The connection is known to be lost (the next statement would fail)."""
        return self._socket is None or self.pgconn.status == _BAD

    def detach(self) -> None:
        """Stop watching the socket (before the connection closes)."""
        if self._socket is not None:
            self._loop.remove_reader(self._socket)
            self._socket = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    # -- internals ------------------------------------------------------------

    async def _bind(self, sql: str, params: Params) -> _Bound:
        """Dump ``params`` and find (or make) the prepared statement for ``sql``."""
        text, names = numbered(sql)
        if isinstance(params, Mapping):
            params = [params[name] for name in names]
        transformer = self._transformer
        values = transformer.dump_sequence(params, _auto_formats(len(params)))
        types, formats = transformer.types, transformer.formats
        name = self._prepared.get((sql, types))
        if name is None and self.prepare and len(self._prepared) < MAX_PREPARED:
            name = f"channels_app_{len(self._prepared)}".encode()
            self.pgconn.send_prepare(name, text, param_types=types)
            await self._collect()
            self._prepared[(sql, types)] = name
        return sql, values, types, formats, name

    def _send(self, statement: _Bound) -> None:
        sql, values, types, formats, name = statement
        if name is None:
            self.pgconn.send_query_params(
                numbered(sql)[0], values, types, formats, result_format=_BINARY
            )
        else:
            self.pgconn.send_query_prepared(
                name, values, formats, result_format=_BINARY
            )

    async def _collect(self, pipelined: bool = False) -> list[Any]:
        """The results of what was sent, read until the server is ready again.

        In a pipeline that is its sync point, and ``None`` separates the
        statements' results.  A failed statement's error is raised once
        everything has been read, so the connection is ready for the next.
        """
        pgconn = self.pgconn
        while pgconn.flush():
            await self._writable()
        results: list[Any] = []
        while True:
            if pgconn.is_busy():
                await self._input()
                continue
            result = pgconn.get_result()
            if result is None:
                if not pipelined:
                    break
            elif result.status == _PIPELINE_SYNC:
                break
            results.append(result)
        for result in results:
            if result is not None and result.status == _FATAL_ERROR:
                raise self._error(result)
        return results

    def _rows(self, result: Any) -> Rows:
        if result.status != _TUPLES_OK:
            return None
        transformer = self._transformer
        transformer.set_pgresult(result)
        return transformer.load_rows(0, result.ntuples, tuple)

    def _error(self, result: Any) -> errors.Error:
        if result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":
            # Something dropped our prepared statements (``DISCARD ALL``):
            # prepare again next time.
            self._prepared.clear()
        return errors.error_from_result(result, self.connection.info.encoding)

    def _readable(self) -> None:
        """Read what arrived at once, and wake the caller only for a whole result.

        Reading here, not in the woken task, matters: the socket would still
        look readable at the loop's next poll, and wake the following
        statement's caller for nothing.
        """
        ready = self._ready
        try:
            self.pgconn.consume_input()
            busy = self.pgconn.is_busy()  # parses it (and drops stray notices)
        except errors.OperationalError as exc:
            if ready is not None and not ready.done():
                ready.set_exception(exc)
            self.detach()  # the next statement finds the connection broken
            return
        if ready is not None and not busy and not ready.done():
            ready.set_result(None)

    async def _input(self) -> None:
        """Wait until libpq holds a complete result (or the connection failed)."""
        if self._socket is None:
            raise errors.OperationalError("the connection to the server was lost")
        ready = self._ready = self._loop.create_future()
        try:
            await ready
        finally:
            self._ready = None

    async def _writable(self) -> None:
        ready = self._loop.create_future()
        socket = self.pgconn.socket
        self._loop.add_writer(socket, _wake, ready)
        try:
            await ready
        finally:
            self._loop.remove_writer(socket)


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)
