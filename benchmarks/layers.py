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

``--instances 2`` measures two layer instances the way two processes use
them: one sends, the other receives (ping-pong goes back and forth).
``--preset postgres`` compares our ``DatabaseChannelLayer`` with
``channels_postgres`` on PostgreSQL, two instances each (see
benchmarks/database.py for the database used):

    .venv/bin/python benchmarks/layers.py --preset postgres --runs 3

Measured, in this order:
- one-to-one throughput: a producer and a consumer task on one channel;
  the producer retries after ChannelFull (msgs/s), after an untimed warm-up;
- ping-pong round trip between two ``!`` channels, p50 and p99 (ms);
- 200 pairs at once, as a busy server's consumers: each sender task sends 25
  messages to its own receiver's ``!`` channel; messages/s until the last
  receiver has all of its 25;
- group_send fan-out to 100 and to 1,000 members: the time until every
  member has received the message (what a user waits for) and, beside it,
  until ``group_send`` returned, medians of several (ms); channels_redis'
  core layer keeps all ``!`` channels of a process in one queue, so give it
  ``"capacity"`` above 1,000;
- group_send rate while 1,000 groups of 10 members exist (group_sends/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import database
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


async def one_to_one(layer, receiver, seconds: float, limit: int) -> float:
    channel = "bench.one-to-one"
    if receiver is not layer:
        # Across processes a sender addresses the receiver's own channel.
        channel = await receiver.new_channel()
    sent = received = 0
    producing = True
    all_in = asyncio.Event()

    async def produce():
        nonlocal sent, producing
        deadline = time.perf_counter() + seconds
        while sent < limit and time.perf_counter() < deadline:
            await send_retrying(layer, channel, {"type": "bench.message", "n": sent})
            sent += 1
        producing = False
        if received >= sent:
            all_in.set()

    async def consume():
        # A layer may deliver a message before its send returns: count until
        # the producer is done, rather than comparing with ``sent`` meanwhile.
        nonlocal received
        while True:
            await receiver.receive(channel)
            received += 1
            if not producing and received >= sent:
                all_in.set()

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0.2)  # the receiver is listening before the first send
    start = time.perf_counter()
    await produce()
    try:
        await asyncio.wait_for(all_in.wait(), 30)
    except asyncio.TimeoutError:
        print(f"one-to-one: {sent - received} of {sent} never arrived", file=sys.stderr)
    elapsed = time.perf_counter() - start
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    return received / elapsed


async def ping_pong(layer, other, rounds: int) -> tuple[float, float]:
    here, there = await layer.new_channel(), await other.new_channel()

    async def answer():
        while True:
            message = await other.receive(there)
            await other.send(here, {"type": "bench.pong", "n": message["n"]})

    async def warm_up(n: int) -> None:
        """Untimed rounds; a layer that drops messages until it listens resends."""
        while True:
            await layer.send(there, {"type": "bench.ping", "n": n})
            try:
                while (await asyncio.wait_for(layer.receive(here), 1))["n"] != n:
                    pass
                return
            except asyncio.TimeoutError:
                print(
                    f"ping-pong: warm-up round {n} had no answer within 1 s; resent",
                    file=sys.stderr,
                )

    responder = asyncio.ensure_future(answer())
    timings = []
    try:
        for n in range(50):  # warm up connections, caches and listeners
            await warm_up(n)
        for n in range(50, rounds + 50):
            start = time.perf_counter()
            await layer.send(there, {"type": "bench.ping", "n": n})
            await layer.receive(here)
            timings.append((time.perf_counter() - start) * 1000)
    finally:
        responder.cancel()
        await asyncio.gather(responder, return_exceptions=True)
    cuts = statistics.quantiles(timings, n=100)
    return cuts[49], cuts[98]


async def concurrent_pairs(layer, receiver, pairs: int, each: int) -> float:
    channels = [await receiver.new_channel() for _ in range(pairs)]

    async def sender(channel: str) -> None:
        for n in range(each):
            await send_retrying(layer, channel, {"type": "bench.pair", "n": n})

    async def consumer(channel: str) -> None:
        for _ in range(each):
            await receiver.receive(channel)

    consumers = [asyncio.ensure_future(consumer(c)) for c in channels]
    await asyncio.sleep(0.2)  # every receiver is listening
    start = time.perf_counter()
    await asyncio.gather(*(sender(c) for c in channels))
    _, lost = await asyncio.wait(consumers, timeout=60)
    for task in lost:
        task.cancel()
    if lost:
        print(f"pairs: {len(lost)} of {pairs} receivers incomplete", file=sys.stderr)
        return float("nan")
    return pairs * each / (time.perf_counter() - start)


