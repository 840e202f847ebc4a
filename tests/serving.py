"""Helpers shared by the serving tests (worker, sync send, runserver/runworker)."""

from __future__ import annotations

import uuid

from tests.services import REDIS_URL, require


def redis_layers(prefix: str | None = None, **config) -> dict:
    """A ``CHANNEL_LAYERS`` value using channels_redis on the test Redis.

    Each call gets its own key prefix unless one is given, so tests sharing
    the Redis database cannot see each other's messages.
    """
    require("redis")
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": prefix or f"t{uuid.uuid4().hex[:10]}",
                **config,
            },
        }
    }
