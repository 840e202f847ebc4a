"""The chat's consumers: a room over WebSocket, over Server-Sent Events, and
the moderation worker that listens on a named channel.

The room's messages live twice: as ``Message`` rows (the history of record,
what the room page shows) and in the stream ``chat.<slug>``
(:func:`chat.posting.stream_for`), whose bounded history is what lets a
browser that was offline get what it missed when it reconnects.  Presence is
the library's too: every connection is tracked in the topic of the same name,
under its username.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time

from django.conf import settings
from django.contrib.auth import authenticate

from channels_app.auth import login, request_for_scope
from channels_app.consumer import SyncConsumer
from channels_app.db import database_sync_to_async
from channels_app.generic.http import AsyncHttpConsumer
from channels_app.generic.websocket import AsyncJsonWebsocketConsumer
from channels_app.presence import PresenceMixin
from channels_app.session_sync import create_sync_ticket
from channels_app.streams import Position, RequestRefused, StreamsMixin, publish_sync

from . import moderation, posting
from .models import Message, Room

#: Typing hints are throw-away; a client sending more is only making noise.
TYPING_HINT_INTERVAL = 1.0

#: A stream position as the event stream sends it in an event id, and gets it
#: back in ``Last-Event-ID``: ``<epoch>:<offset>``.
EVENT_ID = re.compile(r"([0-9A-Za-z_-]{1,64}):([0-9]{1,18})")


@database_sync_to_async
def get_room(slug: str) -> Room | None:
    return Room.objects.filter(slug=slug).first()


class RoomMember(PresenceMixin, StreamsMixin):
    """What a live connection to a room is, whatever transport carries it.

    Present in the room's topic under its username (several tabs of one user
    count once), subscribed to the room's stream, and a member of the room's
    group for typing hints, which are not worth keeping in a history.
    """

    room: Room | None = None

    def presence_user(self) -> tuple[str, dict]:
        name = self.scope["user"].get_username()
        return name, {"name": name}

    def can_subscribe(self, stream: str) -> bool:
        # A connection belongs to one room: that room's stream, nothing else.
        return self.room is not None and stream == posting.stream_for(self.room)

    async def enter_room(self, room: Room) -> None:
        self.room = room
        await self.channel_layer.group_add(room.group_name, self.channel_name)
        await self.track_presence(posting.stream_for(room))

    async def leave_room(self) -> None:
        """Leave everything; called however the connection ends."""
        if self.room is None:
            return
        await self.unsubscribe_all_streams()
        for topic in list(self.presence_topics):
            await self.untrack_presence(topic)
        await self.channel_layer.group_discard(self.room.group_name, self.channel_name)
        self.room = None


class ChatConsumer(RoomMember, AsyncJsonWebsocketConsumer):
    """A browser in a room over WebSocket, speaking ``streams.js``'s protocol.

    The browser subscribes to ``chat.<slug>`` (``stream.subscribe``) and
    posts with ``client.request({"type": "message", "text": ...})``, answered
    with the stored message or the reason it was refused.  A plain ``{"type":
    "message", "text": ...}`` frame posts too (refusals come back as an
    ``error`` frame), and ``{"type": "typing"}`` sends a hint.  Besides the
    stream and presence frames it receives ``typing``, ``error`` and ``ping``
    frames (answered ``{"type": "pong"}``, see :meth:`watch_browser`).
    """

    last_typing = -math.inf
    #: When the browser last sent anything (``time.monotonic()``).
    last_heard = -math.inf

    async def connect(self) -> None:
        user = self.scope["user"]
        room = await get_room(self.scope["url_route"]["kwargs"]["slug"])
        if not user.is_authenticated or room is None:
            await self.close()
            return
        await self.accept()
        self.last_heard = time.monotonic()
        await self.enter_room(room)
        self.start_task(self.watch_browser(), name="chat liveness")

    async def websocket_receive(self, message) -> None:
        self.last_heard = time.monotonic()
        await super().websocket_receive(message)

    async def watch_browser(self) -> None:
        """Close a connection whose browser went silent.

        A browser that loses its network (Wi-Fi off, a laptop lid) sends no
        close; the server's socket stays open and the user would stay
        present for good.  The client's own heartbeat only pings when *it*
        hears nothing, so in a busy room it may never ping: the server asks
        with a ``ping`` frame every interval (the page answers ``pong``), and
        two intervals without a word from the browser end the connection,
        and with it the user's presence.
        """
        interval = float(getattr(settings, "CHAT_PING_SECONDS", 10))
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.last_heard > 2 * interval:
                await self.close(code=4000)
                return
            await self.send_json({"type": "ping"})

    async def disconnect(self, code: int) -> None:
        await self.leave_room()

    async def receive_json(self, content, **kwargs) -> None:
        if await self.handle_stream_frame(content):
            return
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "message":
            try:
                await self.post(content.get("text"))
            except posting.InvalidMessage as exc:
                await self.send_json({"type": "error", "error": str(exc)})
        elif kind == "typing":
            await self.typing()
        elif kind == "pong":
            pass  # heard: websocket_receive noted it
        else:
            error = f"Unknown event type {kind!r}."
            await self.send_json({"type": "error", "error": error})

    async def handle_request(self, data) -> dict:
        """``client.request({"type": "message", "text": ...})``: post it."""
        if not isinstance(data, dict) or data.get("type") != "message":
            raise RequestRefused("Expected {'type': 'message', 'text': ...}.")
        try:
            message = await self.post(data.get("text"))
        except posting.InvalidMessage as exc:
            raise RequestRefused(str(exc)) from None
        return {"message": message}

    async def post(self, text) -> dict:
        """Store and publish a message (raises :class:`posting.InvalidMessage`)."""
        message = await database_sync_to_async(posting.save_message)(
            self.room, self.scope["user"], text
        )
        event = await posting.publish(self.channel_layer, self.room, message)
        # The message ends the typing; a new hint after it is news again.
        self.last_typing = -math.inf
        return event

    async def typing(self) -> None:
        """Relay a typing hint; more than one a second between two messages
        is dropped, however fast the client sends them."""
        now = time.monotonic()
        if now - self.last_typing < TYPING_HINT_INTERVAL:
            return
        self.last_typing = now
        await self.channel_layer.group_send(
            self.room.group_name,
            {
                "type": "chat.typing",
                "user": self.scope["user"].get_username(),
                "channel": self.channel_name,
            },
        )

    async def chat_typing(self, event: dict) -> None:
        if event["channel"] != self.channel_name:
            await self.send_json({"type": "typing", "user": event["user"]})


class RoomEventsConsumer(RoomMember, AsyncHttpConsumer):
    """The same room as a Server-Sent-Events stream, for clients without
    WebSocket.  Such clients post through the ``chat:post`` view.

    Events: ``message`` (a message as posted or as moderation rewrote it;
    its event id is its stream position, so a reconnecting ``EventSource``,
    which sends ``Last-Event-ID``, gets what it missed), ``gap`` (history
    cannot fill what was missed: reload), ``presence`` (``{"users": [...]}``,
    the sorted list after each change) and ``typing``.
    """

    async def handle(self, body: bytes) -> None:
        user = self.scope["user"]
        room = await get_room(self.scope["url_route"]["kwargs"]["slug"])
        if not user.is_authenticated:
            await self.send_response(403, b"Log in first.\n")
            return
        if room is None:
            await self.send_response(404, b"No such room.\n")
            return
        await self.send_headers(
            headers=[
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ]
        )
        await self.send_body(b": connected\n\n", more_body=True)
        self.present: set[str] = set()
        await self.enter_room(room)
        await self.subscribe_stream(posting.stream_for(room), self.last_position())
        self.start_task(self.keep_alive(), name="event stream keep-alive")

    def last_position(self) -> Position | None:
        """The stream position in ``Last-Event-ID``, if it is one.

        It comes from the client, so anything but ``<epoch>:<digits>`` in
        ASCII is ignored (a header need not even be UTF-8).
        """
        headers = dict(self.scope.get("headers", []))
        given = headers.get(b"last-event-id", b"").decode("latin-1")
        match = EVENT_ID.fullmatch(given)
        if match is None:
            return None
        return Position(match[1], int(match[2]))

    async def keep_alive(self) -> None:
        # An SSE client never talks back; writing a comment now and then makes
        # the server notice a client that is gone (and proxies keep it open).
        interval = float(getattr(settings, "CHAT_KEEPALIVE_SECONDS", 15))
        while True:
            await asyncio.sleep(interval)
            await self.send_body(b": ping\n\n", more_body=True)

    async def disconnect(self) -> None:
        await self.leave_room()

    async def send_stream_frame(self, frame: dict) -> None:
        if frame["type"] == "stream.message":
            event_id = f"{frame['epoch']}:{frame['offset']}"
            data = json.dumps({"message": frame["data"]})
            await self.send_event(data, event="message", id=event_id)
        elif frame["type"] == "stream.gap" or frame.get("recovery") in (
            "epoch_changed",
            "too_old",
            "unknown_position",
        ):
            await self.send_event(json.dumps({"stream": frame["stream"]}), event="gap")

    async def send_presence_frame(self, frame: dict) -> None:
        """Keep the room's user list, and send it whenever it changes."""
        before = set(self.present)
        kind = frame["type"]
        if kind == "presence.state":
            self.present = set(frame["members"])
        elif kind == "presence.join":
            self.present.add(frame["user"])
        elif kind == "presence.leave":
            self.present.discard(frame["user"])
        if kind == "presence.state" or self.present != before:
            users = json.dumps({"users": sorted(self.present)})
            await self.send_event(users, event="presence")

    async def chat_typing(self, event: dict) -> None:
        if event["channel"] != self.channel_name:
            await self.send_event(json.dumps({"user": event["user"]}), event="typing")


