"""The chat's consumers: a room over WebSocket, over Server-Sent Events, and
the moderation worker that listens on a named channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from django.contrib.auth import authenticate

from channels_app.auth import login, request_for_scope
from channels_app.consumer import SyncConsumer
from channels_app.db import database_sync_to_async
from channels_app.generic.http import AsyncHttpConsumer
from channels_app.generic.websocket import AsyncJsonWebsocketConsumer
from channels_app.session_sync import create_sync_ticket

from . import moderation, posting, presence
from .models import Message, Room

logger = logging.getLogger("chat")

#: A message id as a client may send it: ASCII digits within a 64-bit integer.
MESSAGE_ID = re.compile(r"[0-9]{1,18}")

#: Typing hints are throw-away; a client sending more is only making noise.
TYPING_HINT_INTERVAL = 1.0


@database_sync_to_async
def get_room(slug: str) -> Room | None:
    return Room.objects.filter(slug=slug).first()


class RoomMember:
    """What a live connection to a room does, whatever carries it.

    Joins the room's group and presence on entry, keeps its presence fresh,
    has vanished connections swept, and turns the room's group events into
    calls to :meth:`deliver`, which each transport implements.

    Presence costs a room of N connections O(N) messages and O(1) queries
    per change: the process that saw a change reads the list once and sends
    it in the group event (see :class:`chat.presence.Announcer`); members
    pass it on as it is.
    """

    room: Room | None = None
    #: The newest presence list this connection passed on, and its version.
    presence_version = -1
    presence_users: str | None = None

    async def enter_room(self, room: Room, user) -> None:
        self.room = room
        self.user = user
        await self.channel_layer.group_add(room.group_name, self.channel_name)
        await database_sync_to_async(presence.join)(room, user, self.channel_name)
        self.presence_changed_in_room()
        # start_task: cancelled with the consumer however it ends (a crash
        # included), so a heartbeat never outlives its connection.
        self._heartbeat_task = self.start_task(
            self._heartbeat_loop(), name="presence heartbeat"
        )

    async def leave_room(self) -> None:
        if self.room is None:
            return
        self._heartbeat_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._heartbeat_task
        await self.channel_layer.group_discard(self.room.group_name, self.channel_name)
        if await database_sync_to_async(presence.leave)(self.channel_name):
            self.presence_changed_in_room()
        self.room = None

    async def send_missed_messages(self) -> None:
        """Deliver messages newer than the id the client says it has.

        Called after joining the group: a message posted meanwhile may
        arrive twice, never not at all; clients drop duplicates by id.
        """
        after = self.last_seen_id()
        if after is None:
            return

        @database_sync_to_async
        def load() -> list[dict]:
            newer = self.room.messages.filter(id__gt=after)
            return [m.as_event() for m in newer.select_related("author")[:200]]

        for message in await load():
            await self.deliver("message", {"message": message})

    def last_seen_id(self) -> int | None:
        """The message id from ``Last-Event-ID`` or ``?after=``, if it is one.

        Both come from the client, so anything but plain ASCII digits that fit
        a database integer is ignored: ``"²".isdigit()`` is true, yet
        ``int("²")`` raises, and a header need not even be UTF-8.
        """
        headers = dict(self.scope.get("headers", []))
        after = headers.get(b"last-event-id", b"").decode("latin-1")
        if not after:
            query = self.scope.get("query_string", b"").decode("latin-1")
            after = parse_qs(query).get("after", [""])[0]
        if not MESSAGE_ID.fullmatch(after):
            return None
        return int(after)

    async def still_here(self) -> None:
        """Refresh this connection's presence, rejoining if it was swept.

        Also renews the group membership: a layer drops a member whose
        channel overflowed or whose messages expired unread, and without
        this such a connection would stay open and silently hear nothing.
        """
        await self.channel_layer.group_add(self.room.group_name, self.channel_name)
        if not await database_sync_to_async(presence.touch)(self.channel_name):
            await database_sync_to_async(presence.join)(
                self.room, self.user, self.channel_name
            )
            self.presence_changed_in_room()

    def presence_changed_in_room(self) -> None:
        presence.announcer().changed(self.channel_layer, self.room)

    async def heartbeat(self) -> None:
        """Called every heartbeat interval; transports add their own keep-alive."""

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(presence.heartbeat_interval())
            try:
                await self.heartbeat()
                # Once per room and process per interval, not per connection.
                await presence.announcer().sweep(self.channel_layer, self.room)
            except Exception:
                # A database hiccup must not end presence for this connection.
                logger.exception("Presence heartbeat failed in %s", self.room)

    async def deliver(self, kind: str, payload: dict) -> None:
        raise NotImplementedError

    async def deliver_encoded(self, kind: str, payload: str) -> None:
        """:meth:`deliver` for a payload that is already a JSON object's text."""
        await self.deliver(kind, json.loads(payload))

    # Group events.

    async def presence_changed(self, event: dict) -> None:
        """Pass the room's list on, unless a newer one was or it is the same.

        Lists from several server processes may arrive out of order; the
        version says which is newer.  ``users`` is the list as JSON text.
        """
        version, users = event["version"], event["users"]
        if version < self.presence_version:
            return
        self.presence_version = version
        if users == self.presence_users:
            return  # a change that did not change the list (a second tab)
        self.presence_users = users
        await self.deliver_encoded("presence", '{"users": ' + users + "}")

    async def chat_message(self, event: dict) -> None:
        await self.deliver("message", {"message": event["message"]})

    async def chat_message_updated(self, event: dict) -> None:
        await self.deliver("message_updated", {"message": event["message"]})

    async def chat_typing(self, event: dict) -> None:
        if event["channel"] != self.channel_name:
            await self.deliver("typing", {"user": event["user"]})


