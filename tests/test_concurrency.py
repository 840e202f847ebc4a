"""Concurrent handlers (``concurrency`` above 1): throughput, order, failures."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from channels_app.consumer import AsyncConsumer, SyncConsumer
from channels_app.exceptions import StopConsumer
from channels_app.generic.http import AsyncHttpConsumer
from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    JsonWebsocketConsumer,
)
from channels_app.layers import get_channel_layer
from channels_app.routing import ChannelNameRouter, ProtocolTypeRouter
from channels_app.testing import (
    ApplicationCommunicator,
    HttpCommunicator,
    WebsocketCommunicator,
)
from channels_app.worker import Worker
from tests.serving import redis_layers
from tests.support.waiting import eventually


class KeyedByFrame:
    """Frames are ordered by their ``"key"``; frames without one run freely."""

    def ordering_key(self, message):
        if message["type"] == "websocket.receive":
            return json.loads(message["text"]).get("key")
        return super().ordering_key(message)


class SlowJson(KeyedByFrame, AsyncJsonWebsocketConsumer):
    """Answers each frame after ``seconds``; ``{"fail": true}`` raises."""

    concurrency = 4
    seconds = 0.5

    async def receive_json(self, content, **kwargs):
        await asyncio.sleep(content.get("seconds", self.seconds))
        if content.get("fail"):
            raise RuntimeError(f"frame {content['n']} fails")
        await self.send_json({"n": content["n"], "key": content.get("key")})


class SlowJsonOneAtATime(SlowJson):
    concurrency = 1
    seconds = 0.1


class SyncSlowJson(KeyedByFrame, JsonWebsocketConsumer):
    concurrency = 4

    def receive_json(self, content, **kwargs):
        time.sleep(0.5)
        self.send_json({"n": content["n"]})


async def connected(consumer_class):
    client = WebsocketCommunicator(consumer_class.as_asgi(), "/")
    assert (await client.connect())[0]
    return client


async def send_and_collect(client, frames, timeout=10):
    started = time.monotonic()
    for frame in frames:
        await client.send_json_to(frame)
    answers = [await client.receive_json_from(timeout) for _ in frames]
    return answers, time.monotonic() - started


async def test_four_handlers_at_once_answer_eight_slow_frames_in_about_a_second():
    client = await connected(SlowJson)
    answers, took = await send_and_collect(client, [{"n": n} for n in range(8)])
    assert sorted(answer["n"] for answer in answers) == list(range(8))
    # 8 frames of 0.5 s, 4 at a time: two rounds.  One at a time takes 4 s.
    assert 0.9 < took < 1.9
    await client.disconnect()


async def test_sync_json_consumer_runs_handlers_in_threads_side_by_side():
    client = await connected(SyncSlowJson)
    answers, took = await send_and_collect(client, [{"n": n} for n in range(8)])
    assert sorted(answer["n"] for answer in answers) == list(range(8))
    assert 0.9 < took < 1.9
    await client.disconnect()


async def test_frames_with_the_same_key_keep_their_order():
    client = await connected(SlowJson)
    # Earlier frames of a key sleep longer: run side by side, they would
    # answer in reverse.
    frames = [
        {"n": n, "key": "ab"[n % 2], "seconds": 0.6 - 0.1 * (n // 2)} for n in range(6)
    ]
    answers, took = await send_and_collect(client, frames)
    for key in "ab":
        mine = [answer["n"] for answer in answers if answer["key"] == key]
        assert mine == [frame["n"] for frame in frames if frame["key"] == key]
    # The two keys ran side by side: 1.5 s each, 3 s one after the other.
    assert took < 2.7
    await client.disconnect()


async def test_one_failing_handler_leaves_the_other_seven_answered(caplog):
    client = await connected(SlowJson)
    frames = [{"n": n, "fail": n == 3} for n in range(8)]
    with caplog.at_level(logging.ERROR, "channels_app.concurrency"):
        for frame in frames:
            await client.send_json_to(frame)
        answers = [await client.receive_json_from(10) for _ in range(7)]
    assert sorted(answer["n"] for answer in answers) == [0, 1, 2, 4, 5, 6, 7]
    failure = [r for r in caplog.records if r.name == "channels_app.concurrency"]
    assert "SlowJson.websocket_receive failed" in failure[0].getMessage()
    assert "frame 3 fails" in str(failure[0].exc_info[1])
    # The connection is still up.
    await client.send_json_to({"n": 8, "seconds": 0})
    assert (await client.receive_json_from(10))["n"] == 8
    await client.disconnect()


async def test_default_consumer_answers_one_frame_at_a_time_in_order():
    client = await connected(SlowJsonOneAtATime)
    answers, took = await send_and_collect(client, [{"n": n} for n in range(8)])
    assert [answer["n"] for answer in answers] == list(range(8))
    assert took >= 8 * 0.1 * 0.95
    await client.disconnect()


class Journal(AsyncConsumer):
    """Records each job's start and end; ``delay`` seconds in between."""

    concurrency = 3
    handler_grace_period = 5.0
    journal: list = []

    async def job(self, message):
        self.journal.append(("start", message["n"]))
        await asyncio.sleep(message.get("delay", 0))
        self.journal.append(("done", message["n"]))

    async def websocket_connect(self, message):
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, message):
        await self.job(json.loads(message["text"]))

    async def websocket_disconnect(self, message):
        self.journal.append(("disconnect", len(self.journal)))
        raise StopConsumer()


