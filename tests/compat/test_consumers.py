"""Consumers and tests written the way Channels 4's documentation writes them.

The consumers topic page, tutorial parts 2 and 3 and the testing page, with
``channels`` replaced by ``channels_app`` and nothing else: a project that
migrates by changing its import prefix must see these pass unchanged.  The
class bodies keep the documentation's shape (signatures, positional
``accept("subprotocol")``, ``groups = [...]``, message types written either
way) because those are exactly what a migrated project contains.
"""

import json

import pytest
from asgiref.sync import async_to_sync
from django.urls import re_path

from channels_app.consumer import AsyncConsumer, SyncConsumer
from channels_app.exceptions import AcceptConnection, DenyConnection, StopConsumer
from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels_app.layers import get_channel_layer
from channels_app.routing import URLRouter
from channels_app.testing import WebsocketCommunicator


@pytest.fixture
def channel_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"},
        "echo_alias": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"},
    }
    return get_channel_layer()


# -- Consumers topic: "Basic Layout" ---------------------------------------


class SyncEchoConsumer(SyncConsumer):
    def websocket_connect(self, event):
        self.send({"type": "websocket.accept"})

    def websocket_receive(self, event):
        self.send({"type": "websocket.send", "text": event["text"]})

    def websocket_disconnect(self, event):
        raise StopConsumer()


class AsyncEchoConsumer(AsyncConsumer):
    async def websocket_connect(self, event):
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, event):
        await self.send({"type": "websocket.send", "text": event["text"]})

    async def websocket_disconnect(self, event):
        raise StopConsumer()


@pytest.mark.parametrize("consumer", [SyncEchoConsumer, AsyncEchoConsumer])
async def test_basic_layout_echo(consumer):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/testws/")
    connected, subprotocol = await communicator.connect()
    assert connected
    assert subprotocol is None
    await communicator.send_to(text_data="hello")
    response = await communicator.receive_from()
    assert response == "hello"
    await communicator.disconnect()


class AliasedEchoConsumer(SyncConsumer):
    channel_layer_alias = "echo_alias"

    def websocket_connect(self, event):
        self.send({"type": "websocket.accept"})
        self.send({"type": "websocket.send", "text": self.channel_name})

    def echo_message(self, event):
        self.send({"type": "websocket.send", "text": event["text"]})

    def websocket_disconnect(self, event):
        raise StopConsumer()


async def test_channel_layer_alias_picks_the_layer(channel_layer):
    communicator = WebsocketCommunicator(AliasedEchoConsumer.as_asgi(), "/testws/")
    connected, _ = await communicator.connect()
    assert connected
    channel_name = await communicator.receive_from()
    echo_layer = get_channel_layer("echo_alias")
    await echo_layer.send(channel_name, {"type": "echo.message", "text": "via alias"})
    assert await communicator.receive_from() == "via alias"
    await communicator.disconnect()


# -- Consumers topic: WebsocketConsumer / AsyncWebsocketConsumer -----------


class MyConsumer(WebsocketConsumer):
    groups = ["broadcast"]

    def connect(self):
        if "subprotocol" in self.scope["subprotocols"]:
            # Or accept the connection and specify a chosen subprotocol.
            self.accept("subprotocol")
        elif self.scope["path"].endswith("/reject/"):
            # To reject the connection, call:
            self.close()
        else:
            # To accept the connection call:
            self.accept()

    def receive(self, text_data=None, bytes_data=None):
        # Called with either text_data or bytes_data for each frame
        if text_data == "close":
            # Want to force-close the connection? Call:
            self.close()
        elif text_data == "error":
            # Or add a custom WebSocket error code!
            self.close(code=4123)
        elif text_data is not None:
            self.send(text_data="Hello world!")
        else:
            # Or, to send a binary frame:
            self.send(bytes_data=b"Hello world!")

    def broadcast_message(self, event):
        self.send(text_data=event["text"])

    def disconnect(self, close_code):
        # Called when the socket closes
        pass


