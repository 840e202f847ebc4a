"""Presence through consumers and the tracker: events, tabs, leases, settings."""

from __future__ import annotations

import asyncio

import pytest
from django.core.exceptions import ImproperlyConfigured

from channels_app.generic.websocket import AsyncJsonWebsocketConsumer
from channels_app.layers import get_channel_layer
from channels_app.layers.registry import close_layer
from channels_app.presence import (
    InMemoryPresenceStore,
    Presence,
    PresenceMixin,
    get_presence,
    presence_of,
    presence_of_sync,
)
from channels_app.presence.settings import build
from channels_app.presence.tracker import EVENT, group_for
from channels_app.testing import WebsocketCommunicator
from tests.support.waiting import eventually


class Room(PresenceMixin, AsyncJsonWebsocketConsumer):
    """Present in room.lobby as the user named in the query string."""

    def presence_user(self):
        name = self.scope["query_string"].decode()
        return name, {"name": name}

    async def connect(self):
        await self.accept()
        await self.track_presence("room.lobby", {"status": "here"})

    async def receive_json(self, content, **kwargs):
        await self.update_presence("room.lobby", {"status": content["status"]})


@pytest.fixture
async def layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
    }
    settings.CHANNELS_APP_PRESENCE = {"LEASE": 30}
    layer = get_channel_layer()
    yield layer
    await close_layer(layer)


async def connect(name: str, consumer: type = Room) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(consumer.as_asgi(), f"/?{name}")
    assert (await communicator.connect())[0]
    return communicator


async def watching() -> WebsocketCommunicator:
    """A connection present in room.lobby, past its state and its own join."""
    watcher = await connect("watcher")
    await watcher.receive_json_from()  # state
    await watcher.receive_json_from()  # its own join
    return watcher


async def test_the_client_gets_who_is_there_then_joins_and_leaves(layer):
    ada = await connect("ada")
    assert await ada.receive_json_from() == {
        "type": "presence.state",
        "topic": "room.lobby",
        "members": {"ada": [{"name": "ada", "status": "here"}]},
    }
    assert (await ada.receive_json_from())["type"] == "presence.join"  # herself
    bob = await connect("bob")
    state = await bob.receive_json_from()
    assert sorted(state["members"]) == ["ada", "bob"]
    joined = await ada.receive_json_from()
    assert joined == {
        "type": "presence.join",
        "topic": "room.lobby",
        "user": "bob",
        "meta": {"name": "bob", "status": "here"},
    }
    await bob.send_json_to({"status": "away"})
    updated = await ada.receive_json_from()
    assert updated["type"] == "presence.update" and updated["meta"]["status"] == "away"
    await bob.disconnect()
    left = await ada.receive_json_from()
    assert left == {"type": "presence.leave", "topic": "room.lobby", "user": "bob"}
    assert sorted(await presence_of("room.lobby")) == ["ada"]
    await ada.disconnect()
    assert await presence_of("room.lobby") == {}


async def test_several_tabs_of_one_user_join_once_and_leave_once(layer):
    watcher = await watching()
    tabs = [await connect("ada") for _ in range(3)]
    assert (await watcher.receive_json_from())["user"] == "ada"
    assert len((await presence_of("room.lobby"))["ada"]) == 3
    for tab in tabs[:2]:
        await tab.disconnect()
    assert await watcher.receive_nothing(timeout=0.2)  # ada still has a tab
    await tabs[2].disconnect()
    assert await watcher.receive_json_from() == {
        "type": "presence.leave",
        "topic": "room.lobby",
        "user": "ada",
    }
    await watcher.disconnect()


async def test_a_connection_whose_lease_ended_is_announced_as_gone(layer):
    store = InMemoryPresenceStore()
    presence = Presence(store, lease=0.3)
    listener = await layer.new_channel()
    await layer.group_add(group_for("room.x"), listener)
    # A connection of a process that will never renew it (it "died").
    await store.join("room.x", "lost", "ghost", {}, 0)
    await presence.join("room.x", "mine", "ada", {})
    assert (await layer.receive(listener))["user"] == "ada"
    # The renewer (every lease/3) keeps ada and sweeps the ghost.
    left = await layer.receive(listener)
    # One event for everyone the sweep found gone.
    assert left == {
        "type": EVENT,
        "topic": "room.x",
        "event": "leave",
        "users": ["ghost"],
    }
    assert sorted(await presence.members("room.x")) == ["ada"]
    await presence.leave("room.x", "mine")
    await eventually(lambda: not presence._renewers, timeout=2)


def test_sync_code_can_ask_who_is_present(settings):
    settings.CHANNELS_APP_PRESENCE = {}
    assert presence_of_sync("room.empty") == {}
    assert isinstance(get_presence().store, InMemoryPresenceStore)


@pytest.mark.parametrize(
    "value, complaint",
    [
        ([], "must be a dict"),
        ({"LEASES": 3}, "unknown key"),
        ({"LEASE": 0}, "positive number"),
        ({"STORE": {"BACKEND": "no.such.Store"}}, "cannot be imported"),
        (
            {
                "STORE": {
                    "BACKEND": "channels_app.presence.InMemoryPresenceStore",
                    "OPTIONS": {"url": "x"},
                }
            },
            "do not fit",
        ),
    ],
)
def test_a_bad_setting_is_refused_with_the_reason(value, complaint):
    with pytest.raises(ImproperlyConfigured, match=complaint):
        build(value)


def test_topic_names_follow_the_stream_naming_rule():
    with pytest.raises(ValueError, match="Invalid stream name"):
        group_for("room lobby")
    with pytest.raises(ValueError, match="too long"):
        group_for("x" * 78)


class Crashing(Room):
    """Present like Room, but its first message from the client is a bug."""

    async def receive_json(self, content, **kwargs):
        raise LookupError("a bug in the handler")


class Stuck(Room):
    """Present like Room, then its next handler never finishes."""

    async def receive_json(self, content, **kwargs):
        await asyncio.Event().wait()


async def test_a_consumer_that_crashes_leaves_its_topics(layer):
    # Without its disconnect handler ever running, the connection would stay
    # present for the life of the process: the tracker renews its lease.
    watcher = await watching()
    crashing = await connect("crash", Crashing)
    assert (await watcher.receive_json_from())["user"] == "crash"
    await crashing.send_json_to({"status": "boom"})
    with pytest.raises(LookupError):
        await crashing.wait()
    assert await watcher.receive_json_from() == {
        "type": "presence.leave",
        "topic": "room.lobby",
        "user": "crash",
    }
    assert sorted(await presence_of("room.lobby")) == ["watcher"]
    await watcher.disconnect()


async def test_a_consumer_the_server_cancels_leaves_its_topics(layer):
    watcher = await watching()
    stuck = await connect("stuck", Stuck)
    assert (await watcher.receive_json_from())["user"] == "stuck"
    await stuck.send_json_to({"status": "waiting"})
    # What a server does to an application that outlived its connection.
    stuck.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck.future
    assert (await watcher.receive_json_from())["type"] == "presence.leave"
    assert sorted(await presence_of("room.lobby")) == ["watcher"]
    await watcher.disconnect()
