"""Fixtures for the presence suite: each store, cleaned up after each test.

Redis keys get a per-test prefix; the database stores run on the test
databases (SQLite ``default``, PostgreSQL ``postgres``), flushed between
tests, as the stream store's tests do.
"""

from __future__ import annotations

import pytest

from channels_app.presence import InMemoryPresenceStore, RedisPresenceStore
from tests.layers.implementations import DATABASE_TABLES, unique_prefix
from tests.services import REDIS_URL, require
from tests.streams.conftest import delete_prefixed

STORES = [
    "memory",
    "redis",
    pytest.param("sqlite", marks=DATABASE_TABLES),
    pytest.param("postgres", marks=DATABASE_TABLES),
]


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture(params=STORES)
async def store(request, prefix):
    if request.param == "redis":
        require("redis")
        made = RedisPresenceStore(REDIS_URL, prefix=prefix)
    elif request.param in ("sqlite", "postgres"):
        from channels_app.presence import DatabasePresenceStore

        if request.param == "postgres":
            require("postgres")
        alias = "default" if request.param == "sqlite" else "postgres"
        made = DatabasePresenceStore(alias)
    else:
        made = InMemoryPresenceStore()
    yield made
    await made.close()
    if request.param == "redis":
        await delete_prefixed(prefix)
