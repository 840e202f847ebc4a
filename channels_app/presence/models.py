"""Where :class:`~.store_database.DatabasePresenceStore` keeps presence: one
row per present connection, one counter row per (topic, user).

The counter is what makes a join "first" or a leave "last" for exactly one
caller when several processes change the same user at once: it is changed
with one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (or ``UPDATE
... RETURNING``) statement, which PostgreSQL and SQLite (3.35+) both run
atomically.  Lease ends are Unix timestamps (seconds, as floats).
"""

from __future__ import annotations

from django.db import models


class PresentConnection(models.Model):
    """One connection present in one topic, until its lease ends."""

    topic: models.CharField[str, str] = models.CharField(max_length=100)
    connection: models.CharField[str, str] = models.CharField(max_length=200)
    user: models.CharField[str, str] = models.CharField(max_length=200)
    meta: models.TextField[str, str] = models.TextField(default="{}")
    expires_at: models.FloatField[float, float] = models.FloatField(db_index=True)

    class Meta:
        app_label = "channels_app"
        db_table = "channels_app_presence"
        constraints = [
            models.UniqueConstraint(
                fields=["topic", "connection"], name="channels_app_presence_conn_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.topic} ({self.connection})"


class PresentUser(models.Model):
    """How many connections ``user`` has in ``topic``; gone at zero."""

    topic: models.CharField[str, str] = models.CharField(max_length=100)
    user: models.CharField[str, str] = models.CharField(max_length=200)
    connections: models.IntegerField[int, int] = models.IntegerField(default=0)

    class Meta:
        app_label = "channels_app"
        db_table = "channels_app_presence_user"
        constraints = [
            models.UniqueConstraint(
                fields=["topic", "user"], name="channels_app_presence_user_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.topic}: {self.connections}"
