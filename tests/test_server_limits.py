"""Unit tests for ``channels_app.server_limits``, on Twisted's in-memory transport.

Every connection here is a real :class:`LimitedHTTPChannel` (or the WebSocket
protocol :func:`install` puts into Daphne's factory) fed bytes by hand over a
``StringTransport``; time is a ``twisted.internet.task.Clock`` the test
advances, so the deadlines are exact and nothing sleeps.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import struct
from types import SimpleNamespace

import pytest
import txaio
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import http

from channels_app.server_limits import (
    LINGER_BYTES,
    LINGER_SECONDS,
    ConnectionLimits,
    LimitedHTTPChannel,
    LimitedWebSocketProtocol,
    PendingConnections,
    install,
)

TIMEOUT = 5.0

# -- helpers -------------------------------------------------------------------


class Answering(http.Request):
    """A request the application answers at once, unless its path says not to.

    ``/never`` is never answered; ``/later`` waits in :attr:`unanswered` for
    the test to call :meth:`answer`.
    """

    unanswered: list[Answering] = []

    def process(self) -> None:
        if self.path.startswith(b"/never"):
            return  # an application still working on it
        if self.path.startswith(b"/later"):
            Answering.unanswered.append(self)
            return
        self.answer()

    def answer(self) -> None:
        self.setHeader(b"content-type", b"text/plain")
        self.setHeader(b"content-length", b"3")
        self.write(b"ok\n")
        self.finish()


class Transport(StringTransport):
    """A TCP-like transport that can close its writing half, as Twisted's can."""

    def __init__(self) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8000),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 50000),
        )
        self.write_closed = False
        self.aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()

    @property
    def closing(self) -> bool:
        return self.disconnecting or self.write_closed or self.aborted


class Connection:
    """One channel on an in-memory transport, with the clock it runs on."""

    def __init__(
        self,
        limits: ConnectionLimits | None = None,
        *,
        pending: PendingConnections | None = None,
        clock: Clock | None = None,
        on_refusal=None,
        transport: StringTransport | None = None,
    ) -> None:
        self.limits = limits or ConnectionLimits(header_timeout=TIMEOUT)
        self.pending = (
            pending if pending is not None else PendingConnections(self.limits)
        )
        self.clock = clock or Clock()
        self.channel = LimitedHTTPChannel(self.limits, self.pending, on_refusal)
        self.channel.requestFactory = Answering
        self.channel.callLater = self.clock.callLater
        self.transport = transport if transport is not None else Transport()
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def output(self) -> bytes:
        return self.transport.value()

    def status(self) -> int:
        out = self.output()
        assert out.startswith(b"HTTP/1.1 "), out
        return int(out.split(b" ", 2)[1])

    def responses(self) -> int:
        """How many responses were sent (a status line starts each)."""
        return len(re.findall(rb"(?:^|\n)HTTP/1\.[01] \d{3} ", self.output()))


def request(path: bytes = b"/", *headers: bytes) -> bytes:
    return b"\r\n".join(
        [b"GET " + path + b" HTTP/1.1", b"Host: testserver", *headers, b"", b""]
    )


def body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


# -- ConnectionLimits ----------------------------------------------------------


def test_limits_default_to_the_documented_values():
    limits = ConnectionLimits()
    assert (limits.header_timeout, limits.max_pending) == (10.0, 500)
    assert (limits.max_request_line, limits.max_header_size) == (8192, 16384)
    assert limits.max_headers == 100


@pytest.mark.parametrize(
    "kwargs",
    [
        {"header_timeout": -1},
        {"max_pending": -1},
        {"max_request_line": 0},
        {"max_header_size": 0},
        {"max_headers": -5},
    ],
)
def test_limits_refuse_negative_and_zero_sizes(kwargs):
    with pytest.raises(ValueError):
        ConnectionLimits(**kwargs)


def test_twisted_own_limits_are_set_above_ours():
    limits = ConnectionLimits(max_request_line=100, max_header_size=300, max_headers=7)
    channel = Connection(limits).channel
    assert channel.MAX_LENGTH == 300
    assert channel.totalHeadersSize == 400
    assert channel.maxHeaders == 7


# -- the header deadline: 408 --------------------------------------------------


