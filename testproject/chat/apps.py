from django.apps import AppConfig


class ChatConfig(AppConfig):
    """The demo's chat: rooms, history, presence and moderation."""

    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"
