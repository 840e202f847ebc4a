"""A process holding presence connections until it is killed.

``python -m tests.presence.member_process KIND PREFIX COUNT LEASE``: joins
COUNT connections (users ``far0``...) to ``room.shared`` -- on Redis (KIND
``redis``, keys under PREFIX) or on this test run's database (KIND
``database``, named by the ``DBLAYER_*`` variables; see
``tests/layers/database_fixtures.database_env``) -- prints ``ready``, then
keeps renewing their leases until SIGKILL stops it.
"""

from __future__ import annotations

import asyncio
import sys


def build(kind: str, prefix: str, lease: float):
    if kind == "redis":
        from channels_redis.core import RedisChannelLayer

        from channels_app.presence import Presence, RedisPresenceStore
        from tests.services import REDIS_URL

        layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix + "layer")
        return Presence(RedisPresenceStore(REDIS_URL, prefix=prefix), layer, lease)
    from tests.layers.database_worker import configure

    configure()
    from channels_app.layers.database import DatabaseChannelLayer
    from channels_app.presence import DatabasePresenceStore, Presence

    return Presence(DatabasePresenceStore("default"), DatabaseChannelLayer(), lease)


async def main(kind: str, prefix: str, count: int, lease: float) -> None:
    presence = build(kind, prefix, lease)
    for n in range(count):
        await presence.join("room.shared", f"far-conn{n}", f"far{n}", {"n": n})
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
