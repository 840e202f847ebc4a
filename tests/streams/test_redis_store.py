"""What only the Redis store can show: one order for publishers in several
processes, and histories lost behind its back."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer

from channels_app.streams import Recovery, RedisStreamStore, Streams
from channels_app.streams.store import HistoryLimits
from tests.services import REDIS_URL, require
from tests.streams.conftest import delete_prefixed


@pytest.fixture
async def redis_streams(prefix):
    require("redis")
    built = []

    def make(**store_options):
        streams = Streams(
            RedisStreamStore(url=REDIS_URL, prefix=prefix, **store_options),
            RedisChannelLayer(
                hosts=[REDIS_URL], prefix=prefix + "layer", capacity=2000
            ),
        )
        built.append(streams)
        return streams

    yield make
    for streams in built:
        await streams.store.close()
        await streams.layer.close_pools()
    await delete_prefixed(prefix)


@pytest.fixture
async def redis_client():
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_a_stream_key_deleted_behind_its_back_starts_a_new_epoch(
    redis_streams, redis_client
):
    streams = redis_streams()
    published = await streams.publish("chat.lobby", {"n": 1})
    stream_key, _meta = streams.store.keys("chat.lobby")
    await redis_client.delete(stream_key)  # evicted, or deleted by hand

    lost = await streams.read_after("chat.lobby", published.position)
    assert lost.recovery is Recovery.EPOCH_CHANGED
    again = await streams.publish("chat.lobby", {"n": 2})
    assert again.offset == 1
    assert again.epoch not in (published.epoch, lost.position.epoch)


async def test_a_stream_survives_the_store_object_and_its_connections(redis_streams):
    """A server restart builds a new store: the history is still there."""
    before = redis_streams()
    published = [await before.publish("chat.lobby", {"n": n}) for n in range(3)]
    restarted = redis_streams()
    result = await restarted.read_after("chat.lobby", published[0].position)
    assert result.recovery is Recovery.RECOVERED
    assert [m.data["n"] for m in result.replay] == [1, 2]


async def test_idle_streams_expire_and_unlimited_ones_can_be_kept(
    redis_streams, redis_client
):
    streams = redis_streams(idle_timeout=100)
    await streams.publish("chat.lobby", {"n": 1})
    for key in streams.store.keys("chat.lobby"):
        assert 0 < await redis_client.ttl(key) <= 3601  # max(100, MAX_AGE) + 1
    forever = redis_streams(idle_timeout=None)
    forever.limits_for = lambda stream: HistoryLimits(max_age=None)
    await forever.publish("kept", {"n": 1})
    for key in forever.store.keys("kept"):
        assert await redis_client.ttl(key) == -1
