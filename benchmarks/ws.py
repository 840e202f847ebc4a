"""WebSocket benchmark: our runserver against Django Channels 4's, in one run.

Usage (from the repository root, after ``make test`` or ``make lint`` made .venv):

    .venv/bin/python benchmarks/ws.py                   # in-memory layer, both
    .venv/bin/python benchmarks/ws.py --impl ours       # only channels_app
    .venv/bin/python benchmarks/ws.py --seconds 10 --idle 2000
    .venv/bin/python benchmarks/ws.py \\
        --layer channels_redis.core.RedisChannelLayer \\
        --config '{"hosts": ["redis://127.0.0.1:6379/1"], "capacity": 1000}'

Each implementation serves the project in ``benchmarks/wsbench`` -- the same
consumer code, imported from ``channels_app`` or from ``channels`` -- through
``manage.py runserver`` (ours, or Daphne's for Channels 4, which runs in
``.venv-bench-channels``, created with pip on first use).  The load comes
from ``benchmarks/ws_clients.py`` in a separate process; with two or more
CPUs the server and the clients are pinned to different ones.

Measured, in this order, on one server process per implementation:
- memory per idle connection: server RSS growth over ``--idle`` open,
  accepted echo connections, divided by their number (KB);
- echo: messages per second, the server's CPU time per message (µs; steadier
  than rates on a busy machine), and round-trip p50/p99 (ms), with 50 and
  with 200 connections each sending its next message once the echo is back;
  the best of ``--repeat`` runs of ``--seconds`` each;
- the same echo from a bare ASGI function instead of a consumer: what the
  server itself can do, for scale;
- broadcast: one member's message fanned out by ``group_send`` to
  ``--members`` connected clients; the time until every client has it,
  median of ``--rounds`` (ms).

``--layer``/``--config`` choose the channel layer as in benchmarks/layers.py
(a ``channels_app.`` prefix reads as ``channels.`` for Channels 4);
``--databases`` (JSON for DATABASES; the bench project is migrated first)
serves a database layer, e.g. on PostgreSQL (``--impl ours``: Channels 4 has
no database layer)::

    .venv/bin/python benchmarks/ws.py --impl ours \\
        --layer channels_app.layers.database.DatabaseChannelLayer \\
        --databases '{"default": {"ENGINE": "django.db.backends.postgresql",
                      "HOST": "127.0.0.1", "USER": "postgres", "NAME": "bench"}}'
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import Result, add_layer_arguments, main

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "wsbench"
CLIENTS = HERE / "ws_clients.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pin(pid: int, cpu: int) -> None:
    """Keep ``pid`` on one CPU, when there are at least two to share."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(pid, {cpus[cpu % len(cpus)]})


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Server:
    """``manage.py runserver`` of the bench project, for one implementation."""

    def __init__(self, impl: str, args: argparse.Namespace, workdir: str) -> None:
        self.port = free_port()
        env = dict(
            os.environ,
            BENCH_IMPL=impl,
            BENCH_LAYER=args.layer,
            BENCH_CONFIG=args.config,
            BENCH_DATABASES=args.databases,
            BENCH_SQLITE=os.path.join(workdir, "bench.sqlite3"),
            PYTHONPATH=os.pathsep.join([str(HERE), str(PROJECT)]),
        )
        self.log = open(os.path.join(workdir, f"runserver-{impl}.log"), "w+")  # noqa: SIM115
        # A database layer needs its tables.
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=PROJECT,
            env=env,
            check=True,
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runserver",
                f"127.0.0.1:{self.port}",
                "--noreload",
            ],
            cwd=PROJECT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        pin(self.process.pid, 0)
        self._wait_until_listening()

    def _wait_until_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"runserver exited early:\n{self.log.read()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"runserver did not listen within {timeout}s")

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{path}"

    def banner(self) -> str:
        self.log.flush()
        self.log.seek(0)
        for line in self.log.read().splitlines():
            if "development server at" in line:
                return line.split(" development server")[0].replace("Starting ", "")
        return "runserver"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def run_clients(*argv: str) -> dict:
    process = subprocess.Popen(
        [sys.executable, str(CLIENTS), *argv], stdout=subprocess.PIPE, text=True
    )
    pin(process.pid, 1)
    output, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"ws_clients.py {' '.join(argv)} failed")
    return json.loads(output.strip().splitlines()[-1])


