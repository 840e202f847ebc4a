"""WebSocket, streaming-HTTP and worker-channel routes of the demo project."""

from django.urls import path

from chat import routing as chat_routing

from . import consumers

websocket_urlpatterns = [
    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
    *chat_routing.websocket_urlpatterns,
]

http_urlpatterns = [
    path("stream/countdown/", consumers.CountdownStreamConsumer.as_asgi()),
    *chat_routing.http_urlpatterns,
]

channel_routes = {
    **chat_routing.channel_routes,
}
