"""Every channel layer the contract suite proves, one line each.

To prove a new layer, add a :class:`LayerUnderTest` line to :data:`LAYERS`:
its ``BACKEND`` path, a function returning its base ``CONFIG`` (connection
settings, a prefix unique to the test so parallel runs never share data),
the services it needs, and a capability flag for each behaviour of the
contract it does not offer.  The suite then checks what the layer does
instead, so a missing behaviour is stated, never silently skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.services import REDIS_URL


@dataclass(frozen=True)
class LayerUnderTest:
    id: str
    backend: str
    base_config: Callable[[], dict] = dict
    services: tuple[str, ...] = ()
    #: Sending past ``capacity``/``channel_capacity`` raises ChannelFull.
    capacity: bool = True
    #: Queued messages disappear after ``expiry`` seconds.
    message_expiry: bool = True
    #: Memberships lapse ``group_expiry`` seconds after ``group_add``.
    group_expiry: bool = True
    #: Messages wait for a receiver that has not started listening yet.
    queues_until_received: bool = True
    #: A receive cancelled while a message is on its way to it leaves that
    #: message on the channel for the next receive.
    keeps_messages_of_cancelled_receives: bool = True
    #: A channel dropped from groups by expiry gets a GROUPS_LOST message.
    sends_groups_lost: bool = False
    #: ``group_send`` returns how many full members missed the message.
    counts_group_drops: bool = False
    #: ``new_channel()`` names carry the ``!`` marking them process-specific.
    marks_process_channels: bool = True
    #: Bad names and non-dict messages are refused before anything is sent.
    validates_input: bool = True
    #: How long a "nothing arrives" check waits, in seconds.
    quiet_period: float = 0.2
    #: pytest marks for this layer's tests (e.g. the databases it needs).
    marks: tuple = ()
    extra: dict = field(default_factory=dict)


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}-"


#: Database layers need the test databases (created from the app's migrations).
DATABASE_TABLES = (pytest.mark.django_db(transaction=True, databases="__all__"),)
DATABASE_LAYER = "channels_app.layers.database.DatabaseChannelLayer"


def redis_config() -> dict:
    return {"hosts": [REDIS_URL], "prefix": unique_prefix()}


LAYERS = [
    LayerUnderTest(
        "inmemory",
        "channels_app.layers.InMemoryChannelLayer",
        counts_group_drops=True,
        quiet_period=0.05,
    ),
    LayerUnderTest(
        "redis",
        "channels_redis.core.RedisChannelLayer",
        redis_config,
        services=("redis",),
        # Its BZPOPMIN removes the message in Redis before the reply reaches
        # the client; a cancel in between loses it (see test_foreign.py).
        keeps_messages_of_cancelled_receives=False,
    ),
    LayerUnderTest(
        "redis-pubsub",
        "channels_redis.pubsub.RedisPubSubChannelLayer",
        redis_config,
        services=("redis",),
        capacity=False,
        message_expiry=False,
        group_expiry=False,
        queues_until_received=False,
        marks_process_channels=False,
        validates_input=False,
    ),
    LayerUnderTest(
        "database-sqlite",
        DATABASE_LAYER,
        lambda: {"database": "default"},
        counts_group_drops=True,
        sends_groups_lost=True,
        marks=DATABASE_TABLES,
    ),
    LayerUnderTest(
        "database-postgres",
        DATABASE_LAYER,
        lambda: {"database": "postgres"},
        ("postgres",),
        counts_group_drops=True,
        sends_groups_lost=True,
        marks=DATABASE_TABLES,
    ),
]

#: ``LAYERS`` as pytest parameters, each carrying its layer's marks.
LAYER_PARAMS = [pytest.param(layer, marks=layer.marks, id=layer.id) for layer in LAYERS]