def test_partial_headers_are_answered_408_at_the_deadline():
    conn = Connection()
    conn.send(b"GET / HTTP/1.1\r\nHost: testserver\r\n")
    conn.clock.advance(TIMEOUT - 0.01)
    assert conn.output() == b""
    assert not conn.transport.closing
    conn.clock.advance(0.02)
    out = conn.output()
    assert conn.status() == 408
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Connection: close\r\n" in out
    assert b"did not arrive within 5 seconds" in body_of(out)
    assert conn.channel.refused == 408
    assert conn.transport.write_closed
    assert len(conn.pending) == 0


def test_trickling_bytes_do_not_push_the_deadline_back():
    # Twisted's own idle timeout is reset by every byte; the header deadline
    # is not, which is what stops a slowloris client.
    conn = Connection()
    conn.send(b"GET / HTTP/1.1\r\n")
    for _ in range(int(TIMEOUT) - 1):
        conn.clock.advance(1)
        conn.send(b"X-Slow: 1\r\n")
    assert conn.output() == b""
    conn.clock.advance(1)
    assert conn.status() == 408


def test_a_partial_request_line_counts_as_partial():
    conn = Connection()
    conn.send(b"GET /ws/echo/ HTT")
    conn.clock.advance(TIMEOUT)
    assert conn.status() == 408


def test_a_partial_websocket_handshake_is_answered_408():
    conn = Connection()
    conn.send(b"GET /ws/echo/ HTTP/1.1\r\nHost: testserver\r\nUpgrade: web")
    conn.clock.advance(TIMEOUT)
    assert conn.status() == 408


def test_an_idle_connection_is_closed_quietly_at_the_deadline():
    conn = Connection()
    conn.clock.advance(TIMEOUT - 0.01)
    assert not conn.transport.closing
    conn.clock.advance(0.02)
    assert conn.output() == b""
    assert conn.transport.disconnecting
    assert conn.channel.refused is None
    assert len(conn.pending) == 0


def test_complete_headers_stop_the_deadline():
    conn = Connection()
    conn.send(request(b"/never"))
    assert len(conn.pending) == 0
    conn.clock.advance(TIMEOUT * 10)
    assert conn.output() == b""
    assert not conn.transport.closing


def test_a_kept_alive_connection_gets_a_fresh_deadline_after_each_response():
    conn = Connection()
    conn.clock.advance(TIMEOUT - 1)
    conn.send(request(b"/"))
    assert conn.status() == 200
    assert len(conn.pending) == 1  # waiting for the next request's headers
    conn.clock.advance(TIMEOUT - 0.1)  # past the first deadline
    assert not conn.transport.closing
    conn.send(request(b"/"))
    assert conn.responses() == 2
    conn.clock.advance(TIMEOUT - 0.1)
    conn.send(b"GET / HTTP/1.1\r\n")
    conn.clock.advance(0.2)
    assert conn.output().count(b"HTTP/1.1 408 ") == 1


def test_a_pipelined_request_behind_a_finished_one_is_not_timed_out():
    # Its headers arrive while the first request is being handled, and are
    # replayed when it finishes: the channel must start waiting for them
    # before that replay, not after it (which would time out a request that
    # is already running).
    conn = Connection()
    Answering.unanswered.clear()
    conn.send(request(b"/later") + request(b"/never"))
    [first] = Answering.unanswered
    assert conn.responses() == 0
    conn.clock.advance(1)
    first.answer()
    assert conn.responses() == 1
    assert len(conn.pending) == 0
    conn.clock.advance(TIMEOUT * 10)
    assert conn.responses() == 1
    assert not conn.transport.closing


def test_a_non_persistent_connection_does_not_wait_again():
    conn = Connection()
    conn.send(request(b"/", b"Connection: close"))
    assert conn.status() == 200
    assert len(conn.pending) == 0
    assert conn.transport.disconnecting


def test_a_zero_header_timeout_means_no_deadline():
    limits = ConnectionLimits(header_timeout=0)
    conn = Connection(limits)
    conn.send(b"GET / HTTP/1.1\r\n")
    conn.clock.advance(3600)
    assert conn.output() == b""
    assert not conn.transport.closing
    assert conn.clock.getDelayedCalls() == []


