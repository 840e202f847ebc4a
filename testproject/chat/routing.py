"""The chat's routes outside Django's URLconf: WebSocket, the event stream and
the worker channel.  ``testproject.asgi`` mounts them."""

from django.urls import path

from channels_app.auth import AuthMiddlewareStack
from channels_app.security.websocket import AllowedHostsOriginValidator

from . import consumers, posting

websocket_urlpatterns = [
    path(
        "ws/account/",
        AllowedHostsOriginValidator(
            AuthMiddlewareStack(consumers.AccountConsumer.as_asgi())
        ),
    ),
    path(
        "ws/rooms/<slug:slug>/",
        AllowedHostsOriginValidator(
            AuthMiddlewareStack(consumers.ChatConsumer.as_asgi())
        ),
    ),
]

http_urlpatterns = [
    path(
        "rooms/<slug:slug>/events/",
        AuthMiddlewareStack(consumers.RoomEventsConsumer.as_asgi()),
    ),
]

channel_routes = {
    posting.MODERATION_CHANNEL: consumers.ModerationConsumer.as_asgi(),
}
