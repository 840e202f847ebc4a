"""Production serving: ``manage.py serve`` on 1 and 2 processes against Channels 4.

Usage (from the repository root, after ``make test`` made .venv; Redis on
127.0.0.1:6379, or ``--redis URL``):

    .venv/bin/python benchmarks/serve.py                  # both implementations
    .venv/bin/python benchmarks/serve.py --impl ours --clients 5000

Each implementation serves the project in ``benchmarks/wsbench`` (the same
consumer code, imported from ``channels_app`` or ``channels``) on a
channels_redis layer with a fresh key prefix: ours through ``manage.py
serve --processes N``, Channels 4 through its ``runserver``, which is one
Daphne process.  The load comes from ``--client-processes`` separate client
processes, and the CPU each side used is printed next to every rate: on a
2-core machine the clients compete with the server, and a line saying the
clients were saturated means the rate measured them rather than the server.

Measured:
- echo with ``--connections`` connections (each sends its next message when
  the echo is back): messages per second, for serve with 1 process and with
  2 (ours), and for Daphne (Channels 4);
- broadcast: ``group_send`` from this process to ``--clients`` connected
  clients; time until the last client has it (median of ``--rounds``) and
  the server CPU it took;
- memory per idle connection with ``--idle`` open (one server process): RSS
  growth per connection through the echo consumer and through a bare ASGI
  function on the same server; the difference is what the consumer stack
  costs per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import ROOT, Result, import_impl, main
from ws import CLIENTS, PROJECT, cpu_seconds, free_port, rss_kb

HERE = Path(__file__).resolve().parent
CLIENT_PYTHON = str(ROOT / ".venv" / "bin" / "python")
REDIS_LAYER = "channels_redis.core.RedisChannelLayer"
#: Seconds a broadcast may take to reach every client before the run says so.
ROUND_TIMEOUT = 20


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(word) for word in path.read_text().split()] if path.exists() else []


class Served:
    """The bench project behind ``serve`` (ours) or ``runserver`` (Channels 4)."""

    def __init__(
        self,
        impl: str,
        processes: int,
        args: argparse.Namespace,
        workdir: str,
        layer: str = REDIS_LAYER,
    ):
        self.port = free_port()
        self.config = (
            {"hosts": [args.redis], "prefix": f"b{uuid.uuid4().hex[:8]}"}
            if layer == REDIS_LAYER
            else {}
        )
        env = dict(
            os.environ,
            BENCH_IMPL=impl,
            BENCH_LAYER=layer,
            BENCH_CONFIG=json.dumps(self.config),
            BENCH_SQLITE=os.path.join(workdir, "bench.sqlite3"),
            PYTHONPATH=os.pathsep.join([str(HERE), str(PROJECT)]),
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=PROJECT,
            env=env,
            check=True,
        )
        address = f"127.0.0.1:{self.port}"
        if impl == "ours":
            command = ["serve", address, "--processes", str(processes)]
        else:
            command = ["runserver", address, "--noreload"]
        self.log_path = os.path.join(workdir, f"server-{impl}-{processes}.log")
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *command],
            cwd=PROJECT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        ready = "Serving with" if impl == "ours" else "development server at"
        deadline = time.monotonic() + 60
        while ready not in Path(self.log_path).read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(Path(self.log_path).read_text())
            time.sleep(0.1)

    @property
    def pids(self) -> list[int]:
        """The processes doing the serving (the supervisor runs no application)."""
        return children(self.process.pid) or [self.process.pid]

    def cpu(self) -> float:
        # The supervisor and its children; for a single process, that process once.
        return sum(cpu_seconds(pid) for pid in {self.process.pid, *self.pids})

    def rss(self) -> int:
        return sum(rss_kb(pid) for pid in self.pids)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{path}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def spread(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def children_cpu() -> float:
    """CPU time of the reaped child processes (the clients, once they exit)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@functools.cache
def c_echo_client() -> str | None:
    """``ws_echo_load.c`` compiled (once per change of the source), or None.

    The C client costs the machine only its system calls; see its header for
    why that decides the 2-process figure on a 2-core machine.
    """
    source = HERE / "ws_echo_load.c"
    binary = HERE / "build" / "ws_echo_load"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return str(binary)
    binary.parent.mkdir(exist_ok=True)
    compiler = os.environ.get("CC", "cc")
    try:
        subprocess.run(
            [compiler, "-O2", "-Wall", "-o", str(binary), str(source)], check=True
        )
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"note: no C load client ({error}); using Python's", file=sys.stderr)
        return None
    return str(binary)