def test_connection_lost_cancels_the_deadline_and_leaves_the_waiting_set():
    conn = Connection()
    conn.send(b"GET / HTTP/1.1\r\n")
    conn.channel.connectionLost(None)
    assert len(conn.pending) == 0
    deadline = conn.channel._deadline
    assert deadline is None or not deadline.active()


# -- the cap on waiting connections: 503 ---------------------------------------


def crowd(count: int, max_pending: int) -> list[Connection]:
    limits = ConnectionLimits(header_timeout=TIMEOUT, max_pending=max_pending)
    pending = PendingConnections(limits)
    clock = Clock()
    return [Connection(limits, pending=pending, clock=clock) for _ in range(count)]


def test_beyond_the_cap_the_longest_waiting_partial_request_gets_503():
    first, second = crowd(2, max_pending=2)
    first.send(b"GET / HTTP/1.1\r\n")
    second.send(b"GET / HTTP/1.1\r\n")
    third = Connection(first.limits, pending=first.pending, clock=first.clock)
    assert first.status() == 503
    assert b"Too many connections" in body_of(first.output())
    assert second.output() == b"" and not second.transport.closing
    assert third.output() == b"" and not third.transport.closing
    assert len(first.pending) == 2


def test_beyond_the_cap_an_idle_oldest_connection_is_closed_quietly():
    first, second = crowd(2, max_pending=2)
    Connection(first.limits, pending=first.pending, clock=first.clock)
    assert first.output() == b""
    assert first.transport.disconnecting
    assert first.channel.refused is None
    assert not second.transport.closing


def test_connections_past_their_headers_do_not_count_against_the_cap():
    first, second = crowd(2, max_pending=2)
    first.send(request(b"/never"))
    Connection(first.limits, pending=first.pending, clock=first.clock)
    assert not first.transport.closing
    assert not second.transport.closing
    assert len(first.pending) == 2


def test_a_kept_alive_connection_waits_again_at_the_back_of_the_line():
    first, second = crowd(2, max_pending=2)
    first.send(request(b"/"))  # answered; waits again, now the newest
    assert first.responses() == 1
    Connection(first.limits, pending=first.pending, clock=first.clock)
    assert second.transport.disconnecting
    assert not first.transport.closing


def test_a_zero_cap_means_no_cap():
    conns = crowd(50, max_pending=0)
    assert len(conns[0].pending) == 50
    assert not any(conn.transport.closing for conn in conns)


# -- request lines and headers: 414, 431 ---------------------------------------

SMALL = ConnectionLimits(
    header_timeout=TIMEOUT, max_request_line=64, max_header_size=256, max_headers=5
)


def test_a_request_line_at_the_limit_is_served():
    line = b"GET /" + b"u" * (64 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == 64
    conn = Connection(SMALL)
    conn.send(line + b"\r\nHost: testserver\r\n\r\n")
    assert conn.status() == 200


def test_a_request_line_over_the_limit_is_answered_414():
    conn = Connection(SMALL)
    conn.send(request(b"/" + b"u" * 60))
    assert conn.status() == 414
    assert b"exceeds 64 bytes" in body_of(conn.output())
    assert conn.channel.requests == []  # never reached the application


def test_a_request_line_with_no_end_is_answered_414():
    conn = Connection(SMALL)
    conn.send(b"GET /" + b"v" * 1000)  # more than MAX_LENGTH, no line end
    assert conn.status() == 414


def test_headers_over_the_total_size_are_answered_431():
    headers = [b"X-Pad-%d: %s" % (n, b"p" * 80) for n in range(4)]
    conn = Connection(SMALL)
    conn.send(request(b"/", *headers))
    assert conn.status() == 431
    assert b"exceed 256 bytes" in body_of(conn.output())


def test_one_header_line_longer_than_any_limit_is_answered_431():
    conn = Connection(SMALL)
    conn.send(b"GET / HTTP/1.1\r\nCookie: " + b"c" * 1000)
    assert conn.status() == 431


def test_too_many_headers_are_answered_431():
    headers = [b"X-Many-%d: 1" % n for n in range(5)]  # with Host: six
    conn = Connection(SMALL)
    conn.send(request(b"/", *headers))
    assert conn.status() == 431
    assert b"more than 5 headers" in body_of(conn.output())


def test_headers_within_the_limits_are_served():
    headers = [b"X-Few-%d: %s" % (n, b"f" * 40) for n in range(4)]
    conn = Connection(SMALL)
    conn.send(request(b"/", *headers))
    assert conn.status() == 200


# -- malformed requests: 400 ---------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"HELLO THERE FRIEND\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: testserver\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: testserver\r\nContent-Length: -1\r\n\r\n",
    ],
    ids=["not-http", "no-target", "header-without-colon", "bad-length"],
)
def test_malformed_requests_are_answered_400_with_a_body(garbage):
    conn = Connection()
    conn.send(garbage)
    # Twisted alone answers a bare "400 Bad Request" with no headers or body.
    assert conn.status() == 400
    assert b"Content-Length: " in conn.output()
    assert b"The request is malformed." in body_of(conn.output())
    assert conn.responses() == 1


