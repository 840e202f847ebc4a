"""Presence rows: refreshed by heartbeats, swept once they go quiet."""

import asyncio
import itertools
import json
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from chat import presence
from chat.consumers import RoomMember
from chat.models import Presence, Room

pytestmark = pytest.mark.django_db


@pytest.fixture
def room(lobby):
    return lobby


def age(channel_name: str, seconds: float) -> None:
    Presence.objects.filter(channel_name=channel_name).update(
        last_seen=timezone.now() - timedelta(seconds=seconds)
    )


def test_a_user_with_two_connections_is_listed_once(room, ada, bob):
    presence.join(room, ada, "specific.a!1")
    presence.join(room, ada, "specific.a!2")
    presence.join(room, bob, "specific.b!1")
    assert presence.online_usernames(room) == ["ada", "bob"]


def test_leaving_removes_only_that_connection(room, ada):
    presence.join(room, ada, "specific.a!1")
    presence.join(room, ada, "specific.a!2")
    presence.leave("specific.a!1")
    assert presence.online_usernames(room) == ["ada"]
    presence.leave("specific.a!2")
    assert presence.online_usernames(room) == []


def test_other_rooms_are_not_listed(room, ada, bob):
    other = Room.objects.create(slug="other", title="Other")
    presence.join(other, bob, "specific.b!1")
    presence.join(room, ada, "specific.a!1")
    assert presence.online_usernames(room) == ["ada"]


@override_settings(CHAT_PRESENCE_TIMEOUT=30)
def test_a_quiet_connection_stops_counting_and_is_swept(room, ada, bob):
    presence.join(room, ada, "specific.a!1")
    presence.join(room, bob, "specific.b!1")
    age("specific.b!1", 31)
    assert presence.online_usernames(room) == ["ada"]
    assert presence.sweep(room) == 1
    assert presence.sweep(room) == 0
    assert list(Presence.objects.values_list("channel_name", flat=True)) == [
        "specific.a!1"
    ]


@override_settings(CHAT_PRESENCE_TIMEOUT=30)
def test_a_heartbeat_keeps_a_connection_listed(room, ada):
    presence.join(room, ada, "specific.a!1")
    age("specific.a!1", 29)
    assert presence.touch("specific.a!1") is True
    age_after = Presence.objects.get().last_seen
    assert timezone.now() - age_after < timedelta(seconds=5)
    assert presence.sweep(room) == 0


def test_touching_a_swept_connection_says_so(room, ada):
    assert presence.touch("specific.gone!1") is False


def test_rejoining_moves_the_connection(room, ada):
    other = Room.objects.create(slug="other", title="Other")
    presence.join(room, ada, "specific.a!1")
    presence.join(other, ada, "specific.a!1")
    assert presence.online_usernames(room) == []
    assert presence.online_usernames(other) == ["ada"]


@override_settings(CHAT_HEARTBEAT_INTERVAL=2.5, CHAT_PRESENCE_TIMEOUT=7)
def test_timing_comes_from_settings():
    assert presence.heartbeat_interval() == 2.5
    assert presence.presence_timeout() == 7


# -- presence_version: one bump per change, read before the list ---------------


def version(room: Room) -> int:
    return Room.objects.values_list("presence_version", flat=True).get(pk=room.pk)


def test_each_join_and_leave_bumps_the_rooms_version_once(room, ada):
    assert version(room) == 0
    presence.join(room, ada, "specific.a!1")
    assert version(room) == 1
    presence.join(room, ada, "specific.a!2")  # a second tab: still a change
    assert version(room) == 2
    assert presence.leave("specific.a!1") is True
    assert version(room) == 3
    assert presence.leave("specific.a!1") is False  # already gone: no change
    assert version(room) == 3


def test_moving_a_connection_bumps_both_rooms(room, ada):
    other = Room.objects.create(slug="other", title="Other")
    presence.join(room, ada, "specific.a!1")
    presence.join(other, ada, "specific.a!1")
    assert (version(room), version(other)) == (2, 1)