class MyAsyncConsumer(AsyncWebsocketConsumer):
    groups = ["broadcast"]

    async def connect(self):
        if "subprotocol" in self.scope["subprotocols"]:
            await self.accept("subprotocol")
        elif self.scope["path"].endswith("/reject/"):
            await self.close()
        else:
            await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if text_data == "close":
            await self.close()
        elif text_data == "error":
            await self.close(code=4123)
        elif text_data is not None:
            await self.send(text_data="Hello world!")
        else:
            await self.send(bytes_data=b"Hello world!")

    async def broadcast_message(self, event):
        await self.send(text_data=event["text"])

    async def disconnect(self, close_code):
        pass


@pytest.fixture(params=[MyConsumer, MyAsyncConsumer], ids=["sync", "async"])
def my_consumer(request, channel_layer):
    return request.param


async def test_websocket_consumer_frames_and_closing(my_consumer):
    communicator = WebsocketCommunicator(my_consumer.as_asgi(), "/testws/")
    connected, subprotocol = await communicator.connect()
    assert connected and subprotocol is None
    await communicator.send_to(text_data="hi")
    assert await communicator.receive_from() == "Hello world!"
    await communicator.send_to(bytes_data=b"hi\0")
    assert await communicator.receive_from() == b"Hello world!"
    assert await communicator.receive_nothing() is True
    await communicator.send_to(text_data="error")
    assert await communicator.receive_output() == {
        "type": "websocket.close",
        "code": 4123,
    }
    await communicator.send_to(text_data="close")
    assert await communicator.receive_output() == {"type": "websocket.close"}
    await communicator.disconnect()


async def test_websocket_consumer_accepts_a_subprotocol(my_consumer):
    communicator = WebsocketCommunicator(
        my_consumer.as_asgi(), "/testws/", subprotocols=["other", "subprotocol"]
    )
    assert await communicator.connect() == (True, "subprotocol")
    await communicator.disconnect()


async def test_websocket_consumer_close_in_connect_rejects(my_consumer):
    communicator = WebsocketCommunicator(my_consumer.as_asgi(), "/testws/reject/")
    connected, close_code = await communicator.connect()
    assert not connected
    assert close_code == 1000


async def test_groups_attribute_receives_group_messages(my_consumer, channel_layer):
    first = WebsocketCommunicator(my_consumer.as_asgi(), "/testws/")
    second = WebsocketCommunicator(my_consumer.as_asgi(), "/testws/")
    assert (await first.connect())[0] and (await second.connect())[0]
    await channel_layer.group_send(
        "broadcast", {"type": "broadcast.message", "text": "to all"}
    )
    assert await first.receive_from() == "to all"
    assert await second.receive_from() == "to all"
    await first.disconnect()
    # After disconnecting, the channel has left the group.
    await channel_layer.group_send(
        "broadcast", {"type": "broadcast.message", "text": "to the rest"}
    )
    assert await second.receive_from() == "to the rest"
    await second.disconnect()


class Gatekeeper(AsyncWebsocketConsumer):
    async def connect(self):
        # Raise AcceptConnection or DenyConnection from anywhere in connect.
        if self.scope["path"] == "/open/":
            raise AcceptConnection()
        raise DenyConnection()


class SyncGatekeeper(WebsocketConsumer):
    def connect(self):
        if self.scope["path"] == "/open/":
            raise AcceptConnection()
        raise DenyConnection()


@pytest.mark.parametrize("consumer", [Gatekeeper, SyncGatekeeper])
async def test_accept_and_deny_connection_exceptions(consumer):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/open/")
    assert await communicator.connect() == (True, None)
    await communicator.disconnect()
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/closed/")
    assert await communicator.connect() == (False, 1000)


# -- Overriding the protocol handlers, calling the base class ---------------


class AuditingConsumer(WebsocketConsumer):
    """Sync overrides of the protocol handlers that defer to the base class,
    as code written against Channels' plain-method handlers does."""

    def websocket_connect(self, message):
        self.scope["audit"].append("connect")
        super().websocket_connect(message)

    def websocket_receive(self, message):
        self.scope["audit"].append(("frame", message.get("text")))
        super().websocket_receive(message)

    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=text_data.upper())

    def websocket_disconnect(self, message):
        self.scope["audit"].append(("disconnect", message["code"]))
        super().websocket_disconnect(message)


