"""ASGI entry point: HTTP (Django views and streaming consumers), WebSocket,
and the named channels background workers listen on."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
# Set Django up before importing anything that touches models.
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from channels_app.routing import (  # noqa: E402
    ChannelNameRouter,
    ProtocolTypeRouter,
    URLRouter,
)

from . import routing  # noqa: E402

if settings.DEBUG:
    # Serve the chat's CSS and JS in development, as Django's runserver does.
    django_application = ASGIStaticFilesHandler(django_application)

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [*routing.http_urlpatterns, re_path(r"", django_application)]
        ),
        "websocket": URLRouter(routing.websocket_urlpatterns),
        "channel": ChannelNameRouter(routing.channel_routes),
    }
)
