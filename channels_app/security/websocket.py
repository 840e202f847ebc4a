"""Refuse WebSocket handshakes from pages of other sites.

Browsers apply no same-origin policy to WebSockets: any page can open a
socket to your site, and the browser sends your cookies with it.  The
``Origin`` header the browser adds is the only way to tell your own pages
from someone else's, so check it before the consumer runs.

Patterns follow Django's ``ALLOWED_HOSTS`` rules, extended with ports and
schemes:

- ``"*"`` allows every origin;
- ``"example.com"`` that host exactly, any scheme and port;
- ``".example.com"`` it and all its subdomains;
- ``"example.com:8000"`` that host on that port only;
- ``"https://example.com"`` scheme, host and port must all match, the port
  defaulting to 80 for http/ws and 443 for https/wss (so this pattern means
  ``https://example.com:443``); ``"https://.example.com"`` works too.

A handshake without an ``Origin`` header cannot come from a browser page.
It is refused unless ``allow_missing_origin`` is true, which by default it
is only when ``"*"`` is among the patterns (Channels' behaviour); pass
``allow_missing_origin=True`` to admit native clients while still
checking browsers.  ``Origin: null`` (sandboxed frames, ``file:`` pages)
and malformed values only pass ``"*"``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import is_same_domain

from ..generic.websocket import AsyncWebsocketConsumer

__all__ = [
    "AllowedHostsOriginValidator",
    "OriginValidator",
    "WebsocketDenier",
]

logger = logging.getLogger("channels_app.security.websocket")

DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
#: What Django's host validation allows when DEBUG is on and ALLOWED_HOSTS is empty.
DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


@dataclass(frozen=True)
class Origin:
    """The parts of an origin (or of a pattern) that matching compares."""

    scheme: str | None
    host: str
    port: int | None

    @classmethod
    def parse(cls, value: str, *, pattern: bool = False) -> Origin:
        """Split ``scheme://host[:port]``; a pattern may leave out the scheme.

        Raises ``ValueError`` for anything without a usable host or port.
        """
        has_scheme = "://" in value
        if not has_scheme and not pattern:
            raise ValueError(f"an origin needs a scheme: {value!r}")
        parts = urlsplit(value if has_scheme else f"//{value}")
        host = parts.hostname
        if not host or parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError(f"not an origin: {value!r}")
        port = parts.port  # ValueError when out of range or not a number
        scheme = parts.scheme.lower() if has_scheme else None
        # A leading dot survives urlsplit, which is what subdomain patterns need.
        return cls(scheme, host.lower(), port)

    @property
    def effective_port(self) -> int | None:
        return self.port if self.port is not None else DEFAULT_PORTS.get(self.scheme)

    def admits(self, origin: Origin) -> bool:
        """Whether this pattern matches ``origin``."""
        if not is_same_domain(origin.host, self.host):
            return False
        if self.scheme is not None:
            return (
                self.scheme == origin.scheme
                and self.effective_port == origin.effective_port
            )
        return self.port is None or self.port == origin.effective_port


class OriginValidator:
    """Wrap a WebSocket app; refuse the handshake unless the Origin is allowed.

    Refusal closes the handshake before accepting, which servers answer with
    HTTP 403; the consumer never runs.
    """

    def __init__(
        self,
        application: Any,
        allowed_origins: Iterable[str],
        allow_missing_origin: bool | None = None,
    ) -> None:
        if isinstance(allowed_origins, str):
            raise TypeError(
                f"allowed_origins must be a list of patterns, not the string "
                f"{allowed_origins!r}; write [{allowed_origins!r}]"
            )
        self.inner = application
        self.allowed_origins = list(allowed_origins)
        self.allow_missing_origin = allow_missing_origin
        _compile_patterns(tuple(self.allowed_origins))  # Fail early on typos.

    @property
    def application(self) -> Any:
        """The wrapped application (Channels' name for ``inner``)."""
        return self.inner

    async def __call__(self, scope: dict, receive, send) -> Any:
        if scope["type"] != "websocket":
            raise ValueError(
                f"OriginValidator only guards WebSocket connections, not "
                f"{scope['type']!r}; put it on the 'websocket' branch"
            )
        origins = [
            value for name, value in scope.get("headers", []) if name == b"origin"
        ]
        if self.valid_origin(origins):
            return await self.inner(scope, receive, send)
        logger.warning(
            "Refused a WebSocket handshake to %s from origin %s",
            scope.get("path", "?"),
            ", ".join(repr(o.decode("latin-1")) for o in origins) or "(none)",
        )
        return await WebsocketDenier.as_asgi()(scope, receive, send)

    def valid_origin(self, origins: list[bytes]) -> bool:
        """Whether the ``Origin`` header values (normally one) are allowed."""
        allowed = self.allowed_origins
        if not origins:
            if self.allow_missing_origin is None:
                return "*" in allowed
            return self.allow_missing_origin
        if "*" in allowed:
            return True
        if len(origins) > 1:
            return False  # Ambiguous: browsers send exactly one.
        try:
            origin = Origin.parse(origins[0].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return False  # Includes "null" and garbage.
        return any(p.admits(origin) for p in _compile_patterns(tuple(allowed)))


@functools.lru_cache(maxsize=32)
def _compile_patterns(allowed: tuple[str, ...]) -> tuple[Origin, ...]:
    patterns = []
    for value in allowed:
        if value == "*":
            continue
        try:
            patterns.append(Origin.parse(value, pattern=True))
        except ValueError as exc:
            raise ValueError(f"Invalid allowed origin {value!r}: {exc}")
    return tuple(patterns)


class AllowedHostsOriginValidator(OriginValidator):
    """``OriginValidator`` allowing the hosts of ``settings.ALLOWED_HOSTS``.

    The setting is read on every handshake, so it always matches what
    Django's own host validation uses; with ``DEBUG`` on and an empty list,
    localhost names are allowed, as Django allows them.
    """

    def __init__(self, application: Any, allow_missing_origin: bool | None = None):
        self.inner = application
        self.allow_missing_origin = allow_missing_origin

    @property
    def allowed_origins(self) -> list[str]:
        hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not hosts:
            return list(DEBUG_HOSTS)
        return hosts


class WebsocketDenier(AsyncWebsocketConsumer):
    """Closes every handshake without accepting it (the server answers 403)."""

    async def connect(self) -> None:
        await self.close()
