"""WebSocket consumers: sync and async flavours over one protocol implementation.

The protocol handlers (``websocket_connect``/``_receive``/``_disconnect``)
are written once, as coroutines, in :class:`WebsocketProtocol`.  They reach
the user's hooks (``connect``, ``receive``, ``disconnect``, ``accept``,
``close``) through :meth:`WebsocketProtocol.call_hook`, which awaits
coroutine hooks and runs plain ones in a thread.  Each flavour only
supplies the small hooks in its own calling convention.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterable
from typing import Any

from ..consumer import AsyncConsumer, SyncConsumer
from ..db import database_sync_to_async
from ..exceptions import (
    AcceptConnection,
    DenyConnection,
    InvalidChannelLayerError,
    StopConsumer,
)

logger = logging.getLogger("channels_app.websocket")

#: Close codes from RFC 6455 used when the client sends something unusable.
UNSUPPORTED_DATA = 1003
INVALID_PAYLOAD = 1007


class UnacceptableFrame(Exception):
    """A frame the consumer cannot handle; the connection is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _header_bytes(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value


def accept_message(
    subprotocol: str | None = None,
    headers: Iterable[tuple[str | bytes, str | bytes]] | None = None,
) -> dict:
    message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        items = headers.items() if isinstance(headers, dict) else headers
        message["headers"] = [(_header_bytes(k), _header_bytes(v)) for k, v in items]
    return message


def frame_message(
    text_data: str | None = None, bytes_data: bytes | None = None
) -> dict:
    if text_data is not None:
        return {"type": "websocket.send", "text": text_data}
    if bytes_data is not None:
        return {"type": "websocket.send", "bytes": bytes_data}
    raise ValueError("send() needs text_data or bytes_data")


def close_message(code: int | bool | None = None, reason: str | None = None) -> dict:
    message: dict[str, Any] = {"type": "websocket.close"}
    # send(close=True) passes True through: it means "the default code".
    if code is not None and code is not True:
        message["code"] = code
    if reason:
        message["reason"] = reason
    return message


class WebsocketProtocol:
    """The WebSocket handlers shared by every WebSocket consumer."""

    groups: list[str] | None = None

    def __init__(self, **initkwargs: Any) -> None:
        super().__init__(**initkwargs)
        self.groups = list(self.groups or [])

    async def call_hook(self, hook, *args: Any, **kwargs: Any) -> Any:
        if inspect.iscoroutinefunction(hook):
            return await hook(*args, **kwargs)
        return await database_sync_to_async(hook)(*args, **kwargs)

    async def _for_each_group(self, action: str) -> None:
        if not self.groups:
            return
        layer = getattr(self, "channel_layer", None)
        if layer is None or not hasattr(layer, action):
            raise InvalidChannelLayerError(
                f"{type(self).__qualname__} lists groups {self.groups!r} but its "
                f"channel layer {self.channel_layer_alias!r} is not configured or "
                f"does not support groups"
            )
        for group in self.groups:
            await getattr(layer, action)(group, self.channel_name)

    async def websocket_connect(self, message: dict) -> None:
        await self._for_each_group("group_add")
        try:
            await self.call_hook(self.connect)
        except AcceptConnection:
            await self.call_hook(self.accept)
        except DenyConnection:
            await self.call_hook(self.close)

    async def websocket_receive(self, message: dict) -> None:
        try:
            await self.call_hook(
                self.receive,
                text_data=message.get("text"),
                bytes_data=message.get("bytes"),
            )
        except UnacceptableFrame as exc:
            logger.warning(
                "%s closed a WebSocket on %s with code %s: %s",
                type(self).__qualname__,
                self.scope.get("path", "?"),
                exc.code,
                exc.reason,
            )
            await self.call_hook(self.close, code=exc.code, reason=exc.reason)

    async def websocket_disconnect(self, message: dict) -> None:
        try:
            await self._for_each_group("group_discard")
        finally:
            await self.call_hook(self.disconnect, message.get("code", 1000))
        raise StopConsumer()


class JsonFrames:
    """JSON encoding shared by the JSON consumers; override to customise."""

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)

    def content_of(self, text_data: str | None, bytes_data: bytes | None) -> Any:
        """Decode a frame, or raise :class:`UnacceptableFrame` saying why not."""
        if text_data is None:
            raise UnacceptableFrame(
                UNSUPPORTED_DATA, "expected a text frame holding JSON, got binary"
            )
        try:
            return self.decode_json(text_data)
        except ValueError as exc:
            raise UnacceptableFrame(INVALID_PAYLOAD, f"malformed JSON: {exc}")


class WebsocketConsumer(WebsocketProtocol, SyncConsumer):
    """WebSocket consumer with synchronous hooks (run in a thread; ORM allowed)."""

    def connect(self) -> None:
        self.accept()

    def accept(self, subprotocol: str | None = None, headers=None) -> None:
        self._blocking_send(accept_message(subprotocol, headers))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        pass

    def send(self, text_data=None, bytes_data=None, close: bool | int = False) -> None:
        self._blocking_send(frame_message(text_data, bytes_data))
        if close:
            self.close(close)

    def close(self, code: int | bool | None = None, reason: str | None = None):
        self._blocking_send(close_message(code, reason))

    def disconnect(self, code: int) -> None:
        pass


class AsyncWebsocketConsumer(WebsocketProtocol, AsyncConsumer):
    """WebSocket consumer with coroutine hooks, run on the event loop."""

    async def connect(self) -> None:
        await self.accept()

    async def accept(self, subprotocol: str | None = None, headers=None) -> None:
        await self.base_send(accept_message(subprotocol, headers))

    async def receive(self, text_data=None, bytes_data=None) -> None:
        pass

    async def send(self, text_data=None, bytes_data=None, close=False) -> None:
        await self.base_send(frame_message(text_data, bytes_data))
        if close:
            await self.close(close)

    async def close(self, code: int | bool | None = None, reason=None) -> None:
        await self.base_send(close_message(code, reason))

    async def disconnect(self, code: int) -> None:
        pass


class JsonWebsocketConsumer(JsonFrames, WebsocketConsumer):
    """Sync WebSocket consumer speaking JSON: implement ``receive_json``."""

    def receive(self, text_data=None, bytes_data=None) -> None:
        self.receive_json(self.content_of(text_data, bytes_data))

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        pass

    def send_json(self, content: Any, close: bool | int = False) -> None:
        self.send(text_data=self.encode_json(content), close=close)


class AsyncJsonWebsocketConsumer(JsonFrames, AsyncWebsocketConsumer):
    """Async WebSocket consumer speaking JSON: implement ``receive_json``."""

    async def receive(self, text_data=None, bytes_data=None) -> None:
        await self.receive_json(self.content_of(text_data, bytes_data))

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        pass

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        await self.send(text_data=self.encode_json(content), close=close)
