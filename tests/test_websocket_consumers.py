import json
import logging

import pytest

from channels_app.exceptions import AcceptConnection, DenyConnection
from channels_app.generic.websocket import (
    INVALID_PAYLOAD,
    UNSUPPORTED_DATA,
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels_app.testing import ApplicationCommunicator, WebsocketCommunicator


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
async def test_json_nested_too_deep_closes_with_4007(consumer):
    # json.loads raises RecursionError here, which is not a ValueError.
    comm = WebsocketCommunicator(consumer.as_asgi(), "/")
    await comm.connect()
    await comm.send_to(text_data="[" * 100_000 + "]" * 100_000)
    closed = await comm.receive_output()
    assert (closed["type"], closed["code"]) == ("websocket.close", 4007)
    assert closed["reason"] == "malformed JSON: nested too deep"
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [SyncJson, AsyncJson])
async def test_malformed_json_closes_with_4007_and_logs_one_line(consumer, caplog):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/chat/")
    await comm.connect()
    with caplog.at_level(logging.WARNING, logger="channels_app.websocket"):
        await comm.send_to(text_data="{not json")
        closed = await comm.receive_output()
    assert closed["type"] == "websocket.close"
    assert closed["code"] == INVALID_PAYLOAD == 4007
    assert "malformed JSON" in closed["reason"]
    (record,) = caplog.records
    assert "/chat/" in record.getMessage() and "4007" in record.getMessage()
    assert record.exc_info is None  # the client's mistake, not a server bug
    # The consumer is still alive and handles the disconnect normally.
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [SyncJson, AsyncJson])
async def test_binary_frame_to_json_consumer_closes_with_4003(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/")
    await comm.connect()
    await comm.send_to(bytes_data=b"\x00\x01")
    assert (await comm.receive_output())["code"] == UNSUPPORTED_DATA == 4003
    await comm.disconnect()


def test_json_close_codes_are_ones_every_server_may_send():
    # RFC 6455 leaves 1000 and 3000-4999 to applications; Daphne refuses the rest.
    for code in (UNSUPPORTED_DATA, INVALID_PAYLOAD):
        assert 4000 <= code <= 4999


class LongWinded(AsyncJsonWebsocketConsumer):
    @classmethod
    async def decode_json(cls, text_data):
        raise ValueError("é" * 200)


async def test_close_reason_fits_in_a_close_frame():
    comm = WebsocketCommunicator(LongWinded.as_asgi(), "/")
    await comm.connect()
    await comm.send_to(text_data="{}")
    closed = await comm.receive_output()
    assert closed["code"] == 4007
    assert closed["reason"].startswith("malformed JSON: é")
    assert len(closed["reason"].encode("utf-8")) <= 123


class TutorialSync(WebsocketConsumer):
    """``receive`` as the Channels tutorial writes it: text frames only."""

    def receive(self, text_data):
        self.send(text_data=f"sync:{text_data}")


class TutorialAsync(AsyncWebsocketConsumer):
    async def receive(self, text_data):
        await self.send(text_data=f"async:{text_data}")


@pytest.mark.parametrize(
    "consumer, prefix", [(TutorialSync, "sync"), (TutorialAsync, "async")]
)
@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.receive", "text": "hi"},
        # Servers may send the unused key as None; presence does not count.
        {"type": "websocket.receive", "text": "hi", "bytes": None},
    ],
)
async def test_receive_gets_only_text_data_for_a_text_frame(consumer, prefix, message):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/")
    await comm.connect()
    await comm.send_input(message)
    assert await comm.receive_from() == f"{prefix}:hi"
    await comm.disconnect()


class Recorder(WebsocketConsumer):
    def receive(self, **frame):
        self.send(text_data=repr(sorted(frame.items())))


class AsyncRecorder(AsyncWebsocketConsumer):
    async def receive(self, **frame):
        await self.send(text_data=repr(sorted(frame.items())))


@pytest.mark.parametrize("consumer", [Recorder, AsyncRecorder])
@pytest.mark.parametrize(
    "message, keywords",
    [
        ({"text": "a"}, [("text_data", "a")]),
        ({"text": "a", "bytes": None}, [("text_data", "a")]),
        # Text wins when a (misbehaving) server sends both, as in Channels.
        ({"text": "a", "bytes": b"b"}, [("text_data", "a")]),
        ({"bytes": b"b"}, [("bytes_data", b"b")]),
        ({"text": None, "bytes": b"b"}, [("bytes_data", b"b")]),
        # An empty text frame is still a text frame.
        ({"text": "", "bytes": b"b"}, [("text_data", "")]),
    ],
)
async def test_receive_keyword_follows_channels_rule(consumer, message, keywords):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/")
    await comm.connect()
    await comm.send_input({"type": "websocket.receive", **message})
    assert await comm.receive_from() == repr(keywords)
    await comm.disconnect()


class JsonNoKwargs(JsonWebsocketConsumer):
    def receive_json(self, content):
        self.send_json({"got": content})


class AsyncJsonNoKwargs(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content):
        await self.send_json({"got": content})


