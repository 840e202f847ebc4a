"""A publisher in a process of its own, for the two-process ordering test.

``python -m tests.streams.publisher_process PREFIX TAG COUNT``: says it is
ready (RPUSH ``PREFIX:ready``), waits for the go (BLPOP ``PREFIX:go``), then
publishes COUNT messages ``{"tag": TAG, "n": i}`` and prints the offsets it
was given, one JSON list on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys

import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer

from channels_app.streams import RedisStreamStore, Streams
from tests.services import REDIS_URL


async def main(prefix: str, tag: str, count: int) -> None:
    streams = Streams(
        RedisStreamStore(url=REDIS_URL, prefix=prefix),
        RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix + "layer", capacity=2000),
    )
    control = aioredis.Redis.from_url(REDIS_URL)
    await control.rpush(f"{prefix}:ready", tag)
    await control.blpop([f"{prefix}:go"], timeout=60)
    offsets = []
    for n in range(count):
        message = await streams.publish("orders", {"tag": tag, "n": n})
        offsets.append(message.offset)
    print(json.dumps(offsets))
    await control.aclose()
    await streams.store.close()
    await streams.layer.close_pools()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
