"""Stream subscriptions held by a consumer on behalf of its client.

Add :class:`StreamsMixin` before a JSON WebSocket consumer::

    class ChatConsumer(StreamsMixin, AsyncJsonWebsocketConsumer):
        stream_patterns = ["chat.*"]          # or override can_subscribe()

The client then sends ``stream.subscribe`` frames (see :mod:`.frames`); the
mixin checks :meth:`StreamsMixin.can_subscribe`, subscribes the consumer's
channel, replays what the client missed since the position it sent, and
forwards live messages -- each offset once, in order -- however the layer
delivered them: duplicates of the replay are dropped, a message that came
early waits for the one before it, and a hole (a message the layer lost or
an out-of-order publisher's) is filled from the store.
"""

from __future__ import annotations

import asyncio
import fnmatch
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..types import Message
from .defaults import get_streams
from .frames import (
    CLIENT_FRAMES,
    SUBSCRIBE,
    gap_frame,
    message_frame,
    refused_frame,
    subscribed_frame,
    unsubscribed_frame,
)
from .hub import LIVE_MESSAGE, Streams, as_position, from_live_message
from .names import InvalidStreamName, require_valid_stream_name
from .positions import Position, StreamMessage, Subscription
from .requests import RequestsMixin
from .sequencer import Sequencer

assert LIVE_MESSAGE.replace(".", "_") == "channels_app_stream_message"


