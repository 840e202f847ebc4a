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
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import ParseResult, urlparse

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.http import is_same_domain

from ..generic.websocket import AsyncWebsocketConsumer
from ..types import Receive, Scope, Send

__all__ = [
    "AllowedHostsOriginValidator",
    "CsrfOriginValidator",
    "OriginValidator",
    "WebsocketDenier",
]

logger = logging.getLogger("channels_app.security.websocket")

DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
#: What Django's host validation allows when DEBUG is on and ALLOWED_HOSTS is empty.
DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]

#: Stands for an Origin header that cannot be read as one origin (several
#: headers, or bytes that are not ASCII): like ``Origin: null``, only ``"*"``
#: admits it, and hooks written for Channels see a value without a hostname.
_OPAQUE_ORIGIN = urlparse("null")


def _is_origin(parts: ParseResult) -> bool:
    """Whether ``parts`` is ``scheme://host[:port]`` and nothing more.

    A browser never sends anything else; a value with a path, credentials
    or an impossible port is forged or broken, so it matches no pattern.
    """
    if not parts.scheme or not parts.hostname or parts.username is not None:
        return False
    if parts.path not in ("", "/") or parts.params or parts.query or parts.fragment:
        return False
    try:
        parts.port  # noqa: B018 - raises for ports out of range or not numbers
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def _parse_pattern(pattern: str) -> ParseResult:
    """``pattern`` split like an origin; a pattern may leave out the scheme.

    Raises ``ValueError`` for anything that could never match an origin, so
    a typo in ``allowed_origins`` fails when the validator is built instead
    of silently refusing every handshake.
    """
    has_scheme = "://" in pattern
    parts = urlparse(pattern.lower() if has_scheme else f"//{pattern}")
    if has_scheme and not parts.scheme:
        raise ValueError("no scheme before '://'")
    if not parts.hostname:
        raise ValueError("no host")
    if parts.path not in ("", "/") or parts.params or parts.query or parts.fragment:
        raise ValueError("a pattern is scheme://host[:port], without a path")
    if parts.username is not None:
        raise ValueError("a pattern cannot carry credentials")
    parts.port  # noqa: B018 - ValueError when out of range or not a number
    return parts


def _check_patterns(allowed: Iterable[str]) -> None:
    for pattern in allowed:
        if pattern == "*":
            continue
        try:
            _parse_pattern(pattern)
        except ValueError as exc:
            raise ValueError(f"Invalid allowed origin {pattern!r}: {exc}") from None


class _Guard:
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


class OriginValidator(_Guard):
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
        _check_patterns(self.allowed_origins)  # Fail early on typos.

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "websocket":
            raise ValueError(
                f"OriginValidator only guards WebSocket connections, not "
                f"{scope['type']!r}; put it on the 'websocket' branch"
            )
        origins = [
            value for name, value in scope.get("headers", []) if name == b"origin"
        ]
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
            return _OPAQUE_ORIGIN
        try:
            return urlparse(origins[0].decode("ascii"))
        except UnicodeDecodeError:
            return _OPAQUE_ORIGIN

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
        if parsed_origin is None or not _is_origin(parsed_origin):
            return False
        try:
            parsed_pattern = _parse_pattern(pattern)
        except ValueError:
            return False  # An ALLOWED_HOSTS entry no origin can have.
        # Both have a host here: _is_origin and _parse_pattern checked.
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


#: The HTTP scheme a WebSocket scheme stands for, as the CSRF rules see it.
_HTTP_SCHEMES = {"ws": "http", "wss": "https"}


def _no_response(request: HttpRequest) -> HttpResponseBase:  # pragma: no cover
    raise AssertionError("CsrfOriginValidator only asks the middleware about origins")


