"""Presence shared by two processes (Redis, SQLite, PostgreSQL); one killed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest
from channels_redis.core import RedisChannelLayer

from channels_app.layers.registry import close_layer
from channels_app.presence import Presence, RedisPresenceStore
from channels_app.presence.tracker import group_for
from tests.layers.database_fixtures import database_env
from tests.layers.implementations import DATABASE_TABLES
from tests.servers import ROOT
from tests.services import REDIS_URL, require
from tests.streams.conftest import delete_prefixed

LEASE = 1.5


def shared(kind: str, prefix: str):
    """This process's Presence, and its layer, on the store under test."""
    if kind == "redis":
        require("redis")
        layer = RedisChannelLayer(
            hosts=[REDIS_URL], prefix=prefix + "layer", capacity=5000
        )
        store = RedisPresenceStore(REDIS_URL, prefix=prefix)
        return Presence(store, layer, LEASE), layer, dict(os.environ), 300
    from channels_app.layers.database import DatabaseChannelLayer
    from channels_app.presence import DatabasePresenceStore

    if kind == "postgres":
        require("postgres")
    alias = "default" if kind == "sqlite" else "postgres"
    layer = DatabaseChannelLayer(database=alias, capacity=5000)
    store = DatabasePresenceStore(alias)
    return Presence(store, layer, LEASE), layer, database_env(kind), 100


@pytest.mark.parametrize(
    "kind",
    [
        "redis",
        pytest.param("sqlite", marks=DATABASE_TABLES),
        pytest.param("postgres", marks=DATABASE_TABLES),
    ],
)
async def test_a_killed_process_loses_its_members_within_one_lease(kind, prefix):
    presence, layer, env, each = shared(kind, prefix)
    listener = await layer.new_channel()
    await layer.group_add(group_for("room.shared"), listener)
    other = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.presence.member_process",
        "redis" if kind == "redis" else "database",
        prefix,
        str(each),
        str(LEASE),
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert await asyncio.wait_for(other.stdout.readline(), 60) == b"ready\n"
        for n in range(each):
            await presence.join("room.shared", f"near-conn{n}", f"near{n}", {})
        members = await presence.members("room.shared")
        assert len(members) == 2 * each  # exact, across the two processes
        # Let a renewal or two pass in the other process, then kill it.
        await asyncio.sleep(LEASE)  # deliberate: the other process renews meanwhile
        assert len(await presence.members("room.shared")) == 2 * each
        other.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await other.wait()

        async def only_ours() -> bool:
            members = await presence.members("room.shared")
            return sorted(members) == sorted(f"near{n}" for n in range(each))

        while not await only_ours():
            assert time.monotonic() - killed < LEASE + 0.5, "members outlived a lease"
            await asyncio.sleep(0.05)
        # Each of them is announced as gone, once, by the surviving process.
        left: set[str] = set()

        async def all_left() -> bool:
            while len(left) < each:
                event = await asyncio.wait_for(layer.receive(listener), LEASE * 2)
                if event["event"] == "leave":
                    for user in event["users"]:
                        assert user not in left
                        left.add(user)
            return True

        assert await asyncio.wait_for(all_left(), LEASE * 4)
        assert left == {f"far{n}" for n in range(each)}
    finally:
        if other.returncode is None:
            other.kill()
            await other.wait()
        for n in range(each):
            await presence.leave("room.shared", f"near-conn{n}")
        await presence.store.close()
        await layer.flush()
        await close_layer(layer)
        if kind == "redis":
            await delete_prefixed(prefix)
