"""The site the stream client's browser tests load: one page, one consumer.

The page (``/``) runs ``channels_app/streams.js`` with short heartbeat and
back-off settings taken from its query string and records what the client
reports in ``window.seen``; the views let the test publish, and close every
connection from the server side, as a restart would.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from channels_app.generic.websocket import AsyncJsonWebsocketConsumer
from channels_app.layers import get_channel_layer
from channels_app.presence import PresenceMixin
from channels_app.routing import ProtocolTypeRouter, URLRouter
from channels_app.streams import RequestRefused, StreamsMixin, publish_sync

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>streams</title></head>
<body><p id="state">starting</p><ol id="messages"></ol>
<script type="module">
import { StreamClient, RequestFailed, RequestTimeout }
  from "/static/channels_app/streams.js";
const options = Object.fromEntries(
  [...new URLSearchParams(location.search)].map(([k, v]) => [k, Number(v)]));
const name = new URLSearchParams(location.search).get("name") || "anonymous";
delete options.name;
const client = new StreamClient(`/ws/streams/?name=${name}`, options);
window.seen = { messages: [], events: [] };
window.client = client;
window.RequestFailed = RequestFailed;
window.RequestTimeout = RequestTimeout;
client.subscribe("room.lobby", (data, meta) => {
  window.seen.messages.push(data.n);
  const item = document.createElement("li");
  item.textContent = `${meta.offset}: ${data.n}`;
  document.querySelector("#messages").append(item);
});
window.present = () => [...client.presence("room.lobby").keys()].sort();
client.addEventListener("presence", (event) => {
  window.seen.events.push({ type: "presence", change: event.detail.change,
                            user: event.detail.user });
});
for (const type of ["connected", "disconnected", "recovered", "gap", "subscribed"]) {
  client.addEventListener(type, (event) => {
    window.seen.events.push({ type, ...event.detail });
    document.querySelector("#state").textContent = type;
  });
}
client.connect();
</script></body></html>
"""


def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE)


def publish(request: HttpRequest) -> JsonResponse:
    """Publish ``count`` messages numbered from ``start`` to room.lobby."""
    start, count = int(request.GET["start"]), int(request.GET["count"])
    offsets = [
        publish_sync("room.lobby", {"n": n}).offset for n in range(start, start + count)
    ]
    return JsonResponse({"offsets": offsets})


def kick(request: HttpRequest) -> JsonResponse:
    """Close every client's connection from the server (code 4001: Daphne
    lets an application send only 1000 and 3000-4999)."""
    async_to_sync(get_channel_layer().group_send)("everyone", {"type": "kick"})
    return JsonResponse({"kicked": True})


class StreamsConsumer(PresenceMixin, StreamsMixin, AsyncJsonWebsocketConsumer):
    stream_patterns = ["room.*"]
    groups = ["everyone"]

    def presence_user(self):
        name = parse_qs(self.scope["query_string"].decode()).get("name", ["?"])[0]
        return name, {"name": name}

    async def connect(self):
        await self.accept()
        await self.track_presence("room.lobby")

    #: Set by a "mute" request: pings go unanswered, as on a dead link.
    muted = False

    async def kick(self, event):
        await self.close(code=4001)

    async def handle_client_frame(self, content):
        if self.muted and content.get("type") == "stream.ping":
            return True
        return await super().handle_client_frame(content)

    async def handle_request(self, data):
        if data == "mute":
            self.muted = True
            return "muted"
        if data == "refuse":
            raise RequestRefused("not today")
        if data == "slow":
            await asyncio.sleep(5)  # longer than the client's timeout
        if data == "boom":
            raise LookupError("a bug in the handler")
        return {"echo": json.loads(json.dumps(data))}


urlpatterns = [
    path("", page),
    path("publish/", publish),
    path("kick/", kick),
]

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter([path("ws/streams/", StreamsConsumer.as_asgi())]),
    }
)
