"""A slowloris attack on ``manage.py runserver`` limited to 1,024 file descriptors.

The server runs in a child process whose ``RLIMIT_NOFILE`` is 1,024 (soft
and hard), the usual default on Linux.  The test opens 1,100 connections
that each send part of an HTTP request or WebSocket handshake, then a few
more bytes now and then, never the blank line that ends the headers.  While
they trickle, a plain ``GET /health/`` must get its full answer quickly, and
every trickling connection must be closed by the server -- with a 408 when
its header deadline passes, a 503 when it was the longest waiting one and
the cap on waiting connections needed its place, or a plain close if it was
evicted before its first bytes were read.

Why it fails without the limits of ``channels_app.server_limits`` (Daphne
alone): Twisted's only timer on a connection is a 60 s idle timeout, and
every trickled byte resets it, so no trickling connection is ever closed.
Each holds a descriptor; after about 1,010 of them (the rest are the
server's own files, sockets and pipes) ``accept()`` fails with ``EMFILE``.
Twisted then accepts each newcomer on a reserved descriptor only to close it
at once, so every other client -- the health request here -- is reset
without an answer, and the trickling clients see no answer and no close
before the test's deadline.  Both limits are needed: with the header
deadline but no cap on waiting connections, the descriptors still run out
before the first deadline passes (the health request is reset); with the
cap but no deadline, the last 500 trickling connections are never closed.
(Checked by running this test with ``--header-timeout 0``, with
``--max-pending-connections 0`` and with both.)
"""

from __future__ import annotations

import asyncio
import itertools
import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_port
from tests.services import IN_CI
from tests.serving import E2EProject, ProjectProcess

pytestmark = pytest.mark.e2e

#: The server's descriptor limit, soft and hard.
SERVER_NOFILE = 1024
#: More trickling clients than the server has descriptors.
CLIENTS = 1100
#: The server's --header-timeout: short, so the test is fast.
HEADER_TIMEOUT = 4.0
#: The server's --max-pending-connections (its default).
MAX_PENDING = 500
#: How long the health request may take while the clients trickle.
HEALTH_DEADLINE = 5.0
#: Seconds between two trickles of each client.
TRICKLE_INTERVAL = 0.3
#: Connections being opened at once (more only overflow the listen backlog,
#: and the kernel's SYN retries make the test slower, not harder).
CONNECTING_AT_ONCE = 50
#: Descriptors the server holds of its own: log, pipes, listening socket,
#: epoll, Twisted's EMFILE reserve (13 measured), with room to spare.
SERVER_OWN_NOFILE = 20
#: Descriptors this process needs: the clients, the health request, spare.
CLIENT_NOFILE = CLIENTS + 200


def raise_own_nofile_limit() -> tuple[int, int]:
    """Raise this process's soft descriptor limit; the old limits to restore."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < CLIENT_NOFILE:
        reason = (
            f"opening {CLIENTS} sockets needs RLIMIT_NOFILE of {CLIENT_NOFILE}, "
            f"but the hard limit is {hard} (raise it, e.g. 'ulimit -Hn 4096')"
        )
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    wanted = CLIENT_NOFILE if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return soft, hard


@pytest.fixture
def own_nofile_limit():
    old = raise_own_nofile_limit()
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, old)


#: Runs ``manage.py`` with RLIMIT_NOFILE lowered, in the same process (exec).
LIMITED_MANAGE = (
    "import os, resource, sys; "
    "limit = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)); "
    "os.execv(sys.executable, [sys.executable, 'manage.py', *sys.argv[2:]])"
)


def runserver_with_nofile(project: E2EProject, limit: int, *args: str):
    """``manage.py runserver`` on a free port, its descriptors limited to ``limit``."""
    port = free_port()
    process = ProjectProcess(
        [
            sys.executable,
            "-c",
            LIMITED_MANAGE,
            str(limit),
            "runserver",
            f"127.0.0.1:{port}",
            "--noreload",
            *args,
        ],
        port,
        project.tmp_path / f"runserver-nofile-{port}.log",
        project.env,
    )
    project.processes.append(process)
    wait_for_port(port, process.process)
    return process


def nofile_limits_of(pid: int) -> tuple[int, int] | None:
    """A process's soft and hard descriptor limits, where /proc tells."""
    limits = Path(f"/proc/{pid}/limits")
    if not limits.exists():
        return None
    for line in limits.read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    return None


class DescriptorWatch:
    """The most descriptors a process held at once, sampled from /proc in a
    thread (None where /proc does not tell).

    Sampling can miss a brief peak, never invent one: a peak at the limit
    means the server ran out (``EMFILE``), and Twisted then accepts and
    closes every connection in its backlog -- other clients are reset.
    """

    def __init__(self, pid: int) -> None:
        self.directory = Path(f"/proc/{pid}/fd")
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if self.directory.exists():
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            try:
                count = len(os.listdir(self.directory))
            except OSError:  # the process is gone
                return
            self.peak = max(self.peak or 0, count)

    def stop(self) -> int | None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.peak


@pytest.fixture
def server(tmp_path):
    project = E2EProject(tmp_path, "memory")
    yield runserver_with_nofile(
        project,
        SERVER_NOFILE,
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--max-pending-connections",
        str(MAX_PENDING),
    )
    project.stop_all()


# -- the clients ---------------------------------------------------------------