@override_settings(CHAT_PRESENCE_TIMEOUT=30)
def test_only_a_sweep_that_deletes_and_never_a_heartbeat_bumps_it(room, ada, bob):
    presence.join(room, ada, "specific.a!1")
    presence.join(room, bob, "specific.b!1")
    assert presence.touch("specific.a!1") is True
    assert presence.sweep(room) == 0
    assert version(room) == 2
    age("specific.b!1", 31)
    assert presence.sweep(room) == 1
    assert version(room) == 3


def test_a_snapshot_is_the_version_the_connections_and_the_users(room, ada, bob):
    assert presence.snapshot(room) == (0, 0, [])
    presence.join(room, bob, "specific.b!1")
    presence.join(room, ada, "specific.a!1")
    presence.join(room, ada, "specific.a!2")
    assert presence.snapshot(room) == (3, 3, ["ada", "bob"])


# -- the broadcast interval grows with the room --------------------------------


@override_settings(CHAT_PRESENCE_BROADCAST_INTERVAL=0.25)
def test_the_broadcast_interval_grows_with_the_room():
    per_second = presence.PRESENCE_MESSAGES_PER_SECOND
    assert presence.broadcast_interval() == 0.25
    assert presence.interval_for(0) == 0.25
    assert presence.interval_for(200) == 0.25  # a list costs 200 messages
    assert presence.interval_for(per_second) == 1.0
    assert presence.interval_for(5 * per_second) == 5.0
    intervals = [presence.interval_for(n) for n in range(0, 10_000, 100)]
    assert intervals == sorted(intervals)


# -- the Announcer: one list per room per interval, read when it goes out ------


class RecordingLayer:
    """A channel layer that only records its group sends, and when."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str, dict]] = []
        self.news = asyncio.Event()

    async def group_send(self, group: str, message: dict) -> None:
        self.sent.append((time.monotonic(), group, message))
        self.news.set()

    async def sends(self, count: int, timeout: float = 5) -> list[dict]:
        """Wait until ``count`` messages were sent; return them."""

        async def wait():
            while len(self.sent) < count:
                self.news.clear()
                await self.news.wait()

        await asyncio.wait_for(wait(), timeout)
        return [message for _, _, message in self.sent]


class FakeRoomPresence:
    """Stands in for :func:`chat.presence.snapshot`; counts its reads."""

    def __init__(self, connections: int = 1) -> None:
        self.version = 0
        self.connections = connections
        self.users: list[str] = []
        self.reads = 0

    def change(self, *users: str) -> None:
        self.version += 1
        self.users = sorted(users)

    def snapshot(self, room: Room) -> tuple[int, int, list[str]]:
        self.reads += 1
        return self.version, self.connections, list(self.users)


@pytest.fixture
def fake_presence(monkeypatch):
    fake = FakeRoomPresence()
    monkeypatch.setattr(presence, "snapshot", fake.snapshot)
    return fake


#: A room the Announcer is told about; it only reads its pk, slug and group.
ANNOUNCED_ROOM = Room(pk=7, slug="lobby", title="Lobby")


async def broadcasts_done(room: Room = ANNOUNCED_ROOM, timeout: float = 5) -> None:
    """Wait until the room's broadcast task has nothing more to send."""
    tasks = [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == f"presence of {room.slug}"
    ]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout)


def broadcast_started(
    announcer: presence.Announcer, layer, room: Room = ANNOUNCED_ROOM
) -> float:
    """When the room's latest broadcast began: the instants the Announcer keeps
    an interval apart.  Its group send comes after a hop to the ORM thread for
    the list, which takes as long as the machine makes it take, so the sends
    themselves can be a little closer together (or further apart) than that.
    """
    return announcer._state(layer, room).last_broadcast


def presence_event(version: int, users: list[str]) -> dict:
    return {"type": "presence.changed", "version": version, "users": json.dumps(users)}


@override_settings(CHAT_PRESENCE_BROADCAST_INTERVAL=5)
async def test_the_first_change_in_a_quiet_room_is_sent_at_once(fake_presence):
    layer, announcer = RecordingLayer(), presence.Announcer()
    fake_presence.change("ada")
    announcer.changed(layer, ANNOUNCED_ROOM)
    # Well within the 5 s interval: the first list does not wait for it.
    assert await layer.sends(1, timeout=2) == [presence_event(1, ["ada"])]
    assert layer.sent[0][1] == ANNOUNCED_ROOM.group_name


