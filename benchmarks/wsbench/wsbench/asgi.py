"""The root application: two WebSocket routes."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wsbench.settings")
django.setup()

from django.urls import path  # noqa: E402
from harness import import_impl  # noqa: E402

from .consumers import Broadcast, Echo, bare_echo  # noqa: E402
from .settings import IMPL  # noqa: E402

ProtocolTypeRouter = import_impl("channels_app.routing.ProtocolTypeRouter", IMPL)
URLRouter = import_impl("channels_app.routing.URLRouter", IMPL)

application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("echo/", Echo.as_asgi()),
                path("broadcast/", Broadcast.as_asgi()),
                path("bare/", bare_echo),
            ]
        )
    }
)
