"""Presence benchmark: 1,000 connections over two processes on Redis.

Usage (from the repository root, Redis at ``REDIS_URL``)::

    .venv/bin/python benchmarks/presence.py
    .venv/bin/python benchmarks/presence.py --connections 1000 --lease 3

Django Channels has no presence, so this measures channels_app only.  Two
member processes each join half of ``--connections`` connections (each its
own user) to one topic through ``Presence`` on a ``RedisPresenceStore`` and
channels_redis; this process then checks and times:

- joins per second in each member process (its half, 50 at a time as
  connections arriving together would, timed in the process);
- the member count read back here, against the number joined (exact or
  not), once every join has been announced here, each once;
- after SIGKILL of one member process: the time until its members are no
  longer counted (bounded by one lease after its last renewal), and until
  this process, which holds one connection of its own and so sweeps, has
  announced every one of them as gone -- each exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
TOPIC = "bench.presence"

MEMBER = """
import asyncio, sys, time
from channels_redis.core import RedisChannelLayer
from channels_app.presence import Presence, RedisPresenceStore

async def main(url, prefix, tag, count, lease):
    layer = RedisChannelLayer(hosts=[url], prefix=prefix + "layer", capacity=100000)
    presence = Presence(RedisPresenceStore(url, prefix=prefix), layer, lease)
    started = time.perf_counter()
    # Connections arrive side by side, as consumers would: 50 joins at a time.
    for first in range(0, count, 50):
        await asyncio.gather(*(
            presence.join("bench.presence", f"{tag}-c{n}", f"{tag}-u{n}", {"n": n})
            for n in range(first, min(first + 50, count))
        ))
    print(count / (time.perf_counter() - started), flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]),
                 float(sys.argv[5])))
"""


async def measure(args: argparse.Namespace) -> list[tuple[str, float, str]]:
    from channels_redis.core import RedisChannelLayer

    from channels_app.presence import Presence, RedisPresenceStore
    from channels_app.presence.tracker import group_for

    prefix = f"bench-presence-{uuid.uuid4().hex[:8]}:"
    layer = RedisChannelLayer(
        hosts=[REDIS_URL], prefix=prefix + "layer", capacity=100000
    )
    presence = Presence(RedisPresenceStore(REDIS_URL, prefix=prefix), layer, args.lease)
    listener = await layer.new_channel()
    await layer.group_add(group_for(TOPIC), listener)
    half = args.connections // 2
    members = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MEMBER,
            REDIS_URL,
            prefix,
            tag,
            str(half),
            str(args.lease),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
        )
        for tag in ("a", "b")
    ]
    results = []
    try:
        rates = [float(await m.stdout.readline()) for m in members]
        results += [("joins per second, per process (min)", min(rates), "/s")]
        await presence.join(TOPIC, "observer", "observer", {})
        joined: set[str] = set()
        while len(joined) < 2 * half + 1:  # every arrival announced, once
            event = await asyncio.wait_for(layer.receive(listener), 30)
            assert event["event"] == "join" and event["user"] not in joined
            joined.add(event["user"])
        counted = len(await presence.members(TOPIC)) - 1
        results.append(("members counted / joined", counted / (2 * half), "ratio"))
        await asyncio.sleep(args.lease)  # deliberate: renewals happen meanwhile
        still = len(await presence.members(TOPIC)) - 1
        results.append(("members counted after one lease", still, ""))
        members[0].send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        await members[0].wait()
        while len(await presence.members(TOPIC)) - 1 > half:
            await asyncio.sleep(0.01)
        results.append(
            ("killed process's members gone after", time.perf_counter() - killed, "s")
        )
        left: set[str] = set()
        duplicates = 0
        while len(left) < half:
            event = await asyncio.wait_for(layer.receive(listener), args.lease * 3)
            if event["event"] == "leave":
                for user in event.get("users") or [event["user"]]:
                    duplicates += user in left
                    left.add(user)
        results += [
            ("every leave announced after", time.perf_counter() - killed, "s"),
            ("leaves announced twice", duplicates, ""),
            ("lease", args.lease, "s"),
        ]
    finally:
        for member in members:
            if member.returncode is None:
                member.kill()
                await member.wait()
        await presence.store.close()
        await layer.flush()
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--lease", type=float, default=3.0)
    args = parser.parse_args()
    print(f"presence: {args.connections} connections over 2 processes, Redis")
    for name, value, unit in asyncio.run(measure(args)):
        print(f"{name:45} {value:12,.3f} {unit}")


if __name__ == "__main__":
    main()
