"""One crowded room of the demo chat: 1,000 WebSockets, then one message.

Usage (from the repository root, with .venv made):

    .venv/bin/python benchmarks/demo_room.py                  # 1,000 sockets
    .venv/bin/python benchmarks/demo_room.py --sockets 200 --users 20
    .venv/bin/python benchmarks/demo_room.py --layer redis    # REDIS_URL
    .venv/bin/python benchmarks/demo_room.py --layer database # PostgreSQL

The demo is started the way its README does, ``manage.py runserver`` (with
the moderation worker inside), on SQLite and the in-memory layer by default;
``--layer redis`` uses channels_redis, ``--layer database`` the database
layer on a fresh PostgreSQL database (the test suite's ``PG*`` server).  The
users and their logged-in sessions are written to the database first, then
``--sockets`` WebSockets to one room are opened from this process (at most
``--concurrency`` handshakes at a time), each subscribing to the room's
stream as the page's client does.

Printed: how long the joins took, how long until every socket had been
told the whole room is online ("settled"), how many presence frames a
socket received, and for one message posted afterwards the delivery time
to each socket (p50, max) and how many sockets received it within
``--timeout`` seconds.  The server's log is searched for layer warnings
(a member skipped because its channel was full) and tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.demo.clients import create_crowd, open_crowd, post_to_crowd  # noqa: E402
from tests.servers import free_port, migrate, project_env, wait_for_port  # noqa: E402
from tests.serving import ProjectProcess  # noqa: E402


def raise_file_limit() -> int:
    """Raise RLIMIT_NOFILE to the hard limit (inherited by the server)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def layer_env(layer: str) -> tuple[dict, callable]:
    """Environment for ``layer`` and a cleanup to call at the end."""
    if layer == "memory":
        return {}, lambda: None
    if layer == "redis":
        from tests.services import REDIS_URL

        return {"DEMO_CHANNEL_LAYER": "redis", "REDIS_URL": REDIS_URL}, lambda: None
    from tests.serving import (
        create_postgres_database,
        drop_postgres_database,
        postgres_env,
    )

    name = create_postgres_database()
    env = {**postgres_env(name), "DEMO_CHANNEL_LAYER": "database"}
    return env, lambda: drop_postgres_database(name)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def measure(server_url: str, slug: str, keys, names, args) -> int:
    expected = sorted(set(names))
    started = time.monotonic()
    crowd = await open_crowd(
        server_url, slug, keys, expected, concurrency=args.concurrency
    )
    joined = time.monotonic()
    print(f"joined:    {len(crowd)} sockets open in {joined - started:.2f} s")
    try:
        await asyncio.wait_for(
            asyncio.gather(*(m.settled.wait() for m in crowd)), args.timeout
        )
    except TimeoutError:
        pass
    settled = time.monotonic()
    told = sum(m.users == expected for m in crowd)
    print(
        f"settled:   {told}/{len(crowd)} sockets list all {len(expected)} users, "
        f"{settled - joined:.2f} s after the last join "
        f"({settled - started:.2f} s from the first)"
    )
    frames = [m.presence_frames for m in crowd]
    print(
        f"presence:  {sum(frames)} frames sent in all, per socket "
        f"median {statistics.median(frames):.0f}, max {max(frames)}"
    )

    delays, _ = await post_to_crowd(crowd, args.timeout)
    print(f"delivery:  {len(delays)}/{len(crowd)} sockets received the message")
    if delays:
        print(
            f"           p50 {ms(statistics.median(delays))}, "
            f"p99 {ms(delays[int(len(delays) * 0.99) - 1 if len(delays) > 1 else 0])}, "
            f"max {ms(delays[-1])}"
        )
    within = sum(d <= 5 for d in delays)
    print(f"           {within}/{len(crowd)} within 5 s")
    broken = sum(m.closed is not None for m in crowd)
    if broken:
        print(f"closed:    {broken} sockets were closed by the server")

    await asyncio.gather(*(m.ws.close() for m in crowd), return_exceptions=True)
    for member in crowd:
        member.task.cancel()
    return len(delays)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument(
        "--users", type=int, default=0, help="distinct users (default: one per socket)"
    )
    parser.add_argument(
        "--layer", choices=["memory", "redis", "database"], default="memory"
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    limit = raise_file_limit()
    users = args.users or args.sockets
    print(
        f"demo_room: {args.sockets} sockets, {users} users, layer {args.layer}, "
        f"RLIMIT_NOFILE {limit}"
    )
    if limit < args.sockets * 2 + 100:
        print(f"warning: {limit} file descriptors may be too few")

    extra, cleanup = layer_env(args.layer)
    with tempfile.TemporaryDirectory(prefix="demo_room-") as tmp:
        tmp_path = Path(tmp)
        env = project_env(tmp_path, **extra)
        server = None
        try:
            migrate(env)
            slug = f"crowd-{uuid.uuid4().hex[:8]}"
            names = [f"user{i:04d}" for i in range(users)]
            keys = create_crowd(env, slug, names)
            per_socket = [keys[i % users] for i in range(args.sockets)]
            socket_names = [names[i % users] for i in range(args.sockets)]
            port = free_port()
            server = ProjectProcess(
                [
                    sys.executable,
                    "manage.py",
                    "runserver",
                    "--noreload",
                    f"127.0.0.1:{port}",
                ],
                port,
                tmp_path / "runserver.log",
                env,
            )
            wait_for_port(port, server.process)
            received = asyncio.run(
                measure(server.url, slug, per_socket, socket_names, args)
            )
        finally:
            if server is not None:
                server.stop()
                log = server.log()
                skipped = log.count("it is full")
                tracebacks = log.count("Traceback")
                print(
                    f"server:    {skipped} 'channel full' warnings, "
                    f"{tracebacks} tracebacks in the log"
                )
                if tracebacks:
                    start = log.index("Traceback")
                    print(log[start : start + 3000])
            cleanup()
    return 0 if received == args.sockets else 1


if __name__ == "__main__":
    sys.exit(main())