def echo_command(server: Served, connections: int, args: argparse.Namespace):
    """The command of one echo client process: the C client unless told not to."""
    load = [str(connections), str(args.seconds)]
    binary = c_echo_client() if args.load_client == "c" else None
    if binary is not None:
        return [binary, "127.0.0.1", str(server.port), "/echo/", *load]
    return [CLIENT_PYTHON, str(CLIENTS), "echo", server.url("echo/"), *load]


def echo(server: Served, args: argparse.Namespace) -> dict:
    """Echo from several client processes at once; rates summed, CPU of both sides."""
    server_cpu, client_cpu = server.cpu(), children_cpu()
    started = time.monotonic()
    clients = [
        subprocess.Popen(
            echo_command(server, n, args), stdout=subprocess.PIPE, text=True
        )
        for n in spread(args.connections, args.client_processes)
    ]
    runs = []
    for client in clients:
        output, _ = client.communicate()
        runs.append(json.loads(output.strip().splitlines()[-1]))
    wall = time.monotonic() - started
    return {
        "rate": sum(run["rate"] for run in runs),
        "p50_ms": max(run["p50_ms"] for run in runs),
        "server_cpu": (server.cpu() - server_cpu) / wall,
        "client_cpu": (children_cpu() - client_cpu) / wall,
        "lost": sum(run.get("lost", 0) for run in runs),
    }


def best_echo(server: Served, args: argparse.Namespace) -> dict:
    """The best of ``--repeat`` runs: a busy neighbour only ever slows one down."""
    return max(
        (echo(server, args) for _ in range(args.repeat)), key=lambda r: r["rate"]
    )


