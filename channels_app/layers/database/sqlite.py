"""The database layer on SQLite 3.35+, for development and tests.

``RETURNING`` and SQLite's single writer make each claim atomic.  Nothing
pushes wake-ups between processes, so receivers poll with a back-off (at most
``poll_interval``); a send from this event loop wakes its receivers at once.
Statements run in a thread of their own on a private connection, so they never
queue behind consumers' ORM work or run inside their transactions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections

from .backend import FullMember, GroupLeft, Row, Settings, Wakeups, inbox_of
from .models import ChannelMessage, GroupMembership

logger = logging.getLogger("channels_app.layers.database")

M = ChannelMessage._meta.db_table
G = GroupMembership._meta.db_table
Statement = tuple[str, Sequence[Any]]
_ROW = "id, channel, expires, body"


def _marks(values: Sequence[object]) -> str:
    return ", ".join(["%s"] * len(values))


class SQLiteBackend:
    pushes = False

    def __init__(self, settings: Settings, wakeups: Wakeups) -> None:
        self.settings = settings
        self.wakeups = wakeups
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="channels-db-layer")
        self._connection: Any = None

    async def listen(self, inbox: str) -> None:
        """Nothing to subscribe to: receivers poll."""

    def _wake(self, channels: Iterable[str]) -> None:
        """A send from this loop wakes its receivers at once."""
        inboxes: dict[str, list[str]] = {}
        for channel in channels:
            inboxes.setdefault(inbox_of(channel), []).append(channel)
        for inbox, names in inboxes.items():
            self.wakeups.woken(inbox, names)

    async def send(
        self, channel: str, expires: float, body: bytes, capacity: int, now: float
    ) -> bool:
        [sent] = await self._run(
            f'INSERT INTO "{M}" (channel, expires, body) SELECT %s, %s, %s '
            f'WHERE (SELECT count(*) FROM (SELECT 1 FROM "{M}" WHERE channel = %s '
            f"AND expires > %s LIMIT %s)) < %s RETURNING id",
            (channel, expires, body, channel, now, capacity, capacity),
        )
        self._wake([channel] if sent else [])
        return bool(sent)

    async def group_add(
        self, group: str, channel: str, expires: float, capacity: int
    ) -> None:
        await self._run(
            f'INSERT INTO "{G}" (group_name, channel, expires, capacity) '
            f"VALUES (%s, %s, %s, %s) ON CONFLICT (group_name, channel) DO UPDATE "
            f"SET expires = excluded.expires, capacity = excluded.capacity",
            (group, channel, expires, capacity),
        )

    async def group_discard(self, group: str, channel: str) -> None:
        sql = f'DELETE FROM "{G}" WHERE group_name = %s AND channel = %s'
        await self._run(sql, (group, channel))

    async def group_send(
        self, group: str, expires: float, body: bytes, now: float
    ) -> tuple[int, list[FullMember]]:
        """The members that got it, then all live members: the rest were full
        (SQLite has no correlated ``LIMIT``: it counts whole backlogs)."""
        sent, members = await self._run(
            f'INSERT INTO "{M}" (channel, expires, body) '
            f'SELECT g.channel, %s, %s FROM "{G}" g WHERE g.group_name = %s '
            f'AND g.expires > %s AND (SELECT count(*) FROM "{M}" m '
            f"WHERE m.channel = g.channel AND m.expires > %s) < g.capacity "
            f"RETURNING channel",
            (expires, body, group, now, now),
            f'SELECT channel, capacity FROM "{G}" WHERE group_name = %s '
            f"AND expires > %s",
            (group, now),
        )
        got = {channel for (channel,) in sent}
        self._wake(got)
        return len(members), [FullMember(*row) for row in members if row[0] not in got]

    async def claim(
        self, channels: Sequence[str], limit: int, now: float, shared: bool
    ) -> list[Row]:
        """A read first, so idle polls never take the write lock."""
        match = f"channel IN ({_marks(channels)}) AND expires > %s"
        peek = (f'SELECT 1 FROM "{M}" WHERE {match} LIMIT 1', (*channels, now))
        [rows] = await self._run(
            f'DELETE FROM "{M}" WHERE id IN (SELECT id FROM "{M}" WHERE {match} '
            f"ORDER BY id LIMIT %s) RETURNING {_ROW}",
            (*channels, now, limit),
            guard=peek,
        )
        return [Row(*row) for row in rows]

    async def delete(self, ids: Sequence[int]) -> list[int]:
        raise NotImplementedError("SQLite's wake-ups carry no rows to delete")

    async def put_back(self, rows: Sequence[Row]) -> None:
        insert = f'INSERT INTO "{M}" ({_ROW}) VALUES (%s, %s, %s, %s)'
        await self._run(*(part for row in rows for part in (insert, row)))
        self._wake(row.channel for row in rows)

    async def cleanup(self, now: float) -> list[GroupLeft]:
        """SQLite reuses the pages of deleted rows by itself: no vacuum."""
        [left, _] = await self._run(
            f'DELETE FROM "{G}" WHERE expires <= %s OR channel IN '
            f'(SELECT channel FROM "{M}" WHERE expires <= %s) '
            f"RETURNING channel, group_name",
            (now, now),
            f'DELETE FROM "{M}" WHERE expires <= %s',
            (now,),
        )
        return [GroupLeft(*row) for row in left]

    async def flush(self) -> None:
        await self._run(f'DELETE FROM "{M}"', (), f'DELETE FROM "{G}"', ())

    async def _run(self, *parts: Any, guard: Statement | None = None) -> list[Any]:
        """``sql, params, sql, params...``: each statement's rows, in one
        transaction; with a ``guard``, nothing unless its query finds a row."""
        statements = list(zip(parts[::2], parts[1::2], strict=True))
        call = sync_to_async(
            self._execute, thread_sensitive=False, executor=self._thread
        )
        result: list[list[Any]] = await call(statements, guard)
        return result

    def _execute(
        self, statements: list[Statement], guard: Statement | None
    ) -> list[list[Any]]:
        connection = self._connect()
        with connection.cursor() as cursor:
            if guard is not None:
                cursor.execute(*guard)
                if not cursor.fetchall():
                    return [[] for _ in statements]
            if len(statements) == 1:
                return [_rows(cursor, *statements[0])]
            # A deferred transaction that reads first would fail at once under
            # contention instead of waiting for the busy timeout.
            cursor.execute("BEGIN IMMEDIATE")
            try:
                results = [_rows(cursor, sql, params) for sql, params in statements]
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
            return results

    def _connect(self) -> Any:
        """A private connection in WAL mode (readers and the writer stop blocking
        each other, writes are ten times faster) with ``synchronous=NORMAL``
        (no fsync per commit: a power cut loses the last transactions, never
        consistency).  ``sqlite_wal=False`` leaves the file's mode alone."""
        if self._connection is not None:
            return self._connection
        connection = connections.create_connection(self.settings.database)
        with connection.cursor() as cursor:
            if self.settings.sqlite_wal:
                cursor.execute("PRAGMA journal_mode")
                if cursor.fetchone()[0].lower() != "wal":
                    try:
                        cursor.execute("PRAGMA journal_mode=WAL")
                    except Exception as exc:  # busy: another connection holds it
                        logger.warning("Could not switch SQLite to WAL: %s", exc)
            cursor.execute("PRAGMA synchronous=NORMAL")
        self._connection = connection
        return connection

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


def _rows(cursor: Any, sql: str, params: Sequence[Any]) -> list[Any]:
    cursor.execute(sql, params)
    return cursor.fetchall() if cursor.description else []


BACKEND = SQLiteBackend
