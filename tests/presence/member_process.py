"""A process holding presence connections until it is killed.

``python -m tests.presence.member_process PREFIX COUNT LEASE``: joins COUNT
connections (users ``far0``...) to ``room.shared`` on Redis, prints
``ready``, then keeps renewing their leases until SIGKILL stops it.
"""

from __future__ import annotations

import asyncio
import sys

from channels_redis.core import RedisChannelLayer

from channels_app.presence import Presence, RedisPresenceStore
from tests.services import REDIS_URL


async def main(prefix: str, count: int, lease: float) -> None:
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix + "layer")
    presence = Presence(RedisPresenceStore(REDIS_URL, prefix=prefix), layer, lease)
    for n in range(count):
        await presence.join("room.shared", f"far-conn{n}", f"far{n}", {"n": n})
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
