"""Rooms and their message history (who is connected is presence's:
``channels_app.presence``, topic ``chat.<slug>``)."""

from django.conf import settings
from django.db import models
from django.urls import reverse


class Room(models.Model):
    """A named place to talk; its slug also names its group on the layer."""

    slug = models.SlugField(unique=True, max_length=50)
    title = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("chat:room", args=[self.slug])

    @property
    def group_name(self) -> str:
        """The channel-layer group every live client of this room joins (for
        typing hints; messages go through the room's stream)."""
        return f"chat-room-{self.slug}"


class Message(models.Model):
    """One line of a room's history, as shown to everyone in the room."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    #: Set by the moderation worker when it rewrote the text.
    moderated = models.BooleanField(default=False)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"

    def as_event(self) -> dict:
        """The JSON-ready form sent to browsers, live and in the history."""
        return {
            "id": self.id,
            "author": self.author.get_username(),
            "text": self.text,
            "created_at": self.created_at.isoformat(),
            "moderated": self.moderated,
        }
