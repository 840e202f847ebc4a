"""A publisher in a process of its own, for the multi-process ordering test.

``python -m tests.streams.publisher_process STORE PREFIX TAG COUNT``, STORE
``redis`` (at ``REDIS_URL``, keys under PREFIX) or ``database`` (the
database the ``DBLAYER_*`` variables name, see
``tests/layers/database_fixtures.database_env``).  It prints ``ready``,
waits for a line on stdin, then publishes COUNT messages ``{"tag": TAG,
"n": i}`` to the stream ``orders`` and prints the offsets it was given as
one JSON list.

With TAG ``subscriber`` it instead subscribes a channel of its own to
``orders``, prints ``ready`` and waits, never reading its channel: a
subscriber process to kill.
"""

from __future__ import annotations

import asyncio
import json
import sys


def build(store: str, prefix: str):
    if store == "redis":
        from channels_redis.core import RedisChannelLayer

        from channels_app.streams import RedisStreamStore, Streams
        from tests.services import REDIS_URL

        return Streams(
            RedisStreamStore(url=REDIS_URL, prefix=prefix),
            RedisChannelLayer(
                hosts=[REDIS_URL], prefix=prefix + "layer", capacity=2000
            ),
        )
    from tests.layers.database_worker import configure

    configure()
    from channels_app.layers.database import DatabaseChannelLayer
    from channels_app.streams import DatabaseStreamStore, Streams

    return Streams(DatabaseStreamStore("default"), DatabaseChannelLayer(capacity=2000))


async def main(store: str, prefix: str, tag: str, count: int) -> None:
    streams = build(store, prefix)
    if tag == "subscriber":
        await streams.subscribe("orders", await streams.layer.new_channel())
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        return
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    offsets = []
    for n in range(count):
        message = await streams.publish("orders", {"tag": tag, "n": n})
        offsets.append(message.offset)
    print(json.dumps(offsets), flush=True)
    await streams.store.close()
    from channels_app.layers.registry import close_layer

    await close_layer(streams.layer)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
