"""Slow-client benchmark: a broadcast to clients of which some never read.

Usage (from the repository root, after ``make test`` or ``make lint`` made .venv):

    .venv/bin/python benchmarks/slow_clients.py              # both
    .venv/bin/python benchmarks/slow_clients.py --impl ours --silent 100

Each implementation serves ``benchmarks/wsbench`` (its ``Broadcast``
consumer, in-memory layer) through ``manage.py runserver`` -- ours, or
Daphne's for Channels 4 -- with its default limits.  ``--silent`` clients
complete the WebSocket handshake with a 4 KiB receive buffer and never read
again; ``--readers`` clients read everything.  One reader sends
``--messages`` messages of ``--size`` bytes as fast as it can, each fanned
out by ``group_send`` to every member.

Measured: how much the server's resident memory grew at its peak (MiB),
how long until every reader had every message (s), how many readers missed
any, how many non-readers the server had closed ``--settle`` seconds after
the broadcast, and when the last of them was closed (s, from the start; the
whole wait if some never were).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import select
import socket
import tempfile
import time

import ws_clients
from harness import Result, main
from ws import Server, pin, rss_kb

SMALL_RCVBUF = 4096


def silent_client(port: int) -> socket.socket:
    """A WebSocket that reads its handshake's answer and nothing after it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET /broadcast/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nOrigin: "
        b"http://127.0.0.1:%d\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key, port)
    )
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"closed during the handshake: {answer!r}")
        answer += byte
    if b" 101 " not in answer.split(b"\r\n", 1)[0]:
        raise ConnectionError(answer.decode(errors="replace"))
    return sock


def closed(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


async def broadcast(server: Server, args: argparse.Namespace) -> list[Result]:
    loop = asyncio.get_running_loop()
    silent = [
        await loop.run_in_executor(None, silent_client, server.port)
        for _ in range(args.silent)
    ]
    readers = await ws_clients.connect_many(server.url("broadcast/"), args.readers)
    counts = [0] * len(readers)
    done = loop.create_future()

    def counter(index: int):
        def count(payload: bytes) -> None:
            counts[index] += 1
            if all(n >= args.messages for n in counts) and not done.done():
                done.set_result(None)

        return count

    for index, reader in enumerate(readers):
        reader.on_message = counter(index)
    await asyncio.sleep(1)  # let the server settle
    baseline = peak = rss_kb(server.process.pid)
    closed_at: dict[int, float] = {}
    started = time.monotonic()

    def sample() -> None:
        nonlocal peak
        peak = max(peak, rss_kb(server.process.pid))
        now = time.monotonic() - started
        for index, sock in enumerate(silent):
            if index not in closed_at and closed(sock):
                closed_at[index] = now

    payload = b"x" * args.size
    driver = readers[0].transport
    for n in range(args.messages):
        driver.write(ws_clients.frame(1, b"%d " % n + payload))
        if n % 20 == 0:
            sample()
            await asyncio.sleep(0)
    try:
        while not done.done():
            sample()
            await asyncio.wait([done], timeout=0.05)
    except TimeoutError:
        pass
    received_after = time.monotonic() - started
    settle_until = time.monotonic() + args.settle
    while time.monotonic() < settle_until and len(closed_at) < len(silent):
        sample()
        await asyncio.sleep(0.05)
    for reader in readers:
        reader.transport.close()
    for sock in silent:
        sock.close()
    missing = sum(n < args.messages for n in counts)
    return [
        Result(
            "server RSS growth at the peak",
            (peak - baseline) / 1024,
            "MiB",
            higher_is_better=False,
        ),
        Result(
            "every reader has every message after",
            received_after,
            "s",
            higher_is_better=False,
        ),
        Result("readers missing messages", missing, "", higher_is_better=False),
        Result(
            f"non-readers closed within {args.settle:g}s of the end",
            len(closed_at),
            f"of {len(silent)}",
        ),
        Result(
            "all non-readers closed after (or the wait, if not)",
            max(closed_at.values())
            if len(closed_at) == len(silent)
            else time.monotonic() - started,
            "s",
            higher_is_better=False,
        ),
    ]


async def measure(impl: str, args: argparse.Namespace):
    pin(os.getpid(), 1)
    with tempfile.TemporaryDirectory(prefix="slowbench-") as workdir:
        server = Server(impl, args, workdir)
        try:
            results = await asyncio.wait_for(broadcast(server, args), args.timeout)
            title = (
                f"{server.banner()}: {args.messages} x {args.size} B to "
                f"{args.readers} readers and {args.silent} non-readers"
            )
        finally:
            server.stop()
    return title, results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--silent", type=int, default=50, help="non-reading clients")
    parser.add_argument("--readers", type=int, default=50, help="reading clients")
    parser.add_argument("--messages", type=int, default=500, help="messages sent")
    parser.add_argument("--size", type=int, default=8000, help="bytes per message")
    parser.add_argument(
        "--settle",
        type=float,
        default=15.0,
        help="seconds to wait after the broadcast for non-readers to be closed",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="give up after this long"
    )
    # What ws.Server reads: the in-memory layer, with room for the whole
    # broadcast in every inbox (the sender runs ahead of the consumers, and
    # a full inbox would drop messages), and the bench project's SQLite.
    parser.set_defaults(
        layer="channels_app.layers.InMemoryChannelLayer",
        config='{"capacity": 100000}',
        databases="",
    )


if __name__ == "__main__":
    main(
        measure,
        description=__doc__,
        add_arguments=add_arguments,
        channels_requirements=["channels[daphne]>=4,<5", "channels-redis>=4.2"],
    )
