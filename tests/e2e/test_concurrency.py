"""Concurrent handlers through real processes: Daphne, and ``manage.py runworker``."""

import asyncio
import json
import signal
import time

import pytest
import websockets

from tests.servers import start_daphne
from tests.serving import E2EProject

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def daphne(tmp_path_factory):
    server = start_daphne(tmp_path_factory.mktemp("daphne"))
    yield server
    server.stop()


async def exchange(server, path, frames, answers):
    """Send ``frames`` at once; the ``answers`` that come back and the time taken."""
    async with websockets.connect(f"{server.ws_url}{path}") as ws:
        started = time.monotonic()
        for frame in frames:
            await ws.send(json.dumps(frame))
        received = [
            json.loads(await asyncio.wait_for(ws.recv(), 15)) for _ in range(answers)
        ]
        took = time.monotonic() - started
        # Still open after all of it, failures included.
        await ws.send(json.dumps({"n": "last", "seconds": 0}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 15))["n"] == "last"
    return received, took


async def test_eight_slow_frames_four_at_a_time_take_about_a_second(daphne):
    frames = [{"n": n} for n in range(8)]
    received, took = await exchange(daphne, "/ws/concurrent/", frames, 8)
    assert sorted(answer["n"] for answer in received) == list(range(8))
    # 0.5 s each, four at once: two rounds (one at a time would take 4 s).
    assert 0.9 < took < 1.9


async def test_frames_with_one_key_are_answered_in_order(daphne):
    # Each key's earlier frames sleep longer, so run side by side they
    # would come back reversed.
    frames = [
        {"n": n, "key": "ab"[n % 2], "seconds": 0.4 - 0.1 * (n // 2)} for n in range(8)
    ]
    received, took = await exchange(daphne, "/ws/concurrent/", frames, 8)
    for key in "ab":
        mine = [answer["n"] for answer in received if answer["key"] == key]
        assert mine == [frame["n"] for frame in frames if frame["key"] == key]
    # The two keys ran side by side: 1 s each, 2 s one after the other.
    assert took < 1.8


async def test_one_failing_handler_leaves_the_other_seven_answered(daphne):
    frames = [{"n": n, "fail": n == 5} for n in range(8)]
    received, _ = await exchange(daphne, "/ws/concurrent/", frames, 7)
    assert sorted(answer["n"] for answer in received) == [0, 1, 2, 3, 4, 6, 7]
    log = daphne.log()
    assert "ConcurrentJsonConsumer.websocket_receive failed" in log
    assert "frame 5 asked to fail" in log


async def test_the_default_consumer_answers_in_order_one_at_a_time(daphne):
    frames = [{"n": n, "seconds": 0.5} for n in range(8)]
    received, took = await exchange(daphne, "/ws/one-at-a-time/", frames, 8)
    assert [answer["n"] for answer in received] == list(range(8))
    assert took >= 3.5


# -- runworker ---------------------------------------------------------------------


@pytest.fixture
def project(tmp_path):
    project = E2EProject(tmp_path, "redis")
    yield project
    project.stop_all()


async def queue_slow_tasks(project, count, seconds):
    """Send ``count`` slow tasks to the worker's channel on the project's Redis."""
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(
        hosts=[project.env["REDIS_URL"]], prefix=project.env["E2E_PREFIX"]
    )
    for n in range(count):
        await layer.send(
            "e2e-concurrent", {"type": "task.slow", "n": n, "seconds": seconds}
        )
    await layer.close_pools()


def starts(project):
    return [
        line for line in project.lines("e2e-concurrent.log") if line.startswith("start")
    ]


async def test_sigterm_lets_in_flight_pooled_handlers_finish(project):
    worker = project.runworker("e2e-concurrent")
    await queue_slow_tasks(project, 4, 1.5)
    deadline = time.monotonic() + 20
    # All four run at once (at concurrency 1 only one would have started).
    while len(starts(project)) < 4:
        assert time.monotonic() < deadline, project.lines("e2e-concurrent.log")
        await asyncio.sleep(0.05)
    assert project.lines("e2e-concurrent.log") == starts(project)  # none done yet
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 15) == 0
    lines = project.lines("e2e-concurrent.log")
    assert sorted(line for line in lines if line.startswith("done")) == [
        f"done {n}" for n in range(4)
    ]
    assert "Worker stopped: 4 handled, 0 failed in" in worker.log()


async def test_pooled_handlers_past_the_drain_timeout_are_cancelled(project):
    worker = project.runworker("e2e-concurrent", "--drain-timeout", "0.5")
    await queue_slow_tasks(project, 4, 30)
    deadline = time.monotonic() + 20
    while len(starts(project)) < 4:
        assert time.monotonic() < deadline, project.lines("e2e-concurrent.log")
        await asyncio.sleep(0.05)
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 15) == 0
    assert time.monotonic() - stopped_at < 10
    log = worker.log()
    assert "0 handled, 0 failed, 4 cancelled" in log
    assert "cancelled 4 handler(s) still running after the 0.5s drain timeout" in log
    assert "task_slow, task_slow, task_slow, task_slow" in log
