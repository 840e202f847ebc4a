"""Consumers read their in-memory channel without a task of their own.

The in-memory layer's channels are push sources (``channels_app.multiplex``):
an idle consumer waits on one future instead of a pump task, and a message
handed to that future is never lost, whether the consumer dispatches it,
stops before it could, or fails on it.
"""

from __future__ import annotations

import asyncio

import pytest

from channels_app.generic.websocket import AsyncWebsocketConsumer
from channels_app.layers import InMemoryChannelLayer, get_channel_layer
from channels_app.layers.registry import close_layer
from channels_app.multiplex import PushSource
from channels_app.testing import WebsocketCommunicator
from channels_app.utils import await_many_dispatch
from tests.support.waiting import eventually


@pytest.fixture
async def layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
    }
    layer = get_channel_layer()
    yield layer
    await close_layer(layer)


class Relay(AsyncWebsocketConsumer):
    """Says its channel name, then relays every layer message to its client."""

    async def connect(self):
        await self.accept()
        await self.send(text_data=self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=f"client:{text_data}")

    async def relay(self, event):
        if event["n"] == "boom":
            raise LookupError("the handler failed on a layer message")
        await self.send(text_data=f"layer:{event['n']}")


async def test_an_idle_consumer_holds_no_task_but_its_own(layer):
    before = len(asyncio.all_tasks())
    communicators = [WebsocketCommunicator(Relay.as_asgi(), "/") for _ in range(5)]
    for communicator in communicators:
        connected, _ = await communicator.connect()
        assert connected
        await communicator.receive_from()
    # One task per connection: the application task the communicator runs.
    assert len(asyncio.all_tasks()) - before == 5
    for communicator in communicators:
        await communicator.disconnect()


async def test_layer_and_client_messages_all_arrive_each_in_order(layer):
    communicator = WebsocketCommunicator(Relay.as_asgi(), "/")
    await communicator.connect()
    channel = await communicator.receive_from()
    for n in range(50):
        await layer.send(channel, {"type": "relay", "n": n})
        await communicator.send_to(text_data=str(n))
    received = [await communicator.receive_from() for _ in range(100)]
    assert [r for r in received if r.startswith("layer:")] == [
        f"layer:{n}" for n in range(50)
    ]
    assert [r for r in received if r.startswith("client:")] == [
        f"client:{n}" for n in range(50)
    ]
    await communicator.disconnect()
    assert layer.stats()["waiting_receivers"] == 0


async def test_a_failing_layer_message_handler_stops_the_consumer(layer):
    communicator = WebsocketCommunicator(Relay.as_asgi(), "/")
    await communicator.connect()
    channel = await communicator.receive_from()
    await layer.send(channel, {"type": "relay", "n": "boom"})
    with pytest.raises(LookupError, match="failed on a layer message"):
        await communicator.wait(timeout=2)
    assert layer.stats()["waiting_receivers"] == 0


async def test_a_message_handed_over_as_the_reader_stops_stays_in_the_channel():
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    client: asyncio.Queue[dict] = asyncio.Queue()
    source = layer.push_source(channel)
    assert isinstance(source, PushSource)
    dispatched = []

    async def dispatch(message):
        dispatched.append(message)

    reader = asyncio.ensure_future(await_many_dispatch([client.get, source], dispatch))
    await eventually(lambda: layer.stats()["waiting_receivers"] == 1)
    # The send hands the message to the reader's future at once; the reader
    # is cancelled before its callback could start dispatching it.
    await layer.send(channel, {"type": "kept", "n": 1})
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    source.close()
    assert dispatched == []
    assert await asyncio.wait_for(layer.receive(channel), 1) == {"type": "kept", "n": 1}


async def test_messages_queued_before_the_reader_starts_are_dispatched_first():
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "early", "n": n})
    client: asyncio.Queue[dict] = asyncio.Queue()
    source = layer.push_source(channel)
    dispatched = []

    async def dispatch(message):
        dispatched.append(message["n"])

    reader = asyncio.ensure_future(await_many_dispatch([client.get, source], dispatch))
    await eventually(lambda: len(dispatched) == 3)
    await layer.send(channel, {"type": "late", "n": 3})
    await eventually(lambda: len(dispatched) == 4)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    source.close()
    assert dispatched == [0, 1, 2, 3]
    assert layer.stats()["waiting_receivers"] == 0
