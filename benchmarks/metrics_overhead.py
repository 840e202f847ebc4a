"""What recording Prometheus metrics costs a WebSocket echo consumer.

Usage (from the repository root, with .venv made and prometheus_client in it):

    .venv/bin/python benchmarks/metrics_overhead.py --runs 5

Each run is a fresh process, metrics on (prometheus_client importable) or
off (blocked through ``sys.modules``, so channels_app binds its no-ops), the
two alternating so machine noise hits both alike.  A run reports the best
of five rounds in CPU time; the medians of the runs are compared.  On the
shared 2-core machine two identical runs still differ by a few percent, so
use ``--runs 9`` or more before reading anything into a difference under 5%.

No server and no communicator: each connection is an AsyncWebsocketConsumer
called directly with a ``receive`` that hands it the next frame at once and
a ``send`` that only counts, on the in-memory layer.  That leaves the
consumer's own path per frame (dispatch, handler, send), which is where the
metrics' per-frame work lands, so the ratio is the worst case: through a
real server the same absolute cost is diluted by the network and protocol
work (and on 2 shared cores a server's numbers vary by more than 5%).
There is no ``--impl channels`` run: Django Channels has no such metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def echo_app():
    from channels_app.generic.websocket import AsyncWebsocketConsumer

    class Echo(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            await self.send(text_data=text_data, bytes_data=bytes_data)

    return Echo.as_asgi()


async def through_communicator(connections: int, frames: int) -> float:
    """Frames per CPU second echoed through the testing communicator."""
    from channels_app.testing import WebsocketCommunicator

    app = echo_app()
    text = "x" * 32
    started = time.process_time()
    for _ in range(connections):
        communicator = WebsocketCommunicator(app, "/ws/echo/")
        connected, _ = await communicator.connect()
        assert connected
        for _ in range(frames):
            await communicator.send_to(text_data=text)
            assert await communicator.receive_from() == text
        await communicator.disconnect()
    return connections * frames / (time.process_time() - started)


async def called_directly(connections: int, frames: int) -> float:
    """Frames per CPU second echoed by ``connections`` consumers, one at a time."""
    app = echo_app()
    text = "x" * 32
    sent = 0

    async def one_connection() -> None:
        incoming = iter(
            [
                {"type": "websocket.connect"},
                *({"type": "websocket.receive", "text": text} for _ in range(frames)),
                {"type": "websocket.disconnect", "code": 1000},
            ]
        )

        async def receive():
            return next(incoming)

        async def send(message):
            nonlocal sent
            sent += 1

        scope = {"type": "websocket", "path": "/ws/echo/", "route": "ws/echo/"}
        await app(scope, receive, send)

    # CPU time of this process: another process's load on the shared cores
    # then counts far less than in wall-clock time.
    started = time.process_time()
    for _ in range(connections):
        await one_connection()
    took = time.process_time() - started
    assert sent == connections * (frames + 1)  # the accept, then every echo
    return connections * frames / took


#: Daphne serving the demo project, with prometheus_client blocked first
#: when metrics are off.
SERVE = (
    "import sys\n"
    "if sys.argv.pop(1) == 'off':\n"
    "    sys.modules['prometheus_client'] = None\n"
    "from daphne.cli import CommandLineInterface\n"
    "CommandLineInterface.entrypoint()\n"
)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_daphne(mode: str) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "testproject"), str(ROOT)]),
        "DEMO_SQLITE_PATH": os.path.join(tempfile.mkdtemp(), "bench.sqlite3"),
    }
    arguments = ["-b", "127.0.0.1", "-p", str(port), "testproject.asgi:application"]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, mode, *arguments],
        cwd=ROOT / "testproject",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, port


async def echo_load(pid: int, port: int, connections: int, frames: int) -> float:
    """Frames per second of the server's CPU time: the best of three rounds."""
    import websockets

    url = f"ws://127.0.0.1:{port}/ws/echo/"
    for _ in range(600):  # until it listens (at most a minute)
        try:
            async with websockets.connect(url) as ws:
                await ws.send("warm")
                await ws.recv()
            break
        except OSError:
            await asyncio.sleep(0.1)
    text = "x" * 32

    async def client() -> None:
        async with websockets.connect(url) as ws:
            for _ in range(frames):
                await ws.send(text)
                assert await ws.recv() == text

    rates = []
    for _ in range(3):
        before = cpu_seconds(pid)
        await asyncio.gather(*(client() for _ in range(connections)))
        rates.append(connections * frames / (cpu_seconds(pid) - before))
    return max(rates)


def through_daphne(mode: str, connections: int, frames: int) -> float:
    """Echo through a real Daphne, rated by the *server's* CPU time.

    The clients run here; only the server process's CPU time counts, which
    stays steady when the neighbours' load makes wall-clock rates wander.
    """
    server, port = start_daphne(mode)
    try:
        return asyncio.run(echo_load(server.pid, port, connections, frames))
    finally:
        server.terminate()
        server.wait(10)


DRIVERS = {"communicator": through_communicator, "direct": called_directly}


def child(mode: str, driver: str, connections: int, frames: int) -> None:
    if driver == "daphne":
        rate = through_daphne(mode, connections, frames)
        print(json.dumps({"mode": mode, "rate": rate}))
        return
    if mode == "off":
        sys.modules["prometheus_client"] = None  # type: ignore[assignment]
    sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["channels_app"],
        SECRET_KEY="benchmark-only",
        CHANNEL_LAYERS={
            "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
        },
    )
    django.setup()
    from channels_app import metrics

    assert metrics.ENABLED is (mode == "on"), "prometheus_client missing for 'on'"
    # The best of a few rounds, as timeit does: interference from the
    # neighbours only ever slows a round down.
    rate = max(asyncio.run(DRIVERS[driver](connections, frames)) for _ in range(5))
    print(json.dumps({"mode": mode, "rate": rate}))


def run(mode: str, args: argparse.Namespace) -> float:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--driver",
            args.driver,
            "--connections",
            str(args.connections),
            "--frames",
            str(args.frames),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(output.strip().splitlines()[-1])["rate"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument(
        "--driver",
        choices=sorted([*DRIVERS, "daphne"]),
        default="communicator",
        help="communicator: WebsocketCommunicator (the default); direct: the "
        "consumer called with bare receive/send, the worst case; daphne: a real "
        "server, rated by its own CPU time",
    )
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.driver, args.connections, args.frames)
        return
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.runs):
        for mode in ("off", "on"):
            rates[mode].append(run(mode, args))
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(
        f"WebSocket echo ({args.driver}): {args.connections} connections x "
        f"{args.frames} frames, {args.runs} runs each, frames per CPU second"
    )
    for mode in ("off", "on"):
        runs = ", ".join(f"{rate:,.0f}" for rate in rates[mode])
        median = statistics.median(rates[mode])
        print(f"  metrics {mode:>3}: {median:>9,.0f} frames/s   runs: {runs}")
    print(f"  overhead: {(off - on) / off * 100:+.1f}% (target: within 5%)")


if __name__ == "__main__":
    main()
