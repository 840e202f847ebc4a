"""Every stream store the contract suite proves, with the layer it pairs with.

To prove a new store, add a :class:`StoreUnderTest` line: how to build it
(with a prefix unique to the test, so runs never share data), the channel
layer a deployment would pair it with, and the services it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from channels_app.layers import InMemoryChannelLayer
from channels_app.streams import (
    DatabaseStreamStore,
    InMemoryStreamStore,
    RedisStreamStore,
)
from tests.layers.implementations import DATABASE_TABLES, unique_prefix
from tests.services import REDIS_URL


@dataclass(frozen=True)
class StoreUnderTest:
    id: str
    make_store: Callable[[str], Any]
    make_layer: Callable[[str], Any]
    services: tuple[str, ...] = ()
    #: Shared between processes (so the two-process tests apply).
    shared: bool = False
    #: pytest marks for this store's tests (the databases it needs).
    marks: tuple = ()


def _redis_layer(prefix: str) -> Any:
    from channels_redis.core import RedisChannelLayer

    return RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix + "layer", capacity=2000)


def _database_layer(alias: str) -> Any:
    from channels_app.layers.database import DatabaseChannelLayer

    return DatabaseChannelLayer(database=alias, capacity=2000)


STORES = [
    StoreUnderTest(
        "memory",
        lambda prefix: InMemoryStreamStore(),
        lambda prefix: InMemoryChannelLayer(),
    ),
    StoreUnderTest(
        "redis",
        lambda prefix: RedisStreamStore(url=REDIS_URL, prefix=prefix),
        _redis_layer,
        services=("redis",),
        shared=True,
    ),
    # The database layer's tables and the stream tables share a database, as
    # a deployment on the database layer would.
    StoreUnderTest(
        "database-sqlite",
        lambda prefix: DatabaseStreamStore("default"),
        lambda prefix: _database_layer("default"),
        marks=DATABASE_TABLES,
        shared=True,
    ),
    StoreUnderTest(
        "database-postgres",
        lambda prefix: DatabaseStreamStore("postgres"),
        lambda prefix: _database_layer("postgres"),
        services=("postgres",),
        marks=DATABASE_TABLES,
        shared=True,
    ),
]

STORE_PARAMS = [pytest.param(store, id=store.id, marks=store.marks) for store in STORES]


def new_prefix() -> str:
    return unique_prefix()
