"""ASGI entry point: HTTP (Django views and streaming consumers) and WebSocket."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
django_application = get_asgi_application()

from django.urls import re_path  # noqa: E402

from channels_app.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from . import routing  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [*routing.http_urlpatterns, re_path(r"", django_application)]
        ),
        "websocket": URLRouter(routing.websocket_urlpatterns),
    }
)
