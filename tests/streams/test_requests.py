"""Pings and requests, the browser client's two exchanges besides streams
(the client itself is tested in Chromium: tests/browser/test_stream_client.py)."""

from __future__ import annotations

import logging

import pytest

from channels_app.generic.websocket import AsyncJsonWebsocketConsumer
from channels_app.streams import RequestRefused, StreamsMixin
from channels_app.testing import WebsocketCommunicator


class Answering(StreamsMixin, AsyncJsonWebsocketConsumer):
    def handle_request(self, data):  # a plain method: run in a thread
        if data == "refuse":
            raise RequestRefused("not for you")
        if data == "boom":
            raise LookupError("secret detail")
        return {"twice": data * 2}


class Silent(StreamsMixin, AsyncJsonWebsocketConsumer):
    """Takes no requests: the default handle_request refuses them."""


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
    }


async def exchange(consumer, *frames):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/")
    assert (await communicator.connect())[0]
    answers = []
    for frame in frames:
        await communicator.send_json_to(frame)
        answers.append(await communicator.receive_json_from())
    await communicator.disconnect()
    return answers


async def test_a_ping_is_answered_with_its_id():
    assert await exchange(Answering, {"type": "stream.ping", "id": 7}) == [
        {"type": "stream.pong", "id": 7}
    ]


async def test_a_request_gets_the_handlers_answer_under_its_id():
    replies = await exchange(
        Answering,
        {"type": "stream.request", "id": 1, "data": 21},
        {"type": "stream.request", "id": "b", "data": "refuse"},
    )
    assert replies == [
        {"type": "stream.reply", "id": 1, "ok": True, "data": {"twice": 42}},
        {"type": "stream.reply", "id": "b", "ok": False, "error": "not for you"},
    ]


async def test_a_failing_handler_is_logged_and_answered_without_its_detail(caplog):
    with caplog.at_level(logging.ERROR, logger="channels_app.streams"):
        (reply,) = await exchange(
            Answering, {"type": "stream.request", "id": 3, "data": "boom"}
        )
    assert reply == {
        "type": "stream.reply",
        "id": 3,
        "ok": False,
        "error": "the server could not answer the request",
    }
    assert "secret detail" not in str(reply)
    assert "Answering.handle_request failed" in caplog.text
    assert "secret detail" in caplog.text


@pytest.mark.parametrize("bad_id", [None, True, 1.5, [1]])
async def test_a_request_without_a_usable_id_is_refused(bad_id):
    (reply,) = await exchange(
        Answering, {"type": "stream.request", "id": bad_id, "data": 1}
    )
    assert reply["ok"] is False and reply["id"] is None
    assert "id" in reply["error"]


async def test_a_consumer_without_handle_request_refuses_requests():
    (reply,) = await exchange(Silent, {"type": "stream.request", "id": 1, "data": 1})
    assert reply == {
        "type": "stream.reply",
        "id": 1,
        "ok": False,
        "error": "Silent takes no requests",
    }
