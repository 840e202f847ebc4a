"""ASGI entry point: HTTP (Django views and streaming consumers), WebSocket,
and the named channels background workers listen on."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
# Set Django up before importing anything that touches models.
django.setup(set_prefix=False)

from django.urls import re_path  # noqa: E402

from channels_app.http import AsgiHandler  # noqa: E402
from channels_app.routing import (  # noqa: E402
    ChannelNameRouter,
    ProtocolTypeRouter,
    URLRouter,
)

from . import routing  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter([*routing.http_urlpatterns, re_path(r"", AsgiHandler())]),
        "websocket": URLRouter(routing.websocket_urlpatterns),
        "channel": ChannelNameRouter(routing.channel_routes),
    }
)
