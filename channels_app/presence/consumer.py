"""Presence held by a consumer on behalf of its connection.

Put :class:`PresenceMixin` before a JSON WebSocket consumer and call
:meth:`~PresenceMixin.track_presence` (typically in ``connect``)::

    class RoomConsumer(PresenceMixin, AsyncJsonWebsocketConsumer):
        async def connect(self):
            await self.accept()
            await self.track_presence("room.lobby", {"status": "here"})

The client gets a ``presence.state`` frame with everyone present, then
``presence.join`` / ``presence.leave`` / ``presence.update`` frames; the
connection leaves every topic when it disconnects.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..types import Message, Receive, Scope, Send
from .settings import get_presence
from .tracker import Presence, group_for

if TYPE_CHECKING:
    from ..consumer import AsyncConsumer

    _Base = AsyncConsumer
else:
    _Base = object


class PresenceMixin(_Base):
    """Tracks this connection's presence in topics; forwards presence events."""

    def get_presence(self) -> Presence:
        return get_presence()

    def presence_user(self) -> tuple[str, dict[str, Any]]:
        """Who this connection is: the user key and the metadata every one of
        its topics starts with.  An authenticated user is their primary key
        (so tabs of one user count once) with their username; anyone else
        is their own connection."""
        user = self.scope.get("user")
        if user is not None and getattr(user, "is_authenticated", False):
            return str(user.pk), {"name": user.get_username()}
        return f"anonymous:{self.channel_name}", {}

    @property
    def presence_topics(self) -> dict[str, dict[str, Any]]:
        """The topics this connection is present in, with its metadata."""
        topics: dict[str, dict[str, Any]] = self.__dict__.setdefault(
            "_presence_topics", {}
        )
        return topics

    async def track_presence(
        self, topic: str, meta: dict[str, Any] | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Be present in ``topic``; send the client who is there; return it."""
        presence = self.get_presence()
        user, base = self.presence_user()
        meta = {**base, **(meta or {})}
        assert self.channel_layer is not None, "presence needs a channel layer"
        # Join the event group before announcing, so no event is missed
        # between the snapshot below and the first one that follows.
        await self.channel_layer.group_add(group_for(topic), self.channel_name)
        # Recorded first: if the join is cut short (a cancelled consumer), the
        # leave below still undoes whatever part of it happened.
        self.presence_topics[topic] = meta
        await presence.join(topic, self.channel_name, user, meta)
        members = await presence.members(topic)
        await self.send_presence_frame(
            {"type": "presence.state", "topic": topic, "members": members}
        )
        return members

    async def update_presence(self, topic: str, meta: dict[str, Any]) -> None:
        """Replace this connection's metadata in ``topic`` (an update event)."""
        user, base = self.presence_user()
        meta = {**base, **meta}
        self.presence_topics[topic] = meta
        await self.get_presence().update(topic, self.channel_name, user, meta)

    async def untrack_presence(self, topic: str) -> None:
        if self.presence_topics.pop(topic, None) is None:
            return
        assert self.channel_layer is not None
        await self.get_presence().leave(topic, self.channel_name)
        await self.channel_layer.group_discard(group_for(topic), self.channel_name)

    async def send_presence_frame(self, frame: dict[str, Any]) -> None:
        """Send one ``presence.*`` frame to the client (``send_json``)."""
        await self.send_json(frame)  # type: ignore[attr-defined]

    async def channels_app_presence_event(self, message: Message) -> None:
        """Someone joined, left or updated in a topic this connection tracks."""
        if message.get("topic") not in self.presence_topics:
            return
        # A sweep announces every user it found gone in one event.
        for user in message.get("users") or [message["user"]]:
            frame = {
                "type": f"presence.{message['event']}",
                "topic": message["topic"],
                "user": user,
            }
            if "meta" in message:
                frame["meta"] = message["meta"]
            await self.send_presence_frame(frame)

    async def websocket_disconnect(self, message: Message) -> None:
        await self._leave_every_topic()
        await super().websocket_disconnect(message)  # type: ignore[misc]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the consumer, and leave every topic however it ends.

        A consumer that crashes in a handler, or that the server cancels,
        never runs its disconnect handler; its connection would stay present
        for the life of the process, since the tracker keeps renewing its
        lease.  The leave is shielded so a second cancellation cannot cut it.
        """
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.presence_topics:
                await asyncio.shield(self._leave_every_topic())

    async def _leave_every_topic(self) -> None:
        for topic in list(self.presence_topics):
            await self.untrack_presence(topic)