def pieces(index: int, port: int):
    """What client ``index`` sends, a few bytes at a time, for ever.

    Even clients start an HTTP request, odd ones a WebSocket handshake; after
    the real headers come made-up ones, and never the blank line.
    """
    if index % 2:
        start = (
            b"GET /ws/echo/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" % port
        )
    else:
        start = b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
    for offset in range(0, len(start), 7):
        yield start[offset : offset + 7]
    for n in itertools.count():
        yield b"X-Slow-%d: 1\r\n" % n


@dataclass
class Trickler:
    """One slowloris client; ``answer`` is set when the server closes it."""

    index: int
    port: int
    #: Hang up when the server does (real clients); False: keep the socket.
    hangs_up: bool = True
    writer: asyncio.StreamWriter | None = None
    answer: bytes | None = None
    closed_after: float | None = None
    _pieces: object = field(default=None, repr=False)
    _reading: asyncio.Future | None = field(default=None, repr=False)

    async def open(self, gate: asyncio.Semaphore, started: float) -> None:
        self._pieces = pieces(self.index, self.port)
        async with gate:
            reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.trickle()
        self._reading = asyncio.ensure_future(self._read(reader, started))

    def trickle(self) -> None:
        if self.answer is None and not self.writer.is_closing():
            self.writer.write(next(self._pieces))

    async def _read(self, reader: asyncio.StreamReader, started: float) -> None:
        received = b""
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionError:
            pass  # an abort after the answer (the server's linger ran out)
        self.closed_after = time.monotonic() - started
        self.answer = received
        # A real client (and most attack tools) hangs up once the server has;
        # one that does not keeps the server's socket lingering after its
        # refusal, and the server must cap those too.
        if self.hangs_up:
            self.writer.close()

    @property
    def status(self) -> int | None:
        """The status the server answered with; None for a plain close."""
        if not self.answer:
            return None
        assert self.answer.startswith(b"HTTP/1.1 "), self.answer[:200]
        return int(self.answer.split(b" ", 2)[1])


async def keep_trickling(clients: list[Trickler], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for client in clients:
            if client.writer is not None:
                client.trickle()
        try:
            await asyncio.wait_for(stop.wait(), TRICKLE_INTERVAL)
        except TimeoutError:
            pass


async def health(port: int) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        response = await reader.read()  # to the end: a full response
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), response[:200]
    return int(head.split(b" ", 2)[1]), body


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        await asyncio.sleep(0.05)


# -- the test ------------------------------------------------------------------


@pytest.mark.parametrize("hangs_up", [True, False], ids=["hang-up", "never-hang-up"])
async def test_trickling_handshakes_do_not_lock_out_other_clients(
    own_nofile_limit, server, hangs_up
):
    limits = nofile_limits_of(server.process.pid)
    if limits is not None:
        assert limits == (SERVER_NOFILE, SERVER_NOFILE)
    clients = [Trickler(index, server.port, hangs_up) for index in range(CLIENTS)]
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    stop = asyncio.Event()
    descriptors = DescriptorWatch(server.process.pid)
    started = time.monotonic()
    trickling = asyncio.ensure_future(keep_trickling(clients, stop))
    try:
        await asyncio.wait_for(
            asyncio.gather(*(client.open(gate, started) for client in clients)),
            HEADER_TIMEOUT * 4,
        )
        opened_after = time.monotonic() - started

        # All of them are connected and trickling: others are still served.
        asked = time.monotonic()
        status, body = await asyncio.wait_for(health(server.port), HEALTH_DEADLINE)
        health_took = time.monotonic() - asked
        assert (status, body) == (200, b"channels_app demo is running\n")
        still_open = sum(client.answer is None for client in clients)
        assert still_open > 0, "the health request did not run while they trickled"

        # The server closes every one of them, none later than its deadline.
        await wait_until(
            lambda: all(client.answer is not None for client in clients),
            opened_after + HEADER_TIMEOUT + 5,
            f"the server did not close all {CLIENTS} trickling connections",
        )
    finally:
        peak = descriptors.stop()
        stop.set()
        await trickling
        for client in clients:
            if client.writer is not None:
                client.writer.close()

    # Waiting and lingering connections are capped at MAX_PENDING each, and
    # those closed to keep the caps release their descriptors at once, so
    # the server never ran out, however the accepts were batched.
    if peak is not None:
        assert peak <= 2 * MAX_PENDING + SERVER_OWN_NOFILE < SERVER_NOFILE, peak
    statuses = [client.status for client in clients]
    counts = {status: statuses.count(status) for status in set(statuses)}
    assert set(counts) <= {408, 503, None}, counts
    # Those still waiting when their deadline passed got a 408.
    assert counts.get(408, 0) > 0, counts
    if opened_after < HEADER_TIMEOUT - 1:
        # All of them were waiting at once, so the cap closed the longest
        # waiting to make room for the newest; later arrivals (on a slow
        # machine) could take the places of connections already timed out.
        assert counts.get(408, 0) <= MAX_PENDING, counts
        assert counts.get(503, 0) + counts.get(None, 0) >= CLIENTS - MAX_PENDING
    latest = max(client.closed_after for client in clients)
    assert latest < opened_after + HEADER_TIMEOUT + 3, (latest, opened_after)
    assert health_took < HEALTH_DEADLINE
    assert "Traceback" not in server.log()
    print(
        f"{CLIENTS} clients opened in {opened_after:.2f}s, health in "
        f"{health_took:.2f}s with {still_open} trickling, all closed after "
        f"{latest:.2f}s: {counts}"
    )