@pytest.mark.parametrize("consumer", [JsonNoKwargs, AsyncJsonNoKwargs])
async def test_json_consumers_take_text_with_a_none_bytes_key(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/")
    await comm.connect()
    await comm.send_input({"type": "websocket.receive", "text": "[1]", "bytes": None})
    assert await comm.receive_json_from() == {"got": [1]}
    await comm.disconnect()


class AsyncCodecJson(AsyncJsonWebsocketConsumer):
    """Overrides the codec as Channels documents it: coroutines."""

    @classmethod
    async def decode_json(cls, text_data):
        return {"decoded": json.loads(text_data)}

    @classmethod
    async def encode_json(cls, content):
        return "encoded:" + json.dumps(content)

    async def receive_json(self, content):
        await self.send_json(content)


class PlainCodecJson(AsyncCodecJson):
    """Plain classmethods (the sync consumer's style) work on the async one too."""

    @classmethod
    def decode_json(cls, text_data):
        return {"plain": json.loads(text_data)}

    @classmethod
    def encode_json(cls, content):
        return "plain:" + json.dumps(content)


async def test_async_json_codec_overrides_may_be_coroutines_or_not():
    comm = WebsocketCommunicator(AsyncCodecJson.as_asgi(), "/")
    await comm.connect()
    await comm.send_to(text_data="1")
    assert await comm.receive_from() == 'encoded:{"decoded": 1}'
    await comm.disconnect()
    comm = WebsocketCommunicator(PlainCodecJson.as_asgi(), "/")
    await comm.connect()
    await comm.send_to(text_data="1")
    assert await comm.receive_from() == 'plain:{"plain": 1}'
    await comm.disconnect()


async def test_the_async_json_codec_is_awaitable_as_in_channels():
    assert await AsyncJsonWebsocketConsumer.decode_json("[1]") == [1]
    assert await AsyncJsonWebsocketConsumer.encode_json([1]) == "[1]"
    assert JsonWebsocketConsumer.decode_json("[1]") == [1]


class RawPrefixing(JsonWebsocketConsumer):
    def send(self, text_data=None, bytes_data=None, close=False):
        super().send(text_data=f"raw:{text_data}", close=close)

    def receive_json(self, content):
        self.send(text_data="frame")
        self.send_json(content)


class AsyncRawPrefixing(AsyncJsonWebsocketConsumer):
    async def send(self, text_data=None, bytes_data=None, close=False):
        await super().send(text_data=f"raw:{text_data}", close=close)

    async def receive_json(self, content):
        await self.send(text_data="frame")
        await self.send_json(content)


@pytest.mark.parametrize("consumer", [RawPrefixing, AsyncRawPrefixing])
async def test_send_json_bypasses_a_subclass_send_as_in_channels(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/")
    await comm.connect()
    await comm.send_json_to({"a": 1})
    assert await comm.receive_from() == "raw:frame"
    assert await comm.receive_json_from() == {"a": 1}
    await comm.disconnect()


class HeaderAccepter(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept(headers=self.scope["reply_headers"])


class SyncHeaderAccepter(WebsocketConsumer):
    def connect(self):
        self.accept(headers=self.scope["reply_headers"])


@pytest.mark.parametrize("consumer", [HeaderAccepter, SyncHeaderAccepter])
@pytest.mark.parametrize(
    "headers",
    [
        [[b"x-one", b"1"], [b"x-two", b"2"]],
        [(b"x-one", b"1"), (b"x-two", b"2")],
        ((b"x-one", b"1"),),
    ],
    ids=["list-of-lists", "list-of-tuples", "tuple-of-tuples"],
)
async def test_accept_passes_headers_through_as_given(consumer, headers):
    comm = ApplicationCommunicator(
        consumer.as_asgi(), {"type": "websocket", "reply_headers": headers}
    )
    await comm.send_input({"type": "websocket.connect"})
    accepted = await comm.receive_output()
    assert accepted == {
        "type": "websocket.accept",
        "subprotocol": None,
        "headers": list(headers),
    }
    # The same pair objects, not converted copies: a list stays a list.
    assert [type(pair) for pair in accepted["headers"]] == [
        type(pair) for pair in headers
    ]
    assert accepted["headers"] is not headers
    comm.stop(exceptions=False)


async def test_accept_without_headers_sends_no_headers_key():
    comm = ApplicationCommunicator(
        HeaderAccepter.as_asgi(), {"type": "websocket", "reply_headers": []}
    )
    await comm.send_input({"type": "websocket.connect"})
    assert await comm.receive_output() == {
        "type": "websocket.accept",
        "subprotocol": None,
    }
    comm.stop(exceptions=False)


class SchemaConsumer(AsyncJsonWebsocketConsumer):
    """Configured through ``__init__``, as strawberry's GraphQL consumers are."""

    groups = ["schemas"]

    def __init__(self, schema, keep_alive=False):
        self.schema = schema
        self.keep_alive = keep_alive
        super().__init__()

    async def receive_json(self, content):
        reply = {"schema": self.schema, "keep_alive": self.keep_alive}
        await self.send_json({**reply, "groups": self.groups})


async def test_websocket_consumer_takes_as_asgi_keywords_in_init(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
    }
    comm = WebsocketCommunicator(SchemaConsumer.as_asgi(schema="s1"), "/")
    await comm.connect()
    await comm.send_json_to({})
    assert await comm.receive_json_from() == {
        "schema": "s1",
        "keep_alive": False,
        "groups": ["schemas"],
    }
    await comm.disconnect()


def test_websocket_consumer_init_keywords_are_checked_when_routing():
    with pytest.raises(TypeError, match=r"SchemaConsumer\.as_asgi\(\).*'colour'"):
        SchemaConsumer.as_asgi(schema="s1", colour="blue")
    with pytest.raises(TypeError, match="schema"):
        SchemaConsumer.as_asgi(keep_alive=True)


async def test_keywords_no_init_takes_are_ignored_with_a_warning():
    # Channels' WebSocket consumers accept and drop them; so do we, but say so.
    with pytest.warns(RuntimeWarning, match=r"SyncJson\.as_asgi\(\).*'colour'"):
        app = SyncJson.as_asgi(colour="blue")
    comm = WebsocketCommunicator(app, "/")
    assert (await comm.connect())[0]
    await comm.send_json_to(1)
    assert await comm.receive_json_from() == {"got": 1}
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