class AccountConsumer(AsyncJsonWebsocketConsumer):
    """Log in over a WebSocket, as the login page does when it can.

    The browser sends ``{"type": "login", "username": ..., "password": ...}``.
    A socket cannot set the new session cookie, so the answer carries a
    one-time ticket the page redeems at ``session_sync_view`` over HTTP,
    which sets it (see ``channels_app.session_sync``).
    """

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict) or content.get("type") != "login":
            await self.send_json({"type": "error", "error": "Expected a login."})
            return
        username, password = content.get("username"), content.get("password")
        user = None
        if isinstance(username, str) and isinstance(password, str):
            user = await database_sync_to_async(authenticate)(
                request_for_scope(self.scope), username=username, password=password
            )
        if user is None:
            await self.send_json(
                {"type": "error", "error": "Your username and password did not match."}
            )
            return
        await login(self.scope, user)
        await self.send_json(
            {
                "type": "logged_in",
                "username": user.get_username(),
                "ticket": await create_sync_ticket(self.scope),
            }
        )


class ModerationConsumer(SyncConsumer):
    """Background job on the ``chat-moderation`` channel (``runworker``).

    Masks blocked words in a posted message, saves the edit and publishes
    the edited message to the room's stream: browsers replace the message of
    that id in place, and one that was offline gets the edit when it is back.
    """

    def moderate_message(self, event: dict) -> None:
        message = (
            Message.objects.select_related("room", "author")
            .filter(id=event["message_id"])
            .first()
        )
        if message is None:
            return  # deleted meanwhile
        cleaned = moderation.mask(message.text)
        if cleaned == message.text:
            return
        message.text = cleaned
        message.moderated = True
        message.save(update_fields=["text", "moderated"])
        publish_sync(posting.stream_for(message.room), message.as_event())
