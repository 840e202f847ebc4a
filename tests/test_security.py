"""OriginValidator, AllowedHostsOriginValidator and the deployment check."""

import io
import logging
from urllib.parse import ParseResult, urlparse

import pytest
from django.core import checks
from django.core.management import call_command
from django.urls import path

from channels_app.auth import AuthMiddlewareStack
from channels_app.generic.websocket import AsyncWebsocketConsumer
from channels_app.routing import ProtocolTypeRouter, URLRouter
from channels_app.security.websocket import (
    AllowedHostsOriginValidator,
    OriginValidator,
    WebsocketDenier,
)
from channels_app.testing import WebsocketCommunicator


class Hello(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.send(text_data="hello")


hello = Hello.as_asgi()


async def handshake(application, origins=(), path="/"):
    """Whether the handshake with these Origin header values is accepted."""
    headers = [(b"origin", o if isinstance(o, bytes) else o.encode()) for o in origins]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    accepted, detail = await communicator.connect()
    if accepted:
        assert await communicator.receive_from() == "hello"
    else:
        assert detail == 1000  # Closed before accept: servers answer 403.
    await communicator.disconnect()
    return accepted


MATCHES = [
    # Django ALLOWED_HOSTS forms: host only, any scheme and port.
    (["example.com"], "http://example.com", True),
    (["example.com"], "https://example.com:8443", True),
    (["example.com"], "http://www.example.com", False),
    (["example.com"], "http://example.com.evil.example", False),
    (["EXAMPLE.com"], "http://example.COM", True),
    ([".example.com"], "http://example.com", True),
    ([".example.com"], "https://a.b.example.com", True),
    ([".example.com"], "http://badexample.com", False),
    (["*"], "http://anything.example", True),
    (["*"], "null", True),
    # Ports.
    (["example.com:8000"], "http://example.com:8000", True),
    (["example.com:8000"], "http://example.com:8001", False),
    (["example.com:80"], "http://example.com", True),
    (["example.com:443"], "https://example.com", True),
    # Schemes: scheme, host and port must all match; default ports apply.
    (["https://example.com"], "https://example.com", True),
    (["https://example.com"], "https://example.com:443", True),
    (["https://example.com"], "http://example.com", False),
    (["https://example.com"], "https://example.com:8443", False),
    (["http://example.com:8000"], "http://example.com:8000", True),
    (["http://example.com:8000"], "http://example.com", False),
    (["https://.example.com"], "https://chat.example.com", True),
    (["https://.example.com"], "http://chat.example.com", False),
    # IPv6 and IPs.
    (["[::1]"], "http://[::1]:8000", True),
    (["127.0.0.1"], "http://127.0.0.1:8000", True),
    (["127.0.0.1"], "http://127.0.0.2", False),
    # Not origins at all.
    (["example.com"], "null", False),
    (["example.com"], "example.com", False),
    (["example.com"], "http://example.com:99999", False),
    (["example.com"], "http://user@example.com", False),
    (["example.com"], "", False),
    (["a.example", "example.com"], "http://example.com", True),
]


@pytest.mark.parametrize(("allowed", "origin", "accepted"), MATCHES)
async def test_origin_patterns(allowed, origin, accepted):
    assert await handshake(OriginValidator(hello, allowed), [origin]) is accepted


async def test_non_ascii_origin_is_refused_without_error():
    assert not await handshake(
        OriginValidator(hello, ["example.com"]), [b"http://\xff"]
    )


async def test_two_origin_headers_are_refused():
    validator = OriginValidator(hello, ["example.com"])
    assert not await handshake(validator, ["http://example.com", "http://evil.example"])


@pytest.mark.parametrize(
    ("allowed", "allow_missing", "accepted"),
    [
        (["example.com"], None, False),
        (["*"], None, True),
        (["example.com"], True, True),
        (["*"], False, False),
        ([], None, False),
    ],
)
async def test_missing_origin(allowed, allow_missing, accepted):
    validator = OriginValidator(hello, allowed, allow_missing_origin=allow_missing)
    assert await handshake(validator, []) is accepted


async def test_refusal_is_logged_without_a_traceback(caplog):
    with caplog.at_level(logging.WARNING, logger="channels_app.security.websocket"):
        await handshake(
            OriginValidator(hello, ["example.com"]), ["http://evil.example"]
        )
    [record] = caplog.records
    assert "http://evil.example" in record.getMessage()
    assert record.exc_info is None


async def test_consumer_never_runs_for_a_refused_origin():
    started = []

    class Spy(AsyncWebsocketConsumer):
        async def connect(self):
            started.append(True)
            await self.accept()

    validator = OriginValidator(Spy.as_asgi(), ["example.com"])
    communicator = WebsocketCommunicator(
        validator, "/", headers=[(b"origin", b"http://evil.example")]
    )
    assert await communicator.connect() == (False, 1000)
    assert started == []


async def test_origin_validator_refuses_other_protocols():
    with pytest.raises(ValueError, match="WebSocket"):
        await OriginValidator(hello, ["*"])({"type": "http"}, None, None)


def test_invalid_patterns_fail_at_startup():
    with pytest.raises(TypeError, match=r"\['example.com'\]"):
        OriginValidator(hello, "example.com")
    with pytest.raises(ValueError, match="http://example.com:port"):
        OriginValidator(hello, ["http://example.com:port"])
    with pytest.raises(ValueError, match="example.com/path"):
        OriginValidator(hello, ["https://example.com/path"])


async def test_several_origin_headers_pass_only_the_wildcard():
    assert await handshake(
        OriginValidator(hello, ["*"]), ["http://example.com", "http://evil.example"]
    )


class PortBlind(OriginValidator):
    """Treats every origin as if it came on port 8000."""

    def get_origin_port(self, origin):
        return 8000


async def test_get_origin_port_override_changes_the_decision():
    allowed = ["http://example.com:8000"]
    assert not await handshake(OriginValidator(hello, allowed), ["http://example.com"])
    assert await handshake(PortBlind(hello, allowed), ["http://example.com"])


class Recording(OriginValidator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def match_allowed_origin(self, parsed_origin, pattern):
        self.seen.append((parsed_origin, pattern))
        return super().match_allowed_origin(parsed_origin, pattern)


async def test_match_allowed_origin_gets_a_parse_result_for_each_pattern():
    validator = Recording(hello, ["a.example", "https://b.example"])
    assert await handshake(validator, ["https://b.example"])
    [(origin, first), (again, second)] = validator.seen
    assert isinstance(origin, ParseResult) and origin is again
    assert (origin.scheme, origin.hostname) == ("https", "b.example")
    assert (first, second) == ("a.example", "https://b.example")


def test_get_origin_port_defaults_by_scheme():
    validator = OriginValidator(hello, [])
    assert validator.get_origin_port(urlparse("wss://a.example")) == 443
    assert validator.get_origin_port(urlparse("ws://a.example")) == 80
    assert validator.get_origin_port(urlparse("http://a.example:81")) == 81
    assert validator.get_origin_port(urlparse("ftp://a.example")) is None


@pytest.mark.parametrize(
    ("allowed", "allow_missing", "expected"),
    [(["a.example"], None, False), (["*"], None, True), (["a.example"], True, True)],
)
def test_validate_origin_answers_for_a_missing_origin(allowed, allow_missing, expected):
    validator = OriginValidator(hello, allowed, allow_missing_origin=allow_missing)
    assert validator.validate_origin(None) is expected
    assert validator.valid_origin(None) is expected


def test_validators_route_like_the_app_they_wrap():
    router = URLRouter([path("live/", hello)])
    assert OriginValidator(router, ["*"])._path_routing is True
    assert AllowedHostsOriginValidator(AuthMiddlewareStack(router))._path_routing
    assert OriginValidator(hello, ["*"])._path_routing is False


async def test_validator_behind_a_router_reaches_the_nested_routes():
    application = URLRouter(
        [
            path(
                "ws/",
                AllowedHostsOriginValidator(
                    AuthMiddlewareStack(URLRouter([path("chat/", hello)]))
                ),
            )
        ]
    )
    assert await handshake(application, ["http://testserver"], path="/ws/chat/")
    assert not await handshake(application, ["http://evil.example"], path="/ws/chat/")


def test_application_can_be_assigned_as_in_channels():
    validator = OriginValidator(None, ["*"])
    validator.application = hello
    assert validator.inner is hello and validator.application is hello


async def test_websocket_denier_closes_the_handshake():
    communicator = WebsocketCommunicator(WebsocketDenier.as_asgi(), "/")
    assert await communicator.connect() == (False, 1000)


async def test_allowed_hosts_validator_follows_the_setting(settings):
    validator = AllowedHostsOriginValidator(hello)
    settings.ALLOWED_HOSTS = [".example.com"]
    assert await handshake(validator, ["https://chat.example.com"])
    assert not await handshake(validator, ["http://testserver"])
    settings.ALLOWED_HOSTS = ["testserver"]
    assert await handshake(validator, ["http://testserver"])
    assert not await handshake(validator, ["https://chat.example.com"])
    assert not await handshake(validator, [])
    assert await handshake(
        AllowedHostsOriginValidator(hello, allow_missing_origin=True), []
    )


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("http://localhost:8000", True),
        ("http://app.localhost", True),
        ("http://127.0.0.1:3000", True),
        ("http://[::1]", True),
        ("http://evil.example", False),
    ],
)
async def test_debug_with_empty_allowed_hosts_allows_localhost(
    settings, origin, accepted
):
    settings.ALLOWED_HOSTS = []
    settings.DEBUG = True
    assert await handshake(AllowedHostsOriginValidator(hello), [origin]) is accepted
    settings.DEBUG = False
    assert not await handshake(AllowedHostsOriginValidator(hello), [origin])


