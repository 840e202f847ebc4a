"""Clients that stop reading, against ``manage.py runserver`` (Daphne underneath).

A hundred WebSocket clients complete their handshake with a small receive
buffer and never read again, while a hundred ordinary clients in the same
group read a fast broadcast.  The server must close every non-reader -- at
once when its send buffer reaches its bound, or when it has read nothing
for the send timeout -- tell their consumers (``websocket.disconnect`` with
1013), log one warning each, keep its memory bounded while the broadcast
runs, and deliver every message, in order, to every ordinary client.  The
same for a streamed HTTP response (server-sent events): the client that
does not read is cut off after the timeout, the one that reads gets it all.

Without :mod:`channels_app.server_limits.slow_clients` (Daphne alone) every
message for a non-reader stays in the server's memory, none of them is
closed before Daphne's ping timeout (about 50 seconds), and the resident
memory grows by about 300 MiB during the broadcast, against under 30 MiB
with them (checked by running it with the three limits set to 0).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import select
import socket
import time
import urllib.request
from pathlib import Path

import pytest
import websockets

from tests.serving import E2EProject
from tests.support import scrape
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

#: The server's send timeout: short, so the test is fast.
SEND_TIMEOUT = 2.0
#: The server's bound on the bytes waiting for one client.
SEND_BUFFER_BYTES = 256 * 1024
#: Clients of each kind.
CLIENTS = 100
#: The receive buffer of a non-reading client.
SMALL_RCVBUF = 4096
MESSAGE_SIZE = 8000


def kernel_send_buffer_max() -> int:
    """The most a server's socket buffers for one client (tcp_wmem's maximum)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 * 1024 * 1024  # Linux's default


#: The broadcast: this many messages of MESSAGE_SIZE bytes, to all 200.  Each
#: non-reader must be sent more than the kernel takes off the server's hands
#: (its send buffer autotunes up to tcp_wmem's maximum, 4 MiB by default,
#: though on loopback it took about 2 MB), and then enough to fill the
#: server's own buffer twice.
MESSAGES = max(
    500,
    (kernel_send_buffer_max() + SMALL_RCVBUF * 2 + 2 * SEND_BUFFER_BYTES)
    // MESSAGE_SIZE
    + 1,
)
#: How much the server's resident memory may grow while it broadcasts: what
#: the send buffers may hold (100 x 256 KiB, as Python objects up to twice
#: that) plus room for the ordinary clients' traffic and the allocator.
RSS_GROWTH_BOUND = 2 * CLIENTS * SEND_BUFFER_BYTES + 64 * 1024 * 1024
#: Slack on a deadline for a busy machine (the suite shares two cores).
SLACK = 4.0


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    limits = {"SEND_TIMEOUT": SEND_TIMEOUT, "SEND_BUFFER_BYTES": SEND_BUFFER_BYTES}
    project = E2EProject(
        tmp_path_factory.mktemp("slow"),
        "memory",
        E2E_SERVER_LIMITS=json.dumps(limits),
        # Room for the whole broadcast in every inbox, however the consumers
        # are scheduled: what is tested is the server, not the layer.
        E2E_LAYER_CAPACITY=str(2 * MESSAGES),
    )
    project.server = project.runserver()
    yield project
    project.stop_all()


# -- clients -------------------------------------------------------------------


def small_socket(port: int) -> socket.socket:
    """A connected socket with a small receive buffer (set before connecting,
    so that the window the server sees is small from the start)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def non_reading_websocket(port: int, path: str) -> socket.socket:
    """A WebSocket whose client reads the handshake's answer and nothing more."""
    sock = small_socket(port)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), port, key)
    )
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):  # byte by byte: no frame is read
        byte = sock.recv(1)
        assert byte, answer
        answer += byte
    assert answer.startswith(b"HTTP/1.1 101 "), answer
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed or reset ``sock``, without reading from it."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


def resident_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class Watch:
    """When each socket was seen closed, and the server's peak memory."""

    def __init__(self, socks: list[socket.socket], pid: int) -> None:
        self.socks = socks
        self.pid = pid
        self.closed_at: dict[int, float] = {}
        self.peak_kib = resident_kib(pid)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = time.monotonic()
            for index, sock in enumerate(self.socks):
                if index not in self.closed_at and closed_by_server(sock):
                    self.closed_at[index] = now
            self.peak_kib = max(self.peak_kib, resident_kib(self.pid))
            try:
                await asyncio.wait_for(stop.wait(), 0.05)
            except TimeoutError:
                pass


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def client_ports(socks: list[socket.socket]) -> set[int]:
    return {sock.getsockname()[1] for sock in socks}


def closed_ports_in_log(log: str) -> list[int]:
    """The client ports of the server's slow-client warnings."""
    return [int(port) for port in re.findall(r"Closed slow client [\d.]+:(\d+) ", log)]


# -- the tests -----------------------------------------------------------------


