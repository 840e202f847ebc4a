"""The SQL of the database channel layer, one class per database vendor.

Every operation is a *script*: a list of ``(sql, params)`` run in one
transaction, in one round trip where the driver allows it.  Parameters use
the ``%s`` style understood by both psycopg and Django's SQLite cursor.
A message only ever leaves the table through a ``DELETE ... RETURNING``
that hands it to a receiver (:meth:`claim`, :meth:`claim_ids`,
:meth:`confirm`) or through :meth:`cleanup` once it has expired.

Leases (normal channels only).  A claim may take more rows than there are
receivers waiting, so later receives cost no ordered claim; those extra
rows are not deleted but *leased*: ``lease_owner`` names the claiming
event loop and ``lease_expires`` says until when.  The invariant:

- a row handed to a receiver is deleted by the statement that hands it
  out (the claim for receivers already waiting, :meth:`confirm` for a leased
  row), so once a consumer has it no other receiver can;
- a row a process holds without having handed it out is still in the
  table, leased to that process: every claim skips rows under a live lease,
  the holder renews all of its leases with one :meth:`renew` per interval,
  and :meth:`release` or, if the holder died, :meth:`cleanup` (once the
  lease expired) makes them claimable again and wakes their receivers;
- :meth:`confirm` deletes a leased row only while the lease is still the
  holder's, so a holder that stalled past its lease and lost the row to
  another process does not deliver it too.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import zlib
from collections.abc import Sequence
from typing import Any

from .models import ChannelMessage, GroupMembership

Script = list[tuple[str, Sequence[Any]]]
Rows = list[tuple[Any, ...]] | None

MESSAGES = ChannelMessage._meta.db_table
MEMBERS = GroupMembership._meta.db_table


def inbox_of(channel: str) -> str:
    """What a receiver waits on: the channel, or its prefix up to ``!``."""
    bang = channel.find("!")
    return channel if bang == -1 else channel[: bang + 1]


@functools.lru_cache(maxsize=4096)
def wake_key(inbox: str) -> str:
    """The NOTIFY channel for ``inbox``: short enough for an identifier (63 bytes)."""
    digest = hashlib.md5(inbox.encode(), usedforsecurity=False).hexdigest()
    return f"channels_app_{digest}"


#: Largest message carried in a notification: base64 of it, the channel name
#: and the row's id and expiry stay under NOTIFY's 8,000-byte payload limit.
CARRY_LIMIT = 5000
#: Smallest channel capacity for which messages are carried.  A carried row
#: is deleted shortly *after* it is handed out and counts against capacity
#: until then; below this a receiver claims rows (deleting them) instead.
#: The invariant: a receiver that keeps up never makes a sender see
#: ``ChannelFull``.  Deletes start once a quarter of the capacity waits, so
#: the rest must cover the deletes in flight; at 8 that margin (6 rows) was
#: overrun when a core was busy (3 of 6 runs of
#: ``test_a_receiver_that_keeps_up_never_makes_its_channel_look_full[8]``),
#: at 32 it held in 6 of 6.  The default capacity, 100, is carried.
CARRY_MIN_CAPACITY = 32


def carried(channel: str, expires: float, body: bytes, capacity: int) -> str:
    """What a notification adds after the row id: the row itself, or nothing."""
    if "!" not in channel or len(body) > CARRY_LIMIT or capacity < CARRY_MIN_CAPACITY:
        return ""
    return f" {expires!r} {channel} {base64.b64encode(body).decode()}"


def uncarry(payload: str) -> tuple[int, str, float, bytes] | None:
    """The row a notification carries (``None`` when it only names an id)."""
    if " " not in payload:
        return None
    row_id, expires, channel, body = payload.split(" ", 3)
    return int(row_id), channel, float(expires), base64.b64decode(body)


#: Rows nobody holds a live lease on (``now`` is the parameter).
FREE = "(lease_expires IS NULL OR lease_expires <= %s)"


class SQLiteStatements:
    """SQLite 3.35+: ``RETURNING`` plus a single writer make each claim atomic."""

    vendor = "sqlite"

    def _in(self, values: Sequence[object]) -> str:
        return ", ".join(["%s"] * len(values))

    def send(
        self, channel: str, expires: float, body: bytes, capacity: int, now: float
    ) -> Script:
        """Insert unless ``channel`` already holds ``capacity`` live messages.

        Returns a row when the message was queued, none when the channel is full.
        """
        return [
            (
                f'INSERT INTO "{MESSAGES}" (channel, expires, body) '
                f"SELECT %s, %s, %s WHERE (SELECT count(*) FROM (SELECT 1 FROM "
                f'"{MESSAGES}" WHERE channel = %s AND expires > %s LIMIT %s)) < %s '
                f"RETURNING id",
                (channel, expires, body, channel, now, capacity, capacity),
            )
        ]

    def peek(self, channels: Sequence[str], now: float) -> Script:
        """Whether anything waits: a read, so idle polls never take the write lock."""
        return [
            (
                f'SELECT 1 FROM "{MESSAGES}" WHERE channel IN ({self._in(channels)}) '
                f"AND expires > %s AND {FREE} LIMIT 1",
                (*channels, now, now),
            )
        ]

    def claim(
        self,
        channels: Sequence[str],
        limit: int,
        now: float,
        shared: bool,
        lease: tuple[int, str, float] | None = None,
    ) -> Script:
        """Delete and return the oldest live, unleased messages of ``channels``.

        With ``lease = (handed, owner, until)`` only the oldest ``handed``
        rows are deleted (there are receivers waiting for them); the rest,
        up to ``limit``, are leased to ``owner`` until ``until`` and returned
        too.  :meth:`claimed` tells the two apart.
        """
        match = f"channel IN ({self._in(channels)}) AND expires > %s AND {FREE}"
        if lease is None:
            return [
                (
                    f'DELETE FROM "{MESSAGES}" WHERE id IN (SELECT id FROM '
                    f'"{MESSAGES}" WHERE {match} ORDER BY id LIMIT %s) '
                    f"RETURNING id, channel, expires, body",
                    (*channels, now, now, limit),
                )
            ]
        handed, owner, until = lease
        # One transaction holding the write lock: the second statement sees
        # the first one's deletes and leases the rows that follow them.
        return [
            (
                f'DELETE FROM "{MESSAGES}" WHERE id IN (SELECT id FROM '
                f'"{MESSAGES}" WHERE {match} ORDER BY id LIMIT %s) '
                f"RETURNING id, channel, expires, body",
                (*channels, now, now, handed),
            ),
            (
                f'UPDATE "{MESSAGES}" SET lease_owner = %s, lease_expires = %s '
                f'WHERE id IN (SELECT id FROM "{MESSAGES}" WHERE {match} '
                f"ORDER BY id LIMIT %s) RETURNING id, channel, expires, body",
                (owner, until, *channels, now, now, limit - handed),
            ),
        ]

    def claimed(
        self, results: list[Rows], leasing: bool
    ) -> tuple[list[Any], list[Any]]:
        """``(handed, leased)`` rows of a :meth:`claim`'s results."""
        if not leasing or len(results) < 2:
            return list(results[-1] or ()), []
        return list(results[0] or ()), list(results[1] or ())

    def confirm(self, ids: Sequence[int], owner: str) -> Script:
        """Delete leased rows to hand them out; returns the ids still ours."""
        return [
            (
                f'DELETE FROM "{MESSAGES}" WHERE id IN ({self._in(ids)}) '
                f"AND lease_owner = %s RETURNING id",
                (*ids, owner),
            )
        ]

    def renew(self, ids: Sequence[int], owner: str, until: float) -> Script:
        """Extend every lease ``owner`` holds, in one statement."""
        return [
            (
                f'UPDATE "{MESSAGES}" SET lease_expires = %s '
                f"WHERE id IN ({self._in(ids)}) AND lease_owner = %s",
                (until, *ids, owner),
            )
        ]

    def release(self, ids: Sequence[int], owner: str) -> Script:
        """Give leased rows back to their channel, for any receiver."""
        return [
            (
                f'UPDATE "{MESSAGES}" SET lease_owner = NULL, lease_expires = NULL '
                f"WHERE id IN ({self._in(ids)}) AND lease_owner = %s",
                (*ids, owner),
            )
        ]

    def put_back(self, rows: Sequence[tuple[int, str, float, bytes]]) -> Script:
        """Re-insert claimed rows nobody took, under their old ids (keeps FIFO)."""
        return [
            (
                f'INSERT INTO "{MESSAGES}" (id, channel, expires, body) '
                f"VALUES (%s, %s, %s, %s)",
                row,
            )
            for row in rows
        ]

    def group_add(
        self, group: str, channel: str, expires: float, capacity: int
    ) -> Script:
        return [
            (
                f'INSERT INTO "{MEMBERS}" (group_name, channel, expires, capacity) '
                f"VALUES (%s, %s, %s, %s) ON CONFLICT (group_name, channel) DO UPDATE "
                f"SET expires = excluded.expires, capacity = excluded.capacity",
                (group, channel, expires, capacity),
            )
        ]

    def group_discard(self, group: str, channel: str) -> Script:
        return [
            (
                f'DELETE FROM "{MEMBERS}" WHERE group_name = %s AND channel = %s',
                (group, channel),
            )
        ]

    def group_send(self, group: str, expires: float, body: bytes, now: float) -> Script:
        """Queue on every live member below its capacity.

        (SQLite cannot bound the count by a correlated ``LIMIT``, so it counts
        each member's whole backlog: fine at development scale.)  The first
        statement returns the members that got the message, the second all
        live members with their capacities; the difference is the members
        that were full.
        """
        return [
            (
                f'INSERT INTO "{MESSAGES}" (channel, expires, body) '
                f'SELECT g.channel, %s, %s FROM "{MEMBERS}" g '
                f"WHERE g.group_name = %s AND g.expires > %s AND (SELECT count(*) "
                f'FROM "{MESSAGES}" m WHERE m.channel = g.channel '
                f"AND m.expires > %s) < g.capacity "
                f"RETURNING channel",
                (expires, body, group, now, now),
            ),
            (
                f'SELECT channel, capacity FROM "{MEMBERS}" '
                f"WHERE group_name = %s AND expires > %s",
                (group, now),
            ),
        ]

    def cleanup(self, now: float) -> Script:
        """Drop expired rows; a channel whose messages expired leaves its groups.

        Rows whose lease expired (their holder died or stalled) go back to
        their channel.
        """
        return [
            (
                f'DELETE FROM "{MEMBERS}" WHERE expires <= %s OR channel IN '
                f'(SELECT channel FROM "{MESSAGES}" WHERE expires <= %s) '
                f"RETURNING channel, group_name",
                (now, now),
            ),
            (f'DELETE FROM "{MESSAGES}" WHERE expires <= %s', (now,)),
            (
                f'UPDATE "{MESSAGES}" SET lease_owner = NULL, lease_expires = NULL '
                f"WHERE lease_expires <= %s",
                (now,),
            ),
        ]

    def groups_left(self, cleanup: list[Rows]) -> list[tuple[str, str]]:
        """The ``(channel, group)`` memberships a :meth:`cleanup` removed."""
        return [(channel, group) for channel, group in cleanup[0] or ()]

    def flush(self) -> Script:
        return [(f'DELETE FROM "{MESSAGES}"', ()), (f'DELETE FROM "{MEMBERS}"', ())]

    def vacuum_due(self, cleanup: Rows, interval: float | None) -> bool:
        """SQLite reuses the pages of deleted rows by itself: never."""
        return False


