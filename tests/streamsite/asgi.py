"""A feed over WebSocket (``/ws/feed/``) and a plain Django view that
publishes to it (``POST /publish/<stream>/`` with a JSON object body)."""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.streamsite.settings")
django.setup(set_prefix=False)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

from channels_app.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels_app.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels_app.streams import StreamsMixin, publish_sync  # noqa: E402


class FeedConsumer(StreamsMixin, AsyncJsonWebsocketConsumer):
    stream_patterns = ["feed.*"]


def publish_view(request, stream):
    message = publish_sync(stream, json.loads(request.body))
    return JsonResponse(message.position.as_dict())


urlpatterns = [path("publish/<str:stream>/", publish_view)]

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter([path("ws/feed/", FeedConsumer.as_asgi())]),
    }
)