class AsyncAuditingConsumer(AsyncWebsocketConsumer):
    async def websocket_connect(self, message):
        self.scope["audit"].append("connect")
        await super().websocket_connect(message)

    async def websocket_receive(self, message):
        self.scope["audit"].append(("frame", message.get("text")))
        await super().websocket_receive(message)

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data.upper())

    async def websocket_disconnect(self, message):
        self.scope["audit"].append(("disconnect", message["code"]))
        await super().websocket_disconnect(message)


@pytest.mark.parametrize("consumer", [AuditingConsumer, AsyncAuditingConsumer])
async def test_protocol_handler_overrides_calling_super(consumer):
    audit = []
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/testws/")
    communicator.scope["audit"] = audit
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data="hi")
    assert await communicator.receive_from() == "HI"
    # disconnect() waits for the consumer to end: the base handler's
    # StopConsumer got through the override.
    await communicator.disconnect(code=1001)
    assert audit == ["connect", ("frame", "hi"), ("disconnect", 1001)]


# -- Consumers topic: the JSON consumers -----------------------------------


class EchoJsonConsumer(JsonWebsocketConsumer):
    def receive_json(self, content):
        self.send_json({"echo": content})


class AsyncEchoJsonConsumer(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content):
        await self.send_json({"echo": content})


@pytest.mark.parametrize("consumer", [EchoJsonConsumer, AsyncEchoJsonConsumer])
async def test_json_consumer(consumer):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/testws/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"hello": "world"})
    response = await communicator.receive_json_from()
    assert response == {"echo": {"hello": "world"}}
    await communicator.disconnect()


class AsyncCustomJsonConsumer(AsyncJsonWebsocketConsumer):
    """The topic page: "even ``encode_json`` and ``decode_json`` are async"."""

    @classmethod
    async def decode_json(cls, text_data):
        return json.loads(text_data, parse_float=str)

    @classmethod
    async def encode_json(cls, content):
        return json.dumps(content, sort_keys=True)

    async def receive_json(self, content):
        await self.send_json({"z": 1, "a": content})


class CustomJsonConsumer(JsonWebsocketConsumer):
    @classmethod
    def decode_json(cls, text_data):
        return json.loads(text_data, parse_float=str)

    @classmethod
    def encode_json(cls, content):
        return json.dumps(content, sort_keys=True)

    def receive_json(self, content):
        self.send_json({"z": 1, "a": content})


@pytest.mark.parametrize("consumer", [CustomJsonConsumer, AsyncCustomJsonConsumer])
async def test_json_codec_overrides(consumer):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/testws/")
    await communicator.connect()
    await communicator.send_to(text_data="1.10")
    assert await communicator.receive_from() == '{"a": "1.10", "z": 1}'
    await communicator.disconnect()


# -- Tutorial part 2: the synchronous ChatConsumer -------------------------


class EchoChatConsumer(WebsocketConsumer):
    def connect(self):
        self.accept()

    def disconnect(self, close_code):
        pass

    def receive(self, text_data):
        text_data_json = json.loads(text_data)
        message = text_data_json["message"]

        self.send(text_data=json.dumps({"message": message}))


async def test_tutorial_part_2_echo_consumer():
    communicator = WebsocketCommunicator(EchoChatConsumer.as_asgi(), "/ws/chat/a/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"message": "hello"})
    assert await communicator.receive_json_from() == {"message": "hello"}
    await communicator.disconnect()


class ChatConsumer(WebsocketConsumer):
    def connect(self):
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = "chat_%s" % self.room_name  # noqa: UP031 (as in the docs)

        # Join room group
        async_to_sync(self.channel_layer.group_add)(
            self.room_group_name, self.channel_name
        )

        self.accept()

    def disconnect(self, close_code):
        # Leave room group
        async_to_sync(self.channel_layer.group_discard)(
            self.room_group_name, self.channel_name
        )

    # Receive message from WebSocket
    def receive(self, text_data):
        text_data_json = json.loads(text_data)
        message = text_data_json["message"]

        # Send message to room group
        async_to_sync(self.channel_layer.group_send)(
            self.room_group_name, {"type": "chat_message", "message": message}
        )

    # Receive message from room group
    def chat_message(self, event):
        message = event["message"]

        # Send message to WebSocket
        self.send(text_data=json.dumps({"message": message}))


# -- Tutorial part 3: the asynchronous ChatConsumer ------------------------


class AsyncChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = f"chat_{self.room_name}"

        # Join room group
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)

        await self.accept()

    async def disconnect(self, close_code):
        # Leave room group
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    # Receive message from WebSocket
    async def receive(self, text_data):
        text_data_json = json.loads(text_data)
        message = text_data_json["message"]

        # Send message to room group
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat.message", "message": message}
        )

    # Receive message from room group
    async def chat_message(self, event):
        message = event["message"]

        # Send message to WebSocket
        await self.send(text_data=json.dumps({"message": message}))


