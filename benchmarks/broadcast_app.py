"""The ASGI application Daphne serves for benchmarks/ws_broadcast.py.

The same consumer for both implementations: ``BENCH_IMPL=ours`` imports it
from ``channels_app``, ``BENCH_IMPL=channels`` from Django Channels 4.  Every
client joins the group ``broadcast`` and is sent each group message as text.
Settings come from the environment (``BENCH_SETTINGS``, JSON).
"""

from __future__ import annotations

import json
import os

import django
from django.conf import settings

settings.configure(**json.loads(os.environ["BENCH_SETTINGS"]))
django.setup()

if os.environ["BENCH_IMPL"] == "ours":
    from channels_app.generic.websocket import AsyncWebsocketConsumer
    from channels_app.routing import ProtocolTypeRouter, URLRouter
else:
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter

from django.urls import path  # noqa: E402


class BroadcastConsumer(AsyncWebsocketConsumer):
    groups = ["broadcast"]

    async def bench_message(self, event):
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/", BroadcastConsumer.as_asgi())])}
)
