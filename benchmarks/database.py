"""PostgreSQL for the benchmarks of database channel layers.

Our ``DatabaseChannelLayer`` is compared with ``channels_postgres`` (another
project's PostgreSQL layer, installed only in ``.venv-bench-channels``).  Both
keep their tables in one benchmark database, ``bench_channels_layers`` on the
server named by the usual ``PG*`` variables (default 127.0.0.1:5432, user
``postgres``), created on first use; each layer's migrations create its tables,
and they are emptied (``TRUNCATE``) before each measurement.
"""

from __future__ import annotations

import os
from typing import Any

from harness import setup_django

#: Channels 4 with the layers we compare with, and Daphne to serve it.
CHANNELS_POSTGRES_REQUIREMENTS = [
    "channels>=4,<5",
    "channels-redis>=4.2",
    "channels-postgres>=1.1",
    # Its requirement is plain psycopg (pure Python); ours and Django's docs use
    # the compiled build, so it gets the same: about 1.5x faster for it.
    "psycopg[binary]>=3.1",
    "daphne>=4.1",
]
BENCH_DATABASE = os.environ.get("BENCH_PGDATABASE", "bench_channels_layers")

OURS = "channels_app.layers.database.DatabaseChannelLayer"
THEIRS = "channels_postgres.core.PostgresChannelLayer"
#: Each layer's tables, emptied before it is measured: every run starts from
#: fresh tables, whatever earlier runs left behind (dead rows, bloat).
TABLES = {
    "ours": ["channels_app_message", "channels_app_groupmembership"],
    "channels": ["channels_postgres_message", "channels_postgres_groupchannel"],
}


def database_entry() -> dict[str, Any]:
    """The benchmark database as a Django ``DATABASES`` entry."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": BENCH_DATABASE,
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        # channels_postgres needs this on Django 5.2.
        "TIME_ZONE": None,
    }


def ensure_database() -> None:
    import psycopg

    entry = database_entry()
    with psycopg.connect(
        host=entry["HOST"],
        port=entry["PORT"],
        user=entry["USER"],
        password=entry["PASSWORD"],
        dbname=os.environ.get("PGDATABASE", "postgres"),
        autocommit=True,
    ) as connection:
        found = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,)
        ).fetchone()
        if not found:
            connection.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')


def databases(impl: str) -> dict[str, dict[str, Any]]:
    """``DATABASES``: channels_postgres looks for an alias of its own name."""
    entry = database_entry()
    if impl == "ours":
        return {"default": entry}
    return {"default": entry, "channels_postgres": entry}


def prepare(impl: str) -> tuple[str, dict[str, Any]]:
    """Set up Django and the tables; return the layer path and its CONFIG."""
    from django.core.management import call_command

    ensure_database()
    if impl == "ours":
        apps, app, layer, config = ["channels_app"], "channels_app", OURS, {}
        alias = "default"
    else:
        apps, app, layer = (
            ["channels", "channels_postgres"],
            "channels_postgres",
            THEIRS,
        )
        config, alias = database_entry(), "channels_postgres"
    setup_django(impl, INSTALLED_APPS=apps, DATABASES=databases(impl), USE_TZ=True)
    call_command("migrate", app, database=alias, verbosity=0)
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(TABLES[impl])}")
    return layer, config
