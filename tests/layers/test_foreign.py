"""Third-party layers (the real channels_redis) raise exceptions we can catch."""

import asyncio
import time
import uuid

import pytest
from asgiref.sync import async_to_sync

import channels_app.exceptions
from channels_app.consumer import AsyncConsumer, SyncConsumer
from channels_app.layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from channels_app.layers.foreign import adapt_layer, bridge_class, translate
from channels_app.testing import ApplicationCommunicator
from tests.layers.implementations import redis_config
from tests.services import REDIS_URL, require
from tests.support.waiting import eventually, eventually_sync


@pytest.fixture
async def redis_layer(settings):
    require("redis")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {**redis_config(), "capacity": 1},
        }
    }
    layer = get_channel_layer()
    yield layer
    await layer.flush()


async def test_channel_full_from_channels_redis_is_our_channel_full(redis_layer):
    from channels.exceptions import ChannelFull as TheirChannelFull
    from channels_redis.core import RedisChannelLayer

    assert type(redis_layer) is RedisChannelLayer
    await redis_layer.send("full.one", {"type": "test"})
    with pytest.raises(channels_app.exceptions.ChannelFull) as caught:
        await redis_layer.send("full.one", {"type": "test"})
    # Code written for Django Channels still catches it too.
    assert isinstance(caught.value, TheirChannelFull)
    assert type(caught.value).__name__ == "ChannelFull"
    try:
        await redis_layer.send("full.one", {"type": "test"})
    except TheirChannelFull:
        pass


class Relay(AsyncConsumer):
    async def relay_to(self, message):
        try:
            await self.channel_layer.send(message["target"], {"type": "payload"})
        except channels_app.exceptions.ChannelFull:
            await self.send({"type": "relay.result", "outcome": "full"})
        else:
            await self.send({"type": "relay.result", "outcome": "sent"})


class SyncRelay(SyncConsumer):
    def relay_to(self, message):
        try:
            async_to_sync(self.channel_layer.send)(
                message["target"], {"type": "payload"}
            )
        except channels_app.exceptions.ChannelFull:
            self.send({"type": "relay.result", "outcome": "full"})
        else:
            self.send({"type": "relay.result", "outcome": "sent"})


@pytest.mark.parametrize("consumer", [Relay, SyncRelay])
async def test_a_consumer_handles_a_full_redis_channel(redis_layer, consumer):
    communicator = ApplicationCommunicator(consumer.as_asgi(), {"type": "test"})
    outcomes = []
    for _ in range(2):
        await communicator.send_input({"type": "relay.to", "target": "busy.worker"})
        outcomes.append((await communicator.receive_output(timeout=5))["outcome"])
    assert outcomes == ["sent", "full"]
    communicator.stop()


def test_a_pubsub_layer_is_adapted_without_an_event_loop(settings):
    require("redis")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": redis_config(),
        }
    }
    layer = get_channel_layer()  # no running loop here

    async def round_trip():
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "ping"})
        try:
            return await asyncio.wait_for(layer.receive(channel), 5)
        finally:
            await layer.flush()

    assert async_to_sync(round_trip)()["type"] == "ping"


def test_our_layers_are_left_untouched():
    layer = InMemoryChannelLayer()
    assert adapt_layer(layer) is layer
    assert "send" not in vars(layer)
    channel_layers.set("untouched", layer)
    # The registry's metrics may count its calls; nothing translates them.
    assert not hasattr(vars(layer).get("send"), "__wrapped__")


def test_bridge_classes_are_cached_and_catchable_both_ways():
    class ChannelFull(Exception):
        pass

    bridge = bridge_class(ChannelFull)
    assert bridge is bridge_class(ChannelFull)
    assert issubclass(bridge, ChannelFull)
    assert issubclass(bridge, channels_app.exceptions.ChannelFull)
    assert bridge_class(ValueError) is None  # no namesake of ours
    assert bridge_class(channels_app.exceptions.ChannelFull) is None


def test_translation_keeps_the_instance_when_it_can():
    class MessageTooLarge(Exception):
        pass

    original = MessageTooLarge("too big", 5)
    assert translate(original) is original
    assert isinstance(original, channels_app.exceptions.MessageTooLarge)
    assert original.args == ("too big", 5)


def test_translation_chains_a_copy_when_the_class_cannot_change():
    class ChannelFull(Exception):
        __slots__ = ("channel",)

    original = ChannelFull("queue x")
    translated = translate(original)
    assert translated is not original
    assert isinstance(translated, channels_app.exceptions.ChannelFull)
    assert isinstance(translated, ChannelFull)
    assert translated.args == ("queue x",)
    assert translated.__cause__ is original


async def test_a_blocking_receive_outlives_the_redis_read_timeout(redis_layer):
    """channels_redis waits for messages with a blocking ``BZPOPMIN`` of
    ``brpop_timeout`` seconds; a socket read timeout no longer than that
    (redis-py 8's default is 5 s, the same) would make an idle consumer's
    ``receive`` fail now and then, closing its WebSocket with 1011."""
    pool = redis_layer.create_pool(0)
    read_timeout = pool.connection_class(**pool.connection_kwargs).socket_timeout
    assert read_timeout is None or read_timeout > redis_layer.brpop_timeout
    channel = await redis_layer.new_channel()
    waiting = asyncio.ensure_future(redis_layer.receive(channel))
    # Let the blocking read start (channels_redis shows no sign of it); sent
    # earlier, the message would be found without any wait at all.
    await asyncio.sleep(0.2)
    await redis_layer.send(channel, {"type": "late"})
    assert (await asyncio.wait_for(waiting, 5))["type"] == "late"


async def test_channels_redis_loses_a_message_whose_receive_is_cancelled_in_flight():
    """A limitation of channels_redis 4 that users must know about: its
    ``_brpop_with_clean`` takes a message with ``BZPOPMIN``, which removes it
    in Redis, and only then copies it to its ``$inflight`` backup.  A receive
    cancelled after Redis replied but before the client read the reply (a
    worker stopping, a consumer closing) makes redis-py drop the connection
    and the unread reply with it: the message is in neither key, and gone.
    On a busy machine the contract suite's random cancels hit this window."""
    require("redis")
    import redis as blocking_redis
    from channels_redis.core import RedisChannelLayer

    name = f"cancel-{uuid.uuid4().hex[:12]}"
    layer = RedisChannelLayer(
        hosts=[{"address": REDIS_URL, "client_name": name}],
        prefix=redis_config()["prefix"],
    )
    redis = blocking_redis.Redis.from_url(REDIS_URL)
    key = layer.prefix + "cancelled.work"

    def blocked_in_bzpopmin() -> bool:
        return any(
            client["name"] == name and client["cmd"] == "bzpopmin"
            for client in redis.client_list()
        )

    try:
        receive = asyncio.ensure_future(layer.receive("cancelled.work"))
        await eventually(blocked_in_bzpopmin)
        # Deliberate: blocking calls from here to the cancel, so the event
        # loop never runs and the receive cannot read the reply Redis sends.
        redis.zadd(key, {layer.serialize({"type": "in.flight"}): time.time()})
        eventually_sync(lambda: redis.zcard(key) == 0)  # Redis handed it over
        receive.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receive
        assert redis.zcard(key) == redis.zcard(key + "$inflight") == 0
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive("cancelled.work"), 0.2)
    finally:
        await layer.flush()
        redis.close()
