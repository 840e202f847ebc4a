"""Broadcast benchmark: 500 WebSocket clients in one group, served by Daphne.

Usage (from the repository root, after ``make test`` or ``make lint`` made .venv):

    .venv/bin/python benchmarks/ws_broadcast.py                # both, 500 clients
    .venv/bin/python benchmarks/ws_broadcast.py --impl ours --clients 200

Each implementation runs on a private PostgreSQL started for the run (initdb
and pg_ctl, as the ``postgres`` user when run as root; ``PG*`` variables name
a server to use instead when the binaries are missing), so a layer that
exhausts connections cannot disturb anything else.  A real Daphne serves
benchmarks/broadcast_app.py with the database layer -- ours, or
``channels_postgres`` with Channels 4 in ``.venv-bench-channels`` -- and
benchmarks/broadcast_clients.py opens the WebSocket clients in another
process.  This process, like a worker would, calls ``group_send`` on a layer
instance of its own, ``--rounds`` times.

Measured: time from ``group_send`` until the last client has the message
(median of the rounds, ms), duplicate deliveries (copies beyond the first,
all rounds) and missing deliveries.  A round that does not complete within
``--timeout`` seconds counts as the timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import database
from harness import ROOT, Result, import_impl, main

HERE = Path(__file__).resolve().parent
CLIENT_PYTHON = ROOT / ".venv" / "bin" / "python"


def start_postgres():
    """A private cluster, or ``None`` to use the server the ``PG*`` variables name."""
    sys.path.insert(0, str(ROOT))
    from tests.layers.private_postgres import PrivatePostgres, bin_dir

    found = bin_dir()
    if found is None:
        return None
    server = PrivatePostgres(found)
    server.start()
    os.environ.update(PGHOST="127.0.0.1", PGPORT=str(server.port), PGUSER="postgres")
    os.environ["PGDATABASE"] = "postgres"
    return server


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(impl: str, layer: str, config: dict, port: int, log: Path):
    apps = ["channels_app"] if impl == "ours" else ["channels", "channels_postgres"]
    bench_settings = {
        "INSTALLED_APPS": apps,
        "DATABASES": database.databases(impl),
        "CHANNEL_LAYERS": {"default": {"BACKEND": layer, "CONFIG": config}},
        "SECRET_KEY": "benchmark-only",
        "ALLOWED_HOSTS": ["*"],
        "USE_TZ": True,
    }
    env = dict(os.environ, BENCH_IMPL=impl, BENCH_SETTINGS=json.dumps(bench_settings))
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
    daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    return subprocess.Popen(
        [*daphne, "broadcast_app:application"],
        cwd=HERE,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def broadcast(impl: str, args: argparse.Namespace):
    server = start_postgres()
    daphne = clients = None
    try:
        layer_path, config = await asyncio.to_thread(database.prepare, impl)
        layer = import_impl(layer_path, impl)(**config)
        port = free_port()
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"ws_broadcast_{impl}.log"
        daphne = serve(impl, layer_path, config, port, log)
        await asyncio.sleep(2)
        clients = await asyncio.create_subprocess_exec(
            str(CLIENT_PYTHON),
            str(HERE / "broadcast_clients.py"),
            f"ws://127.0.0.1:{port}/ws/",
            str(args.clients),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        line = await asyncio.wait_for(clients.stdout.readline(), 120)
        assert line.strip() == b"ready", line
        await asyncio.sleep(1)
        timings = []
        for seq in range(args.rounds):
            start = time.time()
            await layer.group_send(
                "broadcast", {"type": "bench.message", "text": f"seq:{seq}"}
            )
            try:
                while True:
                    done = json.loads(
                        await asyncio.wait_for(clients.stdout.readline(), args.timeout)
                    )
                    if done["seq"] == seq:
                        break
                timings.append((done["at"] - start) * 1000)
            except asyncio.TimeoutError:
                timings.append(args.timeout * 1000)
        await asyncio.sleep(args.settle)
        clients.stdin.write(b"stop\n")
        await clients.stdin.drain()
        while True:
            summary = json.loads(await asyncio.wait_for(clients.stdout.readline(), 60))
            if "duplicates" in summary:
                break
        if hasattr(layer, "close"):
            await layer.close()
    finally:
        if clients is not None and clients.returncode is None:
            clients.kill()
            await clients.wait()
        if daphne is not None:
            daphne.terminate()
            daphne.wait(10)
        if server is not None:
            await asyncio.to_thread(server.destroy)
    title = f"{layer_path} behind Daphne, {args.clients} clients in one group"
    return title, [
        Result("time per broadcast, median", statistics.median(timings), "ms", False),
        Result("duplicate deliveries", summary["duplicates"], "copies", False),
        Result("missing deliveries", summary["missing"], "messages", False),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--timeout", type=float, default=60, help="seconds a round may take"
    )
    parser.add_argument(
        "--settle", type=float, default=3, help="seconds to wait for late copies"
    )


if __name__ == "__main__":
    main(
        broadcast,
        description=__doc__,
        add_arguments=add_arguments,
        channels_requirements=database.CHANNELS_POSTGRES_REQUIREMENTS,
    )
