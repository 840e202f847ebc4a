"""Unit tests for ``channels_app.server_limits.slow_clients``.

Each connection is a real :class:`LimitedHTTPChannel` on a transport that is
Twisted's own ``FileDescriptor`` -- its real write buffer, ``bufferSize``
and producer pausing -- over a "kernel" that takes bytes only when the test
lets the client read them; time is a ``MemoryReactorClock`` the test
advances.  What a message does is what the server does with it: write its
payload to the transport.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import struct

import pytest
import txaio
from django.core.management import CommandError
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from channels_app.management.commands.runserver import Command
from channels_app.server_limits import (
    SLOW_CLIENT_CLOSE_CODE,
    ConnectionLimits,
    LimitedHTTPChannel,
    PendingConnections,
    install,
    slow_clients,
)
from channels_app.server_limits.slow_clients import send_buffer_of
from tests.test_server_limits import FakeDaphne, server_frames

KIB = 1024
TIMEOUT = 4.0


class Socket(FileDescriptor):
    """Twisted's buffering transport, over a kernel the test's client drains."""

    def __init__(self, reactor: MemoryReactorClock) -> None:
        super().__init__(reactor)
        self.connected = 1
        self.room = 0
        self.received = bytearray()
        self.aborted = False

    def writeSomeData(self, data: bytes) -> int:
        taken = min(len(data), self.room)
        self.received += bytes(data[:taken])
        self.room -= taken
        return taken

    def read(self, size: int) -> None:
        """The client reads ``size`` bytes: the kernel can take that many more."""
        self.room += size
        self.doWrite()

    def abortConnection(self) -> None:
        self.aborted = True
        #: What the abort throws away: the bytes the client never read.
        self.abandoned = bytes(self.dataBuffer[self.offset :]) + b"".join(
            self._tempDataBuffer
        )
        self.connectionLost(Failure(ConnectionAborted()))
        self.protocol.connectionLost(Failure(ConnectionAborted()))

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 50000)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8000)


class Sender:
    """An application's protocol (a WebSocket, or a request), as the buffer sees it."""

    client_addr = ["127.0.0.1", 50000]

    def __init__(self) -> None:
        self.told_slow = False

    def close_as_slow_client(self) -> None:
        self.told_slow = True


class Connection:
    def __init__(self, **limits: float) -> None:
        self.limits = ConnectionLimits(**{"send_timeout": TIMEOUT, **limits})
        self.clock = MemoryReactorClock()
        self.channel = LimitedHTTPChannel(
            self.limits, PendingConnections(self.limits), clock=self.clock
        )
        self.channel.callLater = self.clock.callLater
        self.socket = Socket(self.clock)
        self.socket.protocol = self.channel
        self.channel.makeConnection(self.socket)
        self.buffer = self.channel.send_buffer
        self.sender = Sender()

    def deliver(self, protocol: object, message: dict) -> None:
        self.socket.write(message.get("bytes") or message.get("body") or b"")

    async def send(self, kind: str, size: int) -> None:
        key = "body" if kind == "http.response.body" else "bytes"
        message = {"type": kind, key: b"x" * size}
        await self.buffer.send(self.sender, message, self.deliver)

    async def send_websocket(self, count: int, size: int) -> None:
        for _ in range(count):
            await self.send("websocket.send", size)

    def unsent(self) -> int:
        return slow_clients.unsent_bytes(self.socket)


@pytest.fixture
def closes(monkeypatch):
    """The protocols the metrics hook was told about."""
    seen: list[object] = []
    monkeypatch.setattr(slow_clients, "_on_slow_client_closed", seen.append)
    return seen


# -- WebSocket messages --------------------------------------------------------


async def test_messages_to_a_client_that_reads_are_all_written(closes):
    conn = Connection(send_buffer_bytes=100 * KIB)
    for _ in range(50):
        await conn.send_websocket(1, 10 * KIB)
        conn.socket.read(10 * KIB)
    assert len(conn.socket.received) == 500 * KIB
    assert not conn.socket.aborted and closes == []


async def test_a_message_past_the_byte_bound_closes_at_once(closes, caplog):
    conn = Connection(send_buffer_bytes=100 * KIB)
    # 80 KiB: past Twisted's 64 KiB, so the transport pauses its producer.
    await conn.send_websocket(4, 20 * KIB)
    assert conn.buffer.full
    await conn.send_websocket(1, 20 * KIB)  # exactly 100 KiB: still allowed
    assert not conn.socket.aborted
    with caplog.at_level(logging.WARNING, "channels_app.server"):
        await conn.send_websocket(1, 20 * KIB)
    assert conn.socket.aborted and conn.sender.told_slow
    assert closes == [conn.sender]
    (line,) = [r.getMessage() for r in caplog.records]
    assert "Closed slow client 127.0.0.1:50000" in line
    assert "102400 bytes unsent" in line and "102400-byte send buffer" in line
    # Nothing more is queued once it is closed.
    await conn.send_websocket(10, 20 * KIB)
    assert closes == [conn.sender]


