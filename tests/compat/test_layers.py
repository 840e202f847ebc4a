"""The channel layer API as Channels 4 code and test suites use it.

Channels' documentation and third-party test suites reach past the coroutine
API: they read ``layer.channels`` and ``layer.groups`` of the in-memory layer,
wrap its ``_clean_expired`` and ``_remove_from_groups`` in fixtures, call the
deprecated ``valid_*_name`` checks and write layers of their own on
``BaseChannelLayer``.  Each test here does that with only the import prefix
changed.
"""

from __future__ import annotations

import inspect
import re
import threading
import time
from unittest import mock

import pytest
from django.test import override_settings

import channels_app.exceptions
import channels_app.layers
from channels_app.generic.websocket import AsyncWebsocketConsumer
from channels_app.layers import (
    DEFAULT_CHANNEL_LAYER,
    BaseChannelLayer,
    ChannelFull,
    InMemoryChannelLayer,
    InvalidChannelLayerError,
    channel_layers,
    get_channel_layer,
)
from channels_app.layers import inmemory as inmemory_module
from channels_app.testing import WebsocketCommunicator
from tests.layers.helpers import FakeClock, receive_within


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(inmemory_module, "monotonic", fake)
    return fake


@pytest.fixture
async def layer():
    layer = InMemoryChannelLayer()
    yield layer
    await layer.flush()
    await layer.close()


# -- names of channels.layers ------------------------------------------------------


def _public_names_of_channels_layers() -> set[str]:
    """What ``from channels.layers import ...`` offers, minus its own imports."""
    import channels.layers

    names = set()
    for name, value in vars(channels.layers).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        if isinstance(value, str) or getattr(value, "__module__", "").startswith(
            "channels"
        ):
            names.add(name)
    return names


def test_every_name_channels_layers_offers_is_importable_from_ours():
    missing = _public_names_of_channels_layers() - set(dir(channels_app.layers))
    assert not missing
    assert DEFAULT_CHANNEL_LAYER == "default"
    assert ChannelFull is channels_app.exceptions.ChannelFull
    assert InvalidChannelLayerError is channels_app.exceptions.InvalidChannelLayerError
    assert set(channels_app.layers.__all__) >= _public_names_of_channels_layers()


@pytest.mark.parametrize("class_name", ["BaseChannelLayer", "InMemoryChannelLayer"])
def test_layer_classes_offer_every_attribute_of_channels_classes(class_name):
    import channels.layers

    theirs = getattr(channels.layers, class_name)
    ours = getattr(channels_app.layers, class_name)
    missing = set(dir(theirs)) - set(dir(ours))
    if class_name == "InMemoryChannelLayer":
        missing |= set(vars(theirs())) - set(dir(ours()))
    assert not missing


async def test_except_channel_full_from_channels_layers_catches_the_layers_error():
    small = InMemoryChannelLayer(capacity=1)
    await small.send("inbox", {"type": "first"})
    with pytest.raises(channels_app.layers.ChannelFull):
        await small.send("inbox", {"type": "second"})


