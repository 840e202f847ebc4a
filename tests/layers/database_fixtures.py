"""Helpers for the database channel layer tests: layers on SQLite and PostgreSQL.

The fixtures (``backend``, ``make_db_layer``) are in ``tests/layers/conftest.py``.
"""

from __future__ import annotations

import asyncio
import os

from django.db import connections

BACKENDS = ["sqlite", "postgres"]
ALIASES = {"sqlite": "default", "postgres": "postgres"}


def database_env(backend: str) -> dict[str, str]:
    """Environment for a subprocess that must use this test run's database."""
    settings = connections[ALIASES[backend]].settings_dict
    env = dict(os.environ)
    env["DBLAYER_BACKEND"] = backend
    env["DBLAYER_NAME"] = str(settings["NAME"])
    if backend == "postgres":
        env.update(
            PGHOST=str(settings["HOST"]),
            PGPORT=str(settings["PORT"]),
            PGUSER=str(settings["USER"]),
        )
    return env


async def receive_within(layer, channel: str, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def nothing_within(layer, channel: str, timeout: float = 0.3) -> bool:
    """True when ``channel`` yields nothing for ``timeout`` seconds."""
    try:
        await asyncio.wait_for(layer.receive(channel), timeout)
    except asyncio.TimeoutError:
        return True
    return False
