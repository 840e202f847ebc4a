"""Metrics scraped from real processes after real traffic: a Daphne server
(WebSockets, handler errors, layer backpressure) and ``runworker
--metrics-port`` (in-flight, outcomes, queue depth)."""

import asyncio
import json

import pytest
import websockets

from tests.e2e.test_runserver import get
from tests.servers import free_port, start_daphne
from tests.serving import E2EProject
from tests.support.scrape import fetch, value
from tests.support.waiting import eventually, eventually_sync

pytestmark = pytest.mark.e2e

ECHO = {"route": "ws/echo/"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("metrics")
    server = start_daphne(
        tmp_path,
        "testproject.serving_e2e.asgi:application",
        DJANGO_SETTINGS_MODULE="testproject.serving_e2e.settings",
        E2E_LAYER="memory",
        E2E_OUTPUT_DIR=str(tmp_path),
    )
    yield server
    server.stop()


async def scraped(server, name, expected, **labels):
    """Wait until the server's /metrics/ reports ``expected`` for the sample."""

    async def matches():
        samples = await asyncio.to_thread(fetch, f"{server.url}/metrics/")
        return value(samples, name, **labels) == expected

    def describe():
        return value(fetch(f"{server.url}/metrics/"), name, **labels)

    await eventually(matches, timeout=10, describe=describe)


async def test_websocket_connections_frames_and_bytes(server):
    frames = ["hello", "héllo", b"\x00" * 10]  # 5 + 6 (UTF-8) + 10 bytes
    sockets = [await websockets.connect(f"{server.ws_url}/ws/echo/") for _ in range(4)]
    try:
        for ws in sockets:
            for frame in frames:
                await ws.send(frame)
                assert await asyncio.wait_for(ws.recv(), 10) == frame
        gauge = "channels_app_connections_open"
        await scraped(server, gauge, 4, protocol="websocket", **ECHO)
        for direction in ("in", "out"):
            await scraped(
                server,
                "channels_app_websocket_messages_total",
                12,
                direction=direction,
                **ECHO,
            )
            await scraped(
                server,
                "channels_app_websocket_bytes_total",
                84,
                direction=direction,
                **ECHO,
            )
        await scraped(
            server,
            "channels_app_handler_duration_seconds_count",
            12,
            consumer="EchoConsumer",
            handler="websocket_receive",
        )
        for ws in sockets[:2]:
            await ws.close()
        await scraped(server, gauge, 2, protocol="websocket", **ECHO)
    finally:
        for ws in sockets:
            await ws.close()
    await scraped(server, gauge, 0, protocol="websocket", **ECHO)


async def test_a_failing_handler_is_counted(server):
    for n in range(2):
        async with websockets.connect(f"{server.ws_url}/ws/crash/") as ws:
            await ws.send(f"boom {n}")
            with pytest.raises(websockets.ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 10)
    await scraped(
        server,
        "channels_app_handler_errors_total",
        2,
        consumer="CrashingConsumer",
        handler="websocket_receive",
    )


async def test_channel_full_and_full_group_members_are_counted(server):
    layer = {"layer": "InMemoryChannelLayer"}
    async with websockets.connect(f"{server.ws_url}/ws/probe/") as ws:

        async def ask(command):
            await ws.send(json.dumps(command))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

        # The in-memory layer's default capacity is 100.
        assert await ask({"fill": "metrics.sink", "n": 103}) == {"sent": 100, "full": 3}
        await scraped(server, "channels_app_layer_channel_full_total", 3, **layer)
        await scraped(server, "channels_app_layer_sends_total", 100, **layer)
        await ask({"join": "metrics-room", "channel": "metrics.sink"})
        for _ in range(2):
            assert await ask({"group_send": "metrics-room"}) == {"missed": 1}
    full_members = "channels_app_layer_group_send_full_members_total"
    await scraped(server, full_members, 2, **layer)
    await scraped(server, "channels_app_layer_group_sends_total", 2, **layer)


def test_runworker_serves_in_flight_outcomes_and_queue_depth(tmp_path):
    project = E2EProject(tmp_path, "sqlite")
    try:
        server = project.runserver("--noworker")
        port = free_port()
        project.runworker("e2e-tasks", "--metrics-port", str(port))
        url = f"http://127.0.0.1:{port}/metrics"

        def at(expected):
            def reached():
                samples = fetch(url)
                found = {
                    "in_flight": value(
                        samples, "channels_app_worker_in_flight", channel="e2e-tasks"
                    ),
                    "handled": value(
                        samples,
                        "channels_app_worker_messages_total",
                        channel="e2e-tasks",
                        outcome="handled",
                    ),
                    "depth": value(
                        samples, "channels_app_worker_queue_depth", channel="e2e-tasks"
                    ),
                }
                at.last = found
                return found == expected

            eventually_sync(reached, timeout=20, describe=lambda: at.last)

        def queue(n, **params):
            query = "&".join([f"n={n}", *(f"{k}={v}" for k, v in params.items())])
            assert get(f"{server.url}/e2e/send/e2e-tasks/?{query}")[0] == 200

        for n in range(3):
            queue(n)
        project.wait_for_lines("e2e-tasks.log", 3)
        at({"in_flight": 0, "handled": 3, "depth": 0})
        queue(3, wait=1)
        project.wait_for_lines("e2e-tasks.log", 4)  # "waiting 3": in flight
        queue(4)
        queue(5)
        at({"in_flight": 1, "handled": 3, "depth": 2})
        (project.output / "e2e-tasks.go").touch()
        project.wait_for_lines("e2e-tasks.log", 7)
        at({"in_flight": 0, "handled": 6, "depth": 0})
    finally:
        project.stop_all()


def test_health_through_the_server(server):
    status, body = get(f"{server.url}/health/layers/")
    assert status == 200
    assert json.loads(body) == {"layer": "ok", "layers": {"default": "ok"}}
