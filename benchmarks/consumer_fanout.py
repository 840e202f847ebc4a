"""Group message to many consumers right after a query: ours against Channels 4.

Usage (from the repository root, with .venv made):

    .venv/bin/python benchmarks/consumer_fanout.py --runs 3
    .venv/bin/python benchmarks/consumer_fanout.py --consumers 200 --impl ours

``--consumers`` WebSocket consumers (the same class for both, written as
Channels' docs write it) are connected through the testing communicator on
the in-memory layer and joined to one group.  Each round marks the database
connections as used (a query ran in the process, as in any Django page or
consumer), sends one ``group_send`` and times until every client has
received the frame its consumer sends back: what the users wait for.
Channels tidies the connections before every message, one hop to the ORM
thread per consumer, one behind the other; ours does it only after a query,
and the consumers that ask at the same instant share one hop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from harness import Result, import_impl, main, setup_django


def mark_connections_used(impl: str) -> None:
    """What a query does to our bookkeeping; Channels keeps none."""
    if impl == "ours":
        from channels_app.db import connection_activity

        connection_activity.dirty = True


async def measure(impl: str, args: argparse.Namespace):
    setup_django(
        impl,
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": f"{import_impl('channels_app.layers', impl).__name__}"
                ".InMemoryChannelLayer",
                "CONFIG": {"capacity": 1000},
            }
        },
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
        },
    )
    consumer_base = import_impl(
        "channels_app.generic.websocket.AsyncWebsocketConsumer", impl
    )
    communicator_class = import_impl("channels_app.testing.WebsocketCommunicator", impl)
    get_channel_layer = import_impl("channels_app.layers.get_channel_layer", impl)

    class Member(consumer_base):
        groups = ["room"]

        async def news(self, event):
            await self.send(text_data="news")

    clients = [communicator_class(Member.as_asgi(), "/") for _ in range(args.consumers)]
    for client in clients:
        connected, _ = await client.connect()
        assert connected
    layer = get_channel_layer()
    timings = []
    for round_number in range(args.rounds + 1):
        mark_connections_used(impl)
        start = time.perf_counter()
        await layer.group_send("room", {"type": "news"})
        await asyncio.gather(*(client.receive_from(30) for client in clients))
        if round_number:  # the first is a warm-up
            timings.append((time.perf_counter() - start) * 1000)
    for client in clients:
        await client.disconnect()
    title = f"{args.consumers} AsyncWebsocketConsumers, in-memory layer"
    return title, [
        Result(
            f"group message to {args.consumers:,} after a query, all received",
            statistics.median(timings),
            "ms",
            higher_is_better=False,
        )
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--consumers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)


if __name__ == "__main__":
    main(
        measure,
        description=__doc__.split("\n")[0],
        add_arguments=add_arguments,
    )
