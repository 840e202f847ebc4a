"""Views that talk to the channel layer from synchronous code, and a slow one."""

import asyncio
import os

from django.http import HttpResponse, JsonResponse
from django.urls import path

from channels_app.layers import get_channel_layer
from channels_app.streams import publish_sync
from channels_app.sync_send import group_send, send
from testproject.serving_e2e.consumers import record
from testproject.urls import urlpatterns as demo_urlpatterns


def send_task(request, channel):
    """Queue a task for the workers: ``?n=`` numbers it, ``?seconds=`` slows it,
    ``?wait=1`` holds it until a file says go."""
    message = {"type": "task.record", "n": int(request.GET.get("n", 0))}
    if "wait" in request.GET:  # until the test creates <channel>.go
        message.update(type="task.wait")
    if "seconds" in request.GET:
        message.update(type="task.slow", seconds=float(request.GET["seconds"]))
    send(channel, message)
    return HttpResponse("queued\n", content_type="text/plain")


def broadcast(request, name):
    group_send(f"room-{name}", {"type": "room.message", "text": request.GET["text"]})
    return HttpResponse("sent\n", content_type="text/plain")


async def flood(request, name):
    """Send ``?n=`` messages of ``?size=`` bytes to a group, one after another.

    Yields to the event loop after each, so that the members' consumers
    (on the same loop, with the in-memory layer) take each message before
    their inboxes fill.
    """
    layer = get_channel_layer()
    count, size = int(request.GET["n"]), int(request.GET["size"])
    for n in range(count):
        text = f"{n} " + "x" * size
        await layer.group_send(f"room-{name}", {"type": "room.message", "text": text})
        await asyncio.sleep(0)
    return HttpResponse(f"sent {count}\n", content_type="text/plain")


async def slow(request):
    """Answers after ``?seconds=``; ``?mark=NAME`` records in NAME that it began."""
    if "mark" in request.GET:
        record(request.GET["mark"], f"started {os.getpid()}")
    await asyncio.sleep(float(request.GET.get("seconds", 5)))
    return HttpResponse("too late\n", content_type="text/plain")


def publish_batch(request, stream):
    """Publish ``?count=`` messages ``{"n": start...}`` to ``stream``, in order."""
    start, count = int(request.GET["start"]), int(request.GET["count"])
    numbers = range(start, start + count)
    offsets = [publish_sync(stream, {"n": n}).offset for n in numbers]
    return JsonResponse({"offsets": offsets})


FEED_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>feed</title></head><body>
<script type="module">
import { StreamClient } from "/static/channels_app/streams.js";
const client = new StreamClient("/ws/feed/",
  { heartbeatInterval: 500, heartbeatTimeout: 1000, backoffMax: 1000 });
window.seen = { messages: [], disconnects: 0 };
client.subscribe("chaos.room", (data) => window.seen.messages.push(data.n));
client.addEventListener("disconnected", () => { window.seen.disconnects += 1; });
client.connect();
</script></body></html>
"""


def feed_page(request):
    """A page reading ``chaos.room`` with the browser client (streams.js)."""
    return HttpResponse(FEED_PAGE)


def whoami(request):
    return JsonResponse({"pid": os.getpid()})


urlpatterns = [
    path("e2e/send/<str:channel>/", send_task),
    path("e2e/broadcast/<str:name>/", broadcast),
    path("e2e/flood/<str:name>/", flood),
    path("e2e/slow/", slow),
    path("e2e/whoami/", whoami),
    path("e2e/publish/<str:stream>/", publish_batch),
    path("e2e/feed-page/", feed_page),
    *demo_urlpatterns,
]
