"""A tiny project the live-server tests serve: one view, one consumer, both
reading the test database."""

from django.contrib.auth.models import User
from django.core.asgi import get_asgi_application
from django.http import HttpResponse
from django.urls import path

from channels_app.db import database_sync_to_async
from channels_app.generic.websocket import AsyncWebsocketConsumer
from channels_app.routing import ProtocolTypeRouter, URLRouter


def usernames() -> str:
    names = User.objects.order_by("username").values_list("username", flat=True)
    return ",".join(names)


def users_view(request):
    return HttpResponse(usernames(), content_type="text/plain")


class UsersConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.send(text_data=await database_sync_to_async(usernames)())


urlpatterns = [path("users/", users_view)]

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter([path("ws/users/", UsersConsumer.as_asgi())]),
    }
)
