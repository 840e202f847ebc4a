"""What every WebSocket origin validator shares: the application it wraps and
the refusal it answers with."""

from __future__ import annotations

from typing import Any

from ..generic.websocket import AsyncWebsocketConsumer
from ..types import Scope


class Guard:
    """What every validator shares about the application it wraps."""

    inner: Any

    @property
    def application(self) -> Any:
        """The wrapped application (Channels' name for ``inner``)."""
        return self.inner

    @application.setter
    def application(self, value: Any) -> None:
        # Subclasses written for Channels assign it in their own __init__.
        self.inner = value

    @property
    def _path_routing(self) -> bool:
        """Whether the wrapped app routes on the path, so a ``URLRouter``
        that routes to this validator treats it as a nested router (its
        route matches a path prefix and the rest is left for the inner one).
        """
        return getattr(self.inner, "_path_routing", False) is True

    def origin_headers(self, scope: Scope) -> list[bytes]:
        """The handshake's ``Origin`` header values; a clear error on a scope
        that is not a WebSocket one (the validator sits on the wrong branch)."""
        if scope["type"] != "websocket":
            raise ValueError(
                f"{type(self).__name__} only guards WebSocket connections, not "
                f"{scope['type']!r}; put it on the 'websocket' branch"
            )
        return [value for name, value in scope.get("headers", []) if name == b"origin"]


class WebsocketDenier(AsyncWebsocketConsumer):
    """Closes every handshake without accepting it (the server answers 403)."""

    async def connect(self) -> None:
        await self.close()