async def fan_out(layer, receiver, members: int, repeats: int) -> tuple[float, float]:
    """Medians of (send returned, every member received), in ms.

    The second is what a user waits for: the last member to get the message,
    through the receiving instance (as another process would).
    """
    group = f"bench-fanout-{members}"
    channels = [await receiver.new_channel() for _ in range(members)]
    for channel in channels:
        await receiver.group_add(group, channel)
    sent_after, delivered_after = [], []
    for n in range(repeats):
        arrivals: list[float] = []

        async def member(channel: str, arrivals: list[float] = arrivals) -> None:
            await receiver.receive(channel)
            arrivals.append(time.perf_counter())

        # Members listen before the send, as connected consumers do.
        receiving = [asyncio.ensure_future(member(c)) for c in channels]
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        await layer.group_send(group, {"type": "bench.fanout", "n": n})
        sent_after.append((time.perf_counter() - start) * 1000)
        _, lost = await asyncio.wait(receiving, timeout=60)
        for task in lost:
            task.cancel()
        if lost:
            print(
                f"group_send: {len(lost)} of {members} never arrived", file=sys.stderr
            )
        else:
            delivered_after.append((max(arrivals) - start) * 1000)
    for channel in channels:
        await receiver.group_discard(group, channel)
    delivered = statistics.median(delivered_after) if delivered_after else float("nan")
    return statistics.median(sent_after), delivered


async def many_groups(
    layer, receiver, groups: int, size: int, seconds: float, limit: int
):
    for g in range(groups):
        for _ in range(size):
            await receiver.group_add(f"bench-room-{g}", await receiver.new_channel())
    sends = 0
    start = time.perf_counter()
    deadline = start + seconds
    while sends < limit and time.perf_counter() < deadline:
        await layer.group_send(f"bench-room-{sends % groups}", {"type": "bench.chat"})
        sends += 1
    return sends / (time.perf_counter() - start)


def make_layers(layer_class, config: dict, instances: int) -> list:
    """``[sender, receiver]``: the same object unless two instances are asked for."""
    layers = [layer_class(**config) for _ in range(instances)]
    return [layers[0], layers[-1]]


async def close(layers: list) -> None:
    for layer in {id(layer): layer for layer in layers}.values():
        await layer.flush()
        if hasattr(layer, "close"):
            await layer.close()


async def measure(impl: str, args: argparse.Namespace):
    if args.preset == "postgres":
        args.layer, config = await asyncio.to_thread(database.prepare, impl)
        args.instances = 2
    else:
        config = json.loads(args.config)
    layer_class = import_impl(args.layer, impl)
    path = f"{layer_class.__module__}.{layer_class.__qualname__}"
    shown = {k: v for k, v in config.items() if not k.isupper()}
    title = f"{path}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"
    if args.instances > 1:
        title += f", {args.instances} instances"
    results = []

    layers = make_layers(layer_class, config, args.instances)
    # Untimed first: connections, prepared statements and caches warm up,
    # as they are in a server that has been running for a while.
    await one_to_one(*layers, min(0.5, args.seconds), args.messages)
    rate = await one_to_one(*layers, args.seconds, args.messages)
    results.append(Result("one-to-one throughput", rate, "msgs/s"))
    p50, p99 = await ping_pong(*layers, args.rounds)
    results.append(Result("ping-pong p50", p50, "ms", higher_is_better=False))
    results.append(Result("ping-pong p99", p99, "ms", higher_is_better=False))
    rate = await concurrent_pairs(*layers, 200, 25)
    results.append(Result("200 pairs at once, all received", rate, "msgs/s"))
    for members, repeats in ((100, 20), (1000, 5)):
        sent, delivered = await fan_out(*layers, members, repeats)
        results.append(
            Result(
                f"group_send to {members:,}, all received",
                delivered,
                "ms",
                higher_is_better=False,
            )
        )
        results.append(
            Result(
                f"group_send to {members:,}, send returned",
                sent,
                "ms",
                higher_is_better=False,
            )
        )
    await close(layers)

    layers = make_layers(layer_class, config, args.instances)
    rate = await many_groups(*layers, 1000, 10, args.seconds, args.messages)
    results.append(Result("group_send, 1,000 groups of 10", rate, "sends/s"))
    await close(layers)
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
    parser.add_argument(
        "--instances",
        type=int,
        choices=[1, 2],
        default=1,
        help="layer instances: 2 sends from one and receives on the other",
    )
    parser.add_argument(
        "--preset",
        choices=["postgres"],
        help="postgres: DatabaseChannelLayer against channels_postgres, 2 instances",
    )


if __name__ == "__main__":
    main(
        measure,
        description=__doc__,
        add_arguments=add_arguments,
        channels_requirements=database.CHANNELS_POSTGRES_REQUIREMENTS,
    )
