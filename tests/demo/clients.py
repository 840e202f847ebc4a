"""Test clients for the chat: a logged-in WebSocket, a logged-in event stream."""

from __future__ import annotations

import asyncio
import json

from channels_app.testing import ApplicationCommunicator, WebsocketCommunicator
from channels_app.testing.auth import session_cookie_header

ORIGIN = (b"origin", b"http://testserver")


def application():
    from testproject.asgi import application

    return application


async def open_socket(user=None, path="/ws/rooms/lobby/", origin=ORIGIN):
    """A WebSocket to the demo; ``(communicator, connected, detail)``."""
    headers = [origin] if origin else []
    if user is not None:
        headers.append(await session_cookie_header(user))
    comm = WebsocketCommunicator(application(), path, headers=headers)
    connected, detail = await comm.connect()
    return comm, connected, detail


async def receive_until(comm, kind: str, timeout: float = 2) -> dict:
    """The next event of type ``kind``, skipping others (presence, typing...)."""

    async def wait():
        while True:
            event = await comm.receive_json_from(timeout)
            if event["type"] == kind:
                return event

    return await asyncio.wait_for(wait(), timeout)


async def presence_becomes(comm, users: list[str], timeout: float = 3) -> None:
    """Wait until ``comm`` is told that exactly ``users`` are online."""

    async def until():
        while True:
            event = await receive_until(comm, "presence", timeout)
            if event["users"] == users:
                return

    await asyncio.wait_for(until(), timeout)


class EventStream:
    """The Server-Sent-Events endpoint, read event by event."""

    def __init__(self, path: str, headers: list) -> None:
        query = ""
        if "?" in path:
            path, query = path.split("?", 1)
        self.comm = ApplicationCommunicator(
            application(),
            {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": query.encode(),
                "root_path": "",
                "headers": headers,
                "client": ("127.0.0.1", 0),
                "server": ("testserver", 80),
            },
        )
        self.buffer = b""

    @classmethod
    async def open(cls, user=None, path="/rooms/lobby/events/", headers=()):
        headers = list(headers)
        if user is not None:
            headers.append(await session_cookie_header(user))
        stream = cls(path, headers)
        await stream.comm.send_input({"type": "http.request", "body": b""})
        stream.start = await stream.comm.receive_output(2)
        return stream

    async def body(self) -> bytes:
        """The whole body of a response that is not a stream."""
        parts = []
        while True:
            message = await self.comm.receive_output(2)
            parts.append(message["body"])
            if not message.get("more_body"):
                return b"".join(parts)

    async def next_block(self, timeout: float = 2) -> str:
        while b"\n\n" not in self.buffer:
            message = await self.comm.receive_output(timeout)
            assert message["type"] == "http.response.body"
            self.buffer += message["body"]
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        return block.decode()

    async def next_event(self, kind: str | None = None, timeout: float = 2):
        """``(event name, id, data)`` of the next event (of ``kind``)."""

        async def wait():
            while True:
                block = await self.next_block(timeout)
                if block.startswith(":"):
                    continue  # a comment: connected / keep-alive
                fields = dict(line.split(": ", 1) for line in block.splitlines())
                if kind is None or fields.get("event") == kind:
                    return (
                        fields.get("event"),
                        fields.get("id"),
                        json.loads(fields["data"]),
                    )

        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        await self.comm.send_input({"type": "http.disconnect"})
        await self.comm.wait(2)
