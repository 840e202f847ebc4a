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

import time
from typing import Any

from django.db import connections, transaction

from ..db import database_sync_to_async
from .codec import decode, encode
from .models import StreamEntry, StreamState
from .positions import History, StreamMessage
from .store import HistoryLimits
from .store_memory import new_epoch

S = StreamState._meta.db_table
E = StreamEntry._meta.db_table


class DatabaseStreamStore:
    """:class:`~channels_app.streams.store.StreamStore` on a Django database.

    ``database`` is the ``DATABASES`` alias (PostgreSQL or SQLite 3.35+);
    the tables come from channels_app's migrations (``manage.py migrate``).
    """

    def __init__(self, database: str = "default", clock: Any = time.time) -> None:
        if not isinstance(database, str):
            raise TypeError(f"database must be an alias (str), not {database!r}")
        self.database = database
        self._clock = clock

    def _ensure_state(self, cursor: Any, stream: str) -> None:
        cursor.execute(
            f'INSERT INTO "{S}" (stream, epoch, last, published) '
            f"VALUES (%s, %s, 0, 0) ON CONFLICT (stream) DO NOTHING",
            [stream, new_epoch()],
        )

    def _append(self, stream: str, text: str, limits: HistoryLimits) -> list[Any]:
        now = self._clock()
        with transaction.atomic(using=self.database):
            cursor = connections[self.database].cursor()
            taken = None
            while taken is None:  # None: deleted after _ensure_state; again
                self._ensure_state(cursor, stream)
                cursor.execute(
                    f'UPDATE "{S}" SET last = last + 1, published = CASE WHEN '
                    f"published > %s THEN published ELSE %s END WHERE stream = %s "
                    f"RETURNING epoch, last, published",
                    [now, now, stream],
                )
                taken = cursor.fetchone()
            epoch, last, published = taken
            cursor.execute(
                f'INSERT INTO "{E}" (stream, number, published, data) '
                f"VALUES (%s, %s, %s, %s)",
                [stream, last, published, text],
            )
            keep_from = last - limits.max_messages + 1 if limits.max_messages else 0
            cutoff = published - limits.max_age if limits.max_age else None
            cursor.execute(
                f'DELETE FROM "{E}" WHERE stream = %s AND (number < %s'
                + (" OR published < %s)" if cutoff is not None else ")"),
                [stream, keep_from] + ([cutoff] if cutoff is not None else []),
            )
        return [epoch, last, published]

    async def append(
        self, stream: str, data: dict[str, Any], limits: HistoryLimits
    ) -> StreamMessage:
        text = encode(data)
        epoch, last, published = await database_sync_to_async(self._append)(
            stream, text, limits
        )
        return StreamMessage(stream, epoch, int(last), decode(text), published)

    def _read(
        self, stream: str, after: int | None, limits: HistoryLimits
    ) -> tuple[str, int, list[tuple[int, float, str]]]:
        cursor = connections[self.database].cursor()
        query = f'SELECT epoch, last FROM "{S}" WHERE stream = %s'
        cursor.execute(query, [stream])
        state = cursor.fetchone()
        if state is None:
            # Remembered, so the epoch reported now is the one appends use.
            with transaction.atomic(using=self.database):
                self._ensure_state(cursor, stream)
            cursor.execute(query, [stream])
            state = cursor.fetchone()
        epoch, last = state
        rows: list[tuple[int, float, str]] = []
        if after is not None and after < last:
            cutoff = self._clock() - limits.max_age if limits.max_age else None
            cursor.execute(
                f'SELECT number, published, data FROM "{E}" WHERE stream = %s '
                f"AND number > %s AND number <= %s"
                + (" AND published >= %s" if cutoff is not None else "")
                + " ORDER BY number",
                [stream, after, last] + ([cutoff] if cutoff is not None else []),
            )
            rows = cursor.fetchall()
        return epoch, int(last), rows

    async def read(
        self, stream: str, after: int | None, limits: HistoryLimits
    ) -> History:
        epoch, last, rows = await database_sync_to_async(self._read)(
            stream, after, limits
        )
        messages = [
            StreamMessage(stream, epoch, int(number), decode(text), published)
            for number, published, text in rows
        ]
        # The lowest offset this read returned (see the module docstring);
        # entries are a contiguous suffix, trimmed only from the front.
        first = messages[0].offset if messages else last + 1
        if after is None:
            first = last + 1
        return History(epoch, first, last, messages)

    def _delete(self, stream: str) -> None:
        with transaction.atomic(using=self.database):
            cursor = connections[self.database].cursor()
            cursor.execute(f'DELETE FROM "{S}" WHERE stream = %s', [stream])
            cursor.execute(f'DELETE FROM "{E}" WHERE stream = %s', [stream])

    async def delete(self, stream: str) -> None:
        await database_sync_to_async(self._delete)(stream)

    async def close(self) -> None:
        """Connections belong to Django, which closes them."""