@pytest.fixture
def journal():
    Journal.journal = []
    return Journal.journal


async def started(client):
    await client.send_input({"type": "websocket.connect"})
    assert (await client.receive_output(5))["type"] == "websocket.accept"
    return client


async def test_layer_messages_run_side_by_side_and_client_frames_in_order(journal):
    client = await started(ApplicationCommunicator(Journal.as_asgi(), {"type": "x"}))
    for n, delay in enumerate([0.3, 0.2, 0.1]):
        await client.send_input({"type": "job", "n": n, "delay": delay})
    await eventually(lambda: len(journal) == 6)
    # Key None: all three started before any finished, the shortest first.
    assert [event for event, _ in journal[:3]] == ["start"] * 3
    assert [n for event, n in journal if event == "done"] == [2, 1, 0]
    journal.clear()
    for n, delay in enumerate([0.3, 0.2, 0.1]):
        text = json.dumps({"n": n, "delay": delay})
        await client.send_input({"type": "websocket.receive", "text": text})
    await eventually(lambda: len(journal) == 6)
    # Key "client" (the default for frames): strictly one after another.
    assert journal == [(s, n) for n in range(3) for s in ("start", "done")]
    await client.send_input({"type": "websocket.disconnect", "code": 1000})
    await client.wait(5)


async def test_disconnect_waits_for_the_work_taken_before_it(journal):
    client = await started(ApplicationCommunicator(Journal.as_asgi(), {"type": "x"}))
    for n in range(3):
        await client.send_input({"type": "job", "n": n, "delay": 0.2})
    await client.send_input({"type": "websocket.disconnect", "code": 1000})
    await client.wait(5)
    # disconnect ran last, after all six events, as at concurrency 1.
    assert journal[-1] == ("disconnect", 6)


async def test_handlers_past_the_grace_period_are_cancelled_with_a_warning(
    journal, caplog
):
    class Impatient(Journal):
        handler_grace_period = 0.2

    client = await started(ApplicationCommunicator(Impatient.as_asgi(), {"type": "x"}))
    await client.send_input({"type": "job", "n": 0, "delay": 0})
    await client.send_input({"type": "job", "n": 1, "delay": 30})
    await eventually(lambda: ("start", 1) in journal)
    started_at = time.monotonic()
    await client.send_input({"type": "websocket.disconnect", "code": 1000})
    await client.wait(5)
    assert time.monotonic() - started_at < 3
    assert ("done", 1) not in journal and journal[-1][0] == "disconnect"
    warning = next(r for r in caplog.records if r.name == "channels_app.concurrency")
    assert warning.levelno == logging.WARNING
    text = warning.getMessage()
    assert "Impatient" in text and "0.2s grace period" in text and ": job" in text


async def test_at_most_twice_the_concurrency_is_taken_ahead(journal):
    gate = asyncio.Event()

    class Gated(Journal):
        concurrency = 2

        async def job(self, message):
            self.journal.append(("start", message["n"]))
            await gate.wait()

    client = await started(ApplicationCommunicator(Gated.as_asgi(), {"type": "x"}))
    for n in range(10):
        await client.send_input({"type": "job", "n": n})
    await eventually(lambda: len(journal) == 2)
    await asyncio.sleep(0.1)  # deliberate: time to take more than it may
    # Two running, two waiting in the pool, one in the receive loop's hand
    # waiting for room: the other five are still in the inbox.
    assert client.input_queue.qsize() == 5
    gate.set()
    await eventually(lambda: len(journal) == 10)
    await client.send_input({"type": "websocket.disconnect", "code": 1000})
    await client.wait(5)


async def test_a_message_without_handler_still_ends_the_consumer(journal):
    client = await started(ApplicationCommunicator(Journal.as_asgi(), {"type": "x"}))
    await client.send_input({"type": "no.such.handler"})
    with pytest.raises(ValueError, match="No handler for message type"):
        await client.wait(5)


async def test_stop_consumer_from_a_pooled_handler_ends_the_consumer(journal):
    class Stops(Journal):
        async def job(self, message):
            await super().job(message)
            if message.get("stop"):
                raise StopConsumer()

    client = await started(ApplicationCommunicator(Stops.as_asgi(), {"type": "x"}))
    await client.send_input({"type": "job", "n": 0, "delay": 0.2})
    await client.send_input({"type": "job", "n": 1, "stop": True})
    await client.wait(5)  # ends without a disconnect, after the grace wait
    assert ("done", 0) in journal and ("done", 1) in journal


