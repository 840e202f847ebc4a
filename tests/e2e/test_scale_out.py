"""Scale-out: several runserver and runworker processes sharing one layer."""

import asyncio
import json
import signal

import pytest
import websockets

from tests.e2e.test_runserver import get
from tests.serving import E2EProject

pytestmark = pytest.mark.e2e

LAYERS = ["redis", "postgres"]


@pytest.fixture(params=LAYERS)
def project(request, tmp_path):
    project = E2EProject(tmp_path, request.param)
    yield project
    project.stop_all()


async def receive_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def test_group_broadcast_reaches_clients_on_either_server(project):
    first = project.runserver("--noworker")
    second = project.runserver("--noworker")
    path = "/ws/group/shared/"
    async with (
        websockets.connect(first.ws_url + path) as on_first,
        websockets.connect(second.ws_url + path) as on_second,
    ):
        await on_first.send(json.dumps({"text": "from the first server"}))
        got = [await receive_json(on_first), await receive_json(on_second)]
        assert [m["text"] for m in got] == ["from the first server"] * 2
        # Each client is served by its own server process.
        assert {m["pid"] for m in got} == {first.process.pid, second.process.pid}

        await on_second.send(json.dumps({"text": "and back"}))
        for ws in (on_first, on_second):
            assert (await receive_json(ws))["text"] == "and back"

        # A view on one server reaches clients of both.
        await asyncio.to_thread(get, f"{second.url}/e2e/broadcast/shared/?text=view")
        for ws in (on_first, on_second):
            assert (await receive_json(ws))["text"] == "view"


def test_restarted_worker_picks_up_the_queued_messages(project):
    first = project.runserver("--noworker")
    second = project.runserver("--noworker")
    worker = project.runworker("e2e-tasks")
    for n in range(10):
        server = (first, second)[n % 2]
        assert get(f"{server.url}/e2e/send/e2e-tasks/?n={n}")[0] == 200
    project.wait_for_lines("e2e-tasks.log", 10)
    assert worker.stop(signal.SIGTERM) == 0

    # Sent while no worker runs: they wait in the layer.
    for n in range(10, 20):
        assert get(f"{first.url}/e2e/send/e2e-tasks/?n={n}")[0] == 200
    assert len(project.lines("e2e-tasks.log")) == 10

    restarted = project.runworker("e2e-tasks")
    lines = project.wait_for_lines("e2e-tasks.log", 20)
    handled = [tuple(map(int, line.split())) for line in lines]
    assert [n for n, _ in handled] == list(range(20))
    assert {pid for n, pid in handled if n < 10} == {worker.process.pid}
    assert {pid for n, pid in handled if n >= 10} == {restarted.process.pid}
