"""Concurrent handlers (``concurrency`` above 1): throughput, order, failures."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from channels_app.consumer import AsyncConsumer, SyncConsumer
from channels_app.generic.http import AsyncHttpConsumer
from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    JsonWebsocketConsumer,
)
from channels_app.testing import (
    ApplicationCommunicator,
    HttpCommunicator,
    WebsocketCommunicator,
)
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
        {"n": n, "key": key, "seconds": 0.3 - 0.1 * (n // 2)}
        for n in range(6)
        for key in ["a", "b"][n % 2 : n % 2 + 1]
    ]
    answers, _ = await send_and_collect(client, frames)
    for key in "ab":
        mine = [answer["n"] for answer in answers if answer["key"] == key]
        assert mine == [frame["n"] for frame in frames if frame["key"] == key]
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