@override_settings(CHAT_PRESENCE_BROADCAST_INTERVAL=0.2)
async def test_a_burst_of_changes_is_sent_as_one_list_read_at_the_end(fake_presence):
    layer, announcer = RecordingLayer(), presence.Announcer()
    fake_presence.change("user0")
    announcer.changed(layer, ANNOUNCED_ROOM)
    await layer.sends(1)
    first = broadcast_started(announcer, layer)
    # 50 people arrive within the interval, each join telling the announcer.
    names = ["user0"]
    for i in range(1, 51):
        names.append(f"user{i}")
        fake_presence.change(*names)
        announcer.changed(layer, ANNOUNCED_ROOM)
        await asyncio.sleep(0)
    await broadcasts_done()
    sends = await layer.sends(2)
    second = broadcast_started(announcer, layer)
    assert sends == [
        presence_event(1, ["user0"]),
        # One more list, not 50, read after the last change: the whole room.
        presence_event(51, sorted(names)),
    ]
    assert fake_presence.reads == 2
    assert second - first >= 0.2 - 0.01


@override_settings(CHAT_PRESENCE_BROADCAST_INTERVAL=0.02)
async def test_in_a_big_room_lists_are_further_apart(fake_presence, monkeypatch):
    # 40 connections at 100 messages a second: a list every 0.4 s, not 0.02 s.
    monkeypatch.setattr(presence, "PRESENCE_MESSAGES_PER_SECOND", 100)
    fake_presence.connections = 40
    layer, announcer = RecordingLayer(), presence.Announcer()
    started = []
    for count in (1, 2, 3):
        fake_presence.change(*(f"user{i}" for i in range(count)))
        announcer.changed(layer, ANNOUNCED_ROOM)
        await layer.sends(count)
        started.append(broadcast_started(announcer, layer))
    gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
    assert all(gap >= 0.4 - 0.01 for gap in gaps), gaps


@override_settings(CHAT_PRESENCE_BROADCAST_INTERVAL=5)
async def test_rooms_and_layers_are_announced_independently(fake_presence):
    layer, other_layer = RecordingLayer(), RecordingLayer()
    announcer = presence.Announcer()
    other_room = Room(pk=8, slug="other", title="Other")
    fake_presence.change("ada")
    announcer.changed(layer, ANNOUNCED_ROOM)
    await layer.sends(1)
    # Within the first room's interval, yet neither waits for it.
    announcer.changed(layer, other_room)
    announcer.changed(other_layer, ANNOUNCED_ROOM)
    await layer.sends(2, timeout=2)
    await other_layer.sends(1, timeout=2)
    assert [group for _, group, _ in layer.sent] == [
        ANNOUNCED_ROOM.group_name,
        other_room.group_name,
    ]


# -- members pass a list on only if it is newer and different ------------------


class Member(RoomMember):
    """A room member whose transport records what it delivers."""

    def __init__(self) -> None:
        self.shown: list[list[str]] = []

    async def deliver(self, kind: str, payload: dict) -> None:
        assert kind == "presence"
        self.shown.append(payload["users"])


async def test_a_member_skips_a_list_equal_to_the_one_it_showed():
    member = Member()
    await member.presence_changed(presence_event(1, ["ada"]))
    # Ada opens a second tab: the version moves, the list does not.
    await member.presence_changed(presence_event(2, ["ada"]))
    await member.presence_changed(presence_event(3, ["ada", "bob"]))
    await member.presence_changed(presence_event(4, ["ada", "bob"]))
    assert member.shown == [["ada"], ["ada", "bob"]]
    assert member.presence_version == 4


async def test_a_member_ignores_a_list_older_than_the_one_it_showed():
    member = Member()
    await member.presence_changed(presence_event(5, ["ada", "bob"]))
    # From another server process, read before Bob joined, arriving late.
    await member.presence_changed(presence_event(4, ["ada"]))
    assert member.shown == [["ada", "bob"]]
    assert member.presence_version == 5
    await member.presence_changed(presence_event(6, ["bob"]))
    assert member.shown == [["ada", "bob"], ["bob"]]