def test_get_channel_layer_of_the_default_alias():
    config = {"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=config):
        layer = get_channel_layer()
        assert isinstance(layer, InMemoryChannelLayer)
        assert get_channel_layer(DEFAULT_CHANNEL_LAYER) is layer
        assert channel_layers[DEFAULT_CHANNEL_LAYER] is layer


def test_a_manager_subclass_can_build_a_layer_from_a_config_of_its_own():
    """``_make_backend(name, config)`` takes the config dict, as in Channels."""

    class SmallLayers(type(channel_layers)):
        def make_backend(self, name):
            return self._make_backend(name, {"capacity": 3})

    config = {"default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=config):
        layer = SmallLayers()["default"]
    assert isinstance(layer, InMemoryChannelLayer)
    assert layer.capacity == 3


# -- layer.channels and layer.groups ----------------------------------------------


async def test_channels_lists_channels_holding_messages(layer):
    await layer.send("test-channel-1", {"type": "test.message", "text": "Ahoy"})
    await layer.send("test-channel-1", {"type": "test.message", "text": "again"})
    assert len(layer.channels) == 1
    assert "test-channel-1" in layer.channels
    assert list(layer.channels.keys()) == ["test-channel-1"]
    queue = layer.channels["test-channel-1"]
    assert queue.qsize() == 2
    assert not queue.empty()
    assert not queue.full()
    assert queue.maxsize == 100

    await layer.receive("test-channel-1")
    assert layer.channels["test-channel-1"].qsize() == 1
    await layer.receive("test-channel-1")
    # Channels forgets a channel once a receive leaves it empty.
    assert "test-channel-1" not in layer.channels
    assert len(layer.channels) == 0
    assert layer.channels == {}
    with pytest.raises(KeyError):
        layer.channels["test-channel-1"]


async def test_queued_messages_can_be_peeked_with_their_wall_clock_expiry(layer):
    before = time.time()
    await layer.send("peek", {"type": "test", "n": 1})
    [(expires_at, message)] = layer.channels["peek"]._queue
    assert message == {"type": "test", "n": 1}
    # Channels stores time.time() + expiry.
    assert before + 59 < expires_at < time.time() + 61
    assert layer.channels["peek"].qsize() == 1  # peeking took nothing


async def test_a_full_channel_reports_full(layer):
    small = InMemoryChannelLayer(capacity=2)
    await small.send("tiny", {"type": "1"})
    await small.send("tiny", {"type": "2"})
    assert small.channels["tiny"].full()
    assert small.channels["tiny"].maxsize == 2


class GroupMember(AsyncWebsocketConsumer):
    groups = ["notifications"]


async def test_a_connected_consumers_channel_is_in_channels_and_its_group():
    config = {"testlayer": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=config):
        consumer = type("Member", (GroupMember,), {"channel_layer_alias": "testlayer"})
        communicator = WebsocketCommunicator(consumer.as_asgi(), "/notifications/")
        connected, _ = await communicator.connect()
        assert connected
        layer = get_channel_layer("testlayer")
        # The consumer waits on its channel: Channels lists such a channel.
        [channel_name] = list(layer.channels.keys())
        assert list(layer.groups["notifications"]) == [channel_name]
        await communicator.disconnect()
        assert "notifications" not in layer.groups


async def test_groups_maps_each_group_to_its_members_and_join_times(layer):
    before = time.time()
    await layer.group_add("room", "member.a")
    await layer.group_add("room", "member.b")
    await layer.group_add("lobby", "member.a")
    assert len(layer.groups) == 2
    assert "room" in layer.groups and "hall" not in layer.groups
    assert set(layer.groups["room"]) == {"member.a", "member.b"}
    assert len(layer.groups["room"]) == 2
    assert "member.a" in layer.groups["lobby"]
    assert layer.groups.get("hall", {}) == {}
    joined = layer.groups["room"]["member.a"]
    # time.time() values, as Channels stores them, not monotonic instants.
    assert before - 1 < joined < time.time() + 1

    await layer.group_discard("room", "member.a")
    await layer.group_discard("room", "member.b")
    assert "room" not in layer.groups
    assert list(layer.groups) == ["lobby"]


async def test_a_group_can_be_left_while_iterating_its_members(layer):
    for n in range(3):
        await layer.group_add("room", f"member.{n}")
    for channel in layer.groups["room"]:
        await layer.group_discard("room", channel)
    assert layer.groups == {}


async def test_flush_empties_channels_and_groups(layer):
    await layer.send("queued", {"type": "test"})
    await layer.group_add("room", "queued")
    await layer.flush()
    assert layer.channels == {}
    assert layer.groups == {}


def test_the_views_are_read_only():
    layer = InMemoryChannelLayer()
    with pytest.raises(AttributeError):
        layer.channels = {}
    with pytest.raises(TypeError):
        layer.groups["room"] = {}


# -- fixtures wrapping _clean_expired and _remove_from_groups ------------------------


async def test_clean_expired_runs_when_channels_runs_it(layer):
    with mock.patch.object(
        layer, "_clean_expired", wraps=layer._clean_expired
    ) as clean:
        await layer.send("c", {"type": "1"})
        await layer.group_add("room", "c")
        assert clean.call_count == 0
        await layer.receive("c")
        await layer.group_send("room", {"type": "2"})
        await layer.receive("c")
        assert clean.call_count == 3  # each receive and group_send, as in Channels


async def test_an_expired_message_calls_remove_from_groups(layer, clock):
    await layer.group_add("room", "dead")
    await layer.group_add("room", "alive")
    await layer.send("dead", {"type": "unread"})
    clock.advance(61)
    with mock.patch.object(
        layer, "_remove_from_groups", wraps=layer._remove_from_groups
    ) as remove:
        await layer.group_send("room", {"type": "chat"})
    remove.assert_called_once_with("dead")
    assert list(layer.groups["room"]) == ["alive"]
    assert (await receive_within(layer, "alive"))["type"] == "chat"
    assert "dead" not in layer.channels


async def test_a_direct_call_of_clean_expired_drops_what_has_expired(clock):
    layer = InMemoryChannelLayer(expiry=10, group_expiry=100)
    await layer.send("stale", {"type": "old"})
    await layer.group_add("room", "stale")
    await layer.group_add("room", "joined-long-ago")
    clock.advance(11)
    layer._clean_expired()
    assert "stale" not in layer.channels
    assert list(layer.groups["room"]) == ["joined-long-ago"]
    clock.advance(100)
    layer._clean_expired()
    assert layer.groups == {}
    await layer.close()


async def test_remove_from_groups_takes_a_channel_out_of_every_group(layer):
    await layer.group_add("room", "leaving")
    await layer.group_add("lobby", "leaving")
    await layer.group_add("lobby", "staying")
    layer._remove_from_groups("leaving")
    assert "room" not in layer.groups
    assert list(layer.groups["lobby"]) == ["staying"]
    await layer.group_send("lobby", {"type": "hello"})
    assert "leaving" not in layer.channels


async def test_a_stubbed_out_clean_expired_never_lets_an_expired_message_through(
    layer, clock
):
    await layer.send("c", {"type": "old"})
    clock.advance(61)
    await layer.send("c", {"type": "new"})
    with mock.patch.object(layer, "_clean_expired") as clean:
        assert (await receive_within(layer, "c"))["type"] == "new"
    clean.assert_called_once_with()


@pytest.fixture
def synchronized_layer_class(monkeypatch):
    """What one GraphQL-over-WebSocket library's conftest does to the class.

    It serialises the layer's methods behind one re-entrant lock, wrapping
    them on the class, including the two private helpers, and counts here.
    """
    guard = threading.RLock()
    calls: dict[str, int] = {}

    def wrap(name, func):
        if inspect.iscoroutinefunction(func):

            async def wrapper(*args, **kwargs):
                calls[name] = calls.get(name, 0) + 1
                with guard:
                    return await func(*args, **kwargs)

        else:

            def wrapper(*args, **kwargs):
                calls[name] = calls.get(name, 0) + 1
                with guard:
                    return func(*args, **kwargs)

        return wrapper

    for name in [
        "_clean_expired",
        "_remove_from_groups",
        "close",
        "flush",
        "group_add",
        "group_discard",
        "group_send",
        "new_channel",
        "send",
    ]:
        original = getattr(InMemoryChannelLayer, name)
        monkeypatch.setattr(InMemoryChannelLayer, name, wrap(name, original))
    return calls


async def test_a_conftest_wrapping_the_class_methods_sees_the_calls(
    synchronized_layer_class, clock
):
    calls = synchronized_layer_class
    layer = InMemoryChannelLayer(expiry=5)
    member = await layer.new_channel()
    await layer.group_add("room", member)
    await layer.group_add("room", "never.reads")
    await layer.send("never.reads", {"type": "lost"})
    await layer.group_send("room", {"type": "hello"})
    assert (await receive_within(layer, member))["type"] == "hello"
    clock.advance(6)  # both messages of never.reads expire
    await layer.group_send("room", {"type": "again"})
    assert (await receive_within(layer, member))["type"] == "again"
    assert list(layer.groups["room"]) == [member]
    await layer.flush()
    await layer.close()
    assert calls["_clean_expired"] == 4  # two group_sends, two receives
    assert calls["_remove_from_groups"] == 2  # once per expired message
    assert calls["send"] == 1


# -- deprecated and inherited names of BaseChannelLayer -----------------------------


def test_valid_channel_name_is_a_deprecated_alias(layer):
    with pytest.warns(DeprecationWarning, match="require_valid_channel_name") as seen:
        assert layer.valid_channel_name("specific.abc!def") is True
    assert seen[0].filename == __file__  # it points at the caller
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
        layer.valid_channel_name("has space")


def test_valid_group_name_is_a_deprecated_alias(layer):
    with pytest.warns(DeprecationWarning, match="require_valid_group_name"):
        assert layer.valid_group_name("room-1") is True
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
        layer.valid_group_name("room!1")


def test_name_regexes_match_whole_names_only(layer):
    assert layer.channel_name_regex.match("specific.abc!def-1")
    assert layer.channel_name_regex.match("chat\n") is None
    assert layer.channel_name_regex.match("specific.abc!ü") is None
    assert layer.group_name_regex.match("room-1.a_b")
    assert layer.group_name_regex.match("room!x") is None
    assert BaseChannelLayer.channel_name_regex is layer.channel_name_regex


def test_match_type_and_length_and_the_error_template(layer):
    assert layer.match_type_and_length("a" * 99)
    assert not layer.match_type_and_length("a" * 100)
    assert not layer.match_type_and_length(b"bytes")
    message = layer.invalid_name_error.format("Channel")
    assert message.startswith("Channel name must be")
    assert "100" in message


async def test_a_subclass_may_set_its_own_name_rule():
    class Tenanted(InMemoryChannelLayer):
        group_name_regex = re.compile(r"[a-z]+:[0-9]+\Z")

    layer = Tenanted()
    await layer.group_add("tenant:42", "member")
    assert "tenant:42" in layer.groups
    with pytest.raises(TypeError, match="Group name must be"):
        await layer.group_add("plain-room", "member")


# -- channel_capacity, as Channels-era layers handle it -----------------------------


def test_our_in_memory_layer_keeps_channel_capacity_as_given_and_applies_it():
    layer = InMemoryChannelLayer(capacity=3, channel_capacity={"tight.*": 1})
    assert layer.channel_capacity == {"tight.*": 1}
    assert layer.get_capacity("tight.lane") == 1
    assert layer.get_capacity("roomy") == 3


async def test_our_in_memory_layer_enforces_channel_capacity():
    layer = InMemoryChannelLayer(capacity=3, channel_capacity={"tight.*": 1})
    await layer.send("tight.lane", {"type": "first"})
    with pytest.raises(ChannelFull):
        await layer.send("tight.lane", {"type": "second"})
    for n in range(3):
        await layer.send("roomy", {"type": "msg", "n": n})
    await layer.close()


def test_compile_capacities_is_harmless_on_compiled_capacities(layer):
    compiled = layer.compile_capacities({"http.*": 2, re.compile(r"^ws\."): 3})
    assert layer.compile_capacities(compiled) == compiled
    assert BaseChannelLayer.compile_capacities(layer, {"a*": 1})[0][0].match("ab")


THIRD_PARTY = "tests.compat.layer_thirdparty."
CAPACITIES = {"http.*": 1, re.compile(r"^slow\."): 2}


@pytest.mark.parametrize(
    "backend", ["CompilingLayer", "RecompilingLayer", "PlainLayer"]
)
async def test_a_channels_style_third_party_layer_gets_its_capacities(backend):
    entry = {
        "BACKEND": THIRD_PARTY + backend,
        "CONFIG": {"capacity": 3, "channel_capacity": CAPACITIES},
    }
    with override_settings(CHANNEL_LAYERS={"thirdparty": entry}):
        layer = channel_layers.make_backend("thirdparty")
    assert layer.get_capacity("http.request") == 1
    assert layer.get_capacity("slow.job") == 2
    assert layer.get_capacity("other") == 3
    await layer.send("http.request", {"type": "first"})
    with pytest.raises(ChannelFull):
        await layer.send("http.request", {"type": "second"})
    assert (await layer.receive("http.request"))["type"] == "first"


def test_a_third_party_layer_reads_back_the_capacities_it_was_given():
    from tests.compat.layer_thirdparty import PlainLayer, RecompilingLayer

    assert RecompilingLayer(channel_capacity=CAPACITIES).configured_capacities == (
        CAPACITIES
    )
    plain = PlainLayer(channel_capacity=CAPACITIES)
    assert plain.channel_capacity == CAPACITIES
    assert PlainLayer().channel_capacity == {}
