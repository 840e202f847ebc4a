"""Presence shared by two processes on Redis; one of them killed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from channels_redis.core import RedisChannelLayer

from channels_app.presence import Presence, RedisPresenceStore
from channels_app.presence.tracker import group_for
from tests.servers import ROOT
from tests.services import REDIS_URL, require
from tests.streams.conftest import delete_prefixed

LEASE = 1.5
EACH = 300


async def test_a_killed_process_loses_its_members_within_one_lease(prefix):
    require("redis")
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix + "layer", capacity=5000)
    presence = Presence(RedisPresenceStore(REDIS_URL, prefix=prefix), layer, LEASE)
    listener = await layer.new_channel()
    await layer.group_add(group_for("room.shared"), listener)
    other = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.presence.member_process",
        prefix,
        str(EACH),
        str(LEASE),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert await asyncio.wait_for(other.stdout.readline(), 60) == b"ready\n"
        for n in range(EACH):
            await presence.join("room.shared", f"near-conn{n}", f"near{n}", {})
        members = await presence.members("room.shared")
        assert len(members) == 2 * EACH  # exact, across the two processes
        # Let a renewal or two pass in the other process, then kill it.
        await asyncio.sleep(LEASE)  # deliberate: the other process renews meanwhile
        assert len(await presence.members("room.shared")) == 2 * EACH
        other.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await other.wait()

        async def only_ours() -> bool:
            members = await presence.members("room.shared")
            return sorted(members) == sorted(f"near{n}" for n in range(EACH))

        while not await only_ours():
            assert time.monotonic() - killed < LEASE + 0.5, "members outlived a lease"
            await asyncio.sleep(0.05)
        # Each of them is announced as gone, once, by the surviving process.
        left: set[str] = set()

        async def all_left() -> bool:
            while len(left) < EACH:
                event = await asyncio.wait_for(layer.receive(listener), LEASE * 2)
                if event["event"] == "leave":
                    for user in event["users"]:
                        assert user not in left
                        left.add(user)
            return True

        assert await asyncio.wait_for(all_left(), LEASE * 4)
        assert left == {f"far{n}" for n in range(EACH)}
    finally:
        if other.returncode is None:
            other.kill()
            await other.wait()
        for n in range(EACH):
            await presence.leave("room.shared", f"near-conn{n}")
        await presence.store.close()
        await layer.flush()
        await delete_prefixed(prefix)
