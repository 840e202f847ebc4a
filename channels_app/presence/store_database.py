"""Presence in the project's database (PostgreSQL or SQLite), shared by every
process using it -- for deployments on the database channel layer.

Each operation is one short transaction through the ORM, run by
``database_sync_to_async``; the per-user counter (see :mod:`.models`) is
changed by a single statement so that a join is first, or a leave last, for
exactly one caller.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.db import connections, transaction

from ..db import database_sync_to_async
from .models import PresentConnection, PresentUser
from .store import Key

_TABLE = PresentUser._meta.db_table

# Portable to PostgreSQL and SQLite 3.35+: both take ON CONFLICT and RETURNING.
_ADD = (
    f"INSERT INTO {_TABLE} (topic, {{user}}, connections) VALUES (%s, %s, 1) "
    f"ON CONFLICT (topic, {{user}}) DO UPDATE SET connections = "
    f"{_TABLE}.connections + 1 RETURNING connections"
)
_SUBTRACT = (
    f"UPDATE {_TABLE} SET connections = connections - %s "
    f"WHERE topic = %s AND {{user}} = %s RETURNING connections"
)
_FORGET = (
    f"DELETE FROM {_TABLE} WHERE topic = %s AND {{user}} = %s AND connections <= 0"
)


class DatabasePresenceStore:
    """:class:`~channels_app.presence.store.PresenceStore` on a Django database.

    ``using``: the database alias (its tables come from ``migrate``).
    """

    def __init__(self, using: str = "default") -> None:
        self.using = using

    def _sql(self, template: str) -> str:
        # "user" is a reserved word in PostgreSQL: quote the column.
        quoted = connections[self.using].ops.quote_name("user")
        return template.format(user=quoted)

    def _add(self, topic: str, user: str) -> int:
        with connections[self.using].cursor() as cursor:
            cursor.execute(self._sql(_ADD), [topic, user])
            return int(cursor.fetchone()[0])

    def _subtract(self, topic: str, user: str, count: int) -> bool:
        """Take ``count`` connections off ``user``; True if none are left."""
        with connections[self.using].cursor() as cursor:
            cursor.execute(self._sql(_SUBTRACT), [count, topic, user])
            row = cursor.fetchone()
            if row is None or row[0] > 0:
                return False
            cursor.execute(self._sql(_FORGET), [topic, user])
            return True

    def _rows(self) -> Any:
        return PresentConnection.objects.using(self.using)

    def _lock_first(self) -> None:
        """On SQLite, take the write lock as a transaction's first step.

        A transaction that reads first and writes later holds a shared lock
        when it asks for the write lock, and SQLite then fails at once with
        "database is locked" rather than wait, if another process is
        writing (seen with two processes sharing presence).  A write as the
        first statement -- one that changes nothing -- makes it wait for
        the busy timeout instead.  PostgreSQL needs nothing: its row locks
        (``select_for_update``) wait.
        """
        connection = connections[self.using]
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {_TABLE} SET connections = connections WHERE 1 = 0"
                )

    # -- the store protocol -------------------------------------------------

    async def join(
        self,
        topic: str,
        connection: str,
        user: str,
        meta: dict[str, Any],
        expires_at: float,
    ) -> bool:
        @database_sync_to_async
        def join() -> bool:
            with transaction.atomic(using=self.using):
                self._lock_first()
                earlier = (
                    self._rows()
                    .select_for_update()
                    .filter(topic=topic, connection=connection)
                    .first()
                )
                if earlier is not None and earlier.user == user:
                    earlier.meta, earlier.expires_at = json.dumps(meta), expires_at
                    earlier.save(update_fields=["meta", "expires_at"])
                    return False
                if earlier is not None:
                    earlier.delete()
                    self._subtract(topic, earlier.user, 1)
                self._rows().create(
                    topic=topic,
                    connection=connection,
                    user=user,
                    meta=json.dumps(meta),
                    expires_at=expires_at,
                )
                return self._add(topic, user) == 1

        first: bool = await join()
        return first

    async def update(self, topic: str, connection: str, meta: dict[str, Any]) -> bool:
        @database_sync_to_async
        def update() -> bool:
            rows = self._rows().filter(topic=topic, connection=connection)
            return bool(rows.update(meta=json.dumps(meta)))

        done: bool = await update()
        return done

    async def leave(self, topic: str, connection: str) -> str | None:
        @database_sync_to_async
        def leave() -> str | None:
            with transaction.atomic(using=self.using):
                self._lock_first()
                row = (
                    self._rows()
                    .select_for_update()
                    .filter(topic=topic, connection=connection)
                    .first()
                )
                if row is None:
                    return None
                row.delete()
                return row.user if self._subtract(topic, row.user, 1) else None

        user: str | None = await leave()
        return user

    async def renew(self, keys: Iterable[Key], expires_at: float) -> None:
        by_topic: dict[str, list[str]] = {}
        for topic, connection in keys:
            by_topic.setdefault(topic, []).append(connection)

        @database_sync_to_async
        def renew() -> None:
            for topic, present in by_topic.items():
                self._rows().filter(topic=topic, connection__in=present).update(
                    expires_at=expires_at
                )

        await renew()

    async def sweep(self, now: float) -> list[tuple[str, str]]:
        @database_sync_to_async
        def sweep() -> list[tuple[str, str]]:
            with transaction.atomic(using=self.using):
                self._lock_first()
                expired = list(
                    self._rows()
                    .select_for_update()
                    .filter(expires_at__lte=now)
                    .values_list("id", "topic", "user")[:5000]
                )
                if not expired:
                    return []
                self._rows().filter(id__in=[row[0] for row in expired]).delete()
                counts = Counter((topic, user) for _, topic, user in expired)
                return [
                    (topic, user)
                    for (topic, user), count in counts.items()
                    if self._subtract(topic, user, count)
                ]

        gone: list[tuple[str, str]] = await sweep()
        return gone

    async def members(self, topic: str, now: float) -> dict[str, list[dict[str, Any]]]:
        @database_sync_to_async
        def members() -> list[tuple[str, str]]:
            live = self._rows().filter(topic=topic, expires_at__gt=now)
            return list(live.order_by("id").values_list("user", "meta"))

        found: dict[str, list[dict[str, Any]]] = {}
        for user, meta in await members():
            found.setdefault(user, []).append(json.loads(meta))
        return found

    async def close(self) -> None:
        pass
