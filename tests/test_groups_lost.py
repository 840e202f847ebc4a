"""A layer that drops a live consumer's channel from its groups tells it.

Layers drop a channel from its groups when a message to it expires unread or
when its membership outlives ``group_expiry``.  The consumer may be alive --
slow, or simply connected for longer than ``group_expiry`` -- and must not be
left open and deaf: by default it re-joins (``groups_lost``).  The in-memory
layer tells it out of band, leaving the channel as Channels' layer would; the
database layer sends a ``channels_app.groups.lost`` message on the channel.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync

from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    JsonWebsocketConsumer,
)
from channels_app.layers import InMemoryChannelLayer, get_channel_layer
from channels_app.layers.registry import close_layer
from channels_app.testing import WebsocketCommunicator
from tests.layers.implementations import DATABASE_TABLES
from tests.services import require

#: Opened by the test to let a busy AsyncMember handler finish.
gates: dict[str, asyncio.Event] = {}


class AsyncMember(AsyncJsonWebsocketConsumer):
    groups = ["lobby"]

    async def connect(self):
        await self.accept()
        await self.send_json({"me": self.channel_name})

    async def receive_json(self, content, **kwargs):
        # Busy until the test opens the gate: the consumer reads nothing.
        await gates[content["wait_for"]].wait()

    async def groups_lost(self, groups):
        await super().groups_lost(groups)
        await self.send_json({"rejoined": groups})

    async def chat_message(self, event):
        await self.send_json({"text": event["text"]})


class SyncMember(JsonWebsocketConsumer):
    groups = ["lobby"]

    def connect(self):
        self.accept()
        self.send_json({"me": self.channel_name})

    def groups_lost(self, groups):  # a sync override runs in a worker thread
        for group in groups:
            async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
        self.send_json({"rejoined": groups})

    def chat_message(self, event):
        self.send_json({"text": event["text"]})


async def connect(consumer):
    client = WebsocketCommunicator(consumer.as_asgi(), "/lobby/")
    connected, _ = await client.connect(timeout=5)
    assert connected
    hello = await client.receive_json_from(timeout=5)
    return client, hello["me"]


async def until(condition, timeout: float = 10.0, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(step)


@pytest.fixture
def memory_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_app.layers.InMemoryChannelLayer",
            "CONFIG": {"expiry": 0.3, "group_expiry": 0.3},
        }
    }
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    return layer


@pytest.mark.parametrize("consumer", [AsyncMember, SyncMember], ids=["async", "sync"])
async def test_an_expired_membership_is_renewed_by_the_live_consumer(
    memory_layer, consumer
):
    client, channel = await connect(consumer)
    # Nobody touches the layer: its own timer expires the membership.
    assert await client.receive_json_from(timeout=5) == {"rejoined": ["lobby"]}
    assert channel in memory_layer.groups["lobby"]
    # Out of band: the channel holds no notice a Channels test could see.
    assert (
        channel not in memory_layer.channels or memory_layer.channels[channel].empty()
    )
    await memory_layer.group_send("lobby", {"type": "chat.message", "text": "hi"})
    assert await client.receive_json_from(timeout=5) == {"text": "hi"}
    await client.disconnect()


async def test_a_consumer_whose_message_expired_unread_rejoins_when_free(
    memory_layer,
):
    memory_layer.group_expiry = 60  # only the message expires here
    gates["busy"] = asyncio.Event()
    client, channel = await connect(AsyncMember)
    await client.send_json_to({"wait_for": "busy"})
    # The first is taken by the consumer's pending receive; the second waits
    # on the channel, unread for longer than ``expiry``, so the layer drops
    # the channel from its groups (as Channels' layer does) while it is busy.
    for text in ("taken", "expires"):
        await memory_layer.group_send("lobby", {"type": "chat.message", "text": text})
    await until(lambda: channel not in memory_layer.groups.get("lobby", {}))
    gates["busy"].set()
    replies = [await client.receive_json_from(timeout=5) for _ in range(2)]
    assert sorted(map(str, replies)) == [
        "{'rejoined': ['lobby']}",
        "{'text': 'taken'}",
    ]
    await memory_layer.group_send("lobby", {"type": "chat.message", "text": "back"})
    assert await client.receive_json_from(timeout=5) == {"text": "back"}
    await client.disconnect()


async def test_a_consumer_that_ended_stops_listening_for_losses(memory_layer):
    client, channel = await connect(AsyncMember)
    await client.disconnect()
    assert channel not in memory_layer._group_loss_watches._watches


async def test_explicit_discards_and_flushes_are_not_losses(memory_layer):
    memory_layer.group_expiry = 60
    client, channel = await connect(AsyncMember)
    await memory_layer.group_discard("lobby", channel)
    await memory_layer.flush()
    assert await client.receive_nothing(timeout=0.5)
    await client.disconnect()


@pytest.fixture(params=["default", "postgres"], ids=["sqlite", "postgres"])
async def database_layer(request, settings):
    if request.param == "postgres":
        require("postgres")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_app.layers.database.DatabaseChannelLayer",
            "CONFIG": {
                "database": request.param,
                "group_expiry": 1.0,
                "cleanup_interval": 0.1,
            },
        }
    }
    layer = get_channel_layer()
    yield layer
    await layer.flush()
    await close_layer(layer)


@DATABASE_TABLES[0]
async def test_the_database_layer_tells_a_consumer_its_membership_expired(
    database_layer,
):
    client, _ = await connect(AsyncMember)
    # Group sends run the layer's cleanup, which finds the expired membership
    # and sends the consumer a GROUPS_LOST on its channel.
    told = None
    deadline = time.monotonic() + 15
    while told is None:
        assert time.monotonic() < deadline, "no groups.lost reached the consumer"
        await database_layer.group_send("lobby", {"type": "chat.message", "text": "?"})
        # (A receive that times out would cancel the consumer: look first.)
        if await client.receive_nothing(timeout=0.2):
            continue
        reply = await client.receive_json_from(timeout=5)
        if "rejoined" in reply:
            told = reply
    assert told == {"rejoined": ["lobby"]}
    await database_layer.group_send("lobby", {"type": "chat.message", "text": "ok"})
    replies = []
    while {"text": "ok"} not in replies:  # after the probes sent before
        replies.append(await client.receive_json_from(timeout=5))
    await client.disconnect()
