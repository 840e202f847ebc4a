"""Where :class:`~channels_app.streams.store_database.DatabaseStreamStore`
keeps streams: one row of state per stream, one row per message held.

Times are Unix timestamps (seconds, as floats) and the SQL is plain enough
to run unchanged on PostgreSQL and SQLite, as for the database layer.
"""

from __future__ import annotations

from django.db import models


class StreamState(models.Model):
    """A stream's epoch, the offset of its newest message, and that message's
    time (times never decrease along a stream, so age trimming cuts a prefix).

    Deleting the row is what forgets a history: the next message creates it
    again under a new epoch.
    """

    stream: models.CharField[str, str] = models.CharField(
        max_length=100, primary_key=True
    )
    epoch: models.CharField[str, str] = models.CharField(max_length=32)
    last: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    published: models.FloatField[float, float] = models.FloatField(default=0)

    class Meta:
        app_label = "channels_app"
        db_table = "channels_app_stream"

    def __str__(self) -> str:
        return f"stream {self.stream} at {self.epoch}:{self.last}"


class StreamEntry(models.Model):
    """One message held in a stream's history, as JSON text."""

    stream: models.CharField[str, str] = models.CharField(max_length=100)
    # Not named "offset": that is an SQL keyword.
    number: models.BigIntegerField[int, int] = models.BigIntegerField()
    published: models.FloatField[float, float] = models.FloatField()
    data: models.TextField[str, str] = models.TextField()

    class Meta:
        app_label = "channels_app"
        db_table = "channels_app_streamentry"
        constraints = [
            # Also the index every read and trim uses.
            models.UniqueConstraint(
                fields=["stream", "number"], name="channels_app_stream_entry"
            )
        ]

    def __str__(self) -> str:
        return f"{self.stream} #{self.number}"