class ChatConsumer(RoomMember, AsyncJsonWebsocketConsumer):
    """A browser in a room over WebSocket.

    The browser sends ``{"type": "message", "text": ...}``, ``{"type":
    "typing"}`` and a ``{"type": "heartbeat"}`` every heartbeat interval; it
    receives ``message``, ``message_updated``, ``presence``, ``typing`` and
    ``error`` events.
    """

    last_typing = -math.inf

    async def connect(self) -> None:
        user = self.scope["user"]
        room = await get_room(self.scope["url_route"]["kwargs"]["slug"])
        if not user.is_authenticated or room is None:
            await self.close()
            return
        await self.accept()
        await self.enter_room(room, user)
        await self.send_missed_messages()

    async def disconnect(self, code: int) -> None:
        await self.leave_room()

    async def receive_json(self, content, **kwargs) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "message":
            await self.post(content.get("text"))
        elif kind == "typing":
            await self.typing()
        elif kind == "heartbeat":
            await self.still_here()
        else:
            await self.deliver("error", {"error": f"Unknown event type {kind!r}."})

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
                "user": self.user.get_username(),
                "channel": self.channel_name,
            },
        )

    async def post(self, text) -> None:
        try:
            message = await database_sync_to_async(posting.save_message)(
                self.room, self.user, text
            )
        except posting.InvalidMessage as exc:
            await self.deliver("error", {"error": str(exc)})
            return
        await posting.publish(self.channel_layer, self.room, message)
        # The message ends the typing; a new hint after it is news again.
        self.last_typing = -math.inf

    async def deliver(self, kind: str, payload: dict) -> None:
        await self.send_json({"type": kind, **payload})

    async def deliver_encoded(self, kind: str, payload: str) -> None:
        # '{"type": kind, ' + the payload's members: no decoding, no re-encoding.
        await self.send(text_data='{"type": ' + json.dumps(kind) + ", " + payload[1:])


class RoomEventsConsumer(RoomMember, AsyncHttpConsumer):
    """The same room as a Server-Sent-Events stream, for clients without
    WebSocket.  Such clients post through the ``chat:post`` view.

    Messages carry their id as the event id, so a reconnecting
    ``EventSource`` (which sends ``Last-Event-ID``) gets what it missed;
    ``?after=<id>`` does the same for the first connection.
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
        await self.enter_room(room, user)
        await self.send_missed_messages()

    async def heartbeat(self) -> None:
        # An SSE client never talks back: the open stream is its heartbeat.
        # Writing a comment makes the server notice a client that is gone.
        await self.send_body(b": ping\n\n", more_body=True)
        await self.still_here()

    async def disconnect(self) -> None:
        await self.leave_room()

    async def deliver(self, kind: str, payload: dict) -> None:
        event_id = str(payload["message"]["id"]) if kind == "message" else None
        await self.send_event(json.dumps(payload), event=kind, id=event_id)

    async def deliver_encoded(self, kind: str, payload: str) -> None:
        await self.send_event(payload, event=kind)


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

    Masks blocked words in a posted message, saves the edit and tells the
    room, whose browsers replace the message in place.
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
        async_to_sync(self.channel_layer.group_send)(
            message.room.group_name,
            {"type": "chat.message.updated", "message": message.as_event()},
        )