async def broadcast(
    impl: str, server: Served, args: argparse.Namespace, members: int
) -> dict:
    layer = import_impl(REDIS_LAYER, impl)(**server.config)
    clients = [
        await asyncio.create_subprocess_exec(
            CLIENT_PYTHON,
            str(HERE / "broadcast_clients.py"),
            server.url("broadcast/"),
            str(n),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for n in spread(members, args.client_processes)
    ]
    for client in clients:
        line = await asyncio.wait_for(client.stdout.readline(), 300)
        if line.strip() != b"ready":
            # Some clients could not connect (refused, or a handshake that
            # timed out): a result in itself, not a reason to stop the run.
            for other in clients:
                if other.returncode is None:
                    other.kill()
                await other.wait()
            await layer.flush()
            print(f"note: not all {members} clients could connect", file=sys.stderr)
            nan = float("nan")
            return {"median_ms": nan, "cpu_ms": nan, "missing": nan}
    timings, cpu = [], []
    for seq in range(args.rounds):
        used = server.cpu()
        start = time.time()
        await layer.group_send("bench", {"type": "bench.message", "text": f"seq:{seq}"})
        try:
            last = await asyncio.wait_for(everyone_has(clients, seq), ROUND_TIMEOUT)
        except asyncio.TimeoutError:
            # A connection the server dropped never gets it: the summary
            # below counts what is missing.
            print(
                f"note: broadcast {seq} to {members} did not reach every client "
                f"within {ROUND_TIMEOUT} s",
                file=sys.stderr,
            )
            break
        timings.append((last - start) * 1000)
        cpu.append((server.cpu() - used) * 1000)
    missing = 0
    for client in clients:
        client.stdin.write(b"stop\n")
        await client.stdin.drain()
        summary = {"seq": None}
        while "seq" in summary:  # a broadcast that completed after its timeout
            summary = json.loads(await asyncio.wait_for(client.stdout.readline(), 60))
        missing += summary["missing"] + summary["duplicates"]
        await client.wait()
    await layer.flush()
    nan = float("nan")
    return {
        "median_ms": statistics.median(timings) if timings else nan,
        "cpu_ms": statistics.median(cpu) if cpu else nan,
        "missing": missing,
    }


async def everyone_has(clients: list, seq: int) -> float:
    """When the last client process saw broadcast ``seq`` reach all its clients."""
    last = 0.0
    for client in clients:
        while True:
            done = json.loads(await client.stdout.readline())
            if done["seq"] == seq:
                last = max(last, done["at"])
                break
    return last


def idle_memory(server: Served, path: str, connections: int) -> float:
    """Server RSS growth per idle connection on ``path``, in KB."""
    subprocess.run(
        [CLIENT_PYTHON, str(CLIENTS), "echo", server.url(path), "20", "0.5"],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    before = server.rss()
    holders = [
        subprocess.Popen(
            [CLIENT_PYTHON, str(CLIENTS), "idle", server.url(path), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in spread(connections, 2)
    ]
    connected = sum(json.loads(h.stdout.readline())["connected"] for h in holders)
    time.sleep(2)  # let the server finish its accept work before reading RSS
    after = server.rss()
    for holder in holders:
        holder.stdin.close()
        holder.wait(120)
    return (after - before) / connected


async def measure(impl: str, args: argparse.Namespace):
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="servebench-") as workdir:
        layouts = [1, 2] if impl == "ours" else [1]
        rates = {}
        for processes in layouts:
            server = Served(impl, processes, args, workdir)
            try:
                run = best_echo(server, args)
                rates[processes] = run["rate"]
                label = f"{processes} process" + ("es" if processes > 1 else "")
                # Channels' one Daphne process pairs with our 1-process row.
                results += [
                    Result(
                        f"echo, {args.connections} conns, {label}",
                        run["rate"],
                        "msgs/s",
                    ),
                    Result(
                        f"  server CPU, {label}",
                        run["server_cpu"] * 100,
                        "%",
                        higher_is_better=False,
                    ),
                    Result(
                        f"  client CPU ({args.client_processes} procs), {label}",
                        run["client_cpu"] * 100,
                        "%",
                        higher_is_better=False,
                    ),
                ]
                if run["lost"]:
                    results.append(
                        Result(
                            f"  connections the server closed, {label}",
                            run["lost"],
                            "",
                            higher_is_better=False,
                        )
                    )
                if run["client_cpu"] > 0.9 * args.client_processes:
                    print(
                        f"note: the clients were saturated ({label})", file=sys.stderr
                    )
                if processes == 1:
                    redis_consumer = idle_memory(server, "echo/", args.idle)
                    results.append(
                        Result(
                            f"memory per idle connection ({args.idle}), consumer "
                            f"on channels_redis",
                            redis_consumer,
                            "KB",
                            higher_is_better=False,
                        )
                    )
                if processes == layouts[-1]:
                    for members in args.clients:
                        fan = await broadcast(impl, server, args, members)
                        results += [
                            Result(
                                f"broadcast to {members}, all received",
                                fan["median_ms"],
                                "ms",
                                higher_is_better=False,
                            ),
                            Result(
                                f"  server CPU per broadcast to {members}",
                                fan["cpu_ms"],
                                "ms",
                                higher_is_better=False,
                            ),
                            Result(
                                f"  missing or duplicated deliveries ({members})",
                                fan["missing"],
                                "",
                                higher_is_better=False,
                            ),
                        ]
            finally:
                server.stop()
        results += memory_results(impl, args, workdir)
        if impl == "ours":
            results.append(
                Result("echo speed-up, 2 processes / 1", rates[2] / rates[1], "x")
            )
    title = "serve (ours) / Daphne runserver (Channels 4), channels_redis layer"
    return title, results


def memory_results(impl: str, args: argparse.Namespace, workdir: str) -> list[Result]:
    """Idle-connection memory on the in-memory layer: the stack's own cost.

    Each path gets a fresh server: memory freed by one set of connections
    would be reused by the next, and the second figure would read too low.
    """
    figures = {}
    for path in ("echo/", "bare/"):
        server = Served(
            impl, 1, args, workdir, layer="channels_app.layers.InMemoryChannelLayer"
        )
        try:
            figures[path] = idle_memory(server, path, args.idle)
        finally:
            server.stop()
    consumer, bare = figures["echo/"], figures["bare/"]
    label = f"memory per idle connection ({args.idle}), in-memory layer"
    return [
        Result(f"{label}, consumer", consumer, "KB", higher_is_better=False),
        Result(f"{label}, bare ASGI", bare, "KB", higher_is_better=False),
        Result("  added by the consumer stack", consumer - bare, "KB", False),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--load-client",
        choices=["c", "python"],
        default="c",
        help="echo load client: ws_echo_load.c (default) or ws_clients.py",
    )
    parser.add_argument(
        "--clients",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[500, 5000],
        help="broadcast group sizes, comma-separated (default: 500,5000)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=int, default=5000)


if __name__ == "__main__":
    main(
        measure,
        description=__doc__,
        add_arguments=add_arguments,
        channels_requirements=["channels[daphne]>=4,<5", "channels-redis>=4.2"],
    )
