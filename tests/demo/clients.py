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


async def receive_until(comm, kind: str, timeout: float = 10) -> dict:
    """The next event of type ``kind``, skipping others (presence, typing...)."""

    async def wait():
        while True:
            event = await comm.receive_json_from(timeout)
            if event["type"] == kind:
                return event

    return await asyncio.wait_for(wait(), timeout)


def present_users(comm) -> set[str]:
    """Who ``comm`` was last told is in the room (from presence frames)."""
    return comm.__dict__.setdefault("present", set())


def follow_presence(comm, event: dict) -> None:
    """Apply a ``presence.*`` frame to :func:`present_users`, as the client does."""
    users = present_users(comm)
    if event["type"] == "presence.state":
        users.clear()
        users.update(event["members"])
    elif event["type"] == "presence.join":
        users.add(event["user"])
    elif event["type"] == "presence.leave":
        users.discard(event["user"])


async def presence_becomes(comm, users: list[str], timeout: float = 10) -> None:
    """Wait until ``comm`` was told that exactly ``users`` are online."""

    async def until():
        while sorted(present_users(comm)) != users:
            event = await comm.receive_json_from(timeout)
            follow_presence(comm, event)

    await asyncio.wait_for(until(), timeout)


async def subscribe(comm, slug: str = "lobby", since: dict | None = None) -> dict:
    """Subscribe ``comm`` to the room's stream, as streams.js does; the
    ``stream.subscribed`` frame (presence frames on the way are followed)."""
    frame = {"type": "stream.subscribe", "stream": f"chat.{slug}"}
    if since is not None:
        frame["since"] = since
    await comm.send_json_to(frame)
    while (event := await comm.receive_json_from(10))["type"] != "stream.subscribed":
        follow_presence(comm, event)
    return event


_requests = iter(range(1, 1 << 30))


async def request(comm, data) -> dict:
    """``client.request(data)``: the ``stream.reply`` frame that answers it."""
    request_id = next(_requests)
    await comm.send_json_to({"type": "stream.request", "id": request_id, "data": data})

    async def reply():
        while True:
            event = await comm.receive_json_from(10)
            if event["type"] == "stream.reply" and event["id"] == request_id:
                return event
            follow_presence(comm, event)

    return await asyncio.wait_for(reply(), 10)


async def next_message(comm, timeout: float = 10) -> dict:
    """The data of the next ``stream.message`` frame (a message as posted)."""
    return (await receive_until(comm, "stream.message", timeout))["data"]


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

    async def next_block(self, timeout: float = 10) -> str:
        while b"\n\n" not in self.buffer:
            message = await self.comm.receive_output(timeout)
            assert message["type"] == "http.response.body"
            self.buffer += message["body"]
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        return block.decode()

    async def next_event(self, kind: str | None = None, timeout: float = 10):
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
        await self.comm.wait(10)


# -- a crowd in one room of a demo served by real processes --------------------

#: Run by ``manage.py shell`` in the server's environment: the room, and one
#: user with a logged-in session per name (as if each had logged in).
_CROWD_SCRIPT = """
import json, os, secrets
from datetime import timedelta
from importlib import import_module
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model,
)
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.models import Session
from django.utils import timezone
from chat.models import Room

spec = json.loads(os.environ["CROWD_SPEC"])
Room.objects.get_or_create(slug=spec["slug"], defaults={"title": spec["slug"]})
User = get_user_model()
password = make_password(None)
User.objects.bulk_create(
    [User(username=name, password=password) for name in spec["users"]]
)
store = import_module(settings.SESSION_ENGINE).SessionStore
expires = timezone.now() + timedelta(days=1)
sessions, keys = [], []
for user in User.objects.filter(username__in=spec["users"]).order_by("username"):
    key = secrets.token_hex(16)
    data = {
        SESSION_KEY: str(user.pk),
        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: user.get_session_auth_hash(),
    }
    sessions.append(
        Session(session_key=key, session_data=store().encode(data), expire_date=expires)
    )
    keys.append(key)
Session.objects.bulk_create(sessions)
print(json.dumps(keys))
"""


