"""Base class for ASGI middleware that adds things to the scope."""

from __future__ import annotations

from typing import Any


class BaseMiddleware:
    """Wrap ``inner`` and hand it a copy of the scope.

    Copying means what a middleware adds is seen by the application below it
    and by nothing else; the instance is shared by every connection, so keep
    per-connection state in the scope, never on ``self``.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive, send) -> Any:
        scope = dict(scope)
        return await self.inner(scope, receive, send)
