"""Hostile and broken clients against ``manage.py runserver``, over real sockets.

Each case checks the answer the client gets (an HTTP status or a WebSocket
close code), that the server logged no traceback for it (only the consumer
that deliberately crashes may log one), and that the server still answers a
health request afterwards.  The raw-socket helpers below let a test send
what no well-behaved client library would: invalid frames, oversized
request lines, trickled headers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
import urllib.error
import urllib.request

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.serving import E2EProject

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 2.0
MAX_PENDING = 250
MAX_FRAME = 64 * 1024
MAX_MESSAGE = 128 * 1024

#: Tests that deliberately make the server log tracebacks, and how many.
EXPECTED_TRACEBACKS = {"test_a_crashing_consumer_logs_its_traceback_once": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    project = E2EProject(tmp_path_factory.mktemp("hostile"), "memory")
    yield project.runserver(
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--max-pending-connections",
        str(MAX_PENDING),
        "--websocket-max-frame-size",
        str(MAX_FRAME),
        "--websocket-max-message-size",
        str(MAX_MESSAGE),
    )
    project.stop_all()


def health(server, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(f"{server.url}/health/", timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(autouse=True)
def still_serving(server, request):
    """After every case: no traceback in the log, and the server answers."""
    start = len(server.log())
    yield
    assert health(server) == 200
    logged = server.log()[start:]
    expected = EXPECTED_TRACEBACKS.get(request.node.originalname, 0)
    assert logged.count("Traceback") == expected, logged


# -- raw HTTP ------------------------------------------------------------------


def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` on a new connection; everything the server sends back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_to_end(sock, timeout)


def read_to_end(sock: socket.socket, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the connection was not closed in {timeout}s: {received!r}")


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), response[:200]
    return int(response.split(b" ", 2)[1])


def request(path: bytes = b"/health/", *headers: bytes, host: bool = True) -> bytes:
    lines = [b"GET " + path + b" HTTP/1.1"]
    if host:
        lines.append(b"Host: 127.0.0.1")
    return b"\r\n".join([*lines, *headers, b"Connection: close", b"", b""])


# -- raw WebSocket -------------------------------------------------------------


def handshake(port: int, path: bytes = b"/ws/echo/", *headers: bytes) -> socket.socket:
    """An open WebSocket connection; fails unless the server switches protocols."""
    sock, response = start_handshake(port, path, *headers)
    assert status_of(response) == 101, response
    return sock


def start_handshake(
    port: int, path: bytes, *headers: bytes
) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"\r\n".join(
            [
                b"GET " + path + b" HTTP/1.1",
                b"Host: 127.0.0.1:%d" % port,
                b"Upgrade: websocket",
                b"Connection: Upgrade",
                b"Sec-WebSocket-Key: " + key,
                b"Sec-WebSocket-Version: 13",
                *headers,
                b"",
                b"",
            ]
        )
    )
    response = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in response and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        response += chunk
    return sock, response


def frame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, mask_bit | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def close_code(sock: socket.socket) -> int:
    """Read frames until the server's close frame; answer it; return its code."""
    with sock:
        for _ in range(100):
            first, second = recv_exactly(sock, 2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", recv_exactly(sock, 2))
            elif size == 127:
                (size,) = struct.unpack("!Q", recv_exactly(sock, 8))
            payload = recv_exactly(sock, size)
            if first & 0x0F == 8:
                code = struct.unpack("!H", payload[:2])[0] if payload else 1005
                try:
                    sock.sendall(frame(8, payload[:2]))
                except OSError:
                    pass
                return code
        raise AssertionError("no close frame among the first 100 frames")


# -- WebSocket frames ----------------------------------------------------------


def test_invalid_utf8_text_frame_is_closed_with_1007(server):
    sock = handshake(server.port)
    sock.sendall(frame(1, b"caf\xc3"))
    assert close_code(sock) == 1007


def test_oversized_frame_is_closed_with_1009(server):
    sock = handshake(server.port)
    sock.sendall(frame(2, b"x" * (MAX_FRAME + 1)))
    assert close_code(sock) == 1009
    server.wait_for_log("closed by the server with 1009", timeout=30)


def test_oversized_message_in_small_frames_is_closed_with_1009(server):
    sock = handshake(server.port)
    part = b"y" * (MAX_FRAME - 10)
    sock.sendall(frame(1, part, fin=False) + frame(0, part, fin=False))
    sock.sendall(frame(0, part))
    assert close_code(sock) == 1009


def test_messages_within_the_limits_still_echo(server):
    sock = handshake(server.port)
    with sock:
        sock.sendall(frame(1, b"ab", fin=False) + frame(0, b"cd"))
        first, second = recv_exactly(sock, 2)
        assert first == 0x81 and recv_exactly(sock, second) == b"abcd"


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param(frame(0, b"orphan"), 1002, id="continuation-without-start"),
        pytest.param(
            frame(1, b"ab", fin=False) + frame(1, b"cd"),
            1002,
            id="new-message-inside-fragmented-one",
        ),
        pytest.param(frame(9, b"ping", fin=False), 1002, id="fragmented-ping"),
        pytest.param(frame(1, b"rsv", rsv=0b010), 1002, id="reserved-bit"),
        pytest.param(frame(3, b"??"), 1002, id="reserved-opcode"),
        pytest.param(frame(1, b"unmasked", masked=False), 1002, id="unmasked"),
        pytest.param(
            frame(1, b"ok \xe2\x82", fin=False) + frame(0, b"\x28 not utf-8"),
            1007,
            id="utf8-broken-across-fragments",
        ),
        pytest.param(frame(9, b"p" * 126), 1002, id="oversized-control-frame"),
    ],
)
def test_fragmented_and_malformed_frames_get_a_close_frame(server, frames, code):
    sock = handshake(server.port)
    sock.sendall(frames)
    assert close_code(sock) == code