async def test_a_message_past_the_message_bound_closes_at_once(closes):
    conn = Connection(send_buffer_messages=100)
    await conn.send_websocket(100, 1 * KIB)  # 100 KiB: full
    assert conn.buffer.full and conn.buffer.messages == 100
    conn.socket.read(10 * KIB)  # ten of them leave
    assert conn.buffer.messages == 90
    await conn.send_websocket(10, 1 * KIB)
    assert not conn.socket.aborted
    await conn.send_websocket(1, 1 * KIB)
    assert conn.socket.aborted and closes == [conn.sender]


async def test_a_client_that_keeps_up_costs_no_memory_per_message(closes):
    """The record of messages in the buffer drops those sent, even when the
    buffer never empties (so Twisted never resumes the producer)."""
    conn = Connection()
    for _ in range(1000):
        await conn.send_websocket(1, 1 * KIB)
        conn.socket.read(1 * KIB - 1 if conn.unsent() < 2 * KIB else 1 * KIB)
    assert 0 < conn.unsent() < 2 * KIB and not conn.buffer.full
    assert len(conn.buffer._message_ends) <= 3  # not one per message sent


async def test_a_big_message_into_an_empty_buffer_is_written(closes):
    conn = Connection(send_buffer_bytes=100 * KIB)
    await conn.send_websocket(1, 500 * KIB)
    assert conn.unsent() == 500 * KIB and not conn.socket.aborted


# -- the timeout ---------------------------------------------------------------


async def test_a_client_that_reads_nothing_is_closed_after_the_timeout(closes):
    conn = Connection()
    await conn.send_websocket(10, 10 * KIB)
    conn.clock.advance(TIMEOUT * 0.8)
    assert not conn.socket.aborted
    conn.clock.pump([TIMEOUT / 4] * 2)
    assert conn.socket.aborted and closes == [conn.sender]


async def test_a_client_that_reads_a_little_in_each_timeout_stays(closes):
    conn = Connection()
    await conn.send_websocket(10, 10 * KIB)
    for _ in range(20):
        conn.clock.advance(TIMEOUT * 0.75)
        conn.socket.read(100)
    assert conn.buffer.full and not conn.socket.aborted
    conn.clock.pump([TIMEOUT / 4] * 5)
    assert conn.socket.aborted


async def test_an_emptied_buffer_stops_the_timeout(closes):
    conn = Connection()
    await conn.send_websocket(10, 10 * KIB)
    conn.clock.advance(TIMEOUT / 2)
    conn.socket.read(100 * KIB)
    assert not conn.buffer.full
    conn.clock.pump([TIMEOUT] * 3)
    assert not conn.socket.aborted and closes == []


async def test_a_zero_timeout_never_closes(closes):
    conn = Connection(send_timeout=0)
    await conn.send_websocket(10, 10 * KIB)
    conn.clock.pump([60] * 10)
    assert not conn.socket.aborted


# -- HTTP response parts -------------------------------------------------------


async def test_a_response_part_waits_for_the_client_to_read(closes):
    conn = Connection(send_buffer_bytes=100 * KIB)
    await conn.send("http.response.body", 80 * KIB)
    assert conn.buffer.full
    waiting = asyncio.ensure_future(conn.send("http.response.body", 80 * KIB))
    await asyncio.sleep(0)
    assert not waiting.done() and conn.unsent() == 80 * KIB
    conn.socket.read(40 * KIB)
    await asyncio.sleep(0)
    assert not waiting.done()  # paused until the buffer is empty
    conn.socket.read(40 * KIB)
    await asyncio.wait_for(waiting, 1)
    assert conn.unsent() == 80 * KIB and not conn.socket.aborted


async def test_a_waiting_response_part_returns_when_the_client_is_closed(closes):
    conn = Connection()
    await conn.send("http.response.body", 80 * KIB)
    waiting = asyncio.ensure_future(conn.send("http.response.body", 80 * KIB))
    await asyncio.sleep(0)
    conn.clock.pump([TIMEOUT / 4] * 5)
    assert conn.socket.aborted
    await asyncio.wait_for(waiting, 1)
    assert conn.unsent() == 80 * KIB  # the waiting part was dropped
    assert closes == [conn.sender]