@pytest.mark.parametrize(
    "hosts", [[], [b"Host: a.example", b"Host: b.example"]], ids=["none", "two"]
)
def test_an_http11_request_needs_exactly_one_host(hosts):
    conn = Connection()
    conn.send(b"\r\n".join([b"GET / HTTP/1.1", *hosts, b"", b""]))
    assert conn.status() == 400
    assert b"exactly one Host header" in body_of(conn.output())
    assert conn.responses() == 1  # the request was not run as well


def test_an_http10_request_without_host_is_served():
    conn = Connection()
    conn.send(b"GET / HTTP/1.0\r\n\r\n")
    assert conn.output().startswith(b"HTTP/1.0 200 ")


# -- how a refusal closes ------------------------------------------------------


def test_a_refusal_closes_the_writing_half_and_lingers_then_aborts():
    conn = Connection()
    conn.send(b"GET / HTTP/1.1\r\n")
    conn.clock.advance(TIMEOUT)
    assert conn.transport.write_closed and not conn.transport.aborted
    answer = conn.output()
    conn.send(b"X-Late: 1\r\n\r\n" + request(b"/"))  # read and discarded
    assert conn.output() == answer
    conn.clock.advance(LINGER_SECONDS - 0.01)
    assert not conn.transport.aborted
    conn.clock.advance(0.02)
    assert conn.transport.aborted


def test_lingering_refusals_are_capped_at_the_pending_cap():
    """Clients that ignore their answer must not pile up descriptors past the cap."""
    limits = ConnectionLimits(header_timeout=TIMEOUT, max_pending=2)
    pending = PendingConnections(limits)
    clock = Clock()
    timed_out = [Connection(limits, pending=pending, clock=clock) for _ in range(2)]
    for conn in timed_out:
        conn.send(b"GET / HTTP/1.1\r\n")
    clock.advance(TIMEOUT)  # both answered 408; both may linger
    assert [conn.status() for conn in timed_out] == [408, 408]
    assert not any(conn.transport.aborted for conn in timed_out)
    # A third refusal within their linger: the oldest is cut off.
    third = Connection(limits, pending=pending, clock=clock)
    third.send(b"GET / HTTP/1.1\r\n" + b"X: " + b"x" * 70_000)
    assert third.status() == 431
    assert [conn.transport.aborted for conn in timed_out] == [True, False]
    assert not third.transport.aborted
    # One that goes away leaves room for the next refusal.
    timed_out[1].channel.connectionLost(Failure(ConnectionDone()))
    fourth = Connection(limits, pending=pending, clock=clock)
    fourth.send(b"GET / HTTP/1.1\r\n" + b"X: " + b"x" * 70_000)
    assert not third.transport.aborted and not fourth.transport.aborted


def test_a_refused_client_that_keeps_sending_is_aborted_after_the_linger_bytes():
    conn = Connection()
    conn.send(b"GET / HTTP/1.1\r\n")
    conn.clock.advance(TIMEOUT)
    conn.send(b"x" * LINGER_BYTES)
    assert not conn.transport.aborted
    conn.send(b"x")
    assert conn.transport.aborted


