"""``manage.py runworker`` as a real process, fed by views of a real runserver."""

import signal
import time

import pytest

from tests.e2e.test_runserver import get
from tests.servers import free_port
from tests.serving import E2EProject

pytestmark = pytest.mark.e2e


@pytest.fixture
def project(tmp_path):
    project = E2EProject(tmp_path, "redis")
    yield project
    project.stop_all()


@pytest.fixture
def server(project):
    return project.runserver("--noworker")


def queue(server, channel, n, **params):
    query = "&".join([f"n={n}", *(f"{k}={v}" for k, v in params.items())])
    assert get(f"{server.url}/e2e/send/{channel}/?{query}")[0] == 200


@pytest.mark.parametrize("layer", ["redis", "sqlite", "postgres"])
def test_message_from_a_view_reaches_a_separate_worker(tmp_path, layer):
    project = E2EProject(tmp_path, layer)
    try:
        server = project.runserver("--noworker")
        view_to_worker(project, server)
    finally:
        project.stop_all()


def view_to_worker(project, server):
    worker = project.runworker("-v", "2")
    for n in range(3):
        queue(server, "e2e-tasks", n)
    lines = project.wait_for_lines("e2e-tasks.log", 3)
    assert lines == [f"{n} {worker.process.pid}" for n in range(3)]
    worker.wait_for_log("e2e-tasks: task.record handled in")
    assert worker.stop() == 0
    assert "Worker stopped: 3 handled, 0 failed" in worker.log()


def test_default_channels_are_all_the_router_routes(project):
    worker = project.runworker()
    assert "Running worker for channels: e2e-tasks, e2e-other" in worker.log()


def test_only_channels_filters_and_leaves_the_rest_queued(project, server):
    worker = project.runworker("--only-channels", "e2e-t*")
    assert "Running worker for channels: e2e-tasks (" in worker.log()
    queue(server, "e2e-other", 1)
    queue(server, "e2e-tasks", 2)
    project.wait_for_lines("e2e-tasks.log", 1)
    time.sleep(0.3)  # deliberate: time for the filtered-out message to be run
    assert project.lines("e2e-other.log") == []
    other = project.runworker("--exclude-channels", "e2e-tasks")
    assert project.wait_for_lines("e2e-other.log", 1) == [f"1 {other.process.pid}"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_an_in_flight_slow_handler(project, server, signum):
    worker = project.runworker()
    queue(server, "e2e-tasks", 7, seconds=2)
    project.wait_for_lines("e2e-tasks.log", 1)
    worker.send_signal(signum)
    assert worker.wait(15) == 0
    assert project.lines("e2e-tasks.log") == ["start 7", "done 7"]
    log = worker.log()
    assert f"{signum.name} received: finishing in-flight messages" in log
    assert "Worker stopped: 1 handled, 0 failed" in log


def test_drain_timeout_bounds_the_wait(project, server):
    worker = project.runworker("--drain-timeout", "0.5")
    queue(server, "e2e-tasks", 8, seconds=5)
    project.wait_for_lines("e2e-tasks.log", 1)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert time.monotonic() - started < 4
    assert "did not finish within the 0.5s drain timeout" in worker.log()


def test_a_failing_handler_is_logged_and_the_worker_goes_on(project, server):
    worker = project.runworker()
    # A negative sleep makes the handler raise ValueError.
    assert get(f"{server.url}/e2e/send/e2e-tasks/?n=1&seconds=-1")[0] == 200
    queue(server, "e2e-tasks", 2)
    project.wait_for_lines("e2e-tasks.log", 2)
    assert worker.stop() == 0
    log = worker.log()
    assert "e2e-tasks: task.slow failed" in log
    assert "Traceback" in log and "ValueError" in log
    assert "Worker stopped: 1 handled, 1 failed" in log
    assert project.lines("e2e-tasks.log")[-1].startswith("2 ")


def test_concurrency_handles_a_channels_messages_side_by_side(project, server):
    project.runworker("--concurrency", "2")
    queue(server, "e2e-tasks", 1, seconds=1)
    queue(server, "e2e-tasks", 2, seconds=1)
    lines = project.wait_for_lines("e2e-tasks.log", 4)
    assert sorted(lines[:2]) == ["start 1", "start 2"]


def test_in_memory_layer_is_refused_with_the_reason(tmp_path):
    project = E2EProject(tmp_path, "memory")
    worker = project.manage("runworker")
    assert worker.wait(30) == 1
    assert "keeps messages inside one process" in worker.log()


def test_unreachable_layer_is_refused_with_the_reason(tmp_path):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    project = E2EProject(tmp_path, "redis", REDIS_URL=nowhere)
    worker = project.manage("runworker")
    assert worker.wait(30) == 1
    assert "Channel layer 'default' cannot be reached" in worker.log()


def test_unrouted_channel_name_is_refused(project):
    worker = project.manage("runworker", "e2e-tasks", "thumbnails")
    assert worker.wait(30) == 1
    assert "does not route thumbnails" in worker.log()
