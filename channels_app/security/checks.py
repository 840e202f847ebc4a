"""Deployment checks: is the WebSocket side of ``ASGI_APPLICATION`` origin-checked,
and does each origin check really refuse other sites?"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from ..routing import ProtocolTypeRouter, URLRouter
from ..unwrap import find_wrapped, protocol_branch, wrapping_chain
from .websocket import CsrfOriginValidator, OriginValidator

W001 = "channels_app.security.W001"
#: An ``OriginValidator(..., ["*"])`` in front of consumers that read cookies.
W002 = "channels_app.security.W002"
#: ``AllowedHostsOriginValidator`` with ``ALLOWED_HOSTS = ["*"]``.
W003 = "channels_app.security.W003"

#: What counts as an origin check on the way to a consumer.
ORIGIN_CHECKS = (OriginValidator, CsrfOriginValidator)


@checks.register(checks.Tags.security, deploy=True)
def check_websocket_origin_validation(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[Any]:
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
                "Wrap the 'websocket' application in CsrfOriginValidator (Django's "
                "CSRF origin rules), AllowedHostsOriginValidator or OriginValidator "
                "from channels_app.security.websocket."
            ),
            id=W001,
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_origin_validators_refuse_other_sites(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[Any]:
    """Warn about origin validators that let every site in.

    ``OriginValidator(app, ["*"])`` is fine for a public socket that reads
    no cookies, but in front of the session or auth middleware it lets any
    page act as the signed-in user.  ``AllowedHostsOriginValidator`` with
    ``ALLOWED_HOSTS = ["*"]`` allows every origin for the same reason.
    """
    websocket = _websocket_root(getattr(settings, "ASGI_APPLICATION", None))
    if websocket is None:
        return []
    from .websocket import AllowedHostsOriginValidator

    warnings = []
    wide_open = [
        validator
        for validator in _applications_under(websocket)
        if isinstance(validator, OriginValidator)
        and not isinstance(validator, AllowedHostsOriginValidator)
        and "*" in validator.allowed_origins
        and any(map(_reads_cookies, _applications_under(validator.inner)))
    ]
    if wide_open:
        warnings.append(
            checks.Warning(
                f"{len(wide_open)} OriginValidator(s) allow every origin ('*') in "
                f"front of the session or auth middleware: any web site can open "
                f"those sockets as your signed-in users.",
                hint="List your site's origins instead of '*' (or use "
                "AllowedHostsOriginValidator); keep '*' only for sockets that "
                "read no cookies.",
                id=W002,
            )
        )
    allowed_hosts = list(getattr(settings, "ALLOWED_HOSTS", []))
    if "*" in allowed_hosts and any(
        isinstance(application, AllowedHostsOriginValidator)
        for application in _applications_under(websocket)
    ):
        warnings.append(
            checks.Warning(
                "AllowedHostsOriginValidator allows every origin because "
                "ALLOWED_HOSTS contains '*'.",
                hint="Use CsrfOriginValidator, which admits only the handshake's "
                "own origin and CSRF_TRUSTED_ORIGINS whatever ALLOWED_HOSTS says; "
                "or list your domains in ALLOWED_HOSTS, or give the WebSocket "
                "routes an OriginValidator with the origins of your own pages.",
                id=W003,
            )
        )
    return warnings


def _websocket_root(path: str | None) -> Any:
    """The ``"websocket"`` branch of the root application, if it can be found."""
    if not path:
        return None
    try:
        application = import_string(path)
    except Exception:
        return None  # Not this check's business; serving will say why.
    return protocol_branch(application, "websocket")


def _applications_under(application: Any) -> Iterator[Any]:
    """``application`` and everything it wraps or routes to."""
    for wrapped in wrapping_chain(application):
        yield wrapped
        if isinstance(wrapped, URLRouter):
            for route in wrapped.routes:
                yield from _applications_under(route.callback)
            return


def _reads_cookies(application: Any) -> bool:
    from ..auth import AuthMiddleware
    from ..sessions import CookieMiddleware, SessionMiddleware

    return isinstance(
        application, AuthMiddleware | SessionMiddleware | CookieMiddleware
    )


def _websocket_branch(application: Any) -> Any:
    """The ``"websocket"`` branch, or None when an origin check guards it all."""
    found = find_wrapped(application, (*ORIGIN_CHECKS, ProtocolTypeRouter))
    if not isinstance(found, ProtocolTypeRouter):
        return None  # No router, or everything below is guarded.
    return found.application_mapping.get("websocket")


def _unguarded_routes(application: Any, prefix: str) -> Iterator[str]:
    """Route prefixes under ``application`` that no origin check covers."""
    found = find_wrapped(application, (*ORIGIN_CHECKS, URLRouter))
    if found is None:
        yield prefix
    elif isinstance(found, URLRouter):
        for route in found.routes:
            yield from _unguarded_routes(route.callback, prefix + str(route.pattern))