#: ``inbox_of`` in SQL, for waking the owners of group members.
_INBOX_SQL = (
    "CASE WHEN strpos(channel, '!') > 0 "
    "THEN left(channel, strpos(channel, '!')) ELSE channel END"
)
#: ``wake_key`` in SQL.
_WAKE_SQL = f"'channels_app_' || md5({_INBOX_SQL})"
#: Serialises cleanups across processes without holding anything afterwards.
CLEANUP_LOCK_KEY = zlib.crc32(MESSAGES.encode()) - 2**31
#: Dead message rows worth a vacuum (a few pages of index entries to skip).
VACUUM_DEAD_ROWS = 1000


_SEND = (
    f'WITH sent AS (INSERT INTO "{MESSAGES}" (channel, expires, body) '
    f"SELECT %s::text, %s, %s WHERE (SELECT count(*) FROM (SELECT 1 FROM "
    f'"{MESSAGES}" WHERE channel = %s::text AND expires > %s LIMIT %s) q) '
    f"< %s RETURNING id) SELECT pg_notify(%s, id::text || %s::text) FROM sent"
)


class PostgresStatements(SQLiteStatements):
    """PostgreSQL: ``SKIP LOCKED`` claims and ``NOTIFY`` in the sending transaction.

    Every script is a single statement, so it is one implicit transaction and
    keeps no session state: sends work through PgBouncer in transaction mode.
    A send's notification names the new row's id, and carries small messages
    to ``!`` channels, whose only listener is the process that made them.
    """

    vendor = "postgresql"

    def send(
        self, channel: str, expires: float, body: bytes, capacity: int, now: float
    ) -> Script:
        """Insert and notify; a small message to a ``!`` channel rides along.

        Only the process that made a ``!`` channel listens for it, so it can
        take the message from the notification and spare a claim's round
        trip; the row stays in the table until that process deletes it.
        """
        return [
            (
                _SEND,
                (
                    channel,
                    expires,
                    body,
                    channel,
                    now,
                    capacity,
                    capacity,
                    wake_key(inbox_of(channel)),
                    carried(channel, expires, body, capacity),
                ),
            )
        ]

    def delete_ids(self, ids: Sequence[int]) -> Script:
        """Remove rows delivered from their notifications; returns those removed."""
        return [
            (
                f'DELETE FROM "{MESSAGES}" WHERE id = ANY(%s::bigint[]) RETURNING id',
                (ids,),
            )
        ]

    def claim(
        self,
        channels: Sequence[str],
        limit: int,
        now: float,
        shared: bool,
        lease: tuple[int, str, float] | None = None,
    ) -> Script:
        """Oldest first; ``shared`` channels skip rows other receivers are taking.

        Without ``SKIP LOCKED`` a concurrent claim waits for the other one and
        then skips the rows it deleted, so each row is still returned once;
        process-specific inboxes have one reader and need no row locks, nor
        leases.  With ``lease = (handed, owner, until)`` one statement deletes
        the oldest ``handed`` of the rows it locked and leases the others;
        each row comes with ``true`` when it is leased.
        """
        where, params = _channels_match(channels)
        if not shared:
            return [
                (
                    f'DELETE FROM "{MESSAGES}" WHERE id = ANY(ARRAY(SELECT id FROM '
                    f'"{MESSAGES}" WHERE {where} AND expires > %s ORDER BY id '
                    f"LIMIT %s)) RETURNING id, channel, expires, body",
                    (*params, now, limit),
                )
            ]
        pick = (
            f'SELECT id FROM "{MESSAGES}" WHERE {where} AND expires > %s AND {FREE} '
            f"ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        if lease is None:
            return [
                (
                    f'DELETE FROM "{MESSAGES}" WHERE id = ANY(ARRAY({pick})) '
                    f"RETURNING id, channel, expires, body",
                    (*params, now, now, limit),
                )
            ]
        handed, owner, until = lease
        return [
            (
                f"WITH picked AS MATERIALIZED ({pick}), "
                f'gone AS (DELETE FROM "{MESSAGES}" WHERE id = ANY(ARRAY('
                f"SELECT id FROM picked ORDER BY id LIMIT %s)) "
                f"RETURNING id, channel, expires, body), "
                f'held AS (UPDATE "{MESSAGES}" SET lease_owner = %s::text, '
                f"lease_expires = %s WHERE id = ANY(ARRAY("
                f"SELECT id FROM picked ORDER BY id OFFSET %s)) "
                f"RETURNING id, channel, expires, body) "
                f"SELECT *, false FROM gone UNION ALL SELECT *, true FROM held",
                (*params, now, now, limit, handed, owner, until, handed),
            )
        ]

    def claimed(
        self, results: list[Rows], leasing: bool
    ) -> tuple[list[Any], list[Any]]:
        rows = results[-1] or ()
        if not leasing:
            return list(rows), []
        handed = [row[:4] for row in rows if not row[4]]
        return handed, [row[:4] for row in rows if row[4]]

    def confirm(self, ids: Sequence[int], owner: str) -> Script:
        return [
            (
                f'DELETE FROM "{MESSAGES}" WHERE id = ANY(%s::bigint[]) '
                f"AND lease_owner = %s::text RETURNING id",
                (list(ids), owner),
            )
        ]

    def renew(self, ids: Sequence[int], owner: str, until: float) -> Script:
        return [
            (
                f'UPDATE "{MESSAGES}" SET lease_expires = %s '
                f"WHERE id = ANY(%s::bigint[]) AND lease_owner = %s::text",
                (until, list(ids), owner),
            )
        ]

    def release(self, ids: Sequence[int], owner: str) -> Script:
        """Give leased rows back and wake their channels' receivers."""
        return [
            (
                f'WITH back AS (UPDATE "{MESSAGES}" SET lease_owner = NULL, '
                f"lease_expires = NULL WHERE id = ANY(%s::bigint[]) "
                f"AND lease_owner = %s::text RETURNING channel) "
                f"SELECT pg_notify(key, '') FROM (SELECT DISTINCT {_WAKE_SQL} AS key "
                f"FROM back) w",
                (list(ids), owner),
            )
        ]

    def claim_ids(
        self, ids: Sequence[int], channels: Sequence[str], now: float
    ) -> Script:
        """Claim rows a notification named, if they belong to waiting channels.

        A primary-key delete: the cheapest claim there is.  Used only while
        every older row of those channels is known to be gone, so it keeps
        FIFO; a row another process took meanwhile is simply not returned.
        """
        where, params = _channels_match(channels)
        ids_param: int | list[int]
        if len(ids) == 1:
            match, ids_param = "id = %s", ids[0]
        else:
            match, ids_param = "id = ANY(%s::bigint[])", list(ids)
        return [
            (
                f'DELETE FROM "{MESSAGES}" WHERE {match} AND {where} AND expires > %s '
                f"AND {FREE} RETURNING id, channel, expires, body",
                (ids_param, *params, now, now),
            )
        ]

    def put_back(self, rows: Sequence[tuple[int, str, float, bytes]]) -> Script:
        columns = zip(*rows, strict=True)
        ids, channels, expires, bodies = (list(column) for column in columns)
        return [
            (
                f'WITH back AS (INSERT INTO "{MESSAGES}" (id, channel, expires, body) '
                f"SELECT * FROM unnest(%s::bigint[], %s::text[], %s::float8[], "
                f"%s::bytea[]) RETURNING channel) "
                f"SELECT pg_notify(key, '') FROM (SELECT DISTINCT {_WAKE_SQL} AS key "
                f"FROM back) w",
                (ids, channels, expires, bodies),
            )
        ]

    def group_add(
        self, group: str, channel: str, expires: float, capacity: int
    ) -> Script:
        [(sql, params)] = super().group_add(group, channel, expires, capacity)
        return [(sql.replace("VALUES (%s, %s", "VALUES (%s::text, %s::text"), params)]

    def group_send(self, group: str, expires: float, body: bytes, now: float) -> Script:
        """One statement: insert for members below capacity, wake their owners.

        Returns the members that were full as ``(channel, capacity)`` rows plus
        one row ``(NULL, number of inboxes woken)`` that forces the NOTIFYs to run.
        """
        return [
            (
                f"WITH members AS (SELECT g.channel, g.capacity, (SELECT count(*) FROM "
                f'(SELECT 1 FROM "{MESSAGES}" m WHERE m.channel = g.channel AND '
                f"m.expires > %s LIMIT g.capacity) q) AS queued "
                f'FROM "{MEMBERS}" g WHERE g.group_name = %s::text '
                f"AND g.expires > %s), "
                f'sent AS (INSERT INTO "{MESSAGES}" (channel, expires, body) '
                f"SELECT channel, %s, %s FROM members WHERE queued < capacity "
                f"RETURNING channel), "
                f"woken AS (SELECT pg_notify(key, '') FROM "
                f"(SELECT DISTINCT {_WAKE_SQL} AS key FROM sent) w) "
                f"SELECT channel, capacity FROM members WHERE queued >= capacity "
                f"UNION ALL SELECT NULL, count(*) FROM woken",
                (now, group, now, expires, body),
            )
        ]

    def cleanup(self, now: float) -> Script:
        """Skipped (returns false) while another process holds the cleanup lock.

        Rows whose lease expired go back to their channel, whose receivers
        are woken.  Also reports the message table's dead and live rows and
        the seconds since it was last vacuumed, for :meth:`vacuum_due`.
        """
        return [
            (
                f"WITH lock AS (SELECT pg_try_advisory_xact_lock(%s) AS held), "
                f'gone AS (DELETE FROM "{MESSAGES}" WHERE expires <= %s AND '
                f"(SELECT held FROM lock) RETURNING channel), "
                f'left_groups AS (DELETE FROM "{MEMBERS}" '
                f"WHERE (SELECT held FROM lock) "
                f"AND (expires <= %s OR channel IN (SELECT channel FROM gone)) "
                f"RETURNING channel, group_name), "
                f'unleased AS (UPDATE "{MESSAGES}" SET lease_owner = NULL, '
                f"lease_expires = NULL WHERE lease_expires <= %s AND expires > %s "
                f"AND (SELECT held FROM lock) RETURNING channel), "
                f"woken AS (SELECT pg_notify(key, '') FROM (SELECT DISTINCT "
                f"{_WAKE_SQL} AS key FROM unleased) w) "
                f"SELECT (SELECT held FROM lock), (SELECT count(*) FROM gone), "
                f"(SELECT count(*) FROM left_groups), pg_stat_get_dead_tuples(t), "
                f"pg_stat_get_live_tuples(t), extract(epoch FROM now() - greatest("
                f"pg_stat_get_last_vacuum_time(t), "
                f"pg_stat_get_last_autovacuum_time(t))), "
                f"(SELECT count(*) FROM woken), "
                f"(SELECT json_agg(json_build_array(channel, group_name)) "
                f"FROM left_groups) "
                f"FROM (SELECT %s::regclass::oid AS t) messages",
                (CLEANUP_LOCK_KEY, now, now, now, now, MESSAGES),
            )
        ]

    def groups_left(self, cleanup: list[Rows]) -> list[tuple[str, str]]:
        """The ``(channel, group)`` memberships a :meth:`cleanup` removed."""
        rows = cleanup[0]
        left = rows[0][7] if rows else None
        return [(channel, group) for channel, group in left or ()]

    def vacuum(self) -> Script:
        """Reclaim the dead rows that queue churn leaves behind.

        Until then every claim and capacity check walks past the index
        entries of delivered messages, so they slow down with the churn.
        """
        return [
            (
                f'VACUUM (SKIP_LOCKED, TRUNCATE false, INDEX_CLEANUP ON) "{MESSAGES}", '
                f'"{MEMBERS}"',
                (),
            )
        ]

    def vacuum_due(self, cleanup: Rows, interval: float | None) -> bool:
        """After a cleanup that held the lock: should this process vacuum now?

        When the dead rows outnumber :data:`VACUUM_DEAD_ROWS` plus a fifth of
        the live ones (autovacuum's own rule, with a small threshold) and the
        last vacuum by anyone is ``interval`` seconds old.  Autovacuum alone
        is too slow for a queue: it visits each database once per
        ``autovacuum_naptime`` (a minute by default), and may be off.
        """
        if interval is None or not cleanup:
            return False
        held, _, _, dead, live, since_last = cleanup[0][:6]
        if not held or dead is None or dead < VACUUM_DEAD_ROWS + live // 5:
            return False
        return since_last is None or float(since_last) >= interval


def _channels_match(channels: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    if len(channels) == 1:
        return "channel = %s::text", (channels[0],)
    return "channel = ANY(%s::text[])", (list(channels),)


def statements_for(vendor: str) -> SQLiteStatements:
    """The statements for a Django database vendor, or ``ValueError``."""
    if vendor == "postgresql":
        return PostgresStatements()
    if vendor == "sqlite":
        return SQLiteStatements()
    raise ValueError(
        f"The database channel layer supports PostgreSQL and SQLite, not {vendor!r}"
    )
