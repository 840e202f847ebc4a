"""The WebSocket origin check by Django's own CSRF origin rules.

Unlike the host patterns of ``OriginValidator``, these rules tell apart
another port or scheme on the same host; they are run by Django's
``CsrfViewMiddleware`` itself, on a request built from the handshake.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware

from ..types import Receive, Scope, Send
from .guard import Guard, WebsocketDenier

# The logger of channels_app.security.websocket, where the validator is
# imported from: one logger for every refused handshake.
logger = logging.getLogger("channels_app.security.websocket")


#: The HTTP scheme a WebSocket scheme stands for, as the CSRF rules see it.
_HTTP_SCHEMES = {"ws": "http", "wss": "https"}


def _no_response(request: HttpRequest) -> HttpResponseBase:  # pragma: no cover
    raise AssertionError("CsrfOriginValidator only asks the middleware about origins")


class CsrfOriginValidator(Guard):
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
        origins = self.origin_headers(scope)
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