async def test_cancelling_the_consumer_gives_handlers_the_grace_period(journal):
    client = await started(ApplicationCommunicator(Journal.as_asgi(), {"type": "x"}))
    await client.send_input({"type": "job", "n": 0, "delay": 0.3})
    await eventually(lambda: ("start", 0) in journal)
    client.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await client.future
    assert ("done", 0) in journal


class SyncJournal(SyncConsumer):
    concurrency = 4
    journal: list = []

    def job(self, message):
        self.journal.append(("start", message["n"]))
        time.sleep(0.3)
        self.journal.append(("done", message["n"]))


async def test_sync_consumer_runs_handlers_in_separate_threads():
    SyncJournal.journal = journal = []
    client = ApplicationCommunicator(SyncJournal.as_asgi(), {"type": "x"})
    for n in range(4):
        await client.send_input({"type": "job", "n": n})
    await eventually(lambda: len(journal) == 8)
    assert [event for event, _ in journal[:4]] == ["start"] * 4
    client.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await client.future


class FailingHttp(AsyncHttpConsumer):
    concurrency = 2

    async def handle(self, body):
        raise RuntimeError("handle broke")


async def test_http_handler_failure_at_concurrency_above_one_answers_500(caplog):
    client = HttpCommunicator(FailingHttp.as_asgi(), "GET", "/")
    response = await client.get_response(timeout=5)
    assert response["status"] == 500
    assert any(
        "FailingHttp.http_request failed" in r.getMessage() for r in caplog.records
    )


# -- named channels under the worker ---------------------------------------------


class PooledJobs(Journal):
    concurrency = 4


worker_application = ProtocolTypeRouter(
    {"channel": ChannelNameRouter({"jobs": PooledJobs.as_asgi()})}
)


@pytest.fixture
def redis_layer(settings, journal, django_db_blocker):
    settings.CHANNEL_LAYERS = redis_layers()
    with django_db_blocker.unblock():
        yield get_channel_layer()


async def test_worker_runs_a_pooled_consumers_jobs_side_by_side(redis_layer, journal):
    worker = Worker(worker_application, ["jobs"], redis_layer)
    running = asyncio.ensure_future(worker.serve())
    for n in range(4):
        await redis_layer.send("jobs", {"type": "job", "n": n, "delay": 0.3})
    await eventually(lambda: len(journal) == 4)
    assert journal == [("start", n) for n in range(4)]
    # Stopping now lets the four in-flight jobs finish, then counts them.
    worker.stop()
    stats = await asyncio.wait_for(running, 10)
    assert sorted(journal[4:]) == [("done", n) for n in range(4)]
    assert (stats.handled, stats.failed, stats.cancelled) == (4, 0, 0)


async def test_worker_cancels_pooled_jobs_at_the_drain_timeout(redis_layer, journal):
    worker = Worker(worker_application, ["jobs"], redis_layer, drain_timeout=0.3)
    running = asyncio.ensure_future(worker.serve())
    await redis_layer.send("jobs", {"type": "job", "n": 0, "delay": 0})
    for n in range(1, 4):
        await redis_layer.send("jobs", {"type": "job", "n": n, "delay": 30})
    await eventually(lambda: len(journal) == 5)
    started_at = time.monotonic()
    worker.stop()
    stats = await asyncio.wait_for(running, 10)
    assert time.monotonic() - started_at < 5
    assert (stats.handled, stats.failed, stats.cancelled) == (1, 0, 3)


class PushStream(AsyncHttpConsumer):
    """Streams one part per ``push`` layer message, side by side; ``end`` ends."""

    concurrency = 4

    async def handle(self, body):
        await self.send_headers(headers=[(b"content-type", b"text/plain")])
        await self.send_body(self.channel_name.encode() + b"\n", more_body=True)

    async def push(self, message):
        await asyncio.sleep(message["delay"])
        await self.send_body(f"{message['n']}\n".encode(), more_body=True)

    async def end(self, message):
        await self.send_body(b"")


async def test_http_stream_handles_layer_messages_side_by_side(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
    }
    client = ApplicationCommunicator(
        PushStream.as_asgi(),
        {"type": "http", "method": "GET", "path": "/", "headers": []},
    )
    await client.send_input({"type": "http.request", "body": b""})
    assert (await client.receive_output(5))["status"] == 200
    channel = (await client.receive_output(5))["body"].decode().strip()
    layer = get_channel_layer()
    for n, delay in enumerate([0.4, 0.2, 0.0]):
        await layer.send(channel, {"type": "push", "n": n, "delay": delay})
    parts = [(await client.receive_output(5))["body"] for _ in range(3)]
    # The shortest wait answered first: they ran at once.
    assert parts == [b"2\n", b"1\n", b"0\n"]
    await layer.send(channel, {"type": "end"})
    assert (await client.receive_output(5))["more_body"] is False
    await client.wait(5)  # the instance ends with its response