async def test_non_reading_websockets_are_closed_and_readers_get_everything(
    project,
):
    server = project.server
    loop = asyncio.get_running_loop()
    path = "/ws/recorded/flood/"
    silent = [
        await loop.run_in_executor(None, non_reading_websocket, server.port, path)
        for _ in range(CLIENTS)
    ]
    readers = [
        await websockets.connect(f"{server.ws_url}{path}", max_size=None)
        for _ in range(CLIENTS)
    ]
    silent_ports = client_ports(silent)
    received: list[list[int]] = [[] for _ in readers]

    async def read_all(index: int, ws) -> None:
        while len(received[index]) < MESSAGES:
            text = json.loads(await ws.recv())["text"]
            number, _, padding = text.partition(" ")
            assert len(padding) == MESSAGE_SIZE
            received[index].append(int(number))

    watch = Watch(silent, server.process.pid)
    baseline_kib = watch.peak_kib
    stop = asyncio.Event()
    watching = asyncio.ensure_future(watch.run(stop))
    try:
        started = time.monotonic()
        flood = loop.run_in_executor(
            None,
            get,
            f"{server.url}/e2e/flood/flood/?n={MESSAGES}&size={MESSAGE_SIZE}",
        )
        await asyncio.wait_for(
            asyncio.gather(*(read_all(i, ws) for i, ws in enumerate(readers))), 90
        )
        assert await flood == f"sent {MESSAGES}\n".encode()
        broadcast_took = time.monotonic() - started
        # Each non-reader filled its buffer during the broadcast, so the
        # timeout closes it no later than 1.25 timeouts after it ends.
        deadline = broadcast_took + 1.25 * SEND_TIMEOUT + SLACK
        await eventually(
            lambda: len(watch.closed_at) == CLIENTS,
            timeout=deadline - (time.monotonic() - started),
            describe=lambda: f"{len(watch.closed_at)} of {CLIENTS} closed",
        )
    finally:
        stop.set()
        await watching
        for ws in readers:
            await ws.close()
        for sock in silent:
            sock.close()

    latest = max(watch.closed_at.values()) - started
    growth = (watch.peak_kib - baseline_kib) * 1024
    print(
        f"broadcast of {MESSAGES} x {MESSAGE_SIZE} B to {2 * CLIENTS} clients in "
        f"{broadcast_took:.1f}s; non-readers closed by {latest:.1f}s; RSS "
        f"{baseline_kib // 1024} MiB + {growth / 2**20:.1f} MiB at the peak"
    )
    # Every ordinary client got every message, in order.
    assert all(numbers == list(range(MESSAGES)) for numbers in received)
    # The server's memory stayed bounded while it broadcast.
    assert growth < RSS_GROWTH_BOUND, (growth, RSS_GROWTH_BOUND)
    # One warning for each non-reader, none for an ordinary client.
    logged = closed_ports_in_log(server.log())
    assert sorted(logged) == sorted(silent_ports), server.log()[-3000:]
    # Their consumers saw websocket.disconnect with 1013 and left the group.
    # (The ordinary clients, closed by the test, with 1000.)
    disconnects = project.wait_for_lines("room-flood.disconnects", 2 * CLIENTS)
    codes = dict(reversed(line.split()) for line in disconnects)
    assert {codes[str(port)] for port in silent_ports} == {"1013"}, codes
    assert sorted(codes.values()).count("1013") == CLIENTS, codes
    assert "Traceback" not in server.log()
    # And each close is counted where monitoring looks.
    samples = scrape.fetch(f"{server.url}/metrics/")
    closes = scrape.value(
        samples, "channels_app_slow_client_closes_total", protocol="websocket"
    )
    assert closes == CLIENTS


def start_event_stream(port: int, name: str, sock: socket.socket) -> None:
    sock.sendall(
        b"GET /e2e/events/?name=%s&n=%d&size=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Connection: close\r\n\r\n" % (name.encode(), MESSAGES * 2, MESSAGE_SIZE)
    )


def read_events(sock: socket.socket) -> list[int]:
    data = b""
    while chunk := sock.recv(1 << 16):
        data += chunk
    return [int(n) for n in re.findall(rb"^id: (\d+)$", data, re.MULTILINE)]


async def test_a_non_reading_event_stream_is_closed_and_a_reader_gets_it_all(
    project,
):
    server = project.server
    loop = asyncio.get_running_loop()
    log_start = len(server.log())
    silent = small_socket(server.port)
    reader = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    watch = Watch([silent], server.process.pid)
    stop = asyncio.Event()
    watching = asyncio.ensure_future(watch.run(stop))
    try:
        started = time.monotonic()
        silent_port = silent.getsockname()[1]
        start_event_stream(server.port, "silent", silent)
        start_event_stream(server.port, "reader", reader)
        events = await loop.run_in_executor(None, read_events, reader)
        await eventually(
            lambda: watch.closed_at,
            timeout=1.25 * SEND_TIMEOUT + SLACK + 10,
            describe=lambda: "the non-reading stream is still open",
        )
    finally:
        stop.set()
        await watching
        silent.close()
        reader.close()
    closed_after = watch.closed_at[0] - started
    print(f"non-reading event stream closed after {closed_after:.1f}s")
    assert events == list(range(MESSAGES * 2))
    # Full within a second or two (it is sent 8 MB), then the timeout.
    assert closed_after < 1.25 * SEND_TIMEOUT + SLACK + 5
    logged = closed_ports_in_log(server.log()[log_start:])
    assert logged == [silent_port], server.log()[log_start:][-3000:]
    # The consumer was told (http.disconnect), and its disconnect() ran.
    assert project.wait_for_lines("silent.disconnects", 1) == ["http"]
    assert "Traceback" not in server.log()
    samples = scrape.fetch(f"{server.url}/metrics/")
    closes = scrape.value(
        samples, "channels_app_slow_client_closes_total", protocol="http"
    )
    assert closes == 1
