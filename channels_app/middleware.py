"""Base class for ASGI middleware that adds things to the scope."""

from __future__ import annotations

from typing import Any

from .types import Receive, Scope, Send


class BaseMiddleware:
    """Wrap ``inner`` and hand it a copy of the scope.

    Copying means what a middleware adds is seen by the application below it
    and by nothing else; the instance is shared by every connection, so keep
    per-connection state in the scope, never on ``self``.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def _path_routing(self) -> bool:
        """Whether the wrapped application routes on the rest of the path.

        A ``URLRouter`` treats an application with ``_path_routing`` True as a
        nested router (its route matches only a prefix), so middleware around
        a nested router must say what the router below it says, or
        ``path("chat/", AuthMiddlewareStack(URLRouter(...)))`` would only
        match the exact path ``chat/``.
        """
        if "_path_routing_set" in self.__dict__:
            routing: bool = self.__dict__["_path_routing_set"]
            return routing
        inner = getattr(self, "inner", None)
        return getattr(inner, "_path_routing", False) is True

    @_path_routing.setter
    def _path_routing(self, value: bool) -> None:
        # A subclass may set it on the instance, as Channels' docs allow.
        self.__dict__["_path_routing_set"] = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        scope = dict(scope)
        return await self.inner(scope, receive, send)
