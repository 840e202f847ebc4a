"""The JSON frames a stream subscriber and its client exchange.

Client to server::

    {"type": "stream.subscribe", "stream": "chat.lobby"}
    {"type": "stream.subscribe", "stream": "chat.lobby",
     "since": {"epoch": "3f9c0a1be2d4", "offset": 41}}
    {"type": "stream.unsubscribe", "stream": "chat.lobby"}

Server to client::

    {"type": "stream.subscribed", "stream": ..., "epoch": ..., "offset": ...,
     "recovery": "none" | "recovered" | "epoch_changed" | "too_old"
                 | "unknown_position"}
    {"type": "stream.message", "stream": ..., "epoch": ..., "offset": ...,
     "data": {...}}
    {"type": "stream.gap", "stream": ..., "epoch": ..., "offset": ...,
     "reason": "epoch_changed" | "too_old"}
    {"type": "stream.refused", "stream": ..., "reason": "forbidden" | "invalid",
     "detail": "..."}
    {"type": "stream.unsubscribed", "stream": ...}

``epoch``/``offset`` in ``subscribed`` and ``gap`` are the position the
messages that follow continue from; a client keeps the last ``message``'s
pair and sends it back as ``since`` when it reconnects.
"""

from __future__ import annotations

from typing import Any

from .positions import Position, Recovery, StreamMessage

SUBSCRIBE = "stream.subscribe"
UNSUBSCRIBE = "stream.unsubscribe"
CLIENT_FRAMES = frozenset({SUBSCRIBE, UNSUBSCRIBE})


def message_frame(message: StreamMessage) -> dict[str, Any]:
    return {
        "type": "stream.message",
        "stream": message.stream,
        "epoch": message.epoch,
        "offset": message.offset,
        "data": message.data,
    }


def subscribed_frame(
    stream: str, position: Position, recovery: Recovery
) -> dict[str, Any]:
    return {
        "type": "stream.subscribed",
        "stream": stream,
        "epoch": position.epoch,
        "offset": position.offset,
        "recovery": recovery.value,
    }


def gap_frame(stream: str, position: Position, reason: Recovery) -> dict[str, Any]:
    return {
        "type": "stream.gap",
        "stream": stream,
        "epoch": position.epoch,
        "offset": position.offset,
        "reason": reason.value,
    }


def refused_frame(stream: Any, reason: str, detail: str) -> dict[str, Any]:
    return {
        "type": "stream.refused",
        "stream": stream if isinstance(stream, str) else None,
        "reason": reason,
        "detail": detail,
    }


def unsubscribed_frame(stream: str) -> dict[str, Any]:
    return {"type": "stream.unsubscribed", "stream": stream}