@pytest.mark.parametrize("consumer", [ChatConsumer, AsyncChatConsumer])
async def test_tutorial_room_chat(consumer, channel_layer):
    application = URLRouter(
        [re_path(r"ws/chat/(?P<room_name>\w+)/$", consumer.as_asgi())]
    )
    alice = WebsocketCommunicator(application, "/ws/chat/lobby/")
    bob = WebsocketCommunicator(application, "/ws/chat/lobby/")
    elsewhere = WebsocketCommunicator(application, "/ws/chat/other/")
    for communicator in (alice, bob, elsewhere):
        connected, _ = await communicator.connect()
        assert connected
    await alice.send_to(text_data=json.dumps({"message": "hello"}))
    assert await alice.receive_json_from() == {"message": "hello"}
    assert await bob.receive_json_from() == {"message": "hello"}
    assert await elsewhere.receive_nothing() is True
    for communicator in (alice, bob, elsewhere):
        await communicator.disconnect()


# -- Testing topic: a URLRouter application with keyword arguments ---------


class KwargsWebSocketApp(WebsocketConsumer):
    def connect(self):
        self.accept()
        self.send(text_data=self.scope["url_route"]["kwargs"]["message"])


async def test_url_router_kwargs_reach_the_consumer():
    application = URLRouter(
        [re_path(r"^testws/(?P<message>\w+)/$", KwargsWebSocketApp.as_asgi())]
    )
    communicator = WebsocketCommunicator(application, "/testws/test/")
    connected, subprotocol = await communicator.connect()  # noqa: RUF059
    assert connected
    # Test on connection welcome message
    message = await communicator.receive_from()
    assert message == "test"
    # Close
    await communicator.disconnect()


# -- as_asgi(**initkwargs): consumers configured through __init__ ----------


class SchemaConsumer(AsyncJsonWebsocketConsumer):
    """Shaped like strawberry's GraphQL consumers: required ``__init__`` args."""

    def __init__(self, schema, keep_alive=False, **kwargs):
        self.schema = schema
        self.keep_alive = keep_alive
        super().__init__(**kwargs)

    async def connect(self):
        await self.accept("graphql-transport-ws")

    async def receive_json(self, content):
        await self.send_json(
            {"schema": self.schema, "keep_alive": self.keep_alive, "got": content}
        )


class SyncSchemaConsumer(JsonWebsocketConsumer):
    def __init__(self, *args, schema, **kwargs):
        super().__init__(*args, **kwargs)
        self.schema = schema

    def receive_json(self, content):
        self.send_json({"schema": self.schema, "keep_alive": False, "got": content})


@pytest.mark.parametrize("consumer", [SchemaConsumer, SyncSchemaConsumer])
async def test_as_asgi_keywords_reach_init(consumer):
    communicator = WebsocketCommunicator(
        consumer.as_asgi(schema="the-schema"),
        "/graphql/",
        subprotocols=["graphql-transport-ws"],
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"id": 1})
    assert await communicator.receive_json_from() == {
        "schema": "the-schema",
        "keep_alive": False,
        "got": {"id": 1},
    }
    await communicator.disconnect()


class Counter(AsyncJsonWebsocketConsumer):
    def __init__(self, start, **kwargs):
        super().__init__(**kwargs)
        self.count = start

    async def receive_json(self, content):
        self.count += 1
        await self.send_json(self.count)


async def test_as_asgi_gives_each_connection_its_own_instance():
    app = Counter.as_asgi(start=10)
    assert app.consumer_class is Counter
    assert app.consumer_initkwargs == {"start": 10}
    for _ in range(2):
        communicator = WebsocketCommunicator(app, "/count/")
        await communicator.connect()
        for expected in (11, 12):
            await communicator.send_json_to(None)
            assert await communicator.receive_json_from() == expected
        await communicator.disconnect()
