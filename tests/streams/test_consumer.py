"""StreamsMixin: a consumer subscribing for its client, replaying what it
missed and forwarding live messages once each, in order."""

from __future__ import annotations

import pytest

from channels_app.generic.websocket import AsyncJsonWebsocketConsumer
from channels_app.layers import get_channel_layer
from channels_app.streams import StreamsMixin, get_streams, publish
from channels_app.streams.hub import live_message
from channels_app.streams.names import group_for
from channels_app.testing import WebsocketCommunicator
from tests.layers.implementations import DATABASE_TABLES
from tests.services import REDIS_URL, require
from tests.streams.conftest import delete_prefixed


class Feed(StreamsMixin, AsyncJsonWebsocketConsumer):
    stream_patterns = ["chat.*", "news"]

    async def receive_json(self, content, **kwargs):
        if await self.handle_stream_frame(content):
            return
        await self.send_json({"echo": content})


class Plain(StreamsMixin, AsyncJsonWebsocketConsumer):
    """No receive_json of its own: the mixin's routes stream frames."""

    stream_patterns = ["news"]


class OwnRooms(StreamsMixin, AsyncJsonWebsocketConsumer):
    """A plain-function hook (run in a thread) deciding from the scope."""

    def can_subscribe(self, stream):
        return stream == "room." + self.scope["query_string"].decode()


class AsyncHook(StreamsMixin, AsyncJsonWebsocketConsumer):
    async def can_subscribe(self, stream):
        return stream.startswith("open.")


@pytest.fixture(
    params=[
        "memory",
        "redis",
        pytest.param("sqlite", marks=DATABASE_TABLES),
        pytest.param("postgres", marks=DATABASE_TABLES),
    ]
)
async def configured(request, settings, prefix):
    if request.param in ("sqlite", "postgres"):
        alias = "default" if request.param == "sqlite" else "postgres"
        if request.param == "postgres":
            require("postgres")
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_app.layers.database.DatabaseChannelLayer",
                "CONFIG": {"database": alias},
            }
        }
        settings.CHANNELS_APP_STREAMS = {
            "STORE": {
                "BACKEND": "channels_app.streams.DatabaseStreamStore",
                "OPTIONS": {"database": alias},
            }
        }
    elif request.param == "memory":
        settings.CHANNEL_LAYERS = {
            "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
        }
        settings.CHANNELS_APP_STREAMS = {}
    else:
        require("redis")
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [REDIS_URL], "prefix": prefix + "layer"},
            }
        }
        settings.CHANNELS_APP_STREAMS = {
            "STORE": {
                "BACKEND": "channels_app.streams.RedisStreamStore",
                "OPTIONS": {"url": REDIS_URL, "prefix": prefix},
            }
        }
    yield request.param
    await get_streams().store.close()
    if request.param == "redis":
        await get_channel_layer().close_pools()
        await delete_prefixed(prefix)
    elif request.param != "memory":
        await get_channel_layer().close()


@pytest.fixture
async def connect(configured):
    clients = []

    async def open_client(consumer=Feed, query=""):
        client = WebsocketCommunicator(consumer.as_asgi(), f"/?{query}")
        connected, _ = await client.connect(timeout=5)
        assert connected
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.disconnect()


async def frames(client, count):
    return [await client.receive_json_from(timeout=5) for _ in range(count)]


async def test_a_client_recovers_what_it_missed_then_continues_live(connect):
    published = [await publish("chat.lobby", {"n": n}) for n in range(5)]
    since = published[1].position.as_dict()
    client = await connect()
    await client.send_json_to(
        {"type": "stream.subscribe", "stream": "chat.lobby", "since": since}
    )
    subscribed, *replayed = await frames(client, 4)
    assert subscribed == {
        "type": "stream.subscribed",
        "stream": "chat.lobby",
        **since,
        "recovery": "recovered",
    }
    assert [(f["type"], f["offset"], f["data"]) for f in replayed] == [
        ("stream.message", 3, {"n": 2}),
        ("stream.message", 4, {"n": 3}),
        ("stream.message", 5, {"n": 4}),
    ]
    await publish("chat.lobby", {"n": 5})
    live = await client.receive_json_from(timeout=5)
    assert live == {
        "type": "stream.message",
        "stream": "chat.lobby",
        "epoch": since["epoch"],
        "offset": 6,
        "data": {"n": 5},
    }


