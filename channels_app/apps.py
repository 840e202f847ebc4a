from typing import Any

from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    name = "channels_app"
    verbose_name = "Channels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing db installs the hook that lets async consumers skip the
        # connection-tidying thread hop when no database work happened;
        # importing checks registers the system checks.
        from . import checks, db  # noqa: F401
        from .session_signals import connect_receivers

        # The receivers that tell open connections their session ended: a
        # logout handled by a process that never imports a consumer module
        # (a WSGI server beside the ASGI one) must still announce it.
        connect_receivers()

        # Registers the deployment check for WebSocket origin validation.
        from .security import checks as security_checks  # noqa: F401


def __getattr__(name: str) -> Any:
    # ``ChannelsConfig`` is Channels' name for its app config, so settings
    # written for Channels ("channels.apps.ChannelsConfig" with the prefix
    # changed) name this same class.  It is looked up here rather than
    # assigned in the module: Django picks an app's default config from the
    # classes the apps module lists, and would find the class twice, under
    # two names, and refuse to choose.
    if name == "ChannelsConfig":
        return ChannelsAppConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