class CsrfOriginValidator(_Guard):
    """Wrap a WebSocket app; admit only origins Django's CSRF check would admit.

    A handshake passes when its ``Origin`` is

    - the handshake's own origin: ``https`` for a ``wss`` connection and
      ``http`` for ``ws`` (``SECURE_PROXY_SSL_HEADER`` applies, as it does
      to requests), then the ``Host`` header — which must be one of
      ``ALLOWED_HOSTS``, with ``USE_X_FORWARDED_HOST`` honoured — port
      included; so ``http://example.com:8080`` does not pass for a socket
      served on ``example.com``, nor ``http://`` pages for a ``wss`` one;
    - or one of ``CSRF_TRUSTED_ORIGINS``, exactly (scheme, host and port),
      or under a wildcard entry such as ``https://*.example.com``.

    These are the rules ``CsrfViewMiddleware`` applies to the ``Origin`` of
    an unsafe request, and the check is that middleware's own code, run on a
    request built from the handshake; settings are read on every handshake.

    A handshake without ``Origin`` does not come from a browser page: it is
    refused unless ``allow_missing_origin`` is true.  Several ``Origin``
    headers, or one that is not ASCII, are refused (browsers send one).
    Refusal closes the handshake before accepting, which servers answer with
    HTTP 403, and is logged with the origin the check expected.

    To change the decision, override ``handshake_request`` (the request the
    rules are applied to) or ``origin_verified`` (the rules).
    """

    #: Admit handshakes that carry no ``Origin`` header (native clients).
    allow_missing_origin: bool = False

    def __init__(self, application: Any, allow_missing_origin: bool | None = None):
        self.inner = application
        if allow_missing_origin is not None:
            self.allow_missing_origin = allow_missing_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "websocket":
            raise ValueError(
                f"CsrfOriginValidator only guards WebSocket connections, not "
                f"{scope['type']!r}; put it on the 'websocket' branch"
            )
        origins = [
            value for name, value in scope.get("headers", []) if name == b"origin"
        ]
        if not origins:
            if self.allow_missing_origin:
                return await self.inner(scope, receive, send)
            return await self._refuse(scope, receive, send, "(none)", None)
        shown = ", ".join(repr(o.decode("latin-1")) for o in origins)
        if len(origins) > 1 or not origins[0].isascii():
            return await self._refuse(scope, receive, send, shown, None)
        request = self.handshake_request(scope)
        if self.origin_verified(request):
            return await self.inner(scope, receive, send)
        return await self._refuse(scope, receive, send, shown, request)

    def handshake_request(self, scope: Scope) -> HttpRequest:
        """The handshake as the GET request Django's CSRF rules are applied to.

        It has the scope's path, headers, client and server address, and the
        HTTP scheme matching the WebSocket one; not the query string, which
        the rules do not read (and which Django would have to decode).
        """
        scheme = scope.get("scheme") or "ws"
        http_scope = {
            "path": "/",
            "headers": [],
            **scope,
            "type": "http",
            "method": "GET",
            "scheme": _HTTP_SCHEMES.get(scheme, scheme),
            "query_string": b"",
        }
        return ASGIRequest(http_scope, io.BytesIO())

    def origin_verified(self, request: HttpRequest) -> bool:
        """Whether ``request``'s ``Origin`` header passes Django's CSRF rules."""
        # A fresh middleware, so current settings apply (it caches them).
        middleware = CsrfViewMiddleware(_no_response)
        verified: bool = middleware._origin_verified(request)  # type: ignore[attr-defined]
        return verified

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        shown: str,
        request: HttpRequest | None,
    ) -> Any:
        expected = ""
        if request is not None:
            try:
                own = f"{request.scheme}://{request.get_host()}"
            except DisallowedHost:
                own = "none: the Host header is not in ALLOWED_HOSTS"
            expected = (
                f" (the handshake's own origin is {own}; "
                f"other origins must be in CSRF_TRUSTED_ORIGINS)"
            )
        logger.warning(
            "Refused a WebSocket handshake to %s from origin %s%s",
            scope.get("path", "?"),
            shown,
            expected,
        )
        return await WebsocketDenier.as_asgi()(scope, receive, send)


class WebsocketDenier(AsyncWebsocketConsumer):
    """Closes every handshake without accepting it (the server answers 403)."""

    async def connect(self) -> None:
        await self.close()
