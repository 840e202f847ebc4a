"""The Lua scripts behind :class:`~channels_app.streams.store_redis.RedisStreamStore`.

Each runs atomically in Redis, which is what gives every process one order:
the offset is taken and the entry added in the same step, so two
publishers anywhere can neither share an offset nor add out of order.

Keys: ``KEYS[1]`` the Redis Stream (entry IDs ``<offset>-0``, fields ``d``
the JSON data and ``t`` the time in ms), ``KEYS[2]`` a hash with the
stream's ``epoch``, ``last`` offset and the ``time`` of the last entry.

The epoch is renewed when the hash is missing, or when it says messages
were published but the stream key is gone (deleted, evicted, expired): the
history was lost, and positions in it must not be resumed.
"""

from __future__ import annotations

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The epoch and last offset, renewing the epoch when the history is lost.
local function state(fresh_epoch)
  local epoch = redis.call('HGET', KEYS[2], 'epoch')
  local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '0')
  if (not epoch) or (last > 0 and redis.call('EXISTS', KEYS[1]) == 0) then
    epoch = fresh_epoch
    last = 0
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[2], 'epoch', epoch, 'last', 0, 'time', 0)
  end
  return epoch, last
end

local function entry_time(offset)
  local entry = redis.call('XRANGE', KEYS[1], offset .. '-0', offset .. '-0')[1]
  for i = 1, #entry[2], 2 do
    if entry[2][i] == 't' then return tonumber(entry[2][i + 1]) end
  end
  return 0
end

-- Drop entries older than cutoff.  Times never decrease with the offset, so
-- the first young entry is found by bisection (a few XRANGE of one entry),
-- and the common case -- the oldest entry is still young -- costs one.
local function trim_age(cutoff, last)
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  if not oldest then return end
  local lo = tonumber(string.match(oldest[1], '^(%d+)'))
  if entry_time(lo) >= cutoff then return end
  local hi = last + 1
  while lo + 1 < hi do
    local mid = math.floor((lo + hi) / 2)
    if entry_time(mid) >= cutoff then hi = mid else lo = mid end
  end
  redis.call('XTRIM', KEYS[1], 'MINID', hi .. '-0')
end

local function keep(seconds)
  if seconds > 0 then
    redis.call('EXPIRE', KEYS[1], seconds)
    redis.call('EXPIRE', KEYS[2], seconds)
  end
end
"""

#: ARGV: data, fresh epoch, max messages (0: none), max age ms (0: none),
#: seconds to keep an idle stream (0: forever).  Returns {epoch, offset, ms}.
APPEND = (
    _COMMON
    + """
local epoch, last = state(ARGV[2])
local now = now_ms()
local previous = tonumber(redis.call('HGET', KEYS[2], 'time') or '0')
if previous > now then now = previous end
last = last + 1
local max_messages = tonumber(ARGV[3])
if max_messages > 0 then
  redis.call('XADD', KEYS[1], 'MAXLEN', max_messages, last .. '-0',
             'd', ARGV[1], 't', now)
else
  redis.call('XADD', KEYS[1], last .. '-0', 'd', ARGV[1], 't', now)
end
redis.call('HSET', KEYS[2], 'epoch', epoch, 'last', last, 'time', now)
local max_age = tonumber(ARGV[4])
if max_age > 0 then trim_age(now - max_age, last) end
keep(tonumber(ARGV[5]))
return {epoch, last, now}
"""
)

#: ARGV: offset to read after (-1: none), a throwaway epoch for a stream with
#: no history, max age ms (0: none).  Returns {epoch, first, last, entries}, the
#: entries as one JSON text ``[[offset, ms, data], ...]``.
#:
#: Why one text and not XRANGE's nested reply: redis-py parses nested replies
#: in Python, 58 ms for 1,000 entries on the benchmark machine, against a few
#: ms for one ``json.loads``; catch-up after 1,000 missed messages went from
#: 94 to 45 ms to the client, 64 to 12 ms for the subscribe call alone
#: (benchmarks/streams.py).  Invariant that makes it valid:
#: every ``d`` field is JSON object text, written only by ``codec.encode``.
READ = (
    _COMMON
    + """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '0')
if (not epoch) or (last > 0 and redis.call('EXISTS', KEYS[1]) == 0) then
  -- Nothing, or a lost history: a throwaway epoch, and nothing stored.
  return {ARGV[2], 1, 0, '[]'}
end
local max_age = tonumber(ARGV[3])
if max_age > 0 and last > 0 then trim_age(now_ms() - max_age, last) end
local first = last + 1
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
if oldest then first = tonumber(string.match(oldest[1], '^(%d+)')) end
local parts = {}
local after = tonumber(ARGV[1])
if after >= 0 and after < last then
  local entries = redis.call('XRANGE', KEYS[1], (after + 1) .. '-0', '+')
  for i, entry in ipairs(entries) do
    local fields, data, ms = entry[2], nil, nil
    for j = 1, #fields, 2 do
      if fields[j] == 'd' then data = fields[j + 1] else ms = fields[j + 1] end
    end
    local offset = string.match(entry[1], '^(%d+)')
    parts[i] = '[' .. offset .. ',' .. ms .. ',' .. data .. ']'
  end
end
return {epoch, first, last, '[' .. table.concat(parts, ',') .. ']'}
"""
)
