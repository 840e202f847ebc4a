"""Channel layer benchmark: our layers against Django Channels 4's, in one run.

Usage (from the repository root, after ``make test`` or ``make lint`` made .venv):

    .venv/bin/python benchmarks/layers.py                  # in-memory, both impls
    .venv/bin/python benchmarks/layers.py --impl ours      # only channels_app
    .venv/bin/python benchmarks/layers.py --impl channels  # only Channels 4
    .venv/bin/python benchmarks/layers.py \\
        --layer channels_redis.core.RedisChannelLayer \\
        --config '{"hosts": ["redis://127.0.0.1:6379/1"], "capacity": 2000}'

``--layer`` is a dotted path; a ``channels_app.`` prefix reads as
``channels.`` when measuring Channels, so the default compares the two
``InMemoryChannelLayer`` classes.  ``--config`` is the layer's CONFIG as JSON.
Channels 4 runs in ``.venv-bench-channels`` (created with pip on first use).

Measured, in this order:
- one-to-one throughput: a producer and a consumer task on one channel;
  the producer retries after ChannelFull (msgs/s);
- ping-pong round trip between two ``!`` channels, p50 and p99 (ms);
- group_send fan-out: time of one group_send to 100 and to 1,000 members,
  median of several (ms); channels_redis' core layer keeps all ``!`` channels
  of a process in one queue, so give it ``"capacity"`` above 1,000;
- group_send rate while 1,000 groups of 10 members exist (group_sends/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from harness import Result, add_layer_arguments, import_impl, main


async def send_retrying(layer, channel: str, message: dict) -> None:
    """Send, waiting for room whenever the channel is full."""
    while True:
        try:
            return await layer.send(channel, message)
        except Exception as exc:
            if type(exc).__name__ != "ChannelFull":
                raise
            await asyncio.sleep(0)


async def one_to_one(layer, seconds: float, limit: int) -> float:
    channel = "bench.one-to-one"
    sent = 0
    producing = True

    async def produce():
        nonlocal sent, producing
        deadline = time.perf_counter() + seconds
        while sent < limit and time.perf_counter() < deadline:
            await send_retrying(layer, channel, {"type": "bench.message", "n": sent})
            sent += 1
        producing = False

    async def consume():
        received = 0
        while producing or received < sent:
            await layer.receive(channel)
            received += 1
        return received

    start = time.perf_counter()
    received = (await asyncio.gather(produce(), consume()))[1]
    return received / (time.perf_counter() - start)


async def ping_pong(layer, rounds: int) -> tuple[float, float]:
    here, there = await layer.new_channel(), await layer.new_channel()

    async def answer():
        while True:
            message = await layer.receive(there)
            await layer.send(here, {"type": "bench.pong", "n": message["n"]})

    responder = asyncio.ensure_future(answer())
    timings = []
    try:
        for n in range(rounds + 50):
            start = time.perf_counter()
            await layer.send(there, {"type": "bench.ping", "n": n})
            await layer.receive(here)
            if n >= 50:  # the first rounds warm up connections and caches
                timings.append((time.perf_counter() - start) * 1000)
    finally:
        responder.cancel()
        await asyncio.gather(responder, return_exceptions=True)
    cuts = statistics.quantiles(timings, n=100)
    return cuts[49], cuts[98]


async def fan_out(layer, members: int, repeats: int) -> float:
    group = f"bench-fanout-{members}"
    channels = [await layer.new_channel() for _ in range(members)]
    for channel in channels:
        await layer.group_add(group, channel)
    timings = []
    for n in range(repeats):
        start = time.perf_counter()
        await layer.group_send(group, {"type": "bench.fanout", "n": n})
        timings.append((time.perf_counter() - start) * 1000)
        await asyncio.wait_for(
            asyncio.gather(*(layer.receive(channel) for channel in channels)), 60
        )
    for channel in channels:
        await layer.group_discard(group, channel)
    return statistics.median(timings)


async def many_groups(layer, groups: int, size: int, seconds: float, limit: int):
    for g in range(groups):
        for _ in range(size):
            await layer.group_add(f"bench-room-{g}", await layer.new_channel())
    sends = 0
    start = time.perf_counter()
    deadline = start + seconds
    while sends < limit and time.perf_counter() < deadline:
        await layer.group_send(f"bench-room-{sends % groups}", {"type": "bench.chat"})
        sends += 1
    return sends / (time.perf_counter() - start)


async def measure(impl: str, args: argparse.Namespace):
    layer_class = import_impl(args.layer, impl)
    config = json.loads(args.config)
    path = f"{layer_class.__module__}.{layer_class.__qualname__}"
    title = f"{path}({', '.join(f'{k}={v!r}' for k, v in config.items())})"
    results = []

    layer = layer_class(**config)
    rate = await one_to_one(layer, args.seconds, args.messages)
    results.append(Result("one-to-one throughput", rate, "msgs/s"))
    p50, p99 = await ping_pong(layer, args.rounds)
    results.append(Result("ping-pong p50", p50, "ms", higher_is_better=False))
    results.append(Result("ping-pong p99", p99, "ms", higher_is_better=False))
    for members, repeats in ((100, 20), (1000, 5)):
        elapsed = await fan_out(layer, members, repeats)
        results.append(
            Result(f"group_send to {members:,}", elapsed, "ms", higher_is_better=False)
        )
    await layer.flush()

    layer = layer_class(**config)
    rate = await many_groups(layer, 1000, 10, args.seconds, args.messages)
    results.append(Result("group_send, 1,000 groups of 10", rate, "sends/s"))
    await layer.flush()
    return title, results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_layer_arguments(parser)
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="time budget of each throughput measurement (default: %(default)s)",
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=1_000_000,
        help="upper bound on messages per throughput measurement",
    )
    parser.add_argument(
        "--rounds", type=int, default=2000, help="ping-pong round trips to time"
    )


if __name__ == "__main__":
    main(
        measure,
        description=__doc__,
        add_arguments=add_arguments,
        channels_requirements=["channels>=4,<5", "channels-redis>=4.2"],
    )
