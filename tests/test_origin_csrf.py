"""CsrfOriginValidator: Django's CSRF origin rules applied to WebSocket handshakes."""

import logging

import pytest
from django.urls import path

from channels_app.generic.websocket import AsyncWebsocketConsumer
from channels_app.routing import URLRouter
from channels_app.security.websocket import (
    AllowedHostsOriginValidator,
    CsrfOriginValidator,
)
from channels_app.testing import WebsocketCommunicator


class Hello(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.send(text_data="hello")


hello = Hello.as_asgi()


async def handshake(application, origin=None, host=None, scheme="ws", extra=()):
    """Whether a handshake with this Origin and Host (``None``: none) is accepted."""
    headers = list(extra)
    if host is not None:
        headers.append((b"host", host.encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, "/ws/", headers=headers)
    communicator.scope["scheme"] = scheme
    accepted, detail = await communicator.connect()
    if accepted:
        assert await communicator.receive_from() == "hello"
    else:
        assert detail == 1000  # Closed before accept: servers answer 403.
    await communicator.disconnect()
    return accepted


@pytest.fixture(autouse=True)
def sites(settings):
    settings.ALLOWED_HOSTS = ["example.com", "chat.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = []


SAME_ORIGIN = [
    # (scheme, Host, Origin, accepted)
    ("ws", "example.com", "http://example.com", True),
    ("wss", "example.com", "https://example.com", True),
    ("ws", "example.com:8000", "http://example.com:8000", True),
    ("wss", "chat.example.com:8443", "https://chat.example.com:8443", True),
    # Same host, another port: another service there.
    ("ws", "example.com:8000", "http://example.com:8001", False),
    ("ws", "example.com", "http://example.com:8080", False),
    ("ws", "example.com:8000", "http://example.com", False),
    # Same host and port, another scheme.
    ("wss", "example.com", "http://example.com", False),
    ("ws", "example.com", "https://example.com", False),
    # Another host, even a sibling in ALLOWED_HOSTS.
    ("ws", "example.com", "http://chat.example.com", False),
    ("ws", "example.com", "http://example.com.evil.example", False),
]


@pytest.mark.parametrize(("scheme", "host", "origin", "accepted"), SAME_ORIGIN)
async def test_the_page_must_have_the_handshakes_own_origin(
    scheme, host, origin, accepted
):
    assert await handshake(CsrfOriginValidator(hello), origin, host, scheme) is accepted


async def test_allowed_hosts_validator_admits_another_port_that_this_one_refuses():
    origin, host = "http://example.com:8001", "example.com:8000"
    assert await handshake(AllowedHostsOriginValidator(hello), origin, host)
    assert not await handshake(CsrfOriginValidator(hello), origin, host)


async def test_a_host_outside_allowed_hosts_has_no_own_origin(settings):
    # A page on a rebound DNS name sends its own name as Host and Origin.
    assert not await handshake(
        CsrfOriginValidator(hello), "http://rebound.example", "rebound.example"
    )
    settings.ALLOWED_HOSTS = ["rebound.example"]
    assert await handshake(
        CsrfOriginValidator(hello), "http://rebound.example", "rebound.example"
    )


async def test_with_no_host_header_the_server_address_is_the_host(settings):
    # WebsocketCommunicator's scope says the server is testserver:80.
    settings.ALLOWED_HOSTS = ["testserver"]
    assert await handshake(CsrfOriginValidator(hello), "http://testserver")
    assert not await handshake(CsrfOriginValidator(hello), "http://testserver:81")


async def test_debug_with_no_allowed_hosts_allows_local_names_as_django_does(
    settings,
):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = []
    validator = CsrfOriginValidator(hello)
    assert await handshake(validator, "http://localhost:8000", "localhost:8000")
    assert not await handshake(validator, "http://localhost:3000", "localhost:8000")
    assert not await handshake(validator, "http://example.com", "example.com")


async def test_the_secure_proxy_header_makes_a_ws_connection_https(settings):
    # TLS ends at the proxy; the server sees ws:// plus the proxy's header.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxied = [(b"x-forwarded-proto", b"https")]
    validator = CsrfOriginValidator(hello)
    assert await handshake(
        validator, "https://example.com", "example.com", "ws", proxied
    )
    assert not await handshake(
        validator, "http://example.com", "example.com", "ws", proxied
    )
    # Without the setting the header means nothing.
    settings.SECURE_PROXY_SSL_HEADER = None
    assert not await handshake(
        validator, "https://example.com", "example.com", "ws", proxied
    )


async def test_forwarded_host_counts_only_with_use_x_forwarded_host(settings):
    forwarded = [(b"x-forwarded-host", b"chat.example.com")]
    validator = CsrfOriginValidator(hello)
    origin = "http://chat.example.com"
    assert not await handshake(validator, origin, "backend:8000", "ws", forwarded)
    settings.USE_X_FORWARDED_HOST = True
    assert await handshake(validator, origin, "backend:8000", "ws", forwarded)


TRUSTED = [
    # (CSRF_TRUSTED_ORIGINS, Origin, accepted) for a socket on example.com.
    (["https://app.example.net"], "https://app.example.net", True),
    (["https://app.example.net"], "http://app.example.net", False),
    (["https://app.example.net"], "https://app.example.net:8443", False),
    (["https://app.example.net:8443"], "https://app.example.net:8443", True),
    (["https://app.example.net"], "https://www.app.example.net", False),
    (["https://*.example.net"], "https://chat.example.net", True),
    (["https://*.example.net"], "https://a.b.example.net", True),
    (["https://*.example.net"], "https://example.net", True),
    (["https://*.example.net"], "http://chat.example.net", False),
    (["https://*.example.net"], "https://chat.example.net:8443", False),
    (["https://*.example.net"], "https://badexample.net", False),
    (["https://*.example.net:8443"], "https://chat.example.net:8443", True),
    (["http://localhost:3000"], "http://localhost:3000", True),
    (["http://localhost:3000"], "http://localhost:3001", False),
]


@pytest.mark.parametrize(("trusted", "origin", "accepted"), TRUSTED)
async def test_csrf_trusted_origins_admit_other_origins(
    settings, trusted, origin, accepted
):
    settings.CSRF_TRUSTED_ORIGINS = trusted
    assert (
        await handshake(CsrfOriginValidator(hello), origin, "example.com") is accepted
    )


async def test_settings_are_read_on_every_handshake(settings):
    validator = CsrfOriginValidator(hello)
    assert not await handshake(validator, "https://app.example.net", "example.com")
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.net"]
    assert await handshake(validator, "https://app.example.net", "example.com")


async def test_a_missing_origin_is_refused_unless_allowed(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    assert not await handshake(CsrfOriginValidator(hello), None, "example.com")
    native = CsrfOriginValidator(hello, allow_missing_origin=True)
    assert await handshake(native, None, "example.com")
    # Browsers, which do send an Origin, are still checked.
    assert not await handshake(native, "http://evil.example", "example.com")


@pytest.mark.parametrize("origin", ["null", "", "example.com", "http://"])
async def test_null_and_malformed_origins_are_refused(settings, origin):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com", "http://example.com"]
    assert not await handshake(CsrfOriginValidator(hello), origin, "example.com")


@pytest.mark.parametrize(
    "origins",
    [
        [b"http://example.com", b"http://example.com"],
        [b"http://evil.example", b"http://example.com"],
        ["http://exämple.com".encode()],
    ],
)
async def test_several_or_non_ascii_origin_headers_are_refused(origins):
    headers = [(b"origin", origin) for origin in origins]
    assert not await handshake(
        CsrfOriginValidator(hello), host="example.com", extra=headers
    )


async def test_a_refusal_is_logged_with_the_origin_it_expected(caplog):
    with caplog.at_level(logging.WARNING, logger="channels_app.security.websocket"):
        assert not await handshake(
            CsrfOriginValidator(hello), "http://example.com:8001", "example.com:8000"
        )
        assert not await handshake(
            CsrfOriginValidator(hello), "http://evil.example", "evil.example"
        )
    first, second = (record.getMessage() for record in caplog.records)
    assert "from origin 'http://example.com:8001'" in first
    assert "own origin is http://example.com:8000" in first
    assert "CSRF_TRUSTED_ORIGINS" in first
    assert "Host header is not in ALLOWED_HOSTS" in second


async def test_it_can_wrap_a_router_and_sit_inside_one():
    inner = URLRouter([path("chat/", hello)])
    application = URLRouter([path("ws/", CsrfOriginValidator(inner))])
    communicator = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[(b"host", b"example.com"), (b"origin", b"http://example.com")],
    )
    assert (await communicator.connect())[0]
    await communicator.disconnect()
    assert CsrfOriginValidator(inner).application is inner


async def test_a_query_string_that_is_not_utf8_changes_nothing():
    headers = [(b"host", b"example.com"), (b"origin", b"http://example.com")]
    communicator = WebsocketCommunicator(
        CsrfOriginValidator(hello), "/ws/", headers=headers
    )
    communicator.scope["query_string"] = b"token=\xff\xfe"
    assert (await communicator.connect())[0]
    await communicator.disconnect()


async def test_it_guards_websockets_only():
    with pytest.raises(ValueError, match="only guards WebSocket"):
        await CsrfOriginValidator(hello)({"type": "http"}, None, None)


class TrustingPreviews(CsrfOriginValidator):
    """A subclass also admitting origins its own rule allows."""

    def origin_verified(self, request):
        origin = request.META["HTTP_ORIGIN"]
        return origin.endswith(".preview.example") or super().origin_verified(request)


async def test_subclasses_can_change_the_decision():
    validator = TrustingPreviews(hello)
    assert await handshake(validator, "https://pr-7.preview.example", "example.com")
    assert await handshake(validator, "http://example.com", "example.com")
    assert not await handshake(validator, "http://evil.example", "example.com")
