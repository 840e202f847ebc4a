"""Fixtures shared by the demo's tests: a room and two users."""

import pytest
from django.contrib.auth.models import User

from chat.models import Room


@pytest.fixture
def lobby():
    return Room.objects.create(slug="lobby", title="Lobby")


@pytest.fixture
def ada():
    return User.objects.create_user("ada")


@pytest.fixture
def bob():
    return User.objects.create_user("bob")
