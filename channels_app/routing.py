"""Routers that pick the ASGI application for a connection."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern, URLResolver

from .lifespan import Lifespan
from .types import Receive, Scope, Send


def get_default_application() -> Any:
    """The application named by ``settings.ASGI_APPLICATION``.

    Any failure is an ``ImproperlyConfigured`` chained from the real error,
    whose message shows that error as Python would (file, line, "Did you
    mean"), since a typo in ``asgi.py`` or a module it imports is the usual
    cause and the real error is what the user has to fix.
    """
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        raise ImproperlyConfigured(
            "ASGI_APPLICATION is not set. Point it at your root application, "
            "e.g. ASGI_APPLICATION = 'myproject.asgi.application'."
        )
    return load_application(path)


def load_application(path: str, setting: str = "ASGI_APPLICATION") -> Any:
    """Import the module part of the dotted ``path`` and return its attribute.

    Django's ``import_string`` is not used on purpose: it reports *any*
    AttributeError raised while the module is imported as the module not
    defining the attribute, so ``consumers.ChatConsumr.as_asgi()`` in a
    routing module came out as 'Module "mysite.asgi" does not define a
    "application" attribute'.  Importing first and looking the attribute up
    second keeps the two failures apart.
    """
    module_path, _, name = str(path).rpartition(".")
    if not module_path or not name:
        raise ImproperlyConfigured(
            f"{setting} {path!r} is not a dotted path; it names the root "
            f"application as 'package.module.attribute', e.g. "
            f"'myproject.asgi.application'."
        )
    try:
        module = importlib.import_module(module_path)
    except Exception as exc:
        raise ImproperlyConfigured(
            f"{setting} {path!r} cannot be imported: importing {module_path!r} "
            f"failed:\n{describe_error(exc)}"
        ) from exc
    try:
        return getattr(module, name)
    except AttributeError as exc:
        where = getattr(module, "__file__", None)
        raise ImproperlyConfigured(
            f"{setting} {path!r} cannot be imported: {describe_error(exc)}"
            + (f"\n(the module is {where})" if where else "")
        ) from exc


def describe_error(exc: BaseException) -> str:
    """``exc`` as Python's traceback would end, without the import machinery.

    The frames of ``importlib`` and of this module are left out, so what
    remains starts at the user's own module (``asgi.py``, then whatever it
    imported) and ends at the line that raised.
    """
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not _is_import_machinery(frame.filename)
    ]
    lines = traceback.StackSummary.from_list(frames).format() if frames else []
    return "".join(lines) + _exception_only(exc)


_IMPORTLIB_DIR = os.path.dirname(importlib.__file__)


def _is_import_machinery(filename: str) -> bool:
    return (
        filename.startswith("<frozen ")
        or os.path.dirname(filename) == _IMPORTLIB_DIR
        or filename == __file__
    )


def _exception_only(exc: BaseException) -> str:
    """The last line(s) of a traceback, with the interpreter's "Did you mean"."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
    if isinstance(exc, (AttributeError, NameError)) and "Did you mean" not in text:
        # Before 3.12 the suggestion is computed only by the interpreter's own
        # exception display (in C), not by the traceback module.
        text += _interpreter_suggestion(exc)
    return text


def _interpreter_suggestion(exc: BaseException) -> str:
    """The " Did you mean: ...?" the interpreter would print after ``exc``.

    Only reached on the way to reporting an error: ``sys.stderr`` is
    swapped for the interpreter's display for that moment.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            sys.__excepthook__(type(exc), exc, exc.__traceback__)
    except Exception:
        return ""
    lines = captured.getvalue().rstrip("\n").splitlines()
    found = re.search(r"\. Did you mean: .*\?$", lines[-1]) if lines else None
    return found.group(0) if found else ""


def warn_unless_installed() -> None:
    """Say so when the root router is built but ``channels_app`` is not an app.

    A Channels project whose imports were rewritten but whose INSTALLED_APPS
    still lists ``"daphne"`` runs without complaint on Daphne's runserver --
    minus our runserver, in-process workers, lifespan hooks, system checks
    and the database layer's tables -- because none of our checks is
    registered.  Building the router is the one place such a project
    certainly reaches.
    """
    from django.apps import apps

    if apps.ready and not apps.is_installed("channels_app"):
        warnings.warn(
            "channels_app is not in INSTALLED_APPS, so its runserver, in-process "
            "workers, lifespan hooks, system checks and database-layer tables "
            "are missing. Add 'channels_app' at the top of INSTALLED_APPS (in "
            "place of 'daphne' when migrating from Channels) and run migrate.",
            RuntimeWarning,
            stacklevel=3,
        )


class ProtocolTypeRouter:
    """Send each connection to the application registered for ``scope["type"]``.

    The ASGI ``lifespan`` scope is answered here unless the mapping routes it
    elsewhere: the ``on_startup`` hooks run when the server starts and the
    ``on_shutdown`` hooks when it stops (see
    :class:`~channels_app.lifespan.Lifespan`).
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
        warn_unless_installed()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
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


