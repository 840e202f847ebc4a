"""Routers that pick the ASGI application for a connection."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls.resolvers import RoutePattern, URLResolver
from django.utils.module_loading import import_string


def get_default_application() -> Any:
    """The application named by ``settings.ASGI_APPLICATION``."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        raise ImproperlyConfigured(
            "ASGI_APPLICATION is not set. Point it at your root application, "
            "e.g. ASGI_APPLICATION = 'myproject.asgi.application'."
        )
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"Cannot import ASGI_APPLICATION {path!r}: {exc}")


class ProtocolTypeRouter:
    """Send each connection to the application registered for ``scope["type"]``.

    The ASGI ``lifespan`` scope is answered here unless the mapping routes it
    elsewhere: the ``on_startup`` hooks run when the server starts and the
    ``on_shutdown`` hooks when it stops (see :class:`Lifespan`).
    """

    def __init__(
        self,
        application_mapping: dict[str, Any],
        *,
        on_startup: Iterable[Callable[[], Any]] = (),
        on_shutdown: Iterable[Callable[[], Any]] = (),
    ) -> None:
        self.application_mapping = application_mapping
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)

    async def __call__(self, scope: dict, receive, send) -> Any:
        if scope["type"] == "lifespan" and "lifespan" not in self.application_mapping:
            lifespan = Lifespan(self.on_startup, self.on_shutdown)
            return await lifespan(scope, receive, send)
        try:
            application = self.application_mapping[scope["type"]]
        except KeyError:
            raise ValueError(
                f"No application configured for scope type {scope['type']!r}; "
                f"ProtocolTypeRouter knows {sorted(self.application_mapping)}"
            )
        return await application(scope, receive, send)


class URLRouter:
    """Route on the connection's path with Django ``path()``/``re_path()`` entries.

    A route whose application is another ``URLRouter`` matches as a prefix and
    hands the rest of the path on; if the inner router has no match, the outer
    one keeps looking.  Captured arguments from every level are merged into
    ``scope["url_route"]``.
    """

    def __init__(self, routes: list[Any]) -> None:
        self.routes = [self._prepare(route) for route in routes]

    @staticmethod
    def _prepare(route: Any) -> Any:
        if isinstance(route, URLResolver):
            raise ImproperlyConfigured(
                f"include() is not supported in URLRouter ({route.pattern}); nest "
                f"another URLRouter instead: path('prefix/', URLRouter([...]))"
            )
        if not hasattr(route, "pattern") or not hasattr(route, "callback"):
            raise ImproperlyConfigured(
                f"URLRouter routes must be made with path() or re_path(), not {route!r}"
            )
        callback = route.callback
        if isinstance(callback, type) and hasattr(callback, "as_asgi"):
            raise ImproperlyConfigured(
                f"Route {route.pattern} points at the class {callback.__name__}; "
                f"use {callback.__name__}.as_asgi()"
            )
        if _leads_to_router(callback) and isinstance(route.pattern, RoutePattern):
            # path() compiled the route as an endpoint; a nested router (even
            # one wrapped in middleware) needs it to match only a prefix.
            route.pattern = RoutePattern(
                route.pattern._route, name=route.pattern.name, is_endpoint=False
            )
        return route

    def resolve(self, path: str, args: tuple, kwargs: dict) -> tuple | None:
        """Find ``(application, remaining_path, args, kwargs)`` for ``path``."""
        for route in self.routes:
            match = route.pattern.match(path)
            if not match:
                continue
            remaining, route_args, route_kwargs = match
            found_args = args + tuple(route_args)
            found_kwargs = {**kwargs, **route_kwargs, **route.default_args}
            if isinstance(route.callback, URLRouter):
                inner = route.callback.resolve(remaining, found_args, found_kwargs)
                if inner is not None:
                    return inner
                continue
            return route.callback, remaining, found_args, found_kwargs
        return None

    async def __call__(self, scope: dict, receive, send) -> Any:
        path = scope.get("path_remaining")
        if path is None:
            path = scope["path"]
            root_path = scope.get("root_path", "")
            if root_path and path.startswith(root_path):
                path = path[len(root_path) :]
            path = path.removeprefix("/")
        outer = scope.get("url_route", {})
        found = self.resolve(
            path, tuple(outer.get("args", ())), dict(outer.get("kwargs", {}))
        )
        if found is None:
            raise ValueError(f"No route found for path {scope['path']!r}.")
        application, remaining, args, kwargs = found
        scope = {
            **scope,
            "path_remaining": remaining,
            "url_route": {"args": args, "kwargs": kwargs},
        }
        return await application(scope, receive, send)


def _leads_to_router(application: Any) -> bool:
    """Whether ``application`` is a URLRouter, possibly wrapped in middleware."""
    while application is not None:
        if isinstance(application, URLRouter):
            return True
        application = getattr(application, "inner", None)
    return False


class ChannelNameRouter:
    """Route background work on ``scope["channel"]`` (used by workers)."""

    def __init__(self, application_mapping: dict[str, Any]) -> None:
        self.application_mapping = application_mapping

    async def __call__(self, scope: dict, receive, send) -> Any:
        if "channel" not in scope:
            raise ValueError(
                "ChannelNameRouter got a scope without a 'channel' key; it belongs "
                "under the 'channel' type of a ProtocolTypeRouter"
            )
        try:
            application = self.application_mapping[scope["channel"]]
        except KeyError:
            raise ValueError(
                f"No application configured for channel {scope['channel']!r}; "
                f"ChannelNameRouter knows {sorted(self.application_mapping)}"
            )
        return await application(scope, receive, send)


logger = logging.getLogger("channels_app.lifespan")


class Lifespan:
    """Answer the ASGI ``lifespan`` scope by running startup and shutdown hooks.

    Hooks take no arguments; coroutine functions are awaited and plain
    functions run in a thread, so they may use the ORM.  Hooks run in the
    order given.  If one raises, the server is told the phase failed (with
    the error as the message) and the remaining hooks of that phase are
    skipped, which makes a server refuse to start rather than serve a
    half-initialised project.
    """

    def __init__(
        self,
        on_startup: Iterable[Callable[[], Any]] = (),
        on_shutdown: Iterable[Callable[[], Any]] = (),
    ) -> None:
        self.hooks = {"startup": list(on_startup), "shutdown": list(on_shutdown)}

    async def __call__(self, scope: dict, receive, send) -> None:
        while True:
            message = await receive()
            phase = message["type"].removeprefix("lifespan.")
            if phase not in self.hooks:
                raise ValueError(f"Unexpected lifespan message {message['type']!r}")
            try:
                for hook in self.hooks[phase]:
                    await self._run(hook)
            except Exception as exc:
                logger.exception("lifespan %s hook failed", phase)
                await send({"type": f"lifespan.{phase}.failed", "message": f"{exc!r}"})
                return
            await send({"type": f"lifespan.{phase}.complete"})
            if phase == "shutdown":
                return

    @staticmethod
    async def _run(hook: Callable[[], Any]) -> None:
        if inspect.iscoroutinefunction(hook):
            await hook()
        else:
            await sync_to_async(hook)()