# --- system check -----------------------------------------------------------

unguarded_application = ProtocolTypeRouter(
    {
        "websocket": AuthMiddlewareStack(
            URLRouter([path("ws/chat/", hello), path("ws/echo/", hello)])
        )
    }
)
guarded_application = ProtocolTypeRouter(
    {
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/chat/", hello)]))
        )
    }
)
partly_guarded_application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("ws/chat/", OriginValidator(hello, ["example.com"])),
                path(
                    "ws/admin/",
                    AuthMiddlewareStack(URLRouter([path("live/", hello)])),
                ),
            ]
        )
    }
)
http_only_application = ProtocolTypeRouter({"http": hello})


def origin_warnings():
    return [
        message
        for message in checks.run_checks(include_deployment_checks=True)
        if message.id == "channels_app.security.W001"
    ]


def test_check_warns_about_unguarded_websocket_routes(settings):
    settings.ASGI_APPLICATION = "tests.test_security.unguarded_application"
    [warning] = origin_warnings()
    assert warning.level == checks.WARNING
    assert "ws/chat/" in warning.msg
    assert "ws/echo/" in warning.msg
    assert "AllowedHostsOriginValidator" in warning.hint


def test_check_names_only_the_unguarded_route(settings):
    settings.ASGI_APPLICATION = "tests.test_security.partly_guarded_application"
    [warning] = origin_warnings()
    assert "ws/admin/live/" in warning.msg
    assert "ws/chat/" not in warning.msg


@pytest.mark.parametrize(
    "application",
    [
        "tests.test_security.guarded_application",
        "tests.test_security.http_only_application",
        "",
        "tests.test_security.does_not_exist",
    ],
)
def test_check_is_quiet_when_nothing_is_exposed(settings, application):
    settings.ASGI_APPLICATION = application
    assert origin_warnings() == []


def test_check_runs_only_with_deploy(settings):
    settings.ASGI_APPLICATION = "tests.test_security.unguarded_application"
    assert not [m for m in checks.run_checks() if m.id == "channels_app.security.W001"]
    output = io.StringIO()
    call_command("check", "--deploy", "--tag", "security", stderr=output, stdout=output)
    assert "channels_app.security.W001" in output.getvalue()
