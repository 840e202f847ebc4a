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

Those two compare hosts only (unless a pattern names a port or scheme), so
another service on the same host — a different port, or plain ``http``
next to ``https`` — passes them.  ``CsrfOriginValidator`` applies Django's
own CSRF origin rules instead: the page must have the handshake's own
origin (scheme, host and port) or be listed in ``CSRF_TRUSTED_ORIGINS``.

All three are importable from here; ``CsrfOriginValidator`` is written in
:mod:`channels_app.security.csrf_origin`, the pattern parsing in
:mod:`channels_app.security.origin_patterns`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import ParseResult, urlparse

from django.conf import settings
from django.utils.http import is_same_domain

# Channels' module has this name too (it imports it for WebsocketDenier).
from ..generic.websocket import AsyncWebsocketConsumer  # noqa: F401
from ..types import Receive, Scope, Send
from .csrf_origin import CsrfOriginValidator
from .guard import Guard, WebsocketDenier
from .origin_patterns import (
    DEFAULT_PORTS,
    OPAQUE_ORIGIN,
    check_patterns,
    is_origin,
    parse_pattern,
)

__all__ = [
    "AllowedHostsOriginValidator",
    "CsrfOriginValidator",
    "OriginValidator",
    "WebsocketDenier",
]

logger = logging.getLogger("channels_app.security.websocket")

#: What Django's host validation allows when DEBUG is on and ALLOWED_HOSTS is empty.
DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


class OriginValidator(Guard):
    """Wrap a WebSocket app; refuse the handshake unless the Origin is allowed.

    Refusal closes the handshake before accepting, which servers answer with
    HTTP 403; the consumer never runs.

    The decision goes through the methods Channels' validator has, so a
    subclass written for Channels keeps working: ``valid_origin`` (handles a
    missing header) calls ``validate_origin`` (tries each pattern), which
    calls ``match_allowed_origin`` for one pattern, which uses
    ``get_origin_port`` for default ports.  Origins arrive as
    ``urllib.parse.ParseResult`` objects, or ``None`` when the handshake has
    no ``Origin`` header.  Override any of them to change the decision.
    """

    #: ``None``: admit a handshake without Origin only if ``"*"`` is allowed.
    allow_missing_origin: bool | None = None

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
        check_patterns(self.allowed_origins)  # Fail early on typos.

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        origins = self.origin_headers(scope)
        if self.valid_origin(self.parse_origin(origins)):
            return await self.inner(scope, receive, send)
        logger.warning(
            "Refused a WebSocket handshake to %s from origin %s",
            scope.get("path", "?"),
            ", ".join(repr(o.decode("latin-1")) for o in origins) or "(none)",
        )
        return await WebsocketDenier.as_asgi()(scope, receive, send)

    @staticmethod
    def parse_origin(origins: list[bytes]) -> ParseResult | None:
        """The ``Origin`` header values (normally one) as the hooks see them.

        ``None`` when there is none.  Several values are ambiguous (browsers
        send exactly one) and so are non-ASCII bytes: both become an opaque
        origin, which only ``"*"`` admits.
        """
        if not origins:
            return None
        if len(origins) > 1:
            return OPAQUE_ORIGIN
        try:
            return urlparse(origins[0].decode("ascii"))
        except UnicodeDecodeError:
            return OPAQUE_ORIGIN

    def missing_origin_allowed(self) -> bool:
        """Whether a handshake without an ``Origin`` header may go through."""
        if self.allow_missing_origin is None:
            return "*" in self.allowed_origins
        return bool(self.allow_missing_origin)

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        """Whether the handshake's origin (``None``: no header) is allowed."""
        if parsed_origin is None and not self.missing_origin_allowed():
            return False
        return self.validate_origin(parsed_origin)

    def validate_origin(self, parsed_origin: ParseResult | None) -> bool:
        """Whether ``parsed_origin`` matches one of ``allowed_origins``.

        ``None`` (no header) reaches it only when missing origins are
        allowed, and the answer then is yes; an override may still say no.
        """
        if parsed_origin is None:
            return self.missing_origin_allowed()
        return any(
            pattern == "*" or self.match_allowed_origin(parsed_origin, pattern)
            for pattern in self.allowed_origins
        )

    def match_allowed_origin(
        self, parsed_origin: ParseResult | None, pattern: str
    ) -> bool:
        """Whether ``parsed_origin`` matches the one ``pattern`` (not ``"*"``).

        Hosts compare as Django compares ``ALLOWED_HOSTS`` (a leading dot
        takes in subdomains); a pattern with a port needs that port; one
        with a scheme needs that scheme and port, with default ports as
        ``get_origin_port`` gives them.  An origin that is not exactly
        ``scheme://host[:port]`` matches nothing.
        """
        if parsed_origin is None or not is_origin(parsed_origin):
            return False
        try:
            parsed_pattern = parse_pattern(pattern)
        except ValueError:
            return False  # An ALLOWED_HOSTS entry no origin can have.
        # Both have a host here: is_origin and parse_pattern checked.
        if not is_same_domain(
            parsed_origin.hostname,  # type: ignore[arg-type]
            parsed_pattern.hostname,  # type: ignore[arg-type]
        ):
            return False
        origin_port = self.get_origin_port(parsed_origin)
        if parsed_pattern.scheme:
            return (
                parsed_pattern.scheme == parsed_origin.scheme
                and self.get_origin_port(parsed_pattern) == origin_port
            )
        return parsed_pattern.port is None or parsed_pattern.port == origin_port

    def get_origin_port(self, origin: ParseResult) -> int | None:
        """``origin``'s port, else its scheme's default (80 or 443), else None."""
        if origin.port is not None:
            return origin.port
        return DEFAULT_PORTS.get(origin.scheme)


class AllowedHostsOriginValidator(OriginValidator):
    """``OriginValidator`` allowing the hosts of ``settings.ALLOWED_HOSTS``.

    The setting is read on every handshake, so it always matches what
    Django's own host validation uses; with ``DEBUG`` on and an empty list,
    localhost names are allowed, as Django allows them.
    """

    def __init__(self, application: Any, allow_missing_origin: bool | None = None):
        self.inner = application
        self.allow_missing_origin = allow_missing_origin

    @property  # read per handshake, where OriginValidator stores a list
    def allowed_origins(self) -> list[str]:  # type: ignore[override]
        hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not hosts:
            return list(DEBUG_HOSTS)
        return hosts
