"""Posting a message: shared by the WebSocket consumer and the HTTP fallback."""

from __future__ import annotations

import logging

from channels_app.exceptions import ChannelFull

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


def save_message(room: Room, user, text: object) -> Message:
    """Store a message in the room's history (raises :class:`InvalidMessage`)."""
    return Message.objects.create(room=room, author=user, text=clean_text(text))


async def publish(channel_layer, room: Room, message: Message) -> None:
    """Show ``message`` to everyone in the room, then queue it for moderation."""
    await channel_layer.group_send(
        room.group_name, {"type": "chat.message", "message": message.as_event()}
    )
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