def test_without_a_half_close_the_refusal_closes_the_connection():
    conn = Connection(transport=StringTransport())
    conn.send(b"GET / HTTP/1.1\r\n")
    conn.clock.advance(TIMEOUT)
    assert conn.status() == 408
    assert conn.transport.disconnecting


def test_a_connection_is_refused_only_once():
    conn = Connection(SMALL)
    conn.send(b"GET / HTTP/1.1\r\n")
    conn.channel.refuse(431, "first")
    conn.channel.refuse(400, "second")
    conn.clock.advance(TIMEOUT)
    assert conn.responses() == 1
    assert conn.status() == 431


def test_every_refusal_is_reported_with_its_status_and_detail():
    refusals = []
    conn = Connection(SMALL, on_refusal=lambda *args: refusals.append(args))
    conn.send(request(b"/" + b"u" * 200))
    [(channel, status, detail)] = refusals
    assert channel is conn.channel
    assert status == 414
    assert "64 bytes" in detail


def test_a_failing_refusal_logger_does_not_stop_the_answer(caplog):
    def broken(*args):
        raise RuntimeError("log is down")

    conn = Connection(on_refusal=broken)
    with caplog.at_level(logging.ERROR, "channels_app.server"):
        conn.send(b"HELLO\r\n\r\n")
    assert conn.status() == 400
    assert conn.transport.write_closed
    assert "Could not log a refused request" in caplog.text


def test_describe_gives_the_access_log_a_shortened_path():
    conn = Connection(SMALL)
    conn.clock.advance(1)
    conn.send(b"GET /" + b"u" * 300 + b"?q=1 HTTP/1.1\r\n")
    details = conn.channel.describe()
    assert details["method"] == "GET"
    assert details["path"].startswith("/uuu")
    assert details["path"].endswith("... (305 bytes)")
    assert details["status"] == 414
    assert details["client"] == "127.0.0.1:50000"
    assert details["size"] == 0


# -- install() -----------------------------------------------------------------


class FakeDaphne:
    """The parts of Daphne's ``Server`` that install() and the protocols use."""

    root_path = ""
    proxy_forwarded_address_header = None

    def __init__(
        self,
        allow_null_origin: bool = True,
        max_frame: int = 64,
        max_message: int = 128,
    ) -> None:
        self.actions: list[tuple] = []
        self.inbox: list[dict] = []
        self.http_factory = SimpleNamespace(protocol=None)
        self.ws_factory = WebSocketFactory(self, server="Daphne")
        self.ws_factory.setProtocolOptions(
            allowNullOrigin=allow_null_origin,
            maxFramePayloadSize=max_frame,
            maxMessagePayloadSize=max_message,
        )

    def protocol_connected(self, protocol) -> None:
        pass

    def protocol_disconnected(self, protocol) -> None:
        pass

    def create_application(self, protocol, scope):
        return SimpleNamespace(put_nowait=self.inbox.append)

    def log_action(self, protocol: str, action: str, details: dict) -> None:
        self.actions.append((protocol, action, details))


def test_install_builds_limited_channels_sharing_one_waiting_set():
    server = FakeDaphne()
    limits = ConnectionLimits(header_timeout=3, max_pending=7)
    pending = install(server, limits)
    assert isinstance(pending, PendingConnections)
    wrappers = [server.http_factory.protocol() for _ in range(2)]
    channels = [wrapper._channel for wrapper in wrappers]
    assert all(isinstance(channel, LimitedHTTPChannel) for channel in channels)
    assert {id(channel.pending) for channel in channels} == {id(pending)}
    assert channels[0].limits is limits
    assert server.ws_factory.protocol is LimitedWebSocketProtocol
    assert server.ws_factory.failByDrop is False


@pytest.mark.parametrize("allow", [True, False])
def test_install_keeps_daphnes_null_origin_choice(allow):
    server = FakeDaphne(allow_null_origin=allow)
    install(server, ConnectionLimits())
    assert server.ws_factory.allowNullOrigin is allow


