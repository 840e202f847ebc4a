"""Fixtures for the streams suite: each store with its layer, cleaned up after."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from channels_app.layers.registry import close_layer
from channels_app.streams import Streams
from channels_app.streams.store import HistoryLimits
from tests.services import REDIS_URL, require
from tests.streams.backends import STORE_PARAMS, new_prefix


@pytest.fixture(params=STORE_PARAMS)
def store_under_test(request):
    for service in request.param.services:
        require(service)
    return request.param


@pytest.fixture
def prefix() -> str:
    return new_prefix()


async def delete_prefixed(prefix: str) -> None:
    """Delete this test's Redis keys, and only them."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def make_streams(store_under_test, prefix):
    """``make_streams(limits=None)``: a :class:`Streams` on the store under test
    and its layer; ``limits`` (a HistoryLimits or a function of the stream
    name) defaults to 1000 messages and an hour."""
    built = []

    def make(limits=None, store=None):
        store = store or store_under_test.make_store(prefix)
        layer = store_under_test.make_layer(prefix)
        if isinstance(limits, HistoryLimits):
            given = limits
            limits = lambda stream: given  # noqa: E731
        streams = Streams(store, layer, limits)
        built.append(streams)
        return streams

    yield make
    for streams in built:
        await streams.store.close()
        await close_layer(streams.layer)
    if "redis" in store_under_test.services:
        await delete_prefixed(prefix)


@pytest.fixture
async def streams(make_streams):
    return make_streams()
