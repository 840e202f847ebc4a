"""Load generator for benchmarks/ws.py: many WebSocket clients in one lean process.

Run by ws.py in a process of its own (on its own CPU when it can), so the
clients never compete with the server for the interpreter.  Each connection
is a bare asyncio protocol speaking just enough RFC 6455 for the benchmark --
text frames, ping/pong, close -- because a full client library costs more
per message than the server being measured.  Frames go out with an all-zero
mask key, which the RFC allows and which makes masking free.

    python ws_clients.py echo URL CONNECTIONS SECONDS
    python ws_clients.py broadcast URL CLIENTS ROUNDS
    python ws_clients.py idle URL CONNECTIONS   # holds them until stdin closes

Each prints one JSON line with its measurements.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import struct
import sys
import time
from collections import deque
from urllib.parse import urlsplit

ZERO_MASK = b"\x00\x00\x00\x00"
#: Connections opened at once; Twisted listens with a backlog of 50.
CONNECT_BATCH = 40


def frame(opcode: int, payload: bytes) -> bytes:
    """A masked (with a zero key) client frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + ZERO_MASK + payload


class Client(asyncio.Protocol):
    """One WebSocket connection; incoming text messages land in ``messages``."""

    def __init__(self, host: str, path: str) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Origin: http://{host}\r\n\r\n"
        ).encode()
        self.buffer = b""
        self.open = asyncio.get_running_loop().create_future()
        self.messages: deque[bytes] = deque()
        self.waiter: asyncio.Future | None = None
        self.on_message = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if not self.open.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            status = buffer[: buffer.find(b"\r\n")]
            if b" 101 " not in status:
                self.open.set_exception(ConnectionError(status.decode()))
                return
            self.open.set_result(None)
            buffer = buffer[end + 4 :]
        position = 0
        size = len(buffer)
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            start = position + 2
            if length == 126:
                if size - start < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, start)
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, start)
                start += 8
            if size - start < length:
                break
            payload = buffer[start : start + length]
            position = start + length
            opcode = first & 0x0F
            if opcode in (1, 2):
                self.deliver(payload)
            elif opcode == 9:
                self.transport.write(frame(0xA, payload))
            elif opcode == 8:
                self.closed = True
                self.transport.close()
        self.buffer = buffer[position:]

    def deliver(self, payload: bytes) -> None:
        if self.on_message is not None:
            self.on_message(payload)
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(payload)
        else:
            self.messages.append(payload)

    def connection_lost(self, exc) -> None:
        self.closed = True
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed"))
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def send(self, text: bytes) -> None:
        self.transport.write(frame(1, text))

    async def recv(self) -> bytes:
        if self.messages:
            return self.messages.popleft()
        self.waiter = asyncio.get_running_loop().create_future()
        return await self.waiter

    def close(self) -> None:
        if not self.closed:
            self.transport.write(frame(8, struct.pack("!H", 1000)))
            self.transport.close()


async def connect(url: str) -> Client:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: Client(parts.netloc, parts.path or "/"), parts.hostname, parts.port
    )
    await asyncio.wait_for(client.open, 30)
    return client


async def connect_many(url: str, count: int) -> list[Client]:
    clients: list[Client] = []
    while len(clients) < count:
        batch = min(CONNECT_BATCH, count - len(clients))
        clients += await asyncio.gather(*(connect(url) for _ in range(batch)))
    return clients


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def echo(url: str, connections: int, seconds: float) -> dict:
    """Closed loop: each connection sends, waits for the echo, sends again."""
    clients = await connect_many(url, connections)
    payload = b'{"type": "bench", "text": "hello, echo"}'
    latencies: list[float] = []
    measuring = False
    running = True
    total = 0

    async def loop(client: Client) -> None:
        nonlocal total
        clock = time.perf_counter
        while running:
            started = clock()
            client.send(payload)
            await client.recv()
            total += 1
            if measuring:
                latencies.append(clock() - started)

    tasks = [asyncio.ensure_future(loop(client)) for client in clients]
    await asyncio.sleep(min(1.0, seconds / 4))  # warm up
    measuring = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - started
    running = False
    await asyncio.wait(tasks, timeout=5)
    for client in clients:
        client.close()
    return {
        "messages": len(latencies),
        "total": total,
        "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def broadcast(url: str, members: int, rounds: int) -> dict:
    """Time from one member's message until every member has the broadcast."""
    clients = await connect_many(url, members)
    await asyncio.sleep(0.5)
    arrived = 0
    last = 0.0
    everyone = asyncio.Event()

    def arrival(payload: bytes) -> None:
        nonlocal arrived, last
        arrived += 1
        if arrived == members:
            last = time.perf_counter()
            everyone.set()

    for client in clients:
        client.on_message = arrival
    times = []
    for number in range(rounds + 1):
        arrived = 0
        everyone.clear()
        started = time.perf_counter()
        clients[0].send(f"round {number}".encode())
        await asyncio.wait_for(everyone.wait(), 60)
        if number:  # the first round warms up
            times.append((last - started) * 1000)
        await asyncio.sleep(0.05)
    for client in clients:
        client.close()
    return {"median_ms": statistics.median(times), "times_ms": times}


async def idle(url: str, connections: int) -> dict:
    """Open connections, report, and hold them until stdin is closed."""
    clients = await connect_many(url, connections)
    print(json.dumps({"connected": len(clients)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    alive = sum(not client.closed for client in clients)
    for client in clients:
        client.close()
    return {"alive_until_released": alive}


SCENARIOS = {"echo": (echo, int, float), "broadcast": (broadcast, int, int)}


def main(argv: list[str]) -> None:
    scenario, url, *rest = argv
    if scenario == "idle":
        result = asyncio.run(idle(url, int(rest[0])))
    else:
        function, *types = SCENARIOS[scenario]
        args = [kind(value) for kind, value in zip(types, rest, strict=True)]
        result = asyncio.run(function(url, *args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
