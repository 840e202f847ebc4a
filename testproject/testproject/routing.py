"""WebSocket, streaming-HTTP and worker-channel routes of the demo project."""

from django.urls import path

from channels_app.security.websocket import OriginValidator
from chat import routing as chat_routing

from . import consumers

websocket_urlpatterns = [
    # The echo reads no cookies and exposes nothing: any origin may use it.
    path("ws/echo/", OriginValidator(consumers.EchoConsumer.as_asgi(), ["*"])),
    # For tests/e2e/test_concurrency.py: handlers side by side, and not.
    path("ws/concurrent/", consumers.ConcurrentJsonConsumer.as_asgi()),
    path("ws/one-at-a-time/", consumers.OneAtATimeJsonConsumer.as_asgi()),
    *chat_routing.websocket_urlpatterns,
]

http_urlpatterns = [
    path("stream/countdown/", consumers.CountdownStreamConsumer.as_asgi()),
    *chat_routing.http_urlpatterns,
]

channel_routes = {
    **chat_routing.channel_routes,
}
