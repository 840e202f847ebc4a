"""Consumers: one instance per connection, a handler per message type."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from asgiref.sync import async_to_sync

from . import DEFAULT_CHANNEL_LAYER
from .db import aclose_old_connections, connection_activity, database_sync_to_async
from .exceptions import StopConsumer
from .layers import get_channel_layer
from .utils import await_many_dispatch


def get_handler_name(message: dict) -> str:
    """The method name for ``message``: its ``type`` with dots as underscores."""
    if not isinstance(message, dict) or "type" not in message:
        raise ValueError(f"Message has no 'type' key: {message!r}")
    message_type = message["type"]
    if not isinstance(message_type, str):
        raise ValueError(f"Message 'type' must be a str, not {message_type!r}")
    if message_type.startswith("_"):
        raise ValueError(
            f"Message type {message_type!r} starts with an underscore; such names "
            f"are private and cannot be dispatched to"
        )
    return message_type.replace(".", "_")


class AsyncConsumer:
    """Base consumer whose handlers are coroutines run on the event loop.

    Messages from the client and from the consumer's channel on the layer are
    dispatched to ``self.<type_with_underscores>(message)`` one at a time.
    """

    channel_layer_alias = DEFAULT_CHANNEL_LAYER

    def __init__(self, **initkwargs: Any) -> None:
        for key, value in initkwargs.items():
            setattr(self, key, value)

    async def __call__(self, scope: dict, receive, send) -> None:
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            sources.append(
                functools.partial(self.channel_layer.receive, self.channel_name)
            )
        try:
            await await_many_dispatch(sources, self.dispatch)
        except StopConsumer:
            pass

    def _handler_for(self, message: dict):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(
                f"No handler for message type {message['type']!r} on "
                f"{type(self).__qualname__}; define a method named "
                f"{get_handler_name(message)!r}"
            )
        return handler

    async def dispatch(self, message: dict) -> None:
        """Run the handler for ``message``, tidying DB connections only if needed."""
        handler = self._handler_for(message)
        if connection_activity.needs_tidying():
            await aclose_old_connections()
        await handler(message)

    async def send(self, message: dict) -> None:
        """Send an ASGI message to the client."""
        await self.base_send(message)

    @classmethod
    def as_asgi(cls, **initkwargs: Any):
        """An ASGI application that runs a fresh instance for every connection."""
        for key in initkwargs:
            if not hasattr(cls, key):
                raise TypeError(
                    f"{cls.__name__}.as_asgi() got {key!r}, which is not an "
                    f"attribute of the class; only existing attributes can be set"
                )

        async def app(scope, receive, send):
            return await cls(**initkwargs)(scope, receive, send)

        app.consumer_class = cls
        app.consumer_initkwargs = initkwargs
        functools.update_wrapper(app, cls, updated=())
        return app


class SyncConsumer(AsyncConsumer):
    """Consumer whose handlers are plain functions run in a worker thread.

    Handlers run through :func:`~channels_app.db.database_sync_to_async`, so
    they may use the ORM freely; ``send`` is synchronous.  Coroutine handlers
    (such as the generic consumers' protocol handlers) run on the loop.
    """

    async def __call__(self, scope: dict, receive, send) -> None:
        self._blocking_send = async_to_sync(send)
        await super().__call__(scope, receive, send)

    async def dispatch(self, message: dict) -> None:
        handler = self._handler_for(message)
        if inspect.iscoroutinefunction(handler):
            await handler(message)
        else:
            await database_sync_to_async(handler)(message)

    def send(self, message: dict) -> None:
        """Send an ASGI message to the client (call from the handler's thread)."""
        self._blocking_send(message)
