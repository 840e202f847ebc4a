
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

QUEUE_TABLES = ("channels_app_message", "channels_app_groupmembership")


def tune_queue_tables(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """On PostgreSQL: UNLOGGED queue tables, vacuumed after a fixed churn.

    Queued messages are at-most-once anyway, so losing them in a database
    crash (not a clean restart) is acceptable, and skipping the WAL roughly
    halves the write cost.  Unlogged tables are not replicated to standbys.
    """
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in QUEUE_TABLES:
        schema_editor.execute(f'ALTER TABLE "{table}" SET UNLOGGED')
        schema_editor.execute(
            f'ALTER TABLE "{table}" SET (autovacuum_vacuum_scale_factor = 0, '
            f"autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_cost_delay = 0, "
            f"autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 2000)"
        )


def log_queue_tables(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in QUEUE_TABLES:
        schema_editor.execute(f'ALTER TABLE "{table}" RESET (autovacuum_vacuum_scale_factor, '
                              f"autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay, "
                              f"autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)")
        schema_editor.execute(f'ALTER TABLE "{table}" SET LOGGED')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='ChannelMessage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('channel', models.CharField(max_length=100)),
                ('expires', models.FloatField(help_text='Unix time after which nobody receives it.')),
                ('body', models.BinaryField()),
            ],
            options={
                'db_table': 'channels_app_message',
                'indexes': [models.Index(fields=['channel', 'id'], name='channels_app_msg_chan_id')],
            },
        ),
        migrations.CreateModel(
            name='GroupMembership',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('group_name', models.CharField(max_length=100)),
                ('channel', models.CharField(max_length=100)),
                ('expires', models.FloatField(help_text='Unix time after which the member is gone.')),
                ('capacity', models.PositiveIntegerField()),
            ],
            options={
                'db_table': 'channels_app_groupmembership',
                'indexes': [models.Index(fields=['channel'], name='channels_app_grp_chan')],
                'constraints': [models.UniqueConstraint(fields=('group_name', 'channel'), name='channels_app_group_member')],
            },
        ),
        migrations.RunPython(tune_queue_tables, log_queue_tables),
    ]
