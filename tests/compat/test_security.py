"""Origin checking written as Channels 4 documents it, prefix changed.

Channels' security page wraps the WebSocket stack in
``AllowedHostsOriginValidator`` or ``OriginValidator`` with a pattern list,
and projects subclass ``OriginValidator`` overriding ``validate_origin`` (or
``valid_origin`` / ``match_allowed_origin``) to decide from elsewhere -- a
database of tenant domains, say.  Those overrides receive the origin as a
``urllib.parse.ParseResult`` (``None`` without an ``Origin`` header) and
must change the decision here as they do in Channels.
"""

from urllib.parse import urlparse

import pytest
from django.urls import path

from channels_app.auth import AuthMiddlewareStack
from channels_app.generic.websocket import AsyncWebsocketConsumer
from channels_app.routing import ProtocolTypeRouter, URLRouter
from channels_app.security.websocket import (
    AllowedHostsOriginValidator,
    OriginValidator,
)
from channels_app.testing import WebsocketCommunicator


class RoomConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        await self.accept()
        user = self.scope["user"]
        await self.send(text_data=f"{self.room_name}:{user.is_authenticated}")


websocket_urlpatterns = [
    path("ws/chat/<str:room_name>/", RoomConsumer.as_asgi()),
]


async def handshake(application, origin=None, path="/ws/chat/lobby/"):
    """The first frame of an accepted handshake, or None if refused."""
    headers = [] if origin is None else [(b"origin", origin.encode())]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    frame = await communicator.receive_from() if connected else None
    await communicator.disconnect()
    return frame


def asgi_application(validator):
    """The ``asgi.py`` of Channels' docs, with the given validator."""
    return ProtocolTypeRouter({"websocket": validator})


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("http://testserver", True),
        ("https://testserver:8443", True),
        ("http://chat.example.com", True),
        ("http://example.com", True),
        ("http://evil.example", False),
        (None, False),
    ],
)
async def test_allowed_hosts_origin_validator_as_in_the_docs(
    settings, origin, accepted
):
    settings.ALLOWED_HOSTS = ["testserver", ".example.com"]
    application = asgi_application(
        AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        )
    )
    frame = await handshake(application, origin)
    assert frame == ("lobby:False" if accepted else None)


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("https://goodsite.com", True),
        ("http://www.goodsite.com:8000", True),
        ("http://other.site.org", True),
        ("http://other.site.org:80", True),
        ("http://other.site.org:8080", False),
        ("https://other.site.org", False),
        ("http://www.other.site.org", False),
        ("http://badsite.com", False),
        (None, False),
    ],
)
async def test_origin_validator_with_the_docs_patterns(origin, accepted):
    application = asgi_application(
        OriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
            [".goodsite.com", "http://.goodsite.com:80", "http://other.site.org"],
        )
    )
    frame = await handshake(application, origin)
    assert frame == ("lobby:False" if accepted else None)


# --- subclasses that decide for themselves ------------------------------------

TENANT_DOMAINS = {"tenant-a.example", "tenant-b.example"}


class TenantOriginValidator(OriginValidator):
    """Allows the origins of known tenants, over HTTPS only."""

    def validate_origin(self, parsed_origin):
        return (
            parsed_origin.scheme == "https" and parsed_origin.hostname in TENANT_DOMAINS
        )


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("https://tenant-a.example", True),
        ("https://tenant-b.example:8443", True),
        ("http://tenant-a.example", False),
        ("https://tenant-c.example", False),
        (None, False),  # valid_origin refuses before asking: no "*".
    ],
)
async def test_validate_origin_override_decides(origin, accepted):
    validator = TenantOriginValidator(URLRouter(websocket_urlpatterns), [])
    frame = await handshake(AuthMiddlewareStack(validator), origin)
    assert frame == ("lobby:False" if accepted else None)


class NativeClientsToo(OriginValidator):
    """Browsers must come from the listed origins; apps send no Origin."""

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


async def test_valid_origin_override_admits_a_missing_origin():
    validator = NativeClientsToo(
        AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), ["https://app.example"]
    )
    assert await handshake(validator, None) == "lobby:False"
    assert await handshake(validator, "https://app.example") == "lobby:False"
    assert await handshake(validator, "https://evil.example") is None


class ExactOnly(OriginValidator):
    """Compares whole origins as strings, the way some projects prefer."""

    def match_allowed_origin(self, parsed_origin, pattern):
        return parsed_origin is not None and parsed_origin.geturl() == pattern


async def test_match_allowed_origin_override_decides():
    validator = ExactOnly(
        AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), ["https://a.example"]
    )
    assert await handshake(validator, "https://a.example") == "lobby:False"
    assert await handshake(validator, "https://a.example:443") is None
    assert await handshake(validator, "https://sub.a.example") is None


def test_hooks_called_directly_answer_as_in_channels():
    # Code (and tests written for Channels) call the hooks directly.
    validator = OriginValidator(None, [".example.com", "https://secure.example:8443"])
    assert validator.valid_origin(urlparse("http://www.example.com")) is True
    assert validator.valid_origin(None) is False
    assert validator.validate_origin(urlparse("http://evil.example")) is False
    assert validator.match_allowed_origin(
        urlparse("https://secure.example:8443"), "https://secure.example:8443"
    )
    assert not validator.match_allowed_origin(None, ".example.com")
    assert validator.get_origin_port(urlparse("https://secure.example")) == 443
    assert validator.get_origin_port(urlparse("mailto:x@example.com")) is None
