"""WebSocket consumers talking to each other through a channel layer.

Every test runs for the sync and the async consumer flavour, on each layer of
the contract suite (in-memory, and channels_redis when Redis is reachable).
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    JsonWebsocketConsumer,
)
from channels_app.layers import get_channel_layer
from channels_app.layers.registry import close_layer
from channels_app.testing import WebsocketCommunicator
from tests.layers.helpers import Listener
from tests.layers.implementations import LAYER_PARAMS
from tests.services import require


class AsyncChat(AsyncJsonWebsocketConsumer):
    groups = ["lobby"]

    async def connect(self):
        await self.accept()
        await self.send_json({"me": self.channel_name})

    async def receive_json(self, content, **kwargs):
        if "to" in content:
            await self.channel_layer.send(
                content["to"], {"type": "chat.message", "text": content["text"]}
            )
        elif "say" in content:
            await self.channel_layer.group_send(
                "lobby", {"type": "chat.message", "text": content["say"]}
            )
        else:
            await self.send_json({"echo": content["echo"]})

    async def chat_message(self, event):
        await self.send_json({"text": event["text"]})


class SyncChat(JsonWebsocketConsumer):
    groups = ["lobby"]

    def connect(self):
        self.accept()
        self.send_json({"me": self.channel_name})

    def receive_json(self, content, **kwargs):
        if "to" in content:
            async_to_sync(self.channel_layer.send)(
                content["to"], {"type": "chat.message", "text": content["text"]}
            )
        elif "say" in content:
            async_to_sync(self.channel_layer.group_send)(
                "lobby", {"type": "chat.message", "text": content["say"]}
            )
        else:
            self.send_json({"echo": content["echo"]})

    def chat_message(self, event):
        self.send_json({"text": event["text"]})


@pytest.fixture(params=[AsyncChat, SyncChat], ids=["async", "sync"])
def consumer(request):
    return request.param


@pytest.fixture(params=LAYER_PARAMS)
async def layer(request, settings):
    for service in request.param.services:
        require(service)
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": request.param.backend,
            "CONFIG": request.param.base_config(),
        }
    }
    layer = get_channel_layer()
    yield layer
    await layer.flush()
    await close_layer(layer)  # database layers hold connections until closed


@pytest.fixture
async def connect(consumer, layer):
    """``await connect()``: a connected client and its consumer's channel name."""
    clients = []

    async def open_client():
        client = WebsocketCommunicator(consumer.as_asgi(), "/chat/")
        connected, _ = await client.connect(timeout=5)
        assert connected
        clients.append(client)
        hello = await client.receive_json_from(timeout=5)
        return client, hello["me"]

    yield open_client
    for client in clients:
        if not client.future.done():  # a test may have crashed its consumer
            # channels_redis may hold a cancelled receive for its 5 s Redis
            # poll; after 1 s the communicator cancels the consumer outright.
            await client.disconnect(timeout=1)


async def test_each_consumer_gets_its_own_channel_on_the_layer(connect, layer):
    first_client, first = await connect()
    second_client, second = await connect()
    assert first != second
    await layer.send(first, {"type": "chat.message", "text": "direct"})
    assert await first_client.receive_json_from(timeout=5) == {"text": "direct"}
    assert await second_client.receive_nothing(timeout=0.1)


async def test_layer_messages_are_dispatched_to_the_handler_named_by_type(
    connect, layer
):
    client, channel = await connect()
    await layer.send(channel, {"type": "chat.message", "text": "from the layer"})
    assert await client.receive_json_from(timeout=5) == {"text": "from the layer"}


async def test_consumers_talk_to_each_other_by_channel_name(connect):
    alice, _ = await connect()
    bob, bob_channel = await connect()
    await alice.send_json_to({"to": bob_channel, "text": "hi bob"})
    assert await bob.receive_json_from(timeout=5) == {"text": "hi bob"}
    assert await alice.receive_nothing(timeout=0.1)


async def test_groups_are_joined_on_connect_and_reach_every_member(connect):
    alice, _ = await connect()
    bob, _ = await connect()
    await alice.send_json_to({"say": "hello lobby"})
    assert await alice.receive_json_from(timeout=5) == {"text": "hello lobby"}
    assert await bob.receive_json_from(timeout=5) == {"text": "hello lobby"}


async def test_groups_are_left_on_disconnect(connect, layer):
    alice, _ = await connect()
    bob, bob_channel = await connect()
    await bob.disconnect(timeout=5)
    # Listen on bob's old channel: were he still in the group, it would fill.
    bobs_mailbox = Listener(layer, bob_channel)
    try:
        await alice.send_json_to({"say": "who is here?"})
        assert await alice.receive_json_from(timeout=5) == {"text": "who is here?"}
        await bobs_mailbox.nothing(0.2)
    finally:
        await bobs_mailbox.stop()


async def test_client_frames_and_layer_messages_interleave_in_order(connect, layer):
    client, channel = await connect()
    for n in range(20):
        await client.send_json_to({"echo": n})
        await layer.send(channel, {"type": "chat.message", "text": str(n)})
    replies = [await client.receive_json_from(timeout=5) for _ in range(40)]
    echoes = [reply["echo"] for reply in replies if "echo" in reply]
    texts = [reply["text"] for reply in replies if "text" in reply]
    # Each source keeps its order; neither starves the other.
    assert echoes == list(range(20))
    assert texts == [str(n) for n in range(20)]


async def test_a_layer_message_without_a_handler_is_a_clear_error(connect, layer):
    client, channel = await connect()
    await layer.send(channel, {"type": "chat.unknown"})
    with pytest.raises(ValueError, match="No handler for message type 'chat.unknown'"):
        await client.receive_from(timeout=1)


async def test_a_consumer_told_it_lost_its_groups_joins_them_again(connect, layer):
    """A layer that drops a live member sends GROUPS_LOST; it re-joins."""
    from channels_app.layers.base import GROUPS_LOST

    alice, alice_channel = await connect()
    await layer.group_discard("lobby", alice_channel)
    await layer.group_send("lobby", {"type": "chat.message", "text": "missed"})
    assert await alice.receive_nothing(timeout=0.2)

    await layer.send(alice_channel, {"type": GROUPS_LOST, "groups": ["lobby"]})
    # The re-join runs in Alice's consumer; group messages reach her again.
    for _attempt in range(50):
        await layer.group_send("lobby", {"type": "chat.message", "text": "back"})
        if not await alice.receive_nothing(timeout=0.1):
            break
    else:
        pytest.fail("the consumer did not re-join its group")
    assert await alice.receive_json_from(timeout=5) == {"text": "back"}
