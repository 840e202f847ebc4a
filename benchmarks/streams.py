"""Streams benchmark: catch-up after missed messages, and publishing cost.

Usage (from the repository root, Redis at ``REDIS_URL`` for the Redis rows,
PostgreSQL as for benchmarks/database.py for the postgres rows)::

    .venv/bin/python benchmarks/streams.py              # memory and redis
    .venv/bin/python benchmarks/streams.py --backends memory redis postgres
    .venv/bin/python benchmarks/streams.py --backends memory --runs 20

Measured, per backend (in-memory store + in-memory layer; Redis store +
channels_redis' core layer; database store + database layer on PostgreSQL,
in the benchmark database of benchmarks/database.py), each the median of
``--runs``:

- catch-up: 1,000 messages published while a client was away; the time
  from its ``stream.subscribe`` frame (with its last position) until it
  has the 1,000th replayed message -- through ``StreamsMixin`` on a
  ``WebsocketCommunicator``, so JSON framing included -- and, beside it,
  the ``Streams.subscribe`` call alone (group join + history read);
- fan-out: the time until all 100 members have received one message,
  for ``publish`` to a stream with 100 subscribers and for a plain
  ``group_send`` to a group of 100 on the same layer, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import database  # noqa: E402
import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    INSTALLED_APPS=["channels_app"],
    SECRET_KEY="benchmark-only",
    CHANNEL_LAYERS={"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}},
    DATABASES={"default": database.database_entry()},
)
django.setup()

from channels_app.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels_app.layers import InMemoryChannelLayer, channel_layers  # noqa: E402
from channels_app.streams import (  # noqa: E402
    InMemoryStreamStore,
    RedisStreamStore,
    Streams,
    StreamsMixin,
)
from channels_app.streams.store import HistoryLimits  # noqa: E402
from channels_app.testing import WebsocketCommunicator  # noqa: E402

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
MISSED = 1000
MEMBERS = 100
LIMITS = HistoryLimits(max_messages=5000, max_age=3600)


def build(backend: str, prefix: str) -> Streams:
    if backend == "memory":
        layer = InMemoryChannelLayer(capacity=5000)
        store = InMemoryStreamStore()
    elif backend == "postgres":
        from channels_app.layers.database import DatabaseChannelLayer
        from channels_app.streams import DatabaseStreamStore

        layer = DatabaseChannelLayer(capacity=5000)
        store = DatabaseStreamStore()
    else:
        from channels_redis.core import RedisChannelLayer

        layer = RedisChannelLayer(
            hosts=[REDIS_URL], prefix=prefix + "layer", capacity=5000
        )
        store = RedisStreamStore(url=REDIS_URL, prefix=prefix)
    channel_layers.set("default", layer)
    # The alias, so the consumer and the streams share the registry's layer.
    return Streams(store, "default", lambda stream: LIMITS)


class Client(StreamsMixin, AsyncJsonWebsocketConsumer):
    stream_patterns = ["*"]
    streams: Streams

    def get_streams(self) -> Streams:
        return self.streams


async def catch_up(
    streams: Streams, runs: int, prefix: str
) -> tuple[list[float], list[float]]:
    client_ms, hub_ms = [], []
    Client.streams = streams
    for run in range(runs):
        stream = f"{prefix}catchup-{run}"
        first = await streams.publish(stream, {"n": -1})
        for n in range(MISSED):
            await streams.publish(stream, {"n": n, "text": "a typical chat line"})
        started = time.perf_counter()
        subscription = await streams.subscribe(stream, "bench.nobody", first.position)
        hub_ms.append((time.perf_counter() - started) * 1000)
        assert len(subscription.replay) == MISSED
        await streams.unsubscribe(stream, "bench.nobody")

        communicator = WebsocketCommunicator(Client.as_asgi(), "/")
        assert (await communicator.connect(timeout=10))[0]
        started = time.perf_counter()
        await communicator.send_json_to(
            {
                "type": "stream.subscribe",
                "stream": stream,
                "since": first.position.as_dict(),
            }
        )
        subscribed = await communicator.receive_json_from(timeout=10)
        assert subscribed["recovery"] == "recovered", subscribed
        for _ in range(MISSED):
            frame = await communicator.receive_json_from(timeout=10)
        client_ms.append((time.perf_counter() - started) * 1000)
        assert frame["offset"] == MISSED + 1
        await communicator.disconnect()
    return client_ms, hub_ms


async def fan_out(
    streams: Streams, runs: int, prefix: str
) -> tuple[list[float], list[float]]:
    layer = streams.layer
    stream = f"{prefix}fanout"
    stream_members = [await layer.new_channel() for _ in range(MEMBERS)]
    group_members = [await layer.new_channel() for _ in range(MEMBERS)]
    for channel in stream_members:
        await streams.subscribe(stream, channel)
    for channel in group_members:
        await layer.group_add("bench-plain-group", channel)

    async def until_all_received(channels, send):
        started = time.perf_counter()
        await asyncio.gather(send(), *(layer.receive(c) for c in channels))
        return (time.perf_counter() - started) * 1000

    payload = {"text": "a typical chat line", "user": "ann"}
    stream_ms, group_ms = [], []
    for _ in range(runs):  # alternated, so both see the same machine load
        stream_ms.append(
            await until_all_received(
                stream_members, lambda: streams.publish(stream, payload)
            )
        )
        group_ms.append(
            await until_all_received(
                group_members,
                lambda: layer.group_send(
                    "bench-plain-group", {"type": "chat.message", **payload}
                ),
            )
        )
    return stream_ms, group_ms


async def cleanup(streams: Streams, backend: str, prefix: str, runs: int) -> None:
    for stream in [f"{prefix}catchup-{run}" for run in range(runs)] + [
        f"{prefix}fanout"
    ]:
        await streams.delete(stream)
    await streams.store.close()
    layer = streams.layer
    if backend == "postgres":
        await layer.close()
    if backend == "redis":
        import redis.asyncio as aioredis

        await layer.close_pools()
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def median(values: list[float]) -> float:
    return statistics.median(values)


async def run(backends: list[str], runs: int) -> None:
    print(f"{'backend':<8} {'measure':<58} {'median':>10}")
    for backend in backends:
        prefix = f"bench-{uuid.uuid4().hex[:8]}-"
        streams = build(backend, prefix)
        try:
            client_ms, hub_ms = await catch_up(streams, runs, prefix)
            stream_ms, group_ms = await fan_out(streams, runs * 5, prefix)
        finally:
            await cleanup(streams, backend, prefix, runs)
        rows = [
            (f"catch-up {MISSED} missed, to the client (StreamsMixin)", client_ms),
            (f"catch-up {MISSED} missed, Streams.subscribe alone", hub_ms),
            (f"publish to a stream, {MEMBERS} subscribers all received", stream_ms),
            (f"group_send to {MEMBERS} members, all received", group_ms),
        ]
        for name, values in rows:
            print(f"{backend:<8} {name:<58} {median(values):>7.2f} ms")
        ratio = median(stream_ms) / median(group_ms)
        print(
            f"{backend:<8} {'publish / group_send (target <= 1.3x)':<58} "
            f"{ratio:>8.2f} x"
        )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["memory", "redis"],
        choices=["memory", "redis", "postgres"],
    )
    parser.add_argument("--runs", type=int, default=10)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if "postgres" in arguments.backends:
        from django.core.management import call_command

        database.ensure_database()
        call_command("migrate", "channels_app", verbosity=0)
    asyncio.run(run(arguments.backends, arguments.runs))
