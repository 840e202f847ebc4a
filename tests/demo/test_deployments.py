"""The demo as people run it: real processes, real clients, each documented set-up.

* the embedded defaults (``make demo``): SQLite, the in-memory layer and the
  moderation worker inside ``runserver``;
* PostgreSQL with the database layer, and Redis with channels_redis: two
  ``runserver --noworker`` processes and a separate ``runworker``, with one
  server killed outright to show presence correcting itself.
"""

import asyncio
import contextlib
import json
import os
import signal
import uuid

import psycopg
import pytest

from tests.demo.deployment import (
    RUNSERVER_WITH_WORKER,
    SHARED_LAYER_SETUPS,
    DemoDeployment,
    Visitor,
    keep_alive,
    next_event,
    presence_becomes,
)
from tests.services import PG, REDIS_URL, require

pytestmark = pytest.mark.e2e


@pytest.fixture
def postgres_database():
    """A fresh, empty PostgreSQL database for one deployment."""
    require("postgres")
    base = os.environ["CHANNELS_APP_PG_TEST_DB"]
    name = f"{base}_demo_e2e"
    admin = {
        "host": PG["HOST"],
        "port": PG["PORT"],
        "user": PG["USER"],
        "password": PG["PASSWORD"],
        "dbname": PG["NAME"],
        "autocommit": True,
    }
    with psycopg.connect(**admin) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(**admin) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def deployments(tmp_path):
    started = []

    def deploy(**env):
        deployment = DemoDeployment(tmp_path, **env)
        started.append(deployment)
        return deployment

    yield deploy
    for deployment in started:
        deployment.stop()


def ada_and_bob(ada_server, bob_server):
    """Both sign up, Ada on her server and Bob on his; Ada opens a room whose
    name no earlier run used.  Returns ``(ada, bob, room page, room slug)``."""
    ada, bob = Visitor(ada_server), Visitor(bob_server)
    ada.sign_up("ada")
    bob.sign_up("bob")
    page = ada.create_room(f"Lobby {uuid.uuid4().hex[:8]}")
    return ada, bob, page, page.strip("/").split("/")[-1]


async def post_and_see_it_moderated(ada_ws, bob_ws, bob: Visitor, page: str):
    await ada_ws.send(json.dumps({"type": "message", "text": "well darn it"}))
    posted = (await next_event(bob_ws, "message"))["message"]
    assert (posted["author"], posted["text"]) == ("ada", "well darn it")
    updated = (await next_event(bob_ws, "message_updated"))["message"]
    assert updated == {**posted, "text": "well d*** it", "moderated": True}
    assert "well d*** it" in bob.page(page), "the edit is in the history"


async def test_embedded_defaults_one_process_does_everything(deployments):
    site = deployments()
    server = site.runserver(RUNSERVER_WITH_WORKER)
    ada, bob, page, slug = ada_and_bob(server, server)
    try:
        async with ada.connect(f"/ws/rooms/{slug}/") as ada_ws:
            async with bob.connect(f"/ws/rooms/{slug}/") as bob_ws:
                ada_alive = asyncio.create_task(keep_alive(ada_ws))
                bob_alive = asyncio.create_task(keep_alive(bob_ws))
                await presence_becomes(ada_ws, ["ada", "bob"])
                await post_and_see_it_moderated(ada_ws, bob_ws, bob, page)
                # Bob's browser freezes: the socket stays open, heartbeats stop.
                bob_alive.cancel()
                await presence_becomes(ada_ws, ["ada"])
                ada_alive.cancel()
    except BaseException:
        print(site.logs())
        raise


@pytest.mark.parametrize("layer", ["database", "redis"])
async def test_two_servers_and_a_worker_on_a_shared_layer(deployments, request, layer):
    if layer == "redis":
        require("redis")
        site = deployments(**SHARED_LAYER_SETUPS["redis"], REDIS_URL=REDIS_URL)
    else:
        database = request.getfixturevalue("postgres_database")
        site = deployments(**SHARED_LAYER_SETUPS["database"], PGDATABASE=database)
    server_a, server_b = site.runserver(), site.runserver()
    site.runworker()
    ada, bob, page, slug = ada_and_bob(server_a, server_b)
    try:
        async with ada.connect(f"/ws/rooms/{slug}/") as ada_ws:
            bob_ws = await bob.connect(f"/ws/rooms/{slug}/")
            alive = [
                asyncio.create_task(keep_alive(ada_ws)),
                asyncio.create_task(keep_alive(bob_ws)),
            ]
            # Each sees the other although they are on different servers.
            await presence_becomes(ada_ws, ["ada", "bob"])
            await presence_becomes(bob_ws, ["ada", "bob"])
            await post_and_see_it_moderated(ada_ws, bob_ws, bob, page)

            # Bob's server dies without a single disconnect event.
            server_b.stop(signal.SIGKILL)
            alive[1].cancel()
            await presence_becomes(ada_ws, ["ada"])
            alive[0].cancel()
            with contextlib.suppress(Exception):
                await bob_ws.close()
    except BaseException:
        print(site.logs())
        raise
