"""Deployment check: is the WebSocket side of ``ASGI_APPLICATION`` origin-checked?"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from ..routing import ProtocolTypeRouter, URLRouter
from .websocket import OriginValidator

W001 = "channels_app.security.W001"


@checks.register(checks.Tags.security, deploy=True)
def check_websocket_origin_validation(app_configs=None, **kwargs: Any) -> list:
    """Warn when a WebSocket route can be reached without an origin check.

    Runs with ``manage.py check --deploy``.  It follows middleware
    (``.inner``) and ``URLRouter`` routes from the ``"websocket"`` branch of
    a ``ProtocolTypeRouter``; every consumer must sit under an
    ``OriginValidator`` somewhere on the way.  An application it cannot
    import or see into is not reported.
    """
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return []
    try:
        application = import_string(path)
    except Exception:
        return []  # Not this check's business; serving will say why.
    websocket = _websocket_branch(application)
    if websocket is None:
        return []
    unguarded = list(_unguarded_routes(websocket, ""))
    if not unguarded:
        return []
    shown = ", ".join(route or "(the whole branch)" for route in unguarded[:5])
    more = f" and {len(unguarded) - 5} more" if len(unguarded) > 5 else ""
    return [
        checks.Warning(
            f"WebSocket routes of ASGI_APPLICATION are not wrapped in an origin "
            f"validator: {shown}{more}. Any web site can open them with your "
            f"users' cookies (cross-site WebSocket hijacking).",
            hint=(
                "Wrap the 'websocket' application in AllowedHostsOriginValidator "
                "(or OriginValidator) from channels_app.security.websocket."
            ),
            id=W001,
        )
    ]


def _websocket_branch(application: Any) -> Any:
    while application is not None:
        if isinstance(application, OriginValidator):
            return None  # Everything below is guarded.
        if isinstance(application, ProtocolTypeRouter):
            return application.application_mapping.get("websocket")
        application = getattr(application, "inner", None)
    return None


def _unguarded_routes(application: Any, prefix: str) -> Iterator[str]:
    """Route prefixes under ``application`` that no OriginValidator covers."""
    while not isinstance(application, OriginValidator | URLRouter):
        inner = getattr(application, "inner", None)
        if inner is None:
            yield prefix
            return
        application = inner
    if isinstance(application, URLRouter):
        for route in application.routes:
            yield from _unguarded_routes(route.callback, prefix + str(route.pattern))