# -- JSON consumers ------------------------------------------------------------


async def json_close_code(server, payload) -> int:
    async with websockets.connect(f"{server.ws_url}/ws/group/hostile/") as ws:
        await ws.send(payload)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        return ws.close_code


async def test_malformed_json_to_a_json_consumer_is_closed_with_4007(server):
    assert await json_close_code(server, '{"text": "unterminated') == 4007


async def test_binary_to_a_json_consumer_is_closed_with_4003(server):
    assert await json_close_code(server, b"\x00\x01binary") == 4003


# -- request lines and headers -------------------------------------------------


def test_oversized_cookie_is_answered_431(server):
    cookie = b"Cookie: sessionid=" + b"c" * (20 * 1024)
    response = exchange(server.port, request(b"/health/", cookie))
    assert status_of(response) == 431
    assert b"Connection: close" in response


def test_too_many_headers_are_answered_431(server):
    headers = [b"X-Many-%d: 1" % n for n in range(150)]
    assert status_of(exchange(server.port, request(b"/health/", *headers))) == 431


async def test_oversized_cookie_on_a_websocket_handshake_is_answered_431(server):
    cookie = ("Cookie", "sessionid=" + "c" * (20 * 1024))
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            f"{server.ws_url}/ws/echo/", additional_headers=[cookie]
        ):
            pass
    assert refused.value.response.status_code == 431


def test_huge_url_is_answered_414(server):
    response = exchange(server.port, request(b"/" + b"u" * (10 * 1024)))
    assert status_of(response) == 414
    # The access log shows the request, shortened.
    server.wait_for_log('uuuuu... (10241 bytes)" 414', timeout=30)


def test_url_with_no_line_end_is_answered_414(server):
    # More than any limit allows, and still no end of line.
    response = exchange(server.port, b"GET /" + b"v" * (64 * 1024))
    assert status_of(response) == 414


