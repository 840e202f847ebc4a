"""The consumers measured: identical code on both implementations."""

from harness import import_impl

from .settings import IMPL

AsyncWebsocketConsumer = import_impl(
    "channels_app.generic.websocket.AsyncWebsocketConsumer", IMPL
)


class Echo(AsyncWebsocketConsumer):
    """Sends each frame straight back."""

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


class Broadcast(AsyncWebsocketConsumer):
    """Every member gets what any member sends, through the layer's group."""

    groups = ["bench"]

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(
            "bench", {"type": "bench.message", "text": text_data}
        )

    async def bench_message(self, event):
        await self.send(text_data=event["text"])


async def bare_echo(scope, receive, send):
    """A plain ASGI echo, no framework: what the server alone can do."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text")})
        else:
            return
