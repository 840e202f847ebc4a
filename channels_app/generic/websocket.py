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
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync  # noqa: F401 - reachable here, as in Channels

from .. import session_end
from ..consumer import AsyncConsumer, SyncConsumer, blocking_form
from ..db import (  # noqa: F401 - aclose_old_connections reachable here, as in Channels
    aclose_old_connections,
    database_sync_to_async,
)
from ..exceptions import (
    AcceptConnection,
    DenyConnection,
    InvalidChannelLayerError,
    StopConsumer,
)
from ..session_end import SESSION_ENDED
from ..types import ASGIApp, Message

logger = logging.getLogger("channels_app.websocket")

#: Close code for a binary frame sent to a JSON consumer: RFC 6455's 1003
#: ("unsupported data") plus 3000.
#:
#: Why not 1003 itself: an ASGI server may refuse to send a code outside 1000
#: and 3000-4999.  Daphne does (Autobahn raises ``invalid close code``): the
#: consumer crashed and the client saw 1011, the opposite of a clear signal.
#: Codes 4000-4999 are the application's to define, so every server sends
#: them as they are; keeping the RFC number in the last digits keeps the
#: meaning readable.
UNSUPPORTED_DATA = 4003

#: Close code for a text frame that is not valid JSON: RFC 6455's 1007
#: ("invalid frame payload data") plus 3000, for the reason given at
#: :data:`UNSUPPORTED_DATA`.
INVALID_PAYLOAD = 4007

#: A close frame's payload is at most 125 bytes, two of them the code; servers
#: refuse or cut longer reasons, so ours are trimmed to fit.
MAX_CLOSE_REASON_BYTES = 123


class UnacceptableFrame(Exception):
    """A frame the consumer cannot handle; the connection is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _fit_close_reason(reason: str) -> str:
    encoded = reason.encode("utf-8")
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return encoded[:MAX_CLOSE_REASON_BYTES].decode("utf-8", errors="ignore")


def accept_message(subprotocol: str | None = None, headers: Any = None) -> Message:
    message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        # As Channels does: the pairs go to the server exactly as given (a
        # list of lists stays one), in a new list so later changes to the
        # caller's object cannot alter a message already sent.  A dict is
        # taken as name -> value rather than as a list of its names.
        items = headers.items() if isinstance(headers, dict) else headers
        message["headers"] = list(items)
    return message


def frame_message(
    text_data: str | None = None, bytes_data: bytes | None = None
) -> Message:
    if text_data is not None:
        return {"type": "websocket.send", "text": text_data}
    if bytes_data is not None:
        return {"type": "websocket.send", "bytes": bytes_data}
    raise ValueError("send() needs text_data or bytes_data")


def close_message(code: int | bool | None = None, reason: str | None = None) -> Message:
    message: dict[str, Any] = {"type": "websocket.close"}
    # send(close=True) passes True through: it means "the default code".
    if code is not None and code is not True:
        message["code"] = code
    if reason:
        message["reason"] = reason
    return message


def frame_arguments(message: Message) -> Message:
    """The keyword ``receive()`` gets for a ``websocket.receive`` message.

    Only one keyword, as Channels passes it: ``text_data`` when the message
    carries text that is not None, ``bytes_data`` otherwise.  Servers may send
    the unused key as None (the ASGI spec allows it), so presence alone does
    not decide.  Passing a single keyword lets ``def receive(self,
    text_data)`` -- the Channels tutorial's signature -- work.
    """
    text = message.get("text")
    if text is not None:
        return {"text_data": text}
    return {"bytes_data": message.get("bytes")}


if TYPE_CHECKING:
    # The mixin always comes before a consumer class in the MRO, and uses its
    # state (scope, channel_name, call_hook, as_asgi); say so to the checker.
    _ConsumerBase = AsyncConsumer
else:
    _ConsumerBase = object


class WebsocketProtocol(session_end.FollowsSession, _ConsumerBase):
    """The WebSocket handlers shared by every WebSocket consumer."""

    groups: list[str] | None = None
    # The hooks each consumer class defines, as plain methods or coroutines.
    connect: Callable[..., Any]
    accept: Callable[..., Any]
    receive: Callable[..., Any]
    close: Callable[..., Any]
    disconnect: Callable[..., Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Like Channels' WebSocket consumers: arguments are accepted and
        # ignored (subclasses that take some consume them first), and the
        # __init__ chain ends here, so a mixin after this class in the MRO
        # is not initialised here either.  A copy, so one connection
        # changing its groups cannot change another's.
        self.groups = list(self.groups or [])

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ASGIApp:
        if initkwargs and cls.__init__ is WebsocketProtocol.__init__:
            # No subclass defines __init__, so these keywords are certainly
            # thrown away.  Channels drops them silently; warn instead of
            # refusing, so code that runs under Channels still runs.
            warnings.warn(
                f"{cls.__qualname__}.as_asgi() got "
                f"{', '.join(map(repr, initkwargs))}, which "
                f"{cls.__qualname__}() ignores: as_asgi() passes keywords to "
                f"the constructor, and this consumer defines no __init__ "
                f"taking them",
                RuntimeWarning,
                stacklevel=2,
            )
        return super().as_asgi(**initkwargs)

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

    async def websocket_connect(self, message: Message) -> None:
        await self._for_each_group("group_add")
        # The session's and user's groups, so that a logout elsewhere reaches
        # this connection (see channels_app.session_end).
        await session_end.watch(self)
        try:
            await self.call_hook(self.connect)
        except AcceptConnection:
            await self.call_hook(self.accept)
        except DenyConnection:
            await self.call_hook(self.close)

    async def websocket_receive(self, message: Message) -> None:
        try:
            await self.call_hook(self.receive, **frame_arguments(message))
        except UnacceptableFrame as exc:
            # One line, no traceback: the client sent something unusable,
            # which is the client's problem, not a bug on the server.
            logger.warning(
                "%s closed a WebSocket on %s with code %s: %s",
                type(self).__qualname__,
                self.scope.get("path", "?"),
                exc.code,
                exc.reason,
            )
            await self.call_hook(
                self.close, code=exc.code, reason=_fit_close_reason(exc.reason)
            )

    async def websocket_disconnect(self, message: Message) -> None:
        try:
            await session_end.unwatch(self)
            await self._for_each_group("group_discard")
        finally:
            await self.call_hook(self.disconnect, message.get("code", 1000))
        raise StopConsumer()


class JsonFrames:
    """What the JSON consumers share: which frames can hold JSON, and why not."""

    def json_text(self, text_data: str | None) -> str:
        """The frame's text, or :class:`UnacceptableFrame` for a binary frame."""
        if text_data is None:
            raise UnacceptableFrame(
                UNSUPPORTED_DATA, "expected a text frame holding JSON, got binary"
            )
        return text_data

    @staticmethod
    def malformed(exc: ValueError | RecursionError) -> UnacceptableFrame:
        if isinstance(exc, RecursionError):
            # json raises it, not ValueError, for arrays nested thousands deep.
            return UnacceptableFrame(INVALID_PAYLOAD, "malformed JSON: nested too deep")
        return UnacceptableFrame(INVALID_PAYLOAD, f"malformed JSON: {exc}")