def test_http11_request_without_host_is_answered_400(server):
    response = exchange(server.port, request(b"/health/", host=False))
    assert status_of(response) == 400
    assert b"Host header" in response


def test_http10_request_without_host_is_served(server):
    response = exchange(server.port, b"GET /health/ HTTP/1.0\r\n\r\n")
    assert status_of(response) == 200


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET\r\n\r\n",
        b"HELLO THERE FRIEND\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
    ],
    ids=["tls-hello", "no-target", "not-http", "header-without-colon", "bad-length"],
)
def test_garbage_requests_are_answered_400(server, garbage):
    assert status_of(exchange(server.port, garbage)) == 400


# -- URLs ----------------------------------------------------------------------


def test_unknown_websocket_path_is_refused_403_with_one_log_line(server):
    sock, response = start_handshake(server.port, b"/ws/nowhere/")
    sock.close()
    assert status_of(response) == 403
    line = "No route found for path 'ws/nowhere/'"
    server.wait_for_log(line, timeout=30)
    assert server.log().count(line) == 1


@pytest.mark.parametrize(
    "path", [b"/ws/%ff%fe%00/", b"/ws/echo/%zz%", b"/ws/%2e%2e/%2e%2e/echo/"]
)
def test_percent_encoded_garbage_websocket_paths_are_refused_403(server, path):
    sock, response = start_handshake(server.port, path)
    sock.close()
    assert status_of(response) == 403


@pytest.mark.parametrize("path", [b"/%ff%fe/%00?%zz=%", b"/%2e%2e/%2e%2e/etc/passwd"])
def test_percent_encoded_garbage_http_paths_are_answered_404(server, path):
    assert status_of(exchange(server.port, request(path))) == 404


def test_raw_non_ascii_paths_are_answered_400(server):
    assert status_of(exchange(server.port, request(b"/caf\xc3\xa9/"))) == 400
    sock, response = start_handshake(server.port, b"/ws/caf\xc3\xa9/")
    sock.close()
    assert status_of(response) == 400


# -- cookies and origins -------------------------------------------------------


async def whoami(server, **kwargs):
    async with websockets.connect(
        f"{server.ws_url}/ws/guarded/whoami/", **kwargs
    ) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


@pytest.mark.parametrize(
    "cookie",
    [
        "sessionid=forged0123456789abcdefghijklmnopqrstuv",
        "sessionid=../../etc/passwd",
        "sessionid=" + "z" * 4000,
        'sessionid="quoted\\" ; evil',
        "sessionid=a; sessionid=b; sessionid=c",
    ],
    ids=["forged", "traversal", "long", "quoted", "repeated"],
)
async def test_forged_session_cookies_leave_the_client_anonymous(server, cookie):
    origin = server.url
    assert await whoami(
        server, origin=origin, additional_headers=[("Cookie", cookie)]
    ) == {"user": None}


async def test_same_origin_is_accepted(server):
    assert await whoami(server, origin=server.url) == {"user": None}


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example"]
)
async def test_foreign_origins_are_refused_403(server, origin):
    with pytest.raises(InvalidStatus) as refused:
        await whoami(server, origin=origin)
    assert refused.value.response.status_code == 403


# -- a crashing consumer -------------------------------------------------------


async def test_a_crashing_consumer_logs_its_traceback_once(server):
    start = len(server.log())
    async with websockets.connect(f"{server.ws_url}/ws/crash/") as ws:
        await ws.send("boom")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1011
    server.wait_for_log("RuntimeError: crashed on 'boom'", timeout=30)
    assert server.log()[start:].count("Traceback") == 1


# -- slow clients --------------------------------------------------------------