def idle_memory(server: Server, connections: int) -> float:
    """Server RSS growth per idle connection, in KB."""
    run_clients("echo", server.url("echo/"), "20", "0.5")  # warm up code paths
    time.sleep(1)
    before = rss_kb(server.process.pid)
    holder = subprocess.Popen(
        [sys.executable, str(CLIENTS), "idle", server.url("echo/"), str(connections)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pin(holder.pid, 1)
    connected = json.loads(holder.stdout.readline())["connected"]
    time.sleep(2)  # let the server settle
    after = rss_kb(server.process.pid)
    holder.stdin.close()
    holder.wait(60)
    return (after - before) / connected


def best_echo(
    server: Server, path: str, connections: int, args: argparse.Namespace
) -> tuple[dict, float]:
    """The fastest of ``--repeat`` echo runs, and the least server CPU per message.

    Anything else running on the machine only ever slows a run down, so the
    best of a few is the closest to what the code itself can do.
    """
    runs, cpu_per_message = [], []
    for _ in range(args.repeat):
        used = cpu_seconds(server.process.pid)
        run = run_clients("echo", server.url(path), str(connections), str(args.seconds))
        used = cpu_seconds(server.process.pid) - used
        runs.append(run)
        cpu_per_message.append(used / run["total"] * 1e6)
    return max(runs, key=lambda run: run["rate"]), min(cpu_per_message)


async def measure(impl: str, args: argparse.Namespace):
    with tempfile.TemporaryDirectory(prefix="wsbench-") as workdir:
        server = Server(impl, args, workdir)
        try:
            results = [
                Result(
                    f"memory per idle connection, {args.idle} open",
                    idle_memory(server, args.idle),
                    "KB",
                    higher_is_better=False,
                )
            ]
            for connections in (50, 200):
                echo, cpu = best_echo(server, "echo/", connections, args)
                results += [
                    Result(f"echo, {connections} connections", echo["rate"], "msgs/s"),
                    Result(
                        f"server CPU per echo, {connections} connections",
                        cpu,
                        "µs",
                        higher_is_better=False,
                    ),
                    Result(
                        f"echo p50, {connections} connections",
                        echo["p50_ms"],
                        "ms",
                        higher_is_better=False,
                    ),
                    Result(
                        f"echo p99, {connections} connections",
                        echo["p99_ms"],
                        "ms",
                        higher_is_better=False,
                    ),
                ]
            bare, _ = best_echo(server, "bare/", 50, args)
            results.append(
                Result(
                    "echo, 50 connections, bare ASGI app: the server's ceiling",
                    bare["rate"],
                    "msgs/s",
                )
            )
            fanout = run_clients(
                "broadcast",
                server.url("broadcast/"),
                str(args.members),
                str(args.rounds),
            )
            results.append(
                Result(
                    f"broadcast to {args.members} clients, all received",
                    fanout["median_ms"],
                    "ms",
                    higher_is_better=False,
                )
            )
            title = f"{server.banner()}, layer {args.layer.rsplit('.', 1)[-1]}"
        finally:
            server.stop()
    return title, results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_layer_arguments(parser)
    parser.add_argument(
        "--databases",
        default="",
        help="DATABASES as JSON, for a database layer (default: a SQLite file)",
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="length of each echo run"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="echo runs per configuration; the best counts (default: 3)",
    )
    parser.add_argument(
        "--idle", type=int, default=2000, help="idle connections for the memory test"
    )
    parser.add_argument(
        "--members", type=int, default=500, help="clients in the broadcast group"
    )
    parser.add_argument(
        "--rounds", type=int, default=20, help="broadcasts to time (median)"
    )


if __name__ == "__main__":
    main(
        measure,
        description=__doc__,
        add_arguments=add_arguments,
        channels_requirements=["channels[daphne]>=4,<5", "channels-redis>=4.2"],
    )
