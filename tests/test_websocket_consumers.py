import logging

import pytest

from channels_app.exceptions import AcceptConnection, DenyConnection
from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels_app.testing import WebsocketCommunicator


class SyncEcho(WebsocketConsumer):
    def connect(self):
        self.scope["log"].append("connect")
        self.accept(subprotocol="chat.v1", headers=[(b"x-hello", b"world")])

    def receive(self, text_data=None, bytes_data=None):
        if text_data == "close":
            self.close(code=4001, reason="asked to")
        elif text_data is not None:
            self.send(text_data=text_data.upper())
        else:
            self.send(bytes_data=bytes_data[::-1], close=4002)

    def disconnect(self, code):
        self.scope["log"].append(("disconnect", code))


class AsyncEcho(AsyncWebsocketConsumer):
    async def connect(self):
        self.scope["log"].append("connect")
        await self.accept(subprotocol="chat.v1", headers=[(b"x-hello", b"world")])

    async def receive(self, text_data=None, bytes_data=None):
        if text_data == "close":
            await self.close(code=4001, reason="asked to")
        elif text_data is not None:
            await self.send(text_data=text_data.upper())
        else:
            await self.send(bytes_data=bytes_data[::-1], close=4002)

    async def disconnect(self, code):
        self.scope["log"].append(("disconnect", code))


def communicator(consumer, log):
    comm = WebsocketCommunicator(
        consumer.as_asgi(), "/ws/?x=1", subprotocols=["chat.v1"]
    )
    comm.scope["log"] = log
    return comm


@pytest.mark.parametrize("consumer", [SyncEcho, AsyncEcho])
async def test_accept_send_close_disconnect(consumer):
    log = []
    comm = communicator(consumer, log)
    assert await comm.connect() == (True, "chat.v1")
    assert comm.response_headers == [(b"x-hello", b"world")]
    await comm.send_to(text_data="hello")
    assert await comm.receive_from() == "HELLO"
    await comm.send_to(bytes_data=b"abc")
    assert await comm.receive_from() == b"cba"
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4002}
    await comm.send_to(text_data="close")
    assert await comm.receive_output() == {
        "type": "websocket.close",
        "code": 4001,
        "reason": "asked to",
    }
    await comm.disconnect(code=1001)
    assert log == ["connect", ("disconnect", 1001)]


class Denier(AsyncWebsocketConsumer):
    async def connect(self):
        raise DenyConnection()


class SyncAccepter(WebsocketConsumer):
    def connect(self):
        raise AcceptConnection()


async def test_deny_and_accept_by_exception():
    assert await WebsocketCommunicator(Denier.as_asgi(), "/").connect() == (False, 1000)
    assert await WebsocketCommunicator(SyncAccepter.as_asgi(), "/").connect() == (
        True,
        None,
    )


class SyncJson(JsonWebsocketConsumer):
    def receive_json(self, content, **kwargs):
        self.send_json({"got": content})


class AsyncJson(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        await self.send_json({"got": content})


@pytest.mark.parametrize("consumer", [SyncJson, AsyncJson])
async def test_json_round_trip(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/")
    await comm.connect()
    await comm.send_json_to({"a": [1, 2, {"b": None}]})
    assert await comm.receive_json_from() == {"got": {"a": [1, 2, {"b": None}]}}
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [SyncJson, AsyncJson])
async def test_malformed_json_closes_with_1007_and_logs(consumer, caplog):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/chat/")
    await comm.connect()
    with caplog.at_level(logging.WARNING, logger="channels_app.websocket"):
        await comm.send_to(text_data="{not json")
        closed = await comm.receive_output()
    assert closed["type"] == "websocket.close"
    assert closed["code"] == 1007
    assert "malformed JSON" in closed["reason"]
    assert "/chat/" in caplog.text and "1007" in caplog.text
    # The consumer is still alive and handles the disconnect normally.
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [SyncJson, AsyncJson])
async def test_binary_frame_to_json_consumer_closes_with_1003(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/")
    await comm.connect()
    await comm.send_to(bytes_data=b"\x00\x01")
    assert (await comm.receive_output())["code"] == 1003
    await comm.disconnect()


class Grouped(AsyncWebsocketConsumer):
    groups = ["lobby"]


async def test_groups_without_a_layer_is_a_clear_error():
    from channels_app.exceptions import InvalidChannelLayerError

    comm = WebsocketCommunicator(Grouped.as_asgi(), "/")
    await comm.send_input({"type": "websocket.connect"})
    with pytest.raises(InvalidChannelLayerError, match="lobby"):
        await comm.wait()


async def test_send_without_data_is_an_error():
    class Empty(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            await self.send()

    comm = WebsocketCommunicator(Empty.as_asgi(), "/")
    await comm.connect()
    await comm.send_to(text_data="x")
    with pytest.raises(ValueError, match="text_data or bytes_data"):
        await comm.wait()


async def test_communicator_argument_errors():
    comm = WebsocketCommunicator(AsyncEcho.as_asgi(), "/")
    with pytest.raises(ValueError, match="exactly one"):
        await comm.send_to()
    with pytest.raises(ValueError, match="exactly one"):
        await comm.send_to(text_data="a", bytes_data=b"b")
