"""The demo settings plus the layer named by ``E2E_LAYER``.

``memory`` and ``redis`` are those layers; ``sqlite`` and ``postgres`` are the
database layer on that database (the tests set ``DEMO_DATABASE`` to match).
"""

import json
import os

from testproject.settings import *  # noqa: F403

ASGI_APPLICATION = "testproject.serving_e2e.asgi.application"
ROOT_URLCONF = "testproject.serving_e2e.urls"

#: Where consumers and lifespan hooks write what they did.
E2E_OUTPUT_DIR = os.environ.get("E2E_OUTPUT_DIR", ".")

_layer = os.environ.get("E2E_LAYER", "memory")
_prefix = os.environ.get("E2E_PREFIX", "e2e")
if _layer == "memory":
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.InMemoryChannelLayer"}
    }
    if os.environ.get("E2E_LAYER_CAPACITY"):
        CHANNEL_LAYERS["default"]["CONFIG"] = {
            "capacity": int(os.environ["E2E_LAYER_CAPACITY"])
        }
elif _layer == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")],
                "prefix": _prefix,
            },
        }
    }
elif _layer in ("sqlite", "postgres"):
    # The database layer, on the project's database (DEMO_DATABASE picks it).
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_app.layers.database.DatabaseChannelLayer"}
    }
else:
    raise ValueError(f"E2E_LAYER={_layer!r} is not a layer these tests know")

#: The send-buffer limits of runserver, as JSON (tests/e2e/test_slow_clients.py).
if os.environ.get("E2E_SERVER_LIMITS"):
    CHANNELS_APP_SERVER_LIMITS = json.loads(os.environ["E2E_SERVER_LIMITS"])

# Streams (tests/e2e/test_stream_chaos.py): history in the layer's backend,
# long enough to hold everything a chaos run publishes.
if _layer == "redis":
    CHANNELS_APP_STREAMS = {
        "STORE": {
            "BACKEND": "channels_app.streams.RedisStreamStore",
            "OPTIONS": {
                "url": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                "prefix": _prefix + "streams:",
            },
        },
        "DEFAULT_HISTORY": {"MAX_MESSAGES": 5000, "MAX_AGE": 3600},
    }
    CHANNELS_APP_PRESENCE = {
        "STORE": {
            "BACKEND": "channels_app.presence.RedisPresenceStore",
            "OPTIONS": {
                "url": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                "prefix": _prefix + "presence:",
            },
        },
    }
elif _layer in ("sqlite", "postgres"):
    CHANNELS_APP_STREAMS = {
        "STORE": {"BACKEND": "channels_app.streams.DatabaseStreamStore"},
        "DEFAULT_HISTORY": {"MAX_MESSAGES": 5000, "MAX_AGE": 3600},
    }
    CHANNELS_APP_PRESENCE = {
        "STORE": {"BACKEND": "channels_app.presence.DatabasePresenceStore"},
    }
else:
    # One process: the defaults (in memory) without the demo's Redis stores.
    CHANNELS_APP_STREAMS = {}
    CHANNELS_APP_PRESENCE = {}