async def test_too_many_waiting_response_parts_close(closes):
    conn = Connection(send_buffer_messages=3)
    await conn.send("http.response.body", 80 * KIB)
    parts = [
        asyncio.ensure_future(conn.send("http.response.body", 1)) for _ in range(4)
    ]
    await asyncio.wait_for(asyncio.gather(*parts), 1)
    assert conn.socket.aborted and closes == [conn.sender]


# -- a WebSocket, end to end in the process --------------------------------------


def upgraded_websocket(clock: MemoryReactorClock):
    """Daphne's WebSocket protocol, as installed, on a channel's transport.

    The hand-over is Daphne's: the transport's protocol becomes the
    WebSocket, and the HTTP channel stays registered as its producer.
    """
    server = FakeDaphne(max_frame=1 << 20, max_message=1 << 20)
    install(server, ConnectionLimits(send_timeout=TIMEOUT))
    channel = server.http_factory.protocol()._channel
    channel.send_buffer.clock = clock
    channel.callLater = clock.callLater
    sock = Socket(clock)
    sock.protocol = channel
    channel.makeConnection(sock)
    websocket = server.ws_factory.buildProtocol(None)
    websocket._raw_query_string = b""
    sock.protocol = websocket
    websocket.makeConnection(sock)
    sock.room = 1 << 20  # the client reads the handshake's answer
    websocket.dataReceived(
        b"GET /ws/room/ HTTP/1.1\r\nHost: testserver\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: "
        + base64.b64encode(os.urandom(16))
        + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    websocket.serverAccept()
    sock.doWrite()
    assert bytes(sock.received).startswith(b"HTTP/1.1 101 ")
    sock.room = 0  # and then nothing more
    return server, websocket, sock


async def test_a_websocket_that_does_not_read_is_closed_with_1013(monkeypatch, closes):
    clock = MemoryReactorClock()
    monkeypatch.setattr(txaio.config, "loop", clock)  # Autobahn's timers
    server, websocket, sock = upgraded_websocket(clock)
    buffer = send_buffer_of(websocket)
    assert buffer is not None and buffer.channel.transport is sock

    def deliver(protocol, message):
        protocol.handle_reply(message)

    for _ in range(10):
        message = {"type": "websocket.send", "text": "x" * 10_000}
        await buffer.send(websocket, message, deliver)
    assert buffer.full and not sock.aborted
    clock.pump([TIMEOUT / 4] * 5)
    assert sock.aborted and closes == [websocket]
    # The application is told, with the code, so its consumer leaves its groups.
    assert server.inbox[-1] == {"type": "websocket.disconnect", "code": 1013}
    # The close frame went into the buffer, behind what the client never read.
    opcode, payload = server_frames(sock.abandoned)[-1]
    assert opcode == 8 and struct.unpack("!H", payload[:2]) == (1013,)


# -- settings ------------------------------------------------------------------


def test_the_defaults_are_the_documented_values():
    limits = ConnectionLimits()
    assert limits.send_buffer_bytes == 1024 * 1024
    assert limits.send_buffer_messages == 1000
    assert limits.send_timeout == 10.0
    assert SLOW_CLIENT_CLOSE_CODE == 1013


def test_negative_send_limits_are_refused():
    for field in ("send_buffer_bytes", "send_buffer_messages", "send_timeout"):
        with pytest.raises(ValueError, match="cannot be negative"):
            ConnectionLimits(**{field: -1})


def options(**given):
    base = {
        "header_timeout": 10.0,
        "max_pending_connections": 500,
        "max_request_line": 8192,
        "max_header_size": 16384,
        "max_headers": 100,
        "send_buffer_bytes": None,
        "send_buffer_messages": None,
        "send_timeout": None,
    }
    return {**base, **given}


def test_the_setting_sets_the_limits_and_options_win(settings):
    settings.CHANNELS_APP_SERVER_LIMITS = {
        "SEND_BUFFER_BYTES": 5000,
        "SEND_BUFFER_MESSAGES": 7,
        "SEND_TIMEOUT": 2.5,
    }
    limits = Command.connection_limits(options())
    assert (limits.send_buffer_bytes, limits.send_buffer_messages) == (5000, 7)
    assert limits.send_timeout == 2.5
    limits = Command.connection_limits(options(send_timeout=30.0))
    assert (limits.send_timeout, limits.send_buffer_messages) == (30.0, 7)


def test_a_bad_setting_stops_the_command(settings):
    settings.CHANNELS_APP_SERVER_LIMITS = {"SEND_BUFER_BYTES": 5000}
    with pytest.raises(CommandError, match="unknown keys"):
        Command.connection_limits(options())
    settings.CHANNELS_APP_SERVER_LIMITS = {"SEND_TIMEOUT": -1}
    with pytest.raises(CommandError, match="cannot be negative"):
        Command.connection_limits(options())
