"""The demo as people run it: real processes, real clients, each documented set-up.

* the embedded defaults (``make demo``): SQLite, the in-memory layer and the
  moderation worker inside ``runserver``;
* PostgreSQL with the database layer, and Redis with channels_redis: two
  ``runserver --noworker`` processes and a separate ``runworker``, with one
  server killed outright to show presence correcting itself (within the
  presence lease) and the stream's history, shared by the servers, giving
  the user of the dead server what was posted while they were away.
"""

import contextlib
import os
import signal
import uuid

import psycopg
import pytest

from tests.demo.deployment import (
    RUNSERVER_WITH_WORKER,
    SHARED_LAYER_SETUPS,
    DemoDeployment,
    RoomSocket,
    Visitor,
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


async def in_room(visitor: Visitor, slug: str, since=None) -> RoomSocket:
    """``visitor``'s socket to the room, subscribed to its stream."""
    room = RoomSocket(await visitor.connect(f"/ws/rooms/{slug}/"))
    subscribed = await room.subscribe(slug, since)
    assert subscribed["recovery"] == ("none" if since is None else "recovered")
    return room


async def post_and_see_it_moderated(ada_ws, bob_ws, bob: Visitor, page: str):
    await ada_ws.post("well darn it")
    posted = await bob_ws.next_message()
    assert (posted["author"], posted["text"]) == ("ada", "well darn it")
    # The worker's edit comes through the stream: the same message, edited.
    updated = await bob_ws.next_message()
    assert updated == {**posted, "text": "well d*** it", "moderated": True}
    assert "well d*** it" in bob.page(page), "the edit is in the history"


async def away_and_back(ada_ws, bob: Visitor, slug: str, gone) -> RoomSocket:
    """Bob's socket ends (``gone()``), Ada sees him leave and posts twice;
    Bob comes back from his last position and gets both, in order."""
    since = gone.position
    await gone.close()
    await ada_ws.presence_becomes(["ada"])
    for text in ("while you were away", "and this too"):
        await ada_ws.post(text)
    back = await in_room(bob, slug, since)
    assert [(await back.next_message())["text"] for _ in range(2)] == [
        "while you were away",
        "and this too",
    ]
    await ada_ws.presence_becomes(["ada", "bob"])
    return back


async def test_embedded_defaults_one_process_does_everything(deployments):
    site = deployments()
    server = site.runserver(RUNSERVER_WITH_WORKER)
    ada, bob, page, slug = ada_and_bob(server, server)
    try:
        ada_ws = await in_room(ada, slug)
        bob_ws = await in_room(bob, slug)
        await ada_ws.presence_becomes(["ada", "bob"])
        await post_and_see_it_moderated(ada_ws, bob_ws, bob, page)
        bob_ws = await away_and_back(ada_ws, bob, slug, Leaving(bob_ws))
        await bob_ws.ws.close()
        await ada_ws.ws.close()
    except BaseException:
        print(site.logs())
        raise


class Leaving:
    """A socket about to end: its last stream position, and how it ends."""

    def __init__(self, room: RoomSocket, end=None) -> None:
        self.position = room.position
        self.room = room
        self.end = end

    async def close(self) -> None:
        if self.end is not None:
            self.end()
        with contextlib.suppress(Exception):
            await self.room.ws.close()


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
        ada_ws = await in_room(ada, slug)
        bob_ws = await in_room(bob, slug)
        # Each sees the other although they are on different servers.
        await ada_ws.presence_becomes(["ada", "bob"])
        await bob_ws.presence_becomes(["ada", "bob"])
        await post_and_see_it_moderated(ada_ws, bob_ws, bob, page)

        # Bob's server dies without a single disconnect event: his presence
        # ends with its lease (1.5 s here); he reconnects to Ada's server,
        # which replays what he missed from the shared history.
        bob.server = server_a
        leaving = Leaving(bob_ws, lambda: server_b.stop(signal.SIGKILL))
        bob_ws = await away_and_back(ada_ws, bob, slug, leaving)
        await bob_ws.ws.close()
        await ada_ws.ws.close()
    except BaseException:
        print(site.logs())
        raise