#: Set on a Resolver404 raised by an endpoint (a consumer), so that routers
#: above it do not mistake it for a nested router's "no route here".
_FROM_ENDPOINT = "_channels_app_from_endpoint"


class URLRouter:
    """Route on the connection's path with Django ``path()``/``re_path()`` entries.

    A route whose application does path routing of its own (its
    ``_path_routing`` attribute is True: another ``URLRouter``, middleware
    around one, or any third-party application following Channels'
    convention) matches as a prefix and gets the rest of the path as
    ``scope["path_remaining"]``.  If it has no route for the rest it raises
    ``Resolver404`` and this router keeps looking.  Captured arguments from
    every level are merged into ``scope["url_route"]``.

    The outermost router (no ``path_remaining`` in the scope yet) first
    removes the server's ``root_path``; a path outside it matches nothing.
    """

    #: Channels' marker for "route on the rest of the path": routes to such
    #: applications must match only a prefix.
    _path_routing = True

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
        pattern = route.pattern
        if routes_paths(callback):
            # path() compiled the route as an endpoint (the whole path must
            # match); a nested router needs it to match only a prefix.
            if isinstance(pattern, RoutePattern):
                route.pattern = RoutePattern(
                    pattern._route,  # type: ignore[attr-defined]  # not in the stubs
                    name=pattern.name,
                    is_endpoint=False,
                )
            elif isinstance(pattern, RegexPattern):
                route.pattern = RegexPattern(
                    pattern._regex,  # type: ignore[attr-defined]  # not in the stubs
                    name=pattern.name,
                    is_endpoint=False,
                )
        return route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        nested = "path_remaining" in scope
        if nested:
            path = scope["path_remaining"]
        else:
            path = scope.get("path")
            if path is None:
                raise ValueError("No 'path' key in connection scope, cannot route URLs")
            root_path = scope.get("root_path", "")
            if root_path:
                if not path.startswith(root_path):
                    # The server mounts the site at root_path: anything
                    # outside it is not this application's.
                    raise ValueError(f"No route found for path {path!r}.")
                path = path[len(root_path) :]
        # Django's URLconf ignores the leading "/"; so do Channels' routers.
        path = path.lstrip("/")
        outer = scope.get("url_route", {})
        for route in self.routes:
            match = route.pattern.match(path)
            if not match:
                continue
            remaining, args, kwargs = match
            child_scope = {
                **scope,
                "path_remaining": remaining,
                # The patterns matched so far: a bounded label for metrics.
                "route": scope.get("route", "") + str(route.pattern),
                "url_route": {
                    "args": tuple(outer.get("args", ())) + tuple(args),
                    "kwargs": {
                        **outer.get("kwargs", {}),
                        **kwargs,
                        **route.default_args,
                    },
                },
            }
            application = route.callback
            try:
                return await application(child_scope, receive, send)
            except Resolver404 as exc:
                if not routes_paths(application):
                    setattr(exc, _FROM_ENDPOINT, True)
                    raise
                if getattr(exc, _FROM_ENDPOINT, False):
                    raise
                # The nested router had no route for the rest of the path.
                continue
        if nested:
            raise Resolver404(f"No route found for path {path!r}.")
        raise ValueError(f"No route found for path {path!r}.")


def routes_paths(application: Any) -> bool:
    """Whether ``application`` routes on ``scope["path_remaining"]`` itself.

    Channels' convention: an application with ``_path_routing = True``
    (``URLRouter``, and middleware around one).
    """
    return getattr(application, "_path_routing", False) is True


class ChannelNameRouter:
    """Route background work on ``scope["channel"]`` (used by workers)."""

    def __init__(self, application_mapping: dict[str, Any]) -> None:
        self.application_mapping = application_mapping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
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
