"""Presence in Redis, shared by every process.

Per topic, three keys: a sorted set of connections scored by lease end, a
hash connection -> ``[user, meta]``, and a hash user -> connection count;
plus one sorted set of every ``topic connection`` pair by lease end, so a
sweep finds the expired ones without visiting the live.  Each change is a
Lua script, so a join that makes a count 1 (or a leave that makes it 0)
happens for exactly one caller even with many processes at once.  Needs the
``redis`` extra (redis-py's asyncio client).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..redis_clients import LoopClient, LoopClients, text
from .store import Key

# KEYS: conns, info, users, leases.  ARGV: connection, user, meta, expires, lease member
JOIN = """
local earlier = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({ARGV[2], ARGV[3]}))
if earlier then
  local was = cjson.decode(earlier)[1]
  if was == ARGV[2] then return 0 end
  if redis.call('HINCRBY', KEYS[3], was, -1) <= 0 then
    redis.call('HDEL', KEYS[3], was)
  end
end
return redis.call('HINCRBY', KEYS[3], ARGV[2], 1) == 1 and 1 or 0
"""

# KEYS: conns, info, users, leases.  ARGV: connection, lease member
LEAVE = """
local earlier = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[2])
if not earlier then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local user = cjson.decode(earlier)[1]
if redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
  redis.call('HDEL', KEYS[3], user)
  return user
end
return false
"""

# KEYS: info.  ARGV: connection, meta
UPDATE = """
local earlier = redis.call('HGET', KEYS[1], ARGV[1])
if not earlier then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({cjson.decode(earlier)[1], ARGV[2]}))
return 1
"""

# Every expired lease at once, LEAVE's steps for each: one round trip per
# sweep instead of one per connection (500 expired connections: 5 s -> one
# call, benchmarks/presence.py).  Builds each topic's key names itself, so
# not for Redis Cluster.  KEYS: leases.  ARGV: now, limit, key prefix.
SWEEP = """
local expired = redis.call(
  'ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local gone = {}
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[1], member)
  local cut = string.find(member, ' ', 1, true)
  local topic = string.sub(member, 1, cut - 1)
  local connection = string.sub(member, cut + 1)
  local base = ARGV[3] .. 'presence:' .. topic
  local earlier = redis.call('HGET', base .. ':info', connection)
  if earlier then
    redis.call('ZREM', base .. ':conns', connection)
    redis.call('HDEL', base .. ':info', connection)
    local user = cjson.decode(earlier)[1]
    if redis.call('HINCRBY', base .. ':users', user, -1) <= 0 then
      redis.call('HDEL', base .. ':users', user)
      table.insert(gone, topic)
      table.insert(gone, user)
    end
  end
end
return gone
"""

#: Separates topic and connection in the leases set (neither may contain it).
SEPARATOR = " "
#: Expired leases one sweep handles at most (the next sweep takes the rest).
SWEEP_LIMIT = 5000


class RedisPresenceStore:
    """:class:`~channels_app.presence.store.PresenceStore` on Redis.

    ``url`` the server; ``prefix`` starts every key (several projects or test
    runs share a server); other keywords go to ``Redis.from_url``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "channels_app:",
        **options: Any,
    ) -> None:
        self.url, self.prefix, self.options = url, prefix, options
        scripts = {"join": JOIN, "leave": LEAVE, "update": UPDATE, "sweep": SWEEP}
        self._clients = LoopClients("RedisPresenceStore", url, options, scripts)

    def _connection(self) -> LoopClient:
        return self._clients.current()

    def _keys(self, topic: str) -> list[str]:
        base = f"{self.prefix}presence:{topic}"
        return [f"{base}:conns", f"{base}:info", f"{base}:users", self._leases]

    @property
    def _leases(self) -> str:
        return f"{self.prefix}presence-leases"

    async def join(
        self,
        topic: str,
        connection: str,
        user: str,
        meta: dict[str, Any],
        expires_at: float,
    ) -> bool:
        first = await self._connection().scripts["join"](
            keys=self._keys(topic),
            args=[
                connection,
                user,
                json.dumps(meta),
                expires_at,
                topic + SEPARATOR + connection,
            ],
        )
        return bool(first)

    async def update(self, topic: str, connection: str, meta: dict[str, Any]) -> bool:
        info = self._keys(topic)[1]
        done = await self._connection().scripts["update"](
            keys=[info], args=[connection, json.dumps(meta)]
        )
        return bool(done)

    async def leave(self, topic: str, connection: str) -> str | None:
        user = await self._connection().scripts["leave"](
            keys=self._keys(topic), args=[connection, topic + SEPARATOR + connection]
        )
        return None if user is None else text(user)

    async def renew(self, keys: Iterable[Key], expires_at: float) -> None:
        # XX: only connections still present; a swept one stays gone.
        async with self._connection().client.pipeline(transaction=False) as pipe:
            for topic, connection in keys:
                pipe.zadd(self._keys(topic)[0], {connection: expires_at}, xx=True)
                pipe.zadd(
                    self._leases, {topic + SEPARATOR + connection: expires_at}, xx=True
                )
            await pipe.execute()

    async def sweep(self, now: float) -> list[tuple[str, str]]:
        flat = await self._connection().scripts["sweep"](
            keys=[self._leases], args=[now, SWEEP_LIMIT, self.prefix]
        )
        texts = [text(item) for item in flat]
        return list(zip(texts[::2], texts[1::2], strict=True))

    async def members(self, topic: str, now: float) -> dict[str, list[dict[str, Any]]]:
        conns, info = self._keys(topic)[:2]
        client = self._connection().client
        live = await client.zrangebyscore(conns, f"({now}", "+inf")
        found: dict[str, list[dict[str, Any]]] = {}
        if not live:
            return found
        entries: list[Any] = await client.hmget(info, live)  # type: ignore[misc]
        for entry in entries:
            if entry is not None:
                user, meta = json.loads(entry)
                found.setdefault(user, []).append(json.loads(meta))
        return found

    async def delete(self, topic: str) -> None:
        await self._connection().client.delete(*self._keys(topic)[:3])

    async def close(self) -> None:
        """Close this event loop's connections (others close with their loop)."""
        await self._clients.close()
