from django.core.handlers.asgi import ASGIHandler
from django.urls import path

from channels_app.auth import AuthMiddlewareStack
from channels_app.routing import ProtocolTypeRouter, URLRouter
from channels_app.security.websocket import AllowedHostsOriginValidator

from .consumers import AccountConsumer


def build_application():
    """Django views over HTTP; ``AccountConsumer`` behind origin checks."""
    account = AuthMiddlewareStack(AccountConsumer.as_asgi())
    return ProtocolTypeRouter(
        {
            "http": ASGIHandler(),
            "websocket": URLRouter(
                [
                    path("ws/account/", AllowedHostsOriginValidator(account)),
                    path(
                        "ws/account/native/",
                        AllowedHostsOriginValidator(account, allow_missing_origin=True),
                    ),
                ]
            ),
        }
    )
