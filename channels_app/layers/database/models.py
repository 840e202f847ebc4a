"""The database layer's two tables, queues that churn constantly.  Times are
Unix timestamps (float seconds), so the same SQL works on every database."""

from __future__ import annotations

from django.db import models


class ChannelMessage(models.Model):
    """One message waiting on one channel, serialised with msgpack."""

    channel: models.CharField[str, str] = models.CharField(max_length=100)
    expires: models.FloatField[float, float] = models.FloatField(
        help_text="Unix time after which nobody receives it."
    )
    body: models.BinaryField[bytes, bytes] = models.BinaryField()

    class Meta:
        app_label = "channels_app"
        db_table = "channels_app_message"
        indexes = [
            # Claims read one channel oldest-first; capacity checks count one.
            models.Index(fields=["channel", "id"], name="channels_app_msg_chan_id"),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} on {self.channel}"


class GroupMembership(models.Model):
    """A channel's membership of a group, renewed by every ``group_add``, with
    the channel's capacity so ``group_send`` honours it in one statement."""

    group_name: models.CharField[str, str] = models.CharField(max_length=100)
    channel: models.CharField[str, str] = models.CharField(max_length=100)
    expires: models.FloatField[float, float] = models.FloatField(
        help_text="Unix time after which the member is gone."
    )
    capacity: models.PositiveIntegerField[int, int] = models.PositiveIntegerField()

    class Meta:
        app_label = "channels_app"
        db_table = "channels_app_groupmembership"
        constraints = [
            models.UniqueConstraint(
                fields=["group_name", "channel"], name="channels_app_group_member"
            )
        ]
        # Expiry of a channel's messages removes it from all of its groups.
        indexes = [models.Index(fields=["channel"], name="channels_app_grp_chan")]

    def __str__(self) -> str:
        return f"{self.channel} in {self.group_name}"
