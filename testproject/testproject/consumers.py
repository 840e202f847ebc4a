"""Small consumers the end-to-end tests drive through a real server."""

import asyncio

from channels_app.generic.http import AsyncHttpConsumer
from channels_app.generic.websocket import AsyncWebsocketConsumer


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
