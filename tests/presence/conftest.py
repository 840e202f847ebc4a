"""Fixtures for the presence suite: each store, with a per-test Redis prefix."""

from __future__ import annotations

import pytest

from channels_app.presence import InMemoryPresenceStore, RedisPresenceStore
from tests.layers.implementations import unique_prefix
from tests.services import REDIS_URL, require
from tests.streams.conftest import delete_prefixed

STORES = ["memory", "redis"]


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture(params=STORES)
async def store(request, prefix):
    if request.param == "redis":
        require("redis")
        made = RedisPresenceStore(REDIS_URL, prefix=prefix)
    else:
        made = InMemoryPresenceStore()
    yield made
    await made.close()
    if request.param == "redis":
        await delete_prefixed(prefix)