async def trickle(port: int, deadline: float, on_ready) -> bytes | None:
    """A slowloris client: a request line, then one header every 0.3 s, for ever.

    Returns what the server answered once it closed the connection (None if
    it never did before ``deadline``).  ``on_ready`` gets the time it connected.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connected = time.monotonic()
    answer = asyncio.ensure_future(reader.read())
    try:
        writer.write(b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await writer.drain()
        on_ready(connected)
        while not answer.done() and time.monotonic() < deadline:
            await asyncio.wait({answer}, timeout=0.3)
            if not answer.done():
                writer.write(b"X-Slow: 1\r\n")
                try:
                    await writer.drain()
                except ConnectionError:
                    break
        remaining = max(deadline - time.monotonic(), 0.1)
        return await asyncio.wait_for(asyncio.shield(answer), remaining)
    except (TimeoutError, ConnectionError):
        return None
    finally:
        answer.cancel()
        writer.close()


async def start_trickling(
    port: int, count: int, connected: list[float] | None = None
) -> list[asyncio.Future]:
    """``count`` slowloris clients, once all of them have sent a request line;
    ``connected`` gets the time each connected."""
    deadline = time.monotonic() + HEADER_TIMEOUT + 8
    ready = asyncio.Event()
    sent: list[float] = []

    def on_ready(at: float) -> None:
        sent.append(at)
        if len(sent) == count:
            ready.set()

    clients = [
        asyncio.ensure_future(trickle(port, deadline, on_ready)) for _ in range(count)
    ]
    await asyncio.wait_for(ready.wait(), 10)
    if connected is not None:
        connected += sent
    return clients


async def timed_health(server) -> float:
    started = time.monotonic()
    assert await asyncio.to_thread(health, server, 2) == 200
    return time.monotonic() - started


async def statuses(clients: list[asyncio.Future]) -> list:
    answers = await asyncio.gather(*clients)
    return [status_of(answer) if answer else answer for answer in answers]


async def test_trickling_clients_are_closed_and_others_still_served(server):
    started = time.monotonic()
    clients = await start_trickling(server.port, 200)
    assert await timed_health(server) < 2
    assert await statuses(clients) == [408] * 200
    # Closed by the header timeout, not by Twisted's 60 s idle timeout.
    assert time.monotonic() - started < HEADER_TIMEOUT + 5


async def test_beyond_the_cap_the_longest_waiting_are_closed_first(server):
    connected: list[float] = []
    first = await start_trickling(server.port, MAX_PENDING, connected)
    assert await timed_health(server) < 2
    second = await start_trickling(server.port, 60)
    newcomers_in = time.monotonic()
    assert await timed_health(server) < 2
    # Each newcomer (the 60, and the two health requests) closed one of the
    # first clients with a 503; the others timed out.  On a loaded machine
    # some first clients reach their header timeout before all newcomers are
    # in: each leaves by itself (408) and makes room for one newcomer.  And
    # a first client whose request line the server has not read yet when it
    # is pushed out has, as far as the server knows, sent nothing: it is
    # closed without an answer (b""), as any idle connection is.
    expired = sum(at + HEADER_TIMEOUT <= newcomers_in for at in connected)
    answers = await statuses(first)
    assert answers.count(503) + answers.count(b"") >= 60 - expired
    assert set(answers) <= {503, 408, b""}
    assert await statuses(second) == [408] * 60


def test_idle_connection_is_closed_quietly_after_the_header_timeout(server):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        assert read_to_end(sock, HEADER_TIMEOUT + 5) == b""
    assert time.monotonic() - started >= HEADER_TIMEOUT - 0.5


def test_keep_alive_connection_gets_a_fresh_deadline_per_request(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            response = b""
            while b"channels_app demo is running\n" not in response:
                chunk = sock.recv(65536)
                assert chunk, response
                response += chunk
            assert status_of(response) == 200
        # Idle after its responses: closed without a 408.
        assert read_to_end(sock, HEADER_TIMEOUT + 5) == b""


def test_slow_websocket_handshake_is_closed_with_408(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /ws/echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web")
        assert status_of(read_to_end(sock, HEADER_TIMEOUT + 5)) == 408
