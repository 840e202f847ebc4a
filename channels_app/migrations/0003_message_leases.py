"""Leases on messages claimed ahead of their receivers.

A process that claims more of a normal channel's messages than it has
receivers waiting keeps the extra rows in the table, leased to itself
(``lease_owner``) until ``lease_expires``; it renews the leases while it
lives, and the cleanup gives expired ones back to the channel, so a worker
killed with SIGKILL no longer loses the messages it had not handed out.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0002_group_memberships_survive_crashes")]

    operations = [
        migrations.AddField(
            model_name="channelmessage",
            name="lease_owner",
            field=models.CharField(blank=True, max_length=32, null=True),
        ),
        migrations.AddField(
            model_name="channelmessage",
            name="lease_expires",
            field=models.FloatField(
                blank=True,
                help_text="Unix time after which a leased row is claimable again.",
                null=True,
            ),
        ),
        migrations.AddIndex(
            model_name="channelmessage",
            index=models.Index(
                condition=models.Q(lease_expires__isnull=False),
                fields=["lease_expires"],
                name="channels_app_msg_lease",
            ),
        ),
    ]
