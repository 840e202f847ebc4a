"""``manage.py runserver`` as a real process: Daphne, workers, limits, lifespan."""

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest
import websockets

from tests.servers import TESTPROJECT
from tests.serving import E2EProject
from tests.support.waiting import eventually_sync

pytestmark = pytest.mark.e2e


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module", params=["memory", "redis"])
def layer_project(request, tmp_path_factory):
    """The project on each layer, for what depends on the layer."""
    project = E2EProject(tmp_path_factory.mktemp(request.param), request.param)
    yield project
    project.stop_all()


@pytest.fixture(scope="module")
def server(layer_project):
    return layer_project.runserver("--http-timeout", "1")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The project on the in-memory layer, for what does not depend on it."""
    project = E2EProject(tmp_path_factory.mktemp("runserver"), "memory")
    yield project
    project.stop_all()


def test_banner_names_the_server_and_the_in_process_workers(server):
    server.wait_for_log("Quit the server with CONTROL-C.")
    log = server.log()
    assert "Starting ASGI/Daphne version" in log
    assert f"development server at http://127.0.0.1:{server.port}/" in log
    assert "in-process workers for channels: e2e-tasks, e2e-other" in log
    assert "System check identified no issues" in log


def test_django_view_through_asgi_handler(server):
    assert get(f"{server.url}/health/") == (200, b"channels_app demo is running\n")
    server.wait_for_log('"GET /health/" 200')


def test_static_files_are_served_under_debug(server):
    status, body = get(f"{server.url}/static/chat/chat.css")
    assert status == 200 and b"{" in body


async def test_websocket_echo(server):
    async with websockets.connect(f"{server.ws_url}/ws/echo/") as ws:
        await ws.send("hello over runserver")
        assert await asyncio.wait_for(ws.recv(), 10) == "hello over runserver"


async def test_group_broadcast_between_two_clients(server):
    url = f"{server.ws_url}/ws/group/lobby/"
    async with websockets.connect(url) as alice, websockets.connect(url) as bob:
        await alice.send(json.dumps({"text": "hi all"}))
        for client in (alice, bob):
            assert json.loads(await asyncio.wait_for(client.recv(), 10))["text"] == (
                "hi all"
            )
        # A view (sync code) can broadcast to the same group.
        assert get(f"{server.url}/e2e/broadcast/lobby/?text=from+a+view")[0] == 200
        for client in (alice, bob):
            message = json.loads(await asyncio.wait_for(client.recv(), 10))
            assert message["text"] == "from a view"


def test_message_sent_from_a_view_reaches_the_in_process_worker(server, layer_project):
    for n in range(3):
        assert get(f"{server.url}/e2e/send/e2e-tasks/?n={n}")[0] == 200
    lines = layer_project.wait_for_lines("e2e-tasks.log", 3)
    # Handled in order, in the server's own process.
    assert lines == [f"{n} {server.process.pid}" for n in range(3)]


def test_http_timeout_answers_503(server):
    started = time.monotonic()
    status, body = get(f"{server.url}/e2e/slow/?seconds=10")
    assert status == 503
    assert b"failed to respond within time limit" in body
    assert time.monotonic() - started < 6


async def test_websocket_message_size_limit_defaults_to_one_mib(server):
    async with websockets.connect(f"{server.ws_url}/ws/echo/", max_size=None) as ws:
        await ws.send("x" * (1024 * 1024 - 100))
        assert len(await asyncio.wait_for(ws.recv(), 10)) == 1024 * 1024 - 100
        await ws.send("x" * (1024 * 1024 + 100))
        # Daphne drops a connection that sends too big a message.
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
    async with websockets.connect(f"{server.ws_url}/ws/echo/") as ws:
        await ws.send("still serving")
        assert await asyncio.wait_for(ws.recv(), 10) == "still serving"


def test_lifespan_startup_ran_before_serving(server, layer_project):
    assert f"startup {server.process.pid}" in layer_project.lines("lifespan.log")


def test_sigterm_runs_shutdown_hooks_and_exits_cleanly(project):
    server = project.runserver()
    assert get(f"{server.url}/health/")[0] == 200
    assert server.stop(signal.SIGTERM) == 0
    assert f"shutdown {server.process.pid}" in project.lines("lifespan.log")


@pytest.mark.parametrize(
    "option", ["--websocket-max-message-size", "--websocket-max-frame-size"]
)
def test_settable_websocket_limit(project, option):
    # Each message goes out as one frame, so either limit applies to it.
    server = project.runserver(option, "1000")

    async def exchange():
        async with websockets.connect(f"{server.ws_url}/ws/echo/") as ws:
            await ws.send("y" * 1000)
            assert await asyncio.wait_for(ws.recv(), 10) == "y" * 1000
            await ws.send("y" * 1001)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)

    try:
        asyncio.run(exchange())
    finally:
        server.stop()


def test_noworker_leaves_channel_messages_to_runworker(tmp_path):
    # A project of its own: the module's server would run the message.
    project = E2EProject(tmp_path, "redis")
    server = project.runserver("--noworker")
    try:
        assert "in-process workers" not in server.log()
        assert get(f"{server.url}/e2e/send/e2e-other/?n=41")[0] == 200
        # Deliberate: no consumer running it can only be shown by waiting.
        time.sleep(0.5)
        assert project.lines("e2e-other.log") == []
        # A separate worker finds the message waiting in the layer.
        worker = project.runworker("e2e-other")
        assert project.wait_for_lines("e2e-other.log", 1) == [
            f"41 {worker.process.pid}"
        ]
    finally:
        project.stop_all()


def test_noasgi_serves_django_over_wsgi(project):
    server = project.runserver("--noasgi")
    try:
        assert get(f"{server.url}/health/") == (200, b"channels_app demo is running\n")
        assert get(f"{server.url}/static/chat/chat.css")[0] == 200
        assert "Starting development server" in server.log()
        assert "Daphne" not in server.log()
    finally:
        server.stop()


def test_failing_startup_hook_stops_the_server_with_the_reason(project):
    failing = project.manage(
        "runserver", "127.0.0.1:0", "--noreload", E2E_FAIL_STARTUP="1"
    )
    assert failing.wait(30) == 1
    assert "application startup failed" in failing.log()
    assert "E2E_FAIL_STARTUP" in failing.log()


def test_port_in_use_is_a_clear_error(project):
    server = project.runserver()
    clash = project.manage("runserver", f"127.0.0.1:{server.port}", "--noreload")
    assert clash.wait(30) == 1
    assert "Error:" in clash.log() and "in use" in clash.log()
    server.stop()


def test_autoreloader_restarts_the_server_when_code_changes(project):
    server = project.runserver(reload=True)
    urls = TESTPROJECT / "testproject" / "serving_e2e" / "urls.py"
    try:
        before = json.loads(get(f"{server.url}/e2e/whoami/")[1])["pid"]

        def restarted():
            try:
                pid = json.loads(get(f"{server.url}/e2e/whoami/", 2)[1])["pid"]
            except OSError:
                return None  # between the old server and the new one
            if pid == before:
                # The reloader ignores a change to a file it has not looked
                # at yet (it looks once a second, showing no sign of it), so
                # the file is touched again, a newer mtime each time, for as
                # long as the old server answers; never once the new one does.
                os.utime(urls)
                return None
            return pid

        assert eventually_sync(restarted, timeout=60, interval=0.2) != before
        assert server.log().count("Starting ASGI/Daphne") == 2
    finally:
        server.stop()
