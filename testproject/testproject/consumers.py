"""Small consumers the end-to-end tests drive through a real server."""

import asyncio
import json

from channels_app.generic.http import AsyncHttpConsumer
from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
)


class EchoConsumer(AsyncWebsocketConsumer):
    """Sends every frame straight back."""

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


class CountdownStreamConsumer(AsyncHttpConsumer):
    """Streams ``?n=`` Server-Sent Events, one every 50 ms, then ends."""

    async def handle(self, body):
        query = self.scope.get("query_string", b"").decode()
        count = int(
            dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("n", 3)
        )
        await self.send_headers(
            headers=[
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
            ]
        )
        for number in range(count, 0, -1):
            await self.send_event(str(number), event="tick", id=str(number))
            await asyncio.sleep(0.05)
        await self.send_body(b"")


class ConcurrentJsonConsumer(AsyncJsonWebsocketConsumer):
    """Answers ``{"n": ...}`` after ``seconds`` (0.5), four frames at a time.

    Frames with the same ``"key"`` keep their order; ``"fail": true`` raises
    in the handler, which is logged and leaves the connection open.
    """

    concurrency = 4

    def ordering_key(self, message):
        if message["type"] == "websocket.receive" and message.get("text"):
            return json.loads(message["text"]).get("key")
        return super().ordering_key(message)

    async def receive_json(self, content, **kwargs):
        await asyncio.sleep(content.get("seconds", 0.5))
        if content.get("fail"):
            raise RuntimeError(f"frame {content.get('n')} asked to fail")
        await self.send_json({"n": content.get("n"), "key": content.get("key")})


class OneAtATimeJsonConsumer(ConcurrentJsonConsumer):
    """The same consumer at the default concurrency: one frame at a time."""

    concurrency = 1
