"""Consumers for the serving end-to-end tests."""

import os
import time
from pathlib import Path
from urllib.parse import parse_qsl

from django.conf import settings

from channels_app.consumer import SyncConsumer
from channels_app.exceptions import ChannelFull
from channels_app.generic.http import AsyncHttpConsumer
from channels_app.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
)
from channels_app.streams import StreamsMixin


def record(name: str, line: str) -> None:
    """Append ``line`` to the output file ``name`` (one write, so lines stay whole)."""
    path = Path(settings.E2E_OUTPUT_DIR) / name
    with open(path, "a") as output:
        output.write(f"{line}\n")


class TaskConsumer(SyncConsumer):
    """Background work: records each task in ``<channel>.log`` with its pid."""

    def task_record(self, message):
        record(f"{self.scope['channel']}.log", f"{message['n']} {os.getpid()}")

    def task_wait(self, message):
        """Waits until the test creates ``<channel>.go``, polling the file."""
        name = f"{self.scope['channel']}.log"
        record(name, f"waiting {message['n']}")
        gate = Path(settings.E2E_OUTPUT_DIR) / f"{self.scope['channel']}.go"
        while not gate.exists():
            time.sleep(0.02)
        record(name, f"done {message['n']}")

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


class LayerProbeConsumer(AsyncJsonWebsocketConsumer):
    """Drives the channel layer on command, so the metrics tests can fill a
    channel (``fill``), add a channel that nobody reads to a group (``join``)
    and send to that group (``group_send``); replies with what happened."""

    async def receive_json(self, content, **kwargs):
        layer = self.channel_layer
        if "fill" in content:
            sent = full = 0
            for n in range(content["n"]):
                try:
                    await layer.send(content["fill"], {"type": "probe.fill", "n": n})
                    sent += 1
                except ChannelFull:
                    full += 1
            await self.send_json({"sent": sent, "full": full})
        elif "join" in content:
            await layer.group_add(content["join"], content["channel"])
            await self.send_json({"joined": content["join"]})
        elif "group_send" in content:
            missed = await layer.group_send(content["group_send"], {"type": "probe"})
            await self.send_json({"missed": missed})


class FeedConsumer(StreamsMixin, AsyncJsonWebsocketConsumer):
    """Subscribes its client to ``chaos.*`` streams (tests/e2e/test_stream_chaos.py)."""

    stream_patterns = ["chaos.*"]
