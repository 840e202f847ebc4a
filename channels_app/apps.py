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

        # Registers the deployment check for WebSocket origin validation.
        from .security import checks as security_checks  # noqa: F401
