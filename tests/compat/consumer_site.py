"""An ASGI site whose consumers are written as Channels 4's documentation
writes them, with only the import prefix changed, for real servers.

Served by ``tests/compat/test_consumer_servers.py`` under Daphne and uvicorn
(``tests.servers.start_server(kind, tmp_path, "tests.compat.consumer_site:
application")``).  The server process imports this module directly, so it
sets Django up itself, as a project's ``asgi.py`` does.

Every way a consumer ends a connection has a route here, in both flavours
where Channels has both: what the client sees must not depend on the server.
"""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
django.setup(set_prefix=False)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from channels_app.auth import AuthMiddlewareStack  # noqa: E402
from channels_app.exceptions import DenyConnection  # noqa: E402
from channels_app.generic.websocket import (  # noqa: E402
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels_app.routing import ProtocolTypeRouter, URLRouter  # noqa: E402


# Tutorial part 2: the synchronous echo, receive() taking text_data only.
class ChatConsumer(WebsocketConsumer):
    def connect(self):
        self.accept()

    def disconnect(self, close_code):
        pass

    def receive(self, text_data):
        text_data_json = json.loads(text_data)
        message = text_data_json["message"]

        self.send(text_data=json.dumps({"message": message}))


# Tutorial part 3: the asynchronous room chat over the channel layer.
class AsyncChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = f"chat_{self.room_name}"

        # Join room group
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)

        await self.accept()

    async def disconnect(self, close_code):
        # Leave room group
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    # Receive message from WebSocket
    async def receive(self, text_data):
        text_data_json = json.loads(text_data)
        message = text_data_json["message"]

        # Send message to room group
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat.message", "message": message}
        )

    # Receive message from room group
    async def chat_message(self, event):
        message = event["message"]

        # Send message to WebSocket
        await self.send(text_data=json.dumps({"message": message}))


class EchoJsonConsumer(JsonWebsocketConsumer):
    def receive_json(self, content):
        self.send_json(content)


class AsyncEchoJsonConsumer(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content):
        await self.send_json(content)


class ClosingConsumer(WebsocketConsumer):
    """The topic page's ways to end a connection, chosen by the frame's text."""

    def receive(self, text_data=None, bytes_data=None):
        if text_data == "close":
            self.close()
        elif text_data == "close-4000":
            self.close(code=4000)
        elif text_data == "send-close":
            self.send(text_data="bye", close=True)
        else:
            self.send(text_data=text_data)


class AsyncClosingConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        if text_data == "close":
            await self.close()
        elif text_data == "close-4000":
            await self.close(code=4000)
        elif text_data == "send-close":
            await self.send(text_data="bye", close=True)
        else:
            await self.send(text_data=text_data)


class DenyingConsumer(WebsocketConsumer):
    def connect(self):
        raise DenyConnection


class AsyncDenyingConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        raise DenyConnection


class RefusingConsumer(WebsocketConsumer):
    def connect(self):
        # To reject the connection, call:
        self.close()


class AsyncRefusingConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.close()


class GreetingConsumer(AsyncWebsocketConsumer):
    """Configured per route through ``as_asgi(greeting=...)``."""

    def __init__(self, *args, greeting="hello", **kwargs):
        super().__init__(*args, **kwargs)
        self.greeting = greeting

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=f"{self.greeting}, {text_data}")


class HeadersConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        # Pairs as lists, passed to the server exactly as written.
        await self.accept(headers=[[b"x-compat", b"as-given"]])


#: The flavour-specific consumers, by the name that routes them.
FLAVOURS = {
    "sync": {
        "json": EchoJsonConsumer,
        "closing": ClosingConsumer,
        "deny": DenyingConsumer,
        "refuse": RefusingConsumer,
    },
    "async": {
        "json": AsyncEchoJsonConsumer,
        "closing": AsyncClosingConsumer,
        "deny": AsyncDenyingConsumer,
        "refuse": AsyncRefusingConsumer,
    },
}

websocket_urlpatterns = [
    re_path(r"ws/chat/(?P<room_name>\w+)/$", ChatConsumer.as_asgi()),
    re_path(r"ws/async-chat/(?P<room_name>\w+)/$", AsyncChatConsumer.as_asgi()),
    path("ws/greet/", GreetingConsumer.as_asgi()),
    path("ws/greet-fr/", GreetingConsumer.as_asgi(greeting="bonjour")),
    path("ws/headers/", HeadersConsumer.as_asgi()),
    *(
        path(f"ws/{flavour}/{name}/", consumer.as_asgi())
        for flavour, consumers in FLAVOURS.items()
        for name, consumer in consumers.items()
    ),
]

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
