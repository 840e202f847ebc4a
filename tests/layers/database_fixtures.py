"""Fixtures for the database channel layer tests: layers on SQLite and PostgreSQL.

``make_db_layer(**config)`` builds a layer on the backend the test is
parameterised with and closes it afterwards; the tables come from the app's
migrations, run by pytest-django into the test databases.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from django.db import connections

from channels_app.layers.database import DatabaseChannelLayer
from tests.services import require

BACKENDS = ["sqlite", "postgres"]
ALIASES = {"sqlite": "default", "postgres": "postgres"}


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "postgres":
        require("postgres")
    return request.param


@pytest.fixture
async def make_db_layer(backend, transactional_db):
    layers: list[DatabaseChannelLayer] = []

    def make(**config) -> DatabaseChannelLayer:
        config.setdefault("database", ALIASES[backend])
        layer = DatabaseChannelLayer(**config)
        layers.append(layer)
        return layer

    yield make
    for layer in layers:
        await layer.close()


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