def create_crowd(env: dict, slug: str, users: list[str]) -> list[str]:
    """Create room ``slug`` and ``users`` in the demo database ``env`` names.

    Returns one session key per user (sorted by name), each logged in as
    its user, for the ``sessionid`` cookie: what the login form would
    give, without a thousand password hashes.  The session engine must be
    the database one (the demo's).
    """
    import subprocess
    import sys

    from tests.servers import TESTPROJECT

    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", _CROWD_SCRIPT],
        cwd=TESTPROJECT,
        env={**env, "CROWD_SPEC": json.dumps({"slug": slug, "users": users})},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


class CrowdMember:
    """One WebSocket of a crowd: what it was told, and when.

    ``users`` is who it was told is present (sorted, from the ``presence.*``
    frames); ``settled`` is set the first time that equals ``expected``;
    ``arrivals`` maps each message text to the ``time.monotonic()`` at which
    its ``stream.message`` arrived.
    """

    def __init__(self, ws, expected: list[str]) -> None:
        self.ws = ws
        self.expected = expected
        self.present: set[str] = set()
        self.users: list[str] | None = None
        self.presence_frames = 0
        self.settled = asyncio.Event()
        self.arrivals: dict[str, float] = {}
        self.arrived = asyncio.Event()
        self.closed: BaseException | None = None

    async def listen(self) -> None:
        import time

        try:
            async for frame in self.ws:
                event = json.loads(frame)
                if event["type"].startswith("presence."):
                    self.presence_frames += 1
                    follow_presence(self, event)
                    self.users = sorted(self.present)
                    if self.users == self.expected:
                        self.settled.set()
                elif event["type"] == "stream.message":
                    self.arrivals[event["data"]["text"]] = time.monotonic()
                    self.arrived.set()
                elif event["type"] == "ping":  # the server asks; the page answers
                    await self.ws.send('{"type": "pong"}')
        except Exception as exc:  # the socket broke: recorded, reported
            self.closed = exc
        else:
            self.closed = ConnectionError("the server closed the socket")
        finally:
            self.settled.set()
            self.arrived.set()

    async def received(self, text: str) -> float:
        """When ``text`` arrived, waiting for it."""
        while text not in self.arrivals:
            if self.closed is not None:
                raise ConnectionError(f"closed before {text!r}: {self.closed!r}")
            self.arrived.clear()
            await self.arrived.wait()
        return self.arrivals[text]


async def open_crowd(
    url: str,
    slug: str,
    session_keys: list[str],
    expected: list[str],
    *,
    concurrency: int = 50,
) -> list[CrowdMember]:
    """One listening WebSocket to room ``slug`` per session key.

    ``url`` is the server's ``http://host:port``.  At most ``concurrency``
    handshakes are in flight at once, as a crowd arriving over a few
    seconds would be; a listen backlog is not what this measures.
    """
    import websockets

    gate = asyncio.Semaphore(concurrency)
    ws_url = "ws" + url.removeprefix("http") + f"/ws/rooms/{slug}/"

    async def one(key: str) -> CrowdMember:
        async with gate:
            ws = await websockets.connect(
                ws_url,
                origin=url,
                additional_headers={"Cookie": f"sessionid={key}"},
                max_size=None,
                ping_interval=None,
                open_timeout=60,
            )
        member = CrowdMember(ws, expected)
        subscribe = {"type": "stream.subscribe", "stream": f"chat.{slug}"}
        await ws.send(json.dumps(subscribe))
        member.task = asyncio.create_task(member.listen())
        return member

    return list(await asyncio.gather(*(one(key) for key in session_keys)))


async def post_to_crowd(
    crowd: list[CrowdMember], timeout: float
) -> tuple[list[float], list[object]]:
    """Post one message from the first socket and wait for every socket to show it.

    Returns the sorted delivery delays (seconds) of the sockets that did, and
    each socket's raw result (its arrival time, or the exception it got).
    """
    import time
    import uuid

    text = f"hello all {uuid.uuid4().hex[:6]}"
    sent = time.monotonic()
    await crowd[0].ws.send(json.dumps({"type": "message", "text": text}))
    results = await asyncio.gather(
        *(asyncio.wait_for(m.received(text), timeout) for m in crowd),
        return_exceptions=True,
    )
    delays = sorted(r - sent for r in results if isinstance(r, float))
    return delays, list(results)
