"""Where the database channel layer keeps queued messages and group members.

Both tables are queues that churn constantly: rows are inserted by senders
and leave only through the layer's atomic claim or its expiry cleanup.  Times
are Unix timestamps (seconds, as floats) so the same SQL works unchanged on
every supported database.
"""

from __future__ import annotations

from django.db import models


class ChannelMessage(models.Model):
    """One message waiting on one channel, serialised with msgpack."""

    channel: models.CharField[str, str] = models.CharField(max_length=100)
    expires: models.FloatField[float, float] = models.FloatField(
        help_text="Unix time after which nobody receives it."
    )
    body: models.BinaryField[bytes, bytes] = models.BinaryField()
    #: The event loop holding the row, claimed ahead of its receivers; NULL
    #: (not ``""``: the layer's SQL writes it) while nobody holds it.
    lease_owner: models.CharField[str | None, str | None] = models.CharField(  # noqa: DJ001
        max_length=32, null=True, blank=True
    )
    lease_expires: models.FloatField[float | None, float | None] = models.FloatField(
        null=True,
        blank=True,
        help_text="Unix time after which a leased row is claimable again.",
    )

    class Meta:
        app_label = "channels_app"
        db_table = "channels_app_message"
        indexes = [
            # Claims read one channel oldest-first; capacity checks count one.
            models.Index(fields=["channel", "id"], name="channels_app_msg_chan_id"),
            # The cleanup finds expired leases among the few leased rows.
            models.Index(
                fields=["lease_expires"],
                name="channels_app_msg_lease",
                condition=models.Q(lease_expires__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} on {self.channel}"


class GroupMembership(models.Model):
    """A channel's membership of a group, renewed by every ``group_add``.

    ``capacity`` is the member channel's capacity, resolved from the layer's
    configuration when the member joined, so ``group_send`` can honour every
    member's limit inside a single SQL statement.
    """

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
