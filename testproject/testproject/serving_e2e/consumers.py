"""Consumers for the serving end-to-end tests."""

import os
import time
from pathlib import Path
from urllib.parse import parse_qsl

from django.conf import settings

from channels_app.consumer import SyncConsumer
from channels_app.generic.http import AsyncHttpConsumer
from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
)


def record(name: str, line: str) -> None:
    """Append ``line`` to the output file ``name`` (one write, so lines stay whole)."""
    path = Path(settings.E2E_OUTPUT_DIR) / name
    with open(path, "a") as output:
        output.write(f"{line}\n")


class TaskConsumer(SyncConsumer):
    """Background work: records each task in ``<channel>.log`` with its pid."""

    def task_record(self, message):
        record(f"{self.scope['channel']}.log", f"{message['n']} {os.getpid()}")

    def task_slow(self, message):
        name = f"{self.scope['channel']}.log"
        record(name, f"start {message['n']}")
        time.sleep(message["seconds"])
        record(name, f"done {message['n']}")


class ConcurrentTaskConsumer(TaskConsumer):
    """The same tasks, four at a time (each in a thread of its own)."""

    concurrency = 4


class GroupConsumer(AsyncJsonWebsocketConsumer):
    """Joins the group named in the URL and relays what members send to all."""

    async def connect(self):
        self.group = f"room-{self.scope['url_route']['kwargs']['name']}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        await self.channel_layer.group_send(
            self.group, {"type": "room.message", "text": content["text"]}
        )

    async def room_message(self, message):
        await self.send_json({"text": message["text"], "pid": os.getpid()})


class FailsMidResponseConsumer(AsyncHttpConsumer):
    """Starts a streamed response, then raises: no 500 can be sent any more."""

    async def handle(self, body):
        await self.send_headers(headers=[(b"Content-Type", b"text/plain")])
        await self.send_body(b"first part\n", more_body=True)
        raise ValueError("failed after the response started")


class CrashingConsumer(AsyncWebsocketConsumer):
    """Raises on every frame, so the server must close the socket with 1011."""

    async def receive(self, text_data=None, bytes_data=None):
        raise RuntimeError(f"crashed on {text_data!r}")


class RecordingGroupConsumer(GroupConsumer):
    """A group member that records the code its connection closed with."""

    async def disconnect(self, code):
        await super().disconnect(code)
        record(f"{self.group}.disconnects", f"{code} {self.scope['client'][1]}")


class EventStreamConsumer(AsyncHttpConsumer):
    """Streams ``?n=`` server-sent events of ``?size=`` bytes as fast as it can."""

    async def handle(self, body):
        query = dict(parse_qsl(self.scope["query_string"].decode()))
        self.name = query.get("name", "events")
        count, size = int(query.get("n", 10)), int(query.get("size", 100))
        await self.send_headers(headers=[(b"Content-Type", b"text/event-stream")])
        for n in range(count):
            await self.send_event(f"{n} " + "x" * size, id=str(n))
        await self.send_body(b"")

    async def disconnect(self):
        record(f"{self.name}.disconnects", "http")
