"""Group memberships go back to a WAL-logged table on PostgreSQL.

Crash recovery (a server crash or an immediate shutdown, not a clean
restart) empties UNLOGGED tables.  For queued messages that is within the
at-most-once contract; for memberships it is not: every open socket stayed
connected but deaf to its groups, with nothing telling it.  Memberships
change once per connection, not per message, so logging them costs little.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

MEMBERSHIPS = "channels_app_groupmembership"


def log_memberships(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'ALTER TABLE "{MEMBERSHIPS}" SET LOGGED')


def unlog_memberships(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'ALTER TABLE "{MEMBERSHIPS}" SET UNLOGGED')


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0001_initial")]

    operations = [migrations.RunPython(log_memberships, unlog_memberships)]