class StreamsMixin(RequestsMixin):
    """Subscribes to streams for the client; put it before the consumer class.

    For JSON WebSocket consumers it handles the ``stream.*`` frames in
    :meth:`receive_json` (a subclass overriding ``receive_json`` calls
    ``await self.handle_stream_frame(content)`` first, or ``super()``).  Any
    consumer can call :meth:`subscribe_stream` itself and override
    :meth:`send_stream_frame` to choose how frames reach its client.
    """

    #: Glob patterns of the streams clients may subscribe to, consulted by
    #: the default :meth:`can_subscribe`.  Empty: every request is refused.
    stream_patterns: list[str] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "_sync", False):
            raise TypeError(
                f"{cls.__qualname__}: StreamsMixin needs an async consumer "
                f"(AsyncConsumer, AsyncJsonWebsocketConsumer, ...); sync "
                f"consumers can publish with publish_sync() but not subscribe"
            )

    def get_streams(self) -> Streams:
        """The streams this consumer subscribes to (the settings' by default)."""
        return get_streams()

    def can_subscribe(self, stream: str) -> Any:
        """May this connection's client subscribe to ``stream``?

        Override it, as a plain method (run in a thread, the ORM allowed) or a
        coroutine, to check ``self.scope["user"]``; return True or False.
        The default allows the streams matching :attr:`stream_patterns`.
        """
        return any(fnmatch.fnmatchcase(stream, p) for p in self.stream_patterns)

    async def send_stream_frame(self, frame: dict[str, Any]) -> None:
        """Send one ``stream.*`` frame to the client (``send_json`` by default)."""
        send_json = getattr(self, "send_json", None)
        if send_json is None:
            raise ImproperlyConfigured(
                f"{type(self).__qualname__} has no send_json(); override "
                f"send_stream_frame() to send stream frames to its client"
            )
        await send_json(frame)

    # -- state ------------------------------------------------------------

    def _stream_state(self) -> tuple[dict[str, Sequencer], asyncio.Lock]:
        state = self.__dict__.get("_streams_state")
        if state is None:
            state = self.__dict__["_streams_state"] = ({}, asyncio.Lock())
        subscriptions: dict[str, Sequencer] = state[0]
        lock: asyncio.Lock = state[1]
        return subscriptions, lock

    @property
    def stream_positions(self) -> dict[str, Position]:
        """The last position delivered to the client, per subscribed stream."""
        return {name: seq.position for name, seq in self._stream_state()[0].items()}

    def _checked_streams(self) -> Streams:
        streams = self.get_streams()
        if streams.layer is not self.channel_layer:
            raise ImproperlyConfigured(
                f"{type(self).__qualname__} listens on channel layer "
                f"{self.channel_layer_alias!r}, but streams publish through "
                f"another; set CHANNELS_APP_STREAMS['LAYER'] to "
                f"{self.channel_layer_alias!r}"
            )
        return streams

    # -- subscribing ------------------------------------------------------

    async def subscribe_stream(
        self, stream: str, since: Position | dict[str, Any] | None = None
    ) -> Subscription:
        """Subscribe (no authorization check: the server decided), tell the
        client with a ``stream.subscribed`` frame, and replay what it missed."""
        streams = self._checked_streams()
        subscriptions, lock = self._stream_state()
        async with lock:
            subscription = await streams.subscribe(stream, self.channel_name, since)
            subscriptions[stream] = Sequencer(subscription.position)
            start = subscription.position
            if subscription.replay:
                start = Position(start.epoch, subscription.replay[0].offset - 1)
            await self.send_stream_frame(
                subscribed_frame(stream, start, subscription.recovery)
            )
            for message in subscription.replay:
                await self.send_stream_frame(message_frame(message))
        return subscription

    async def unsubscribe_stream(self, stream: str) -> None:
        subscriptions, lock = self._stream_state()
        async with lock:
            if subscriptions.pop(stream, None) is not None:
                await self.get_streams().unsubscribe(stream, self.channel_name)

    async def unsubscribe_all_streams(self) -> None:
        for stream in list(self._stream_state()[0]):
            await self.unsubscribe_stream(stream)

    # -- frames from the client -------------------------------------------

    async def handle_stream_frame(self, content: Any) -> bool:
        """Handle ``content`` if it is a ``stream.*`` frame; say whether it was."""
        if isinstance(content, dict) and await self.handle_client_frame(content):
            return True  # a ping or a request (channels_app.streams.requests)
        if not isinstance(content, dict) or content.get("type") not in CLIENT_FRAMES:
            return False
        given = content.get("stream")
        try:
            stream = require_valid_stream_name(given)
            since = as_position(content.get("since"))
        except (TypeError, InvalidStreamName) as exc:
            await self.send_stream_frame(refused_frame(given, "invalid", str(exc)))
            return True
        if content["type"] != SUBSCRIBE:
            await self.unsubscribe_stream(stream)
            await self.send_stream_frame(unsubscribed_frame(stream))
        elif await self.call_hook(self.can_subscribe, stream) is True:
            await self.subscribe_stream(stream, since)
        else:
            await self.send_stream_frame(
                refused_frame(
                    stream, "forbidden", "this connection may not subscribe to it"
                )
            )
        return True

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not await self.handle_stream_frame(content):
            await super().receive_json(content, **kwargs)  # type: ignore[misc]

    # -- live messages ----------------------------------------------------

    async def channels_app_stream_message(self, message: Message) -> None:
        """A live message from a stream's group: deliver it in order, once."""
        live = from_live_message(message)
        subscriptions, lock = self._stream_state()
        async with lock:
            sequencer = subscriptions.get(live.stream)
            if sequencer is None:  # unsubscribed while it travelled
                return
            if live.epoch != sequencer.epoch:
                await self._fill(live.stream, sequencer)
                return
            await self._deliver(sequencer.offer(live))
            if sequencer.has_hole:
                await self._fill(live.stream, sequencer)

    async def _deliver(self, messages: list[StreamMessage]) -> None:
        for message in messages:
            await self.send_stream_frame(message_frame(message))

    async def _fill(self, stream: str, sequencer: Sequencer) -> None:
        """Fetch from the store what the live messages skipped; when the store
        no longer has it, tell the client with a ``stream.gap`` frame."""
        missed = await self.get_streams().read_after(stream, sequencer.position)
        if missed.recovery.lost:
            sequencer.reset(missed.position)
            await self.send_stream_frame(
                gap_frame(stream, missed.position, missed.recovery)
            )
            return
        if missed.position.epoch != sequencer.epoch:
            # Nothing delivered yet (offset 0 fits any epoch): the stream's
            # first messages came under an epoch made after we subscribed.
            sequencer.reset(Position(missed.position.epoch, 0))
        for message in missed.replay:
            await self._deliver(sequencer.offer(message))
        # Every early message is in what the store returned (a message is
        # stored before it is sent), or of an epoch that is gone: drop them.
        sequencer.early.clear()

    async def before_pong(self) -> None:
        await self.catch_up_streams()

    async def catch_up_streams(self) -> None:
        """Deliver what the store holds past each subscription's position.

        A live message the layer lost is noticed when a later one arrives; at
        the end of a burst none does.  A client pings after a quiet interval
        (``heartbeatInterval`` in streams.js), so the ping asks the store.
        """
        subscriptions, lock = self._stream_state()
        async with lock:
            for stream, sequencer in list(subscriptions.items()):
                await self._fill(stream, sequencer)

    async def websocket_disconnect(self, message: Message) -> None:
        await self.unsubscribe_all_streams()
        await super().websocket_disconnect(message)  # type: ignore[misc]
