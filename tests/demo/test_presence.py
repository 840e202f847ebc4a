"""Presence rows: refreshed by heartbeats, swept once they go quiet."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from chat import presence
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
