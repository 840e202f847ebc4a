"""The ASGI contract and the channel layer API, named once for type checking.

ASGI scopes and messages are plain dicts keyed by str (the specification lets
servers and middleware add keys freely), so they are typed as such rather
than as the per-protocol ``TypedDict`` unions of :mod:`asgiref.typing`, which
would refuse the ``user``, ``session`` and ``url_route`` keys this package
and its users put in a scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "ASGIApp",
    "ChannelLayer",
    "ExtendedChannelLayer",
    "Message",
    "Receive",
    "Scope",
    "Send",
]

#: The connection scope an ASGI server hands an application.
Scope: TypeAlias = dict[str, Any]
#: One event received from or sent to the server, or through a channel layer.
Message: TypeAlias = dict[str, Any]
#: Awaits the next event of the connection.
Receive: TypeAlias = Callable[[], Awaitable[Message]]
#: Sends one event to the server.
Send: TypeAlias = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application: ``await app(scope, receive, send)``.
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


@runtime_checkable
class ChannelLayer(Protocol):
    """What consumers, workers and ``async_to_sync`` senders need of a layer.

    :class:`~channels_app.layers.BaseChannelLayer` subclasses and layers
    written for Django Channels (such as ``channels_redis``) both fit.
    """

    async def send(self, channel: str, message: Message) -> None: ...

    async def receive(self, channel: str) -> Message: ...

    async def new_channel(self, prefix: str = ...) -> str: ...

    async def group_add(self, group: str, channel: str) -> None: ...

    async def group_discard(self, group: str, channel: str) -> None: ...

    async def group_send(self, group: str, message: Message) -> Any: ...


@runtime_checkable
class ExtendedChannelLayer(ChannelLayer, Protocol):
    """A layer that also offers the optional ``flush`` and ``close``."""

    async def flush(self) -> None: ...

    async def close(self) -> None: ...