async def test_a_position_too_old_is_reported_and_nothing_is_replayed(
    connect, settings
):
    settings.CHANNELS_APP_STREAMS = {
        **settings.CHANNELS_APP_STREAMS,
        "HISTORY": [{"PATTERN": "chat.*", "MAX_MESSAGES": 2}],
    }
    published = [await publish("chat.lobby", {"n": n}) for n in range(5)]
    client = await connect()
    await client.send_json_to(
        {
            "type": "stream.subscribe",
            "stream": "chat.lobby",
            "since": published[0].position.as_dict(),
        }
    )
    subscribed = await client.receive_json_from(timeout=5)
    assert subscribed["recovery"] == "too_old"
    assert subscribed["offset"] == 5  # where live messages continue from
    assert await client.receive_nothing(0.1)


async def test_subscribing_is_refused_outside_the_allowed_streams(connect):
    client = await connect()
    await client.send_json_to({"type": "stream.subscribe", "stream": "admin.log"})
    refused = await client.receive_json_from(timeout=5)
    assert refused["type"] == "stream.refused"
    assert (refused["stream"], refused["reason"]) == ("admin.log", "forbidden")
    await publish("admin.log", {"secret": 1})
    assert await client.receive_nothing(0.1)


@pytest.mark.parametrize(
    ("frame", "stream"),
    [
        ({"type": "stream.subscribe", "stream": "bad name"}, "bad name"),
        ({"type": "stream.subscribe"}, None),
        ({"type": "stream.subscribe", "stream": 7}, None),
        ({"type": "stream.subscribe", "stream": "news", "since": "1"}, "news"),
        (
            {"type": "stream.subscribe", "stream": "news", "since": {"offset": 1}},
            "news",
        ),
    ],
)
async def test_a_malformed_subscribe_frame_gets_a_clear_refusal(connect, frame, stream):
    client = await connect()
    await client.send_json_to(frame)
    refused = await client.receive_json_from(timeout=5)
    assert refused["type"] == "stream.refused"
    assert refused["reason"] == "invalid"
    assert refused["stream"] == stream
    assert refused["detail"]


async def test_other_frames_reach_the_consumer(connect):
    client = await connect()
    await client.send_json_to({"type": "chat", "text": "hi"})
    assert await client.receive_json_from(timeout=5) == {
        "echo": {"type": "chat", "text": "hi"}
    }


async def test_the_mixin_routes_stream_frames_without_a_receive_json(connect):
    client = await connect(Plain)
    await client.send_json_to({"type": "stream.subscribe", "stream": "news"})
    assert (await client.receive_json_from(timeout=5))["recovery"] == "none"


@pytest.mark.parametrize(
    ("consumer", "query", "allowed", "refused"),
    [
        (OwnRooms, "42", "room.42", "room.43"),
        (AsyncHook, "", "open.x", "closed.x"),
    ],
)
async def test_can_subscribe_may_be_a_plain_function_or_a_coroutine(
    connect, consumer, query, allowed, refused
):
    client = await connect(consumer, query)
    await client.send_json_to({"type": "stream.subscribe", "stream": refused})
    assert (await client.receive_json_from(timeout=5))["type"] == "stream.refused"
    await client.send_json_to({"type": "stream.subscribe", "stream": allowed})
    assert (await client.receive_json_from(timeout=5))["type"] == "stream.subscribed"


