"""Posting a message: shared by the WebSocket consumer and the HTTP fallback."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync

from channels_app.exceptions import ChannelFull
from channels_app.streams import publish as publish_to_stream
from channels_app.streams import publish_sync

from .models import Message, Room

logger = logging.getLogger("chat")

MAX_LENGTH = 2000

#: The named channel the moderation worker listens on (``runworker``).
MODERATION_CHANNEL = "chat-moderation"


class InvalidMessage(ValueError):
    """The text cannot be posted; the message says why, for the user."""


def clean_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidMessage("A message must be text.")
    if "\x00" in text:
        # PostgreSQL cannot store NUL in a text column; refuse it everywhere.
        raise InvalidMessage("A message cannot contain NUL characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can carry lone surrogates ("\ud800"), which no database stores.
        raise InvalidMessage("A message must be valid Unicode text.") from None
    text = text.strip()
    if not text:
        raise InvalidMessage("A message cannot be empty.")
    if len(text) > MAX_LENGTH:
        raise InvalidMessage(f"A message can be at most {MAX_LENGTH} characters.")
    return text


def stream_for(room: Room) -> str:
    """The stream (and presence topic) of ``room``: ``chat.<slug>``."""
    return f"chat.{room.slug}"


def save_message(room: Room, user, text: object) -> Message:
    """Store a message in the room's history (raises :class:`InvalidMessage`)."""
    return Message.objects.create(room=room, author=user, text=clean_text(text))


async def publish(channel_layer, room: Room, message: Message) -> dict:
    """Show ``message`` to everyone in the room, then queue it for moderation.

    It goes out through the room's stream, which keeps it in its history for
    browsers that are offline now; returns the message as published.
    """
    event = message.as_event()
    await publish_to_stream(stream_for(room), event)
    await queue_for_moderation(channel_layer, message)
    return event


def publish_from_sync(channel_layer, room: Room, message: Message) -> dict:
    """:func:`publish` for a view: ``publish_sync`` closes what a temporary
    event loop opened in the stream's store, where ``async_to_sync(publish)``
    would leave it bound to a loop that is gone."""
    event = message.as_event()
    publish_sync(stream_for(room), event)
    async_to_sync(queue_for_moderation)(channel_layer, message)
    return event


async def queue_for_moderation(channel_layer, message: Message) -> None:
    try:
        await channel_layer.send(
            MODERATION_CHANNEL,
            {"type": "moderate.message", "message_id": message.id},
        )
    except ChannelFull:
        # No worker is draining the channel: the message stays as posted.
        logger.warning(
            "Moderation channel %r is full; is a worker running?", MODERATION_CHANNEL
        )
