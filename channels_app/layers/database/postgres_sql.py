"""The SQL of the database layer on PostgreSQL (``$n`` placeholders).

Invariants: every operation is one statement with no session state (sends
work through PgBouncer in transaction mode), and a send's ``NOTIFY`` commits
with its ``INSERT``, so no wake-up comes before its row.  A payload names
rows as comma-joined ``<id>:<channel suffix after the inbox>``; an empty one
(a put-back) means "look at every channel".  To a ``!`` inbox, whose only
listener made it, small messages ride along: ``<expires> <base64 body> <items>``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import zlib
from typing import Any

from .models import ChannelMessage, GroupMembership

M = ChannelMessage._meta.db_table
G = GroupMembership._meta.db_table

#: Largest message a send's wake-up carries: its base64, with id, expiry and
#: channel, stays under NOTIFY's 8,000 bytes.
CARRY_LIMIT = 5000
#: A ``group_send`` wake-up repeats its message beside as many members as fit.
GROUP_CARRY_LIMIT = 1500
#: NOTIFY's 8,000 bytes less one more item (an id and a 100-character name).
PAYLOAD_ROOM = 7800
#: Smallest capacity whose messages are carried.  Invariant: a receiver that
#: keeps up never makes its sender see ``ChannelFull``, though carried rows
#: count against capacity until their batched delete.  At 8 that margin was
#: overrun on a busy core (3 of 6 runs of ``test_a_receiver_that_keeps_up_
#: never_makes_its_channel_look_full[8]``); at 32 it held in 6 of 6.
CARRY_MIN_CAPACITY = 32
CLEANUP_LOCK_KEY = zlib.crc32(M.encode()) - 2**31
#: Dead message rows worth a vacuum.
VACUUM_DEAD_ROWS = 1000

#: :func:`inbox_of` and :func:`wake_key` in SQL.
_INBOX = (
    "CASE WHEN strpos(channel, '!') > 0 "
    "THEN left(channel, strpos(channel, '!')) ELSE channel END"
)
_KEY = "'channels_app_' || md5({})"
_ROW = "id, channel, expires, body"

# channel, expires, body, now, capacity, wake key, carried text, ":" suffix
SEND = (
    f'WITH sent AS (INSERT INTO "{M}" (channel, expires, body) '
    f"SELECT $1::text, $2, $3 WHERE (SELECT count(*) FROM (SELECT 1 FROM "
    f'"{M}" WHERE channel = $1::text AND expires > $4 LIMIT $5) q) < $5 '
    f"RETURNING id) SELECT pg_notify($6::text, $7::text || id || $8::text) "
    f"FROM sent"
)
# group, expires, body, now, room, carried text.  Each inbox is woken in as
# many payloads as its rows' names need: their running length, divided by the
# room, numbers them.  Messages ride along only if every member has room.
# The rows: the full members, and (NULL, the number of members); that row's
# WHERE is what makes PostgreSQL run ``woken``, a CTE no other part reads.
GROUP_SEND = (
    f"WITH members AS (SELECT g.channel, g.capacity, (SELECT count(*) FROM "
    f'(SELECT 1 FROM "{M}" m WHERE m.channel = g.channel AND m.expires > $4 '
    f'LIMIT g.capacity) q) AS queued FROM "{G}" g '
    f"WHERE g.group_name = $1::text AND g.expires > $4), "
    f'sent AS (INSERT INTO "{M}" (channel, expires, body) '
    f"SELECT channel, $2, $3 FROM members WHERE queued < capacity "
    f"RETURNING id, channel), "
    f"items AS (SELECT id, inbox, id || ':' || substr(channel, length(inbox) + 1) "
    f"AS item FROM (SELECT id, channel, {_INBOX} AS inbox FROM sent) s), "
    f"payloads AS (SELECT inbox, string_agg(item, ',' ORDER BY id) AS names "
    f"FROM (SELECT *, sum(length(item) + 1) OVER (PARTITION BY inbox ORDER BY id) "
    f"/ $5 AS part FROM items) p GROUP BY inbox, part), "
    f"carry AS (SELECT $6::text AS text WHERE NOT EXISTS (SELECT 1 FROM members "
    f"WHERE capacity < {CARRY_MIN_CAPACITY})), "
    f"woken AS (SELECT pg_notify({_KEY.format('inbox')}, CASE WHEN right(inbox, 1) "
    f"= '!' THEN coalesce((SELECT text FROM carry), '') ELSE '' END || names) "
    f"FROM payloads) "
    f"SELECT channel, capacity FROM members WHERE queued >= capacity "
    f"UNION ALL SELECT NULL, count(*) FROM members "
    f"WHERE (SELECT count(*) FROM woken) >= 0"
)
# group, channel, expires, capacity
GROUP_ADD = (
    f'INSERT INTO "{G}" (group_name, channel, expires, capacity) '
    f"VALUES ($1::text, $2::text, $3, $4) ON CONFLICT (group_name, channel) "
    f"DO UPDATE SET expires = excluded.expires, capacity = excluded.capacity"
)
GROUP_DISCARD = f'DELETE FROM "{G}" WHERE group_name = $1::text AND channel = $2::text'
# channels, now, limit
_PICK = (
    f'SELECT id FROM "{M}" WHERE channel = ANY($1::text[]) '
    f"AND expires > $2 ORDER BY id LIMIT $3"
)
# A ``!`` inbox has one reader, so its claims need no row locks.
CLAIM = f'DELETE FROM "{M}" WHERE id = ANY(ARRAY({_PICK})) RETURNING {_ROW}'
CLAIM_SHARED = (
    f'DELETE FROM "{M}" WHERE id = ANY(ARRAY({_PICK} FOR UPDATE SKIP LOCKED)) '
    f"RETURNING {_ROW}"
)
DELETE = f'DELETE FROM "{M}" WHERE id = ANY($1::bigint[]) RETURNING id'
# ids, channels, expiries, bodies
PUT_BACK = (
    f'WITH back AS (INSERT INTO "{M}" ({_ROW}) SELECT * FROM unnest('
    f"$1::bigint[], $2::text[], $3::float8[], $4::bytea[]) RETURNING channel) "
    f"SELECT pg_notify(key, '') FROM (SELECT DISTINCT {_KEY.format(_INBOX)} "
    f"AS key FROM back) w"
)
# Skipped while another process holds the lock; reports the message table's
# dead and live rows and the seconds since its last vacuum.
CLEANUP = (
    f"WITH lock AS (SELECT pg_try_advisory_xact_lock({CLEANUP_LOCK_KEY}) AS held), "
    f'gone AS (DELETE FROM "{M}" WHERE expires <= $1 AND '
    f"(SELECT held FROM lock) RETURNING channel), "
    f'left_groups AS (DELETE FROM "{G}" WHERE (SELECT held FROM lock) '
    f"AND (expires <= $1 OR channel IN (SELECT channel FROM gone)) "
    f"RETURNING channel, group_name) "
    f"SELECT (SELECT held FROM lock), pg_stat_get_dead_tuples(t), "
    f"pg_stat_get_live_tuples(t), extract(epoch FROM now() - greatest("
    f"pg_stat_get_last_vacuum_time(t), pg_stat_get_last_autovacuum_time(t))), "
    f"(SELECT json_agg(json_build_array(channel, group_name)) FROM left_groups) "
    f"FROM (SELECT '\"{M}\"'::regclass::oid AS t) messages"
)
FLUSH = (f'DELETE FROM "{M}"', f'DELETE FROM "{G}"')
VACUUM = f'VACUUM (SKIP_LOCKED, TRUNCATE false, INDEX_CLEANUP ON) "{M}", "{G}"'


@functools.lru_cache(maxsize=4096)
def wake_key(inbox: str) -> str:
    """The NOTIFY channel of ``inbox``, short enough for an identifier."""
    digest = hashlib.md5(inbox.encode(), usedforsecurity=False).hexdigest()
    return f"channels_app_{digest}"


def carry_text(expires: float, body: bytes, limit: int) -> str:
    if len(body) > limit:
        return ""
    return f"{expires!r} {base64.b64encode(body).decode()} "


def vacuum_due(report: tuple[Any, ...] | None, interval: float | None) -> bool:
    """Vacuum after this cleanup?  Autovacuum's rule with a small threshold,
    at most every ``interval`` s: autovacuum itself visits a database once a
    minute (and may be off), while claims wade through the dead entries."""
    if interval is None or not report:
        return False
    held, dead, live, since_last = report[:4]
    if not held or dead is None or dead < VACUUM_DEAD_ROWS + live // 5:
        return False
    return since_last is None or float(since_last) >= interval