def test_installed_channels_log_refusals_to_the_access_log():
    server = FakeDaphne()
    install(server, ConnectionLimits(header_timeout=TIMEOUT))
    wrapper = server.http_factory.protocol()
    clock = Clock()
    wrapper.callLater = clock.callLater
    transport = Transport()
    wrapper.makeConnection(transport)
    wrapper.dataReceived(b"POST /upload HTTP/1.1\r\nHost: testserver\r\n")
    clock.advance(TIMEOUT)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    [(protocol, action, details)] = server.actions
    assert (protocol, action) == ("http", "complete")
    assert details["method"] == "POST"
    assert details["path"] == "/upload"
    assert details["status"] == 408
    assert details["time_taken"] >= 0


# -- WebSocket close codes: 1009, 1007, 1002 -----------------------------------


def client_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True):
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head = struct.pack("!BB", first, mask_bit | size)
    else:
        head = struct.pack("!BBH", first, mask_bit | 126, size)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (unmasked) frames a server sent: ``(opcode, payload)`` pairs."""
    frames = []
    while data:
        first, second = data[0], data[1]
        size, offset = second & 0x7F, 2
        if size == 126:
            (size,) = struct.unpack("!H", data[2:4])
            offset = 4
        elif size == 127:
            (size,) = struct.unpack("!Q", data[2:10])
            offset = 10
        frames.append((first & 0x0F, data[offset : offset + size]))
        data = data[offset + size :]
    return frames


@pytest.fixture
def ws_clock(monkeypatch):
    """Autobahn's timers (handshake, close) on a clock nobody advances."""
    clock = Clock()
    monkeypatch.setattr(txaio.config, "loop", clock)
    return clock


def open_websocket(server: FakeDaphne) -> tuple:
    protocol = server.ws_factory.buildProtocol(None)
    protocol._raw_query_string = b""  # set by Daphne's HTTP protocol
    transport = Transport()
    protocol.makeConnection(transport)
    key = base64.b64encode(os.urandom(16))
    protocol.dataReceived(
        b"GET /ws/echo/ HTTP/1.1\r\nHost: testserver\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    protocol.serverAccept()
    assert transport.value().startswith(b"HTTP/1.1 101 "), transport.value()
    transport.clear()
    return protocol, transport


def close_code_after(frames: bytes) -> int | None:
    server = FakeDaphne(max_frame=64, max_message=128)
    install(server, ConnectionLimits())
    protocol, transport = open_websocket(server)
    protocol.dataReceived(frames)
    closes = [p for op, p in server_frames(transport.value()) if op == 8]
    assert transport.disconnecting or closes, "the connection stayed open"
    protocol.connectionLost(Failure(ConnectionDone()))
    return struct.unpack("!H", closes[0][:2])[0] if closes else None


def test_messages_within_the_limits_reach_the_application(ws_clock):
    server = FakeDaphne(max_frame=64, max_message=128)
    install(server, ConnectionLimits())
    protocol, transport = open_websocket(server)
    protocol.dataReceived(client_frame(1, b"ab", fin=False) + client_frame(0, b"cd"))
    assert {"type": "websocket.receive", "text": "abcd"} in server.inbox
    assert transport.value() == b""


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param(client_frame(2, b"x" * 65), 1009, id="frame-over-limit"),
        pytest.param(
            client_frame(1, b"y" * 60, fin=False)
            + client_frame(0, b"y" * 60, fin=False)
            + client_frame(0, b"y" * 60),
            1009,
            id="message-over-limit",
        ),
        pytest.param(client_frame(1, b"caf\xc3"), 1007, id="invalid-utf8"),
        pytest.param(client_frame(0, b"orphan"), 1002, id="orphan-continuation"),
        pytest.param(client_frame(3, b"??"), 1002, id="reserved-opcode"),
        pytest.param(client_frame(1, b"plain", masked=False), 1002, id="unmasked"),
    ],
)
def test_a_failed_websocket_gets_a_close_frame_with_its_code(ws_clock, frames, code):
    # Autobahn's default, failByDrop, would drop the TCP connection instead:
    # the client would see 1006 and no reason.
    assert close_code_after(frames) == code


def test_the_server_logs_why_it_failed_a_websocket(ws_clock, caplog):
    with caplog.at_level(logging.WARNING, "channels_app.server"):
        assert close_code_after(client_frame(2, b"x" * 65)) == 1009
    assert "WebSocket /ws/echo/ closed by the server with 1009" in caplog.text
    assert "[127.0.0.1:50000]" in caplog.text
