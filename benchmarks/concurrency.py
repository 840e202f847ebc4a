"""One connection whose handler waits on I/O: messages/s at concurrency 1 and 8.

Usage (from the repository root, with .venv made):

    .venv/bin/python benchmarks/concurrency.py              # ours and Channels 4
    .venv/bin/python benchmarks/concurrency.py --impl ours --messages 400

One ``AsyncWebsocketConsumer`` is connected through the testing communicator
(no server: what is measured is the consumer's dispatch, not a network) on
the in-memory layer.  ``--messages`` layer messages are sent to its channel
at once; each handler awaits ``--io-ms`` (10 ms of ``asyncio.sleep``, standing
for a database or HTTP call) and sends a frame back.  The rate is messages
answered per second, from the first send to the last frame received, best of
``--repeat``.  Layer messages have no ordering key by default, so at
``concurrency = 8`` up to eight wait on their I/O at once.

Channels 4 has no ``concurrency`` attribute: its consumer ignores it and
handles one message at a time, so both of its rows run that code; they are
printed beside ours for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from harness import Result, import_impl, main, setup_django


async def rate(impl: str, args: argparse.Namespace, concurrency: int) -> float:
    base = import_impl("channels_app.generic.websocket.AsyncWebsocketConsumer", impl)
    communicator_class = import_impl("channels_app.testing.WebsocketCommunicator", impl)
    get_channel_layer = import_impl("channels_app.layers.get_channel_layer", impl)
    io_seconds = args.io_ms / 1000

    class Waiting(base):  # type: ignore[misc, valid-type]
        async def connect(self):
            await self.accept()
            await self.send(text_data=self.channel_name)

        async def work(self, message):
            await asyncio.sleep(io_seconds)  # the I/O the handler waits on
            await self.send(text_data=str(message["n"]))

    Waiting.concurrency = concurrency  # read by ours only
    layer = get_channel_layer()
    best = 0.0
    for _ in range(args.repeat):
        client = communicator_class(Waiting.as_asgi(), "/")
        connected, _ = await client.connect()
        assert connected
        channel = await client.receive_from(10)
        started = time.perf_counter()
        for n in range(args.messages):
            await layer.send(channel, {"type": "work", "n": n})
        for _ in range(args.messages):
            await client.receive_from(30)
        best = max(best, args.messages / (time.perf_counter() - started))
        await client.disconnect()
    return best


async def measure(impl: str, args: argparse.Namespace):
    setup_django(
        impl,
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": f"{import_impl('channels_app.layers', impl).__name__}"
                ".InMemoryChannelLayer",
                "CONFIG": {"capacity": args.messages * 2},
            }
        },
    )
    one = await rate(impl, args, 1)
    eight = await rate(impl, args, 8)
    title = (
        f"1 AsyncWebsocketConsumer, {args.messages} layer messages, handler awaits "
        f"{args.io_ms:g} ms, communicator, in-memory layer"
    )
    return title, [
        Result("messages/s at concurrency 1", one, "msg/s"),
        Result("messages/s at concurrency 8", eight, "msg/s"),
        Result("concurrency 8 over 1", eight / one, "x"),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--io-ms", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)


if __name__ == "__main__":
    main(
        measure,
        description=__doc__.split("\n")[0],
        add_arguments=add_arguments,
        # Channels' testing package imports Daphne; the same set as ws.py.
        channels_requirements=["channels[daphne]>=4,<5", "channels-redis>=4.2"],
    )