class WebsocketConsumer(WebsocketProtocol, SyncConsumer):
    """WebSocket consumer with synchronous hooks (run in a thread; ORM allowed)."""

    # Plain methods, as in Channels, so a sync override can call them through
    # super(); the work is still WebsocketProtocol's coroutines.
    # (So their type differs from the coroutines': as in Channels.)
    websocket_connect = blocking_form(WebsocketProtocol.websocket_connect)  # type: ignore[assignment]
    websocket_receive = blocking_form(WebsocketProtocol.websocket_receive)  # type: ignore[assignment]
    websocket_disconnect = blocking_form(WebsocketProtocol.websocket_disconnect)  # type: ignore[assignment]

    def connect(self) -> None:
        self.accept()

    def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        self.base_send(accept_message(subprotocol, headers))

    def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        pass

    # Channels' signature: WebSocket frames, not an ASGI message.
    def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        self.base_send(frame_message(text_data, bytes_data))
        if close:
            self.close(close)

    def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        self.base_send(close_message(code, reason))

    def disconnect(self, code: int) -> None:
        pass

    def session_ended(self, reason: str) -> None:
        """The session this connection was opened with ended: ``reason`` is
        ``"logout"``, ``"deleted"``, ``"password_changed"`` or ``"expired"``.

        ``scope["user"]`` is already anonymous.  The default closes with
        :data:`SESSION_ENDED`; override to react otherwise.
        """
        self.close(code=SESSION_ENDED, reason=f"session ended: {reason}")


class AsyncWebsocketConsumer(WebsocketProtocol, AsyncConsumer):
    """WebSocket consumer with coroutine hooks, run on the event loop."""

    async def connect(self) -> None:
        await self.accept()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await self.base_send(accept_message(subprotocol, headers))

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        pass

    # Channels' signature: WebSocket frames, not an ASGI message.
    async def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        await self.base_send(frame_message(text_data, bytes_data))
        if close:
            await self.close(close)

    async def close(
        self, code: int | bool | None = None, reason: str | None = None
    ) -> None:
        await self.base_send(close_message(code, reason))

    async def disconnect(self, code: int) -> None:
        pass

    async def session_ended(self, reason: str) -> None:
        """The session this connection was opened with ended: ``reason`` is
        ``"logout"``, ``"deleted"``, ``"password_changed"`` or ``"expired"``.

        ``scope["user"]`` is already anonymous.  The default closes with
        :data:`SESSION_ENDED`; override to react otherwise.
        """
        await self.close(code=SESSION_ENDED, reason=f"session ended: {reason}")


class JsonWebsocketConsumer(JsonFrames, WebsocketConsumer):
    """Sync WebSocket consumer speaking JSON: implement ``receive_json``."""

    def receive(
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        **kwargs: Any,
    ) -> None:
        text = self.json_text(text_data)
        try:
            content = self.decode_json(text)
        except (ValueError, RecursionError) as exc:
            raise self.malformed(exc) from None
        self.receive_json(content, **kwargs)

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        pass

    def send_json(self, content: Any, close: bool | int = False) -> None:
        # The class's own send, as in Channels: a subclass that overrides
        # send() for its raw frames does not see the JSON ones go through it.
        super().send(text_data=self.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


async def _resolved(value: Any) -> Any:
    # Overrides written for Channels are coroutines; plain functions (written
    # for the sync consumer and reused) work too.
    return await value if inspect.isawaitable(value) else value


class AsyncJsonWebsocketConsumer(JsonFrames, AsyncWebsocketConsumer):
    """Async WebSocket consumer speaking JSON: implement ``receive_json``.

    As in Channels, ``decode_json`` and ``encode_json`` are coroutines here,
    so an override may await (a decoder that looks things up, say).
    """

    async def receive(
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        **kwargs: Any,
    ) -> None:
        text = self.json_text(text_data)
        try:
            content = await _resolved(self.decode_json(text))
        except (ValueError, RecursionError) as exc:
            raise self.malformed(exc) from None
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        pass

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        text = await _resolved(self.encode_json(content))
        await super().send(text_data=text, close=close)  # see JsonWebsocketConsumer

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content)
