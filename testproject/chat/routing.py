"""The chat's routes outside Django's URLconf: WebSocket, the event stream and
the worker channel.  ``testproject.asgi`` mounts them."""

from django.urls import path

from channels_app.auth import AuthMiddlewareStack
from channels_app.security.websocket import CsrfOriginValidator

from . import consumers, posting

# Django's CSRF origin rules: only the chat's own pages (same scheme, host
# and port) or CSRF_TRUSTED_ORIGINS may open these cookie-authenticated sockets.
websocket_urlpatterns = [
    path(
        "ws/account/",
        CsrfOriginValidator(AuthMiddlewareStack(consumers.AccountConsumer.as_asgi())),
    ),
    path(
        "ws/rooms/<slug:slug>/",
        CsrfOriginValidator(AuthMiddlewareStack(consumers.ChatConsumer.as_asgi())),
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
