# Presence moved to channels_app.presence: the hand-written table and the
# room's presence counter are gone.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_room_presence_version"),
    ]

    operations = [
        migrations.DeleteModel(name="Presence"),
        migrations.RemoveField(model_name="room", name="presence_version"),
    ]
