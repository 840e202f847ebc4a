"""The routing pages' shapes, with only the import prefix changed.

``ProtocolTypeRouter`` over ``AuthMiddlewareStack(URLRouter(...))``; nested
``URLRouter``s with ``path()`` and ``re_path()`` captures at both levels, one
behind a ``BaseMiddleware`` subclass and one behind middleware written as a
plain class (``__init__(self, app)``, ``async def __call__``) that declares
``_path_routing = True``.  Every consumer answers with how it was routed.
The server process imports this module directly, so it sets Django up
itself, as a project's ``asgi.py`` does.
"""

import os
from urllib.parse import parse_qs

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
django.setup(set_prefix=False)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from channels_app.auth import AuthMiddlewareStack  # noqa: E402
from channels_app.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels_app.middleware import BaseMiddleware  # noqa: E402
from channels_app.routing import ProtocolTypeRouter, URLRouter  # noqa: E402


class RoutedConsumer(AsyncJsonWebsocketConsumer):
    """Accepts, then sends what routing put in the scope."""

    async def connect(self):
        await self.accept()
        user = self.scope.get("user")
        await self.send_json(
            {
                "consumer": type(self).__name__,
                "kwargs": self.scope["url_route"]["kwargs"],
                "args": list(self.scope["url_route"]["args"]),
                "path": self.scope["path"],
                "root_path": self.scope.get("root_path", ""),
                "token": self.scope.get("token"),
                "region": self.scope.get("region"),
                "user": None if user is None else str(user),
            }
        )


class ChatConsumer(RoutedConsumer):
    pass


class StreamConsumer(RoutedConsumer):
    pass


class UploadConsumer(RoutedConsumer):
    pass


class RoomConsumer(RoutedConsumer):
    pass


class TokenMiddleware(BaseMiddleware):
    """Takes a token from the query string (the middleware page's shape)."""

    def __init__(self, inner):
        super().__init__(inner)

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        query = parse_qs(scope["query_string"].decode())
        scope["token"] = query.get("token", [None])[0]
        return await super().__call__(scope, receive, send)


class RegionMiddleware:
    """Written without BaseMiddleware, as the middleware page's first example;
    it wraps a router, so it says so the way Channels' URLRouter reads it."""

    _path_routing = True

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        scope["region"] = scope["url_route"]["kwargs"]["region_code"].upper()
        return await self.app(scope, receive, send)


websocket_urlpatterns = [
    path(
        "ws/user/<int:user_id>/",
        TokenMiddleware(
            URLRouter(
                [
                    path("stream/<int:stream_id>/", StreamConsumer.as_asgi()),
                    re_path(
                        r"^upload/(?P<kind>photo|video)/$", UploadConsumer.as_asgi()
                    ),
                ]
            )
        ),
    ),
    path(
        "ws/region/<slug:region_code>/",
        RegionMiddleware(
            URLRouter([path("rooms/<slug:room>/", RoomConsumer.as_asgi())])
        ),
    ),
    re_path(r"ws/chat/(?P<room_name>\w+)/$", ChatConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
