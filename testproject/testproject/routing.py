"""WebSocket and HTTP routes of the demo project."""

from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
]

http_urlpatterns = [
    path("stream/countdown/", consumers.CountdownStreamConsumer.as_asgi()),
]
