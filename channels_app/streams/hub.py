"""Publishing to streams and subscribing to them: the rules every store shares.

:class:`Streams` ties a store (the numbered history) to a channel layer (the
live fan-out).  Publishing stores first -- the store assigns the position --
then sends the message, position included, to the stream's group.
Subscribing joins the group first and reads the history second, so every
message is either in the history read or arrives live afterwards (or both):
the subscriber drops live messages at or before the position it was given,
and the seam has neither a gap nor a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exceptions import InvalidChannelLayerError
from ..layers import get_channel_layer
from ..types import ChannelLayer
from .names import group_for, require_valid_stream_name
from .positions import History, Position, Recovery, StreamMessage, Subscription
from .store import HistoryLimits, StreamStore

#: The ``type`` of the layer message carrying a live stream message; consumers
#: handle it in ``channels_app_stream_message`` (see :mod:`.consumer`).
LIVE_MESSAGE = "channels_app.stream.message"


def live_message(message: StreamMessage) -> dict[str, Any]:
    """The group message that carries ``message`` to live subscribers."""
    return {
        "type": LIVE_MESSAGE,
        "stream": message.stream,
        "epoch": message.epoch,
        "offset": message.offset,
        "data": message.data,
    }


def from_live_message(message: dict[str, Any]) -> StreamMessage:
    """The stream message a :func:`live_message` carries."""
    return StreamMessage(
        message["stream"], message["epoch"], message["offset"], message["data"]
    )


def as_position(since: Position | dict[str, Any] | None) -> Position | None:
    """``since`` as a :class:`Position`: given as one, as its JSON form, or None."""
    if since is None or isinstance(since, Position):
        return since
    return Position.from_dict(since)


def recovery_from(
    stream: str, since: Position | None, history: History
) -> Subscription:
    """Decide what a reader at ``since`` gets from ``history``.

    Recovery needs the same epoch and every offset after ``since`` still held
    (``since.offset + 1 >= history.first``); anything else is reported as lost,
    with the stream's current end as the new position and nothing replayed,
    so that no caller can mistake a partial replay for a complete one.

    Offset 0 ("seen nothing yet") fits any epoch: a reader that has seen no
    message of an epoch cannot hold a picture the next epoch contradicts.
    That is what lets stores answer a read of a stream never published to
    with a throwaway epoch instead of storing one.
    """
    end = Position(history.epoch, history.last)
    if since is None:
        return Subscription(stream, Recovery.NONE, end)
    if since.epoch != history.epoch and since.offset != 0:
        return Subscription(stream, Recovery.EPOCH_CHANGED, end)
    if since.offset > history.last:
        return Subscription(stream, Recovery.UNKNOWN_POSITION, end)
    if since.offset + 1 < history.first:
        return Subscription(stream, Recovery.TOO_OLD, end)
    return Subscription(stream, Recovery.RECOVERED, end, list(history.messages))


class Streams:
    """Streams on one store and one channel layer.

    ``layer`` is a layer alias (looked up when used, so settings changes are
    seen) or a layer object; ``limits_for(stream)`` gives each stream's
    history limits (by default, the ``CHANNELS_APP_STREAMS`` patterns').
    """

    def __init__(
        self,
        store: StreamStore,
        layer: ChannelLayer | str,
        limits_for: Callable[[str], HistoryLimits] | None = None,
    ) -> None:
        self.store = store
        self._layer = layer
        self.limits_for = limits_for or (lambda stream: HistoryLimits())

    @property
    def layer(self) -> ChannelLayer:
        """The channel layer live messages go through."""
        if not isinstance(self._layer, str):
            return self._layer
        layer = get_channel_layer(self._layer)
        if layer is None:
            raise InvalidChannelLayerError(
                f"Streams send live messages through the channel layer "
                f"{self._layer!r}, which CHANNEL_LAYERS does not configure; "
                f"configure it or set CHANNELS_APP_STREAMS['LAYER']"
            )
        return layer

    async def publish(self, stream: str, data: dict[str, Any]) -> StreamMessage:
        """Store ``data`` as ``stream``'s next message and send it to the
        stream's live subscribers; return it with its position."""
        require_valid_stream_name(stream)
        layer = self.layer  # refused before anything is stored
        message = await self.store.append(stream, data, self.limits_for(stream))
        await layer.group_send(group_for(stream), live_message(message))
        return message

    async def subscribe(
        self,
        stream: str,
        channel_name: str,
        since: Position | dict[str, Any] | None = None,
    ) -> Subscription:
        """Add ``channel_name`` to the stream's live group, then read what it
        missed after ``since`` (see :func:`recovery_from` for when it cannot
        be recovered).  Live messages at or before the returned
        ``position`` are duplicates to drop."""
        group = group_for(stream)
        position = as_position(since)
        layer = self.layer
        await layer.group_add(group, channel_name)
        return await self.read_after(stream, position)

    async def read_after(self, stream: str, since: Position | None) -> Subscription:
        """What a reader at ``since`` missed, without joining anything: how a
        subscriber fills a hole it noticed in the live messages."""
        require_valid_stream_name(stream)
        after = None if since is None else since.offset
        history = await self.store.read(stream, after, self.limits_for(stream))
        return recovery_from(stream, since, history)

    async def unsubscribe(self, stream: str, channel_name: str) -> None:
        """Stop sending ``stream``'s live messages to ``channel_name``."""
        await self.layer.group_discard(group_for(stream), channel_name)

    async def delete(self, stream: str) -> None:
        """Forget ``stream``'s history; subscribers' positions become
        unrecoverable (a new epoch starts with the next message)."""
        require_valid_stream_name(stream)
        await self.store.delete(stream)
