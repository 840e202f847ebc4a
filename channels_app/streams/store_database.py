"""Stream histories in the database: PostgreSQL or SQLite, shared by every
process using that database, kept across restarts.

Appending is one transaction: ``UPDATE ... SET last = last + 1 RETURNING``
takes the next offset under the stream row's lock (PostgreSQL's row lock,
SQLite's single writer), the entry is inserted, and the history is trimmed
by count and age -- so offsets are unique and committed in order across
processes.  Reads take the stream's state first and then only entries up to
that offset, and report the lowest offset actually returned as the first
held, so a trim running meanwhile makes a read refuse recovery rather than
replay part of what was missed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connections

from .codec import decode, encode
from .models import StreamEntry, StreamState
from .positions import History, StreamMessage
from .store import HistoryLimits
from .store_memory import new_epoch

S = StreamState._meta.db_table
E = StreamEntry._meta.db_table
T = TypeVar("T")


class DatabaseStreamStore:
    """:class:`~channels_app.streams.store.StreamStore` on a Django database.

    ``database`` is the ``DATABASES`` alias (PostgreSQL or SQLite 3.35+);
    the tables come from channels_app's migrations (``manage.py migrate``).

    Statements run in a thread of the store's own, on a private connection
    kept open between calls.  Why not ``database_sync_to_async`` and the
    ORM's connection: with ``CONN_MAX_AGE = 0`` (Django's default) that
    closes the connection after every call, and reconnecting to PostgreSQL
    made a publish cost 3.7 times a ``group_send`` to 100 members
    (benchmarks/streams.py); the private connection brought it to 1.1 times.
    """

    def __init__(self, database: str = "default", clock: Any = time.time) -> None:
        if not isinstance(database, str):
            raise TypeError(f"database must be an alias (str), not {database!r}")
        self.database = database
        self._clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="channels-streams-db")
        self._connection: Any = None

    # -- the private connection, used only from self._thread --------------

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, function, *args)

    def _begin(self, write: bool) -> Any:
        """A cursor inside a new transaction; reconnects once if the kept
        connection died (nothing was sent yet, so retrying is safe)."""
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = connections.create_connection(self.database)
            cursor = self._connection.cursor()
            try:
                # SQLite: take the write lock at once, so a reader turned
                # writer never fails on a busy database mid-transaction.
                sqlite = self._connection.vendor == "sqlite"
                cursor.execute("BEGIN IMMEDIATE" if sqlite and write else "BEGIN")
                return cursor
            except (OperationalError, InterfaceError):
                self._close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _transaction(self, work: Callable[[Any], T], write: bool = True) -> T:
        cursor = self._begin(write)
        try:
            result = work(cursor)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
        return result

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- the store --------------------------------------------------------

    @staticmethod
    def _ensure_state(cursor: Any, stream: str) -> None:
        cursor.execute(
            f'INSERT INTO "{S}" (stream, epoch, last, published) '
            f"VALUES (%s, %s, 0, 0) ON CONFLICT (stream) DO NOTHING",
            [stream, new_epoch()],
        )

    def _append(
        self, cursor: Any, stream: str, text: str, limits: HistoryLimits
    ) -> Any:
        now = self._clock()
        self._ensure_state(cursor, stream)
        # Times never decrease along a stream, so age trimming cuts a prefix.
        cursor.execute(
            f'UPDATE "{S}" SET last = last + 1, published = CASE WHEN '
            f"published > %s THEN published ELSE %s END WHERE stream = %s "
            f"RETURNING epoch, last, published",
            [now, now, stream],
        )
        epoch, last, published = cursor.fetchone()
        cursor.execute(
            f'INSERT INTO "{E}" (stream, number, published, data) '
            f"VALUES (%s, %s, %s, %s)",
            [stream, last, published, text],
        )
        keep_from = last - limits.max_messages + 1 if limits.max_messages else 0
        trim = f'DELETE FROM "{E}" WHERE stream = %s AND (number < %s'
        if limits.max_age:
            cursor.execute(
                trim + " OR published < %s)",
                [stream, keep_from, published - limits.max_age],
            )
        else:
            cursor.execute(trim + ")", [stream, keep_from])
        return epoch, last, published

    async def append(
        self, stream: str, data: dict[str, Any], limits: HistoryLimits
    ) -> StreamMessage:
        text = encode(data)
        epoch, last, published = await self._call(
            self._transaction,
            lambda cursor: self._append(cursor, stream, text, limits),
        )
        return StreamMessage(stream, epoch, int(last), decode(text), published)

    def _read(
        self, cursor: Any, stream: str, after: int | None, limits: HistoryLimits
    ) -> tuple[str, int, list[tuple[int, float, str]]]:
        cursor.execute(f'SELECT epoch, last FROM "{S}" WHERE stream = %s', [stream])
        state = cursor.fetchone()
        if state is None:  # nothing stored: reading must not store anything
            return new_epoch(), 0, []
        epoch, last = state
        rows: list[tuple[int, float, str]] = []
        if after is not None and after < last:
            query = (
                f'SELECT number, published, data FROM "{E}" WHERE stream = %s '
                f"AND number > %s AND number <= %s"
            )
            params = [stream, after, last]
            if limits.max_age:
                query += " AND published >= %s"
                params.append(self._clock() - limits.max_age)
            cursor.execute(query + " ORDER BY number", params)
            rows = cursor.fetchall()
        return epoch, int(last), rows

    async def read(
        self, stream: str, after: int | None, limits: HistoryLimits
    ) -> History:
        epoch, last, rows = await self._call(
            self._transaction,
            lambda cursor: self._read(cursor, stream, after, limits),
            False,
        )
        messages = [
            StreamMessage(stream, epoch, int(number), decode(text), published)
            for number, published, text in rows
        ]
        # The lowest offset this read returned (see the module docstring).
        first = messages[0].offset if messages else last + 1
        return History(epoch, first, last, messages)

    def _delete(self, cursor: Any, stream: str) -> None:
        cursor.execute(f'DELETE FROM "{S}" WHERE stream = %s', [stream])
        cursor.execute(f'DELETE FROM "{E}" WHERE stream = %s', [stream])

    async def delete(self, stream: str) -> None:
        await self._call(self._transaction, lambda cursor: self._delete(cursor, stream))

    async def close(self) -> None:
        """Close the kept connection; the next call opens another."""
        await self._call(self._close)