async def test_a_live_message_delivered_twice_is_shown_once(connect):
    client = await connect()
    await client.send_json_to({"type": "stream.subscribe", "stream": "news"})
    await client.receive_json_from(timeout=5)
    message = await publish("news", {"n": 1})
    assert (await client.receive_json_from(timeout=5))["offset"] == 1
    await get_channel_layer().group_send(group_for("news"), live_message(message))
    await publish("news", {"n": 2})
    assert (await client.receive_json_from(timeout=5))["offset"] == 2
    assert await client.receive_nothing(0.1)


async def test_a_live_message_the_layer_lost_is_fetched_from_the_store(connect):
    client = await connect()
    await client.send_json_to({"type": "stream.subscribe", "stream": "news"})
    await client.receive_json_from(timeout=5)
    streams = get_streams()
    # Stored but never sent live: as if the layer had dropped it.
    await streams.store.append("news", {"n": "lost"}, streams.limits_for("news"))
    await publish("news", {"n": "after"})
    received = await frames(client, 2)
    assert [(f["offset"], f["data"]["n"]) for f in received] == [
        (1, "lost"),
        (2, "after"),
    ]
    assert await client.receive_nothing(0.1)


async def test_a_lost_last_message_is_fetched_when_the_client_pings(connect):
    """No later message reveals a loss at the end of a burst; the ping a
    quiet client sends does, and the message comes before the pong."""
    client = await connect()
    await client.send_json_to({"type": "stream.subscribe", "stream": "news"})
    await client.receive_json_from(timeout=5)
    await publish("news", {"n": "seen"})
    assert (await client.receive_json_from(timeout=5))["offset"] == 1
    streams = get_streams()
    await streams.store.append("news", {"n": "lost"}, streams.limits_for("news"))
    await client.send_json_to({"type": "stream.ping", "id": 9})
    received = await frames(client, 2)
    assert [(f["type"], f.get("offset"), f.get("id")) for f in received] == [
        ("stream.message", 2, None),
        ("stream.pong", None, 9),
    ]
    await client.send_json_to({"type": "stream.ping", "id": 10})
    assert await frames(client, 1) == [{"type": "stream.pong", "id": 10}]


async def test_losing_the_history_while_subscribed_sends_a_gap(connect):
    client = await connect()
    published = [await publish("chat.lobby", {"n": n}) for n in range(2)]
    await client.send_json_to(
        {
            "type": "stream.subscribe",
            "stream": "chat.lobby",
            "since": published[-1].position.as_dict(),
        }
    )
    assert (await client.receive_json_from(timeout=5))["recovery"] == "recovered"
    await get_streams().delete("chat.lobby")
    restarted = await publish("chat.lobby", {"n": "new epoch"})
    gap = await client.receive_json_from(timeout=5)
    assert gap == {
        "type": "stream.gap",
        "stream": "chat.lobby",
        "epoch": restarted.epoch,
        "offset": 1,
        "reason": "epoch_changed",
    }
    await publish("chat.lobby", {"n": "next"})
    after = await client.receive_json_from(timeout=5)
    assert (after["epoch"], after["offset"]) == (restarted.epoch, 2)


async def test_unsubscribing_stops_the_messages(connect):
    client = await connect()
    await client.send_json_to({"type": "stream.subscribe", "stream": "news"})
    await client.receive_json_from(timeout=5)
    await client.send_json_to({"type": "stream.unsubscribe", "stream": "news"})
    assert await client.receive_json_from(timeout=5) == {
        "type": "stream.unsubscribed",
        "stream": "news",
    }
    await publish("news", {"n": 1})
    assert await client.receive_nothing(0.1)


def test_the_mixin_refuses_a_sync_consumer_when_the_class_is_made():
    from channels_app.generic.websocket import JsonWebsocketConsumer

    with pytest.raises(TypeError, match="needs an async consumer"):

        class SyncFeed(StreamsMixin, JsonWebsocketConsumer):
            pass
