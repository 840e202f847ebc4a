"""The database stream store's tables: one row per stream, one per message held."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('channels_app', '0004_no_message_leases'),
    ]

    operations = [
        migrations.CreateModel(
            name='StreamState',
            fields=[
                ('stream', models.CharField(max_length=100, primary_key=True, serialize=False)),
                ('epoch', models.CharField(max_length=32)),
                ('last', models.BigIntegerField(default=0)),
                ('published', models.FloatField(default=0)),
            ],
            options={
                'db_table': 'channels_app_stream',
            },
        ),
        migrations.CreateModel(
            name='StreamEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('stream', models.CharField(max_length=100)),
                ('number', models.BigIntegerField()),
                ('published', models.FloatField()),
                ('data', models.TextField()),
            ],
            options={
                'db_table': 'channels_app_streamentry',
                'constraints': [models.UniqueConstraint(fields=('stream', 'number'), name='channels_app_stream_entry')],
            },
        ),
    ]
