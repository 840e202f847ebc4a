"""The root router's lifespan hooks under uvicorn, which drives the protocol itself."""

import signal
import sys

import pytest
import websockets

from tests.servers import SERVER_COMMANDS, ServerProcess, free_port, wait_for_port
from tests.serving import E2EProject

pytestmark = pytest.mark.e2e


@pytest.fixture
def project(tmp_path):
    project = E2EProject(tmp_path, "memory")
    yield project
    project.stop_all()


def uvicorn(project: E2EProject, **env: str) -> ServerProcess:
    """uvicorn starting on the serving project (not yet waited for)."""
    port = free_port()
    arguments = [word.format(port=port) for word in SERVER_COMMANDS["uvicorn"]]
    return ServerProcess(
        [sys.executable, *arguments, "testproject.serving_e2e.asgi:application"],
        port,
        project.tmp_path / f"uvicorn-{port}.log",
        {**project.env, **env},
    )


async def test_startup_runs_before_serving_and_shutdown_on_sigterm(project):
    server = uvicorn(project)
    wait_for_port(server.port, server.process)
    pid = server.process.pid
    try:
        # uvicorn only listens once the startup hooks have completed.
        assert project.lines("lifespan.log") == [f"startup {pid}"]
        async with websockets.connect(f"{server.ws_url}/ws/echo/") as ws:
            await ws.send("served")
            assert await ws.recv() == "served"
    finally:
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert project.lines("lifespan.log") == [f"startup {pid}", f"shutdown {pid}"]


def test_a_failing_startup_hook_stops_uvicorn_from_serving(project):
    server = uvicorn(project, E2E_FAIL_STARTUP="1")
    assert server.process.wait(30) != 0
    log = server.log()
    server.stop()
    assert "startup refused because E2E_FAIL_STARTUP is set" in log
    assert "Application startup failed" in log
