"""Messages are no longer claimed ahead of their receivers, so not leased.

Each claim now takes only what the receivers waiting for it need; the
columns and the index that tracked leased rows go.  A row still leased when
this runs is simply claimable, as any other.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0003_message_leases")]

    operations = [
        migrations.RemoveIndex(
            model_name="channelmessage", name="channels_app_msg_lease"
        ),
        migrations.RemoveField(model_name="channelmessage", name="lease_owner"),
        migrations.RemoveField(model_name="channelmessage", name="lease_expires"),
    ]
