"""A crowded room end to end: 200 logged-in WebSockets, then one message.

The demo runs as ``make demo`` runs it (``manage.py runserver`` with the
moderation worker inside, SQLite, the in-memory layer).  200 sockets join
one room, each logged in as its own user; every one of them must be told
the whole room is online, and a message posted afterwards must reach all
200 within 5 s.

Presence is ``channels_app.presence``: each join is one store write and
one ``presence.join`` frame to each member already there (no query per
member), so the joins cost O(N) writes and the frames O(N^2) small sends,
which the settle deadline bounds.  (The demo's earlier hand-written
presence, which queried per member, went silent at 200 sockets: a message
reached 6 of 200.)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

import pytest

from tests.demo.clients import create_crowd, open_crowd, post_to_crowd
from tests.servers import free_port, migrate, project_env, wait_for_port
from tests.serving import ProjectProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SOCKETS = 200
#: Seconds until every socket must list all users, after the last join.
SETTLE_DEADLINE = 20
#: Seconds within which every socket must receive the message.
DELIVERY_DEADLINE = 5


@pytest.fixture
def demo(tmp_path):
    """The demo under ``runserver``, with a room and ``SOCKETS`` users.

    Yields ``(server, env, slug, names, session keys)``.
    """
    env = project_env(tmp_path)
    migrate(env)
    slug = f"crowd-{uuid.uuid4().hex[:8]}"
    names = [f"user{i:04d}" for i in range(SOCKETS)]
    keys = create_crowd(env, slug, names)
    port = free_port()
    server = ProjectProcess(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        port,
        tmp_path / "runserver.log",
        env,
    )
    try:
        wait_for_port(port, server.process)
        yield server, env, slug, names, keys
    finally:
        server.stop()


async def until(condition, deadline: float, what: str) -> None:
    """Poll ``condition()`` until it holds or ``deadline`` (monotonic) passes."""
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within the deadline: {what}")
        await asyncio.sleep(0.05)


async def test_two_hundred_sockets_settle_and_all_receive_a_message(demo):
    server, _env, slug, names, keys = demo
    expected = sorted(names)
    started = time.monotonic()
    crowd = await open_crowd(server.url, slug, keys, expected)
    joined = time.monotonic()
    try:
        await until(
            lambda: all(m.users == expected or m.closed for m in crowd),
            joined + SETTLE_DEADLINE,
            "every socket lists all 200 users",
        )
        settled = time.monotonic()
        closed = [m.closed for m in crowd if m.closed is not None]
        assert not closed, f"{len(closed)} sockets closed: {closed[:3]}"
        assert all(m.users == expected for m in crowd)
        # O(1) frames per arrival for each socket, never a list per join: its
        # state, and at most one join per user (its own included).
        frames = [m.presence_frames for m in crowd]
        assert max(frames) <= SOCKETS + 1, frames

        delays, results = await post_to_crowd(crowd, DELIVERY_DEADLINE)
        print(
            f"\n{SOCKETS} sockets: joined in {joined - started:.2f} s, settled "
            f"{settled - joined:.2f} s later; presence frames per socket median "
            f"{statistics.median(frames):.0f}, max {max(frames)}; "
            f"message to {len(delays)}/{SOCKETS}, max "
            f"{delays[-1] if delays else float('nan'):.3f} s"
        )
        missed = [r for r in results if not isinstance(r, float)]
        assert not missed, (
            f"{len(missed)} of {SOCKETS} sockets missed the message: {missed[:3]}"
        )
        assert delays[-1] <= DELIVERY_DEADLINE
    except BaseException:
        log = server.log()
        print(log[-5000:])
        raise
    finally:
        await asyncio.gather(*(m.ws.close() for m in crowd), return_exceptions=True)
        for member in crowd:
            member.task.cancel()
        await asyncio.gather(*(m.task for m in crowd), return_exceptions=True)
    assert "Traceback" not in server.log()
