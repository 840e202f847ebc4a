"""The root application for the serving end-to-end tests."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.serving_e2e.settings")
django.setup()

from django.urls import path, re_path  # noqa: E402

from channels_app.http import AsgiHandler  # noqa: E402
from channels_app.routing import (  # noqa: E402
    ChannelNameRouter,
    ProtocolTypeRouter,
    URLRouter,
)
from testproject.consumers import EchoConsumer  # noqa: E402

from . import hostile  # noqa: E402
from .consumers import (  # noqa: E402
    ConcurrentTaskConsumer,
    CrashingConsumer,
    EventStreamConsumer,
    FailsMidResponseConsumer,
    FeedConsumer,
    GroupConsumer,
    LayerProbeConsumer,
    RecordingGroupConsumer,
    TaskConsumer,
    record,
)


def started():
    if os.environ.get("E2E_FAIL_STARTUP"):
        raise RuntimeError("startup refused because E2E_FAIL_STARTUP is set")
    record("lifespan.log", f"startup {os.getpid()}")


def stopped():
    record("lifespan.log", f"shutdown {os.getpid()}")


application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                path("fail-mid-response/", FailsMidResponseConsumer.as_asgi()),
                path("e2e/events/", EventStreamConsumer.as_asgi()),
                re_path(r"", AsgiHandler()),
            ]
        ),
        "websocket": URLRouter(
            [
                path("ws/echo/", EchoConsumer.as_asgi()),
                path("ws/group/<str:name>/", GroupConsumer.as_asgi()),
                path("ws/recorded/<str:name>/", RecordingGroupConsumer.as_asgi()),
                path("ws/crash/", CrashingConsumer.as_asgi()),
                path("ws/probe/", LayerProbeConsumer.as_asgi()),
                path("ws/guarded/whoami/", hostile.application),
                path("ws/feed/", FeedConsumer.as_asgi()),
            ]
        ),
        "channel": ChannelNameRouter(
            {
                "e2e-tasks": TaskConsumer.as_asgi(),
                "e2e-other": TaskConsumer.as_asgi(),
                "e2e-concurrent": ConcurrentTaskConsumer.as_asgi(),
            }
        ),
    },
    on_startup=[started],
    on_shutdown=[stopped],
)
