"""The CHANNELS_APP_STREAMS setting, and the module-level publish that uses it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from channels_app.exceptions import InvalidChannelLayerError
from channels_app.streams import (
    HistoryLimits,
    InMemoryStreamStore,
    Position,
    Recovery,
    RedisStreamStore,
    get_streams,
    publish,
    publish_sync,
    subscribe,
)
from channels_app.streams.config import parse
from tests.services import REDIS_URL, require
from tests.streams.conftest import delete_prefixed

MEMORY_LAYER = {"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}}


def test_defaults_are_an_in_memory_store_on_the_default_layer():
    config = parse(None)
    assert config.layer == "default"
    assert isinstance(config.make_store(), InMemoryStreamStore)
    assert config.limits_for("anything") == HistoryLimits(1000, 3600)


def test_history_rules_match_stream_names_first_match_first():
    config = parse(
        {
            "HISTORY": [
                {"PATTERN": "chat.vip-*", "MAX_MESSAGES": 10_000, "MAX_AGE": None},
                {"PATTERN": "chat.*", "MAX_MESSAGES": 100},
            ],
            "DEFAULT_HISTORY": {"MAX_MESSAGES": 5, "MAX_AGE": 60},
        }
    )
    assert config.limits_for("chat.vip-1") == HistoryLimits(10_000, None)
    assert config.limits_for("chat.lobby") == HistoryLimits(100, 3600)
    assert config.limits_for("Chat.lobby") == HistoryLimits(5, 60)  # case counts
    assert config.limits_for("news") == HistoryLimits(5, 60)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "must be a dict"),
        ({"STORES": {}}, "unknown key"),
        ({"HISTORY": [{"MAX_MESSAGES": 3}]}, "needs a PATTERN"),
        ({"HISTORY": [{"PATTERN": "a*", "MAX_MESSAGE": 3}]}, "unknown key"),
        ({"HISTORY": [{"PATTERN": "a*", "MAX_MESSAGES": 0}]}, "positive integer"),
        ({"HISTORY": [{"PATTERN": "a*", "MAX_AGE": "1h"}]}, "positive number"),
        ({"DEFAULT_HISTORY": {"MAX_MESSAGES": 2.5}}, "positive integer"),
        ({"HISTORY": {"PATTERN": "a*"}}, "must be a list"),
        ({"STORE": "redis"}, "BACKEND"),
        ({"LAYER": None}, "alias"),
    ],
)
def test_a_mistake_in_the_setting_is_refused_with_where_it_is(value, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse(value)


def test_a_store_that_cannot_be_built_says_why(settings):
    settings.CHANNELS_APP_STREAMS = {"STORE": {"BACKEND": "no.such.Store"}}
    with pytest.raises(ImproperlyConfigured, match="cannot be imported"):
        get_streams()
    settings.CHANNELS_APP_STREAMS = {
        "STORE": {
            "BACKEND": "channels_app.streams.InMemoryStreamStore",
            "OPTIONS": {"url": "x"},
        }
    }
    with pytest.raises(ImproperlyConfigured, match="do not fit"):
        get_streams()


async def test_publish_and_subscribe_use_the_configured_streams(settings):
    settings.CHANNEL_LAYERS = MEMORY_LAYER
    settings.CHANNELS_APP_STREAMS = {
        "HISTORY": [{"PATTERN": "chat.*", "MAX_MESSAGES": 2}]
    }
    published = [await publish("chat.lobby", {"n": n}) for n in range(4)]
    old = await subscribe("chat.lobby", "nobody.listens", published[0].position)
    assert old.recovery is Recovery.TOO_OLD
    recent = await subscribe("chat.lobby", "nobody.listens", published[1].position)
    assert [m.data["n"] for m in recent.replay] == [2, 3]


def test_publish_sync_works_from_plain_synchronous_code(settings):
    settings.CHANNEL_LAYERS = MEMORY_LAYER
    settings.CHANNELS_APP_STREAMS = {}
    first = publish_sync("news", {"n": 1})
    second = publish_sync("news", {"n": 2})
    assert second.position == Position(first.epoch, 2)


def test_publish_sync_on_redis_leaves_no_connection_open(settings, prefix):
    require("redis")
    settings.CHANNEL_LAYERS = MEMORY_LAYER
    settings.CHANNELS_APP_STREAMS = {
        "STORE": {
            "BACKEND": "channels_app.streams.RedisStreamStore",
            "OPTIONS": {"url": REDIS_URL, "prefix": prefix},
        }
    }
    try:
        published = [publish_sync("news", {"n": n}) for n in range(3)]
        assert [m.offset for m in published] == [1, 2, 3]
        store = get_streams().store
        assert isinstance(store, RedisStreamStore)
        # Each call ran on a temporary event loop; it closed its client.
        assert len(store._clients) == 0
    finally:
        from asgiref.sync import async_to_sync

        async_to_sync(delete_prefixed)(prefix)


async def test_publishing_without_the_layer_configured_is_refused_before_storing(
    settings,
):
    settings.CHANNEL_LAYERS = {}
    settings.CHANNELS_APP_STREAMS = {"LAYER": "default"}
    with pytest.raises(InvalidChannelLayerError, match="CHANNELS_APP_STREAMS"):
        await publish("news", {"n": 1})
    settings.CHANNEL_LAYERS = MEMORY_LAYER
    assert (await publish("news", {"n": 1})).offset == 1
