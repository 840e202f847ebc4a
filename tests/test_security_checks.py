"""``check --deploy`` warns about origin validators that let every site in."""

import pytest
from django.core import checks
from django.urls import path

from channels_app.auth import AuthMiddlewareStack
from channels_app.generic.websocket import WebsocketConsumer
from channels_app.routing import ProtocolTypeRouter, URLRouter
from channels_app.security.websocket import (
    AllowedHostsOriginValidator,
    CsrfOriginValidator,
    OriginValidator,
)
from channels_app.sessions import SessionMiddlewareStack

consumer = WebsocketConsumer.as_asgi()

any_origin_with_auth = ProtocolTypeRouter(
    {
        "websocket": OriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/chat/", consumer)])), ["*"]
        )
    }
)
any_origin_with_sessions_deeper = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path(
                    "ws/",
                    OriginValidator(
                        URLRouter([path("account/", SessionMiddlewareStack(consumer))]),
                        ["*"],
                    ),
                )
            ]
        )
    }
)
# A public socket that reads no cookies may allow every origin.
any_origin_without_cookies = ProtocolTypeRouter(
    {"websocket": OriginValidator(URLRouter([path("ws/echo/", consumer)]), ["*"])}
)
listed_origins_with_auth = ProtocolTypeRouter(
    {
        "websocket": OriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/chat/", consumer)])),
            ["https://example.com"],
        )
    }
)
allowed_hosts_validator = ProtocolTypeRouter(
    {
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/chat/", consumer)]))
        )
    }
)

csrf_validator = ProtocolTypeRouter(
    {
        "websocket": CsrfOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/chat/", consumer)]))
        )
    }
)
csrf_validator_per_route = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("ws/chat/", CsrfOriginValidator(AuthMiddlewareStack(consumer))),
                path(
                    "ws/native/",
                    CsrfOriginValidator(consumer, allow_missing_origin=True),
                ),
                path("ws/open/", AuthMiddlewareStack(consumer)),
            ]
        )
    }
)

HERE = "tests.test_security_checks"


def deploy_warnings(check_id):
    return [
        message
        for message in checks.run_checks(include_deployment_checks=True)
        if message.id == check_id
    ]


@pytest.mark.parametrize(
    "application", ["any_origin_with_auth", "any_origin_with_sessions_deeper"]
)
def test_any_origin_in_front_of_cookies_warns(settings, application):
    settings.ASGI_APPLICATION = f"{HERE}.{application}"
    [warning] = deploy_warnings("channels_app.security.W002")
    assert "any web site can open" in warning.msg
    assert "'*'" in warning.hint
    # An ordinary `check` stays quiet: this is about deployments.
    assert not [m for m in checks.run_checks() if m.id == warning.id]


@pytest.mark.parametrize(
    "application",
    [
        "any_origin_without_cookies",
        "listed_origins_with_auth",
        "allowed_hosts_validator",
    ],
)
def test_any_origin_without_cookies_or_listed_origins_are_fine(settings, application):
    settings.ASGI_APPLICATION = f"{HERE}.{application}"
    settings.ALLOWED_HOSTS = ["example.com"]
    assert deploy_warnings("channels_app.security.W002") == []
    assert deploy_warnings("channels_app.security.W003") == []


def test_allowed_hosts_validator_with_a_wildcard_host_warns(settings):
    settings.ASGI_APPLICATION = f"{HERE}.allowed_hosts_validator"
    settings.ALLOWED_HOSTS = ["example.com", "*"]
    [warning] = deploy_warnings("channels_app.security.W003")
    assert "ALLOWED_HOSTS contains '*'" in warning.msg
    assert "OriginValidator" in warning.hint


def test_a_wildcard_host_without_that_validator_is_not_this_checks_business(settings):
    settings.ASGI_APPLICATION = f"{HERE}.listed_origins_with_auth"
    settings.ALLOWED_HOSTS = ["*"]
    assert deploy_warnings("channels_app.security.W003") == []


def test_the_csrf_validator_guards_the_routes_it_wraps(settings):
    settings.ASGI_APPLICATION = f"{HERE}.csrf_validator"
    assert deploy_warnings("channels_app.security.W001") == []
    settings.ASGI_APPLICATION = f"{HERE}.csrf_validator_per_route"
    [warning] = deploy_warnings("channels_app.security.W001")
    assert "ws/open/" in warning.msg
    assert "ws/chat/" not in warning.msg and "ws/native/" not in warning.msg
    assert "CsrfOriginValidator" in warning.hint


def test_the_csrf_validator_stays_safe_with_a_wildcard_host(settings):
    # It compares the Origin with the Host the browser sent, which a page of
    # another site cannot choose, so ALLOWED_HOSTS = ["*"] opens nothing.
    settings.ASGI_APPLICATION = f"{HERE}.csrf_validator"
    settings.ALLOWED_HOSTS = ["*"]
    assert deploy_warnings("channels_app.security.W002") == []
    assert deploy_warnings("channels_app.security.W003") == []
    settings.ASGI_APPLICATION = f"{HERE}.allowed_hosts_validator"
    [warning] = deploy_warnings("channels_app.security.W003")
    assert "CsrfOriginValidator" in warning.hint
