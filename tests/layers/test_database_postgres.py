"""PostgreSQL specifics: NOTIFY wake-ups, the connection budget, surviving a restart."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from channels_app.layers.database import ChannelLayerUnavailable, DatabaseChannelLayer
from channels_app.layers.database.postgres import Lane, connect_kwargs
from channels_app.layers.database.postgres_sql import wake_key
from tests.servers import ROOT, TESTPROJECT
from tests.support.waiting import eventually

from .database_fixtures import nothing_within, receive_within
from .helpers import database_receiving
from .pgbouncer import pgbouncer_fixture
from .private_postgres import private_postgres_fixture

private_postgres = pytest.fixture(private_postgres_fixture, name="private_postgres")
pgbouncer = pytest.fixture(pgbouncer_fixture, name="pgbouncer")

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


#: Run a ``make_db_layer`` test on PostgreSQL only.
postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@postgres_only
async def test_receivers_are_woken_by_notify_not_by_polling(make_db_layer):
    sender = make_db_layer()
    receiver = make_db_layer(poll_interval=600)  # the safety poll never fires here
    for round_ in range(3):
        waiting = asyncio.ensure_future(receive_within(receiver, "pushed", 3))
        await eventually(lambda: database_receiving(receiver, "pushed"))
        await sender.send("pushed", {"round": round_})
        assert await waiting == {"round": round_}


@postgres_only
async def test_the_notification_carries_no_message(make_db_layer):
    """A listener that is not a receiver learns only which row arrived."""
    import psycopg

    layer = make_db_layer()
    params = connect_kwargs("postgres")
    async with await psycopg.AsyncConnection.connect(autocommit=True, **params) as spy:
        await spy.execute(f'LISTEN "{wake_key("spied")}"')
        await layer.send("spied", {"secret": "x" * 10_000})
        async for notify in spy.notifies(timeout=5, stop_after=1):
            row_id, colon, suffix = notify.payload.partition(":")
            assert (row_id.isdigit(), colon, suffix) == (True, ":", "")
    assert (await receive_within(layer, "spied"))["secret"] == "x" * 10_000


@postgres_only
async def test_a_lane_runs_one_statement_at_a_time(make_db_layer):
    """A caller that sends again at once queues behind work that was waiting."""
    lane = Lane("test", connect_kwargs("postgres"))

    async def one_after_another():
        await lane.run("SELECT pg_sleep(0.05)", ())
        return await lane.run("SELECT $1::int", (3,))

    first = asyncio.ensure_future(one_after_another())
    # Deliberately timed: its first statement (0.05 s) is running, so this one
    # queues; no public sign tells when the lane has sent it.
    await asyncio.sleep(0.02)
    assert await lane.run("SELECT $1::text", ("queued",)) == [("queued",)]
    assert await first == [(3,)]
    await lane.close()


@postgres_only
async def test_a_failed_statement_raises_its_error_and_the_lane_goes_on(make_db_layer):
    import psycopg

    lane = Lane("test", connect_kwargs("postgres"))
    with pytest.raises(psycopg.errors.DivisionByZero, match="division by zero"):
        await lane.run("SELECT 1 / $1::int", (0,))
    with pytest.raises(psycopg.errors.UndefinedTable):
        await lane.run("SELECT * FROM no_such_table", ())
    assert await lane.run("SELECT 1 / $1::int, $2::text", (1, "ok")) == [(1, "ok")]
    assert await lane.run("SELECT $1::bigint[]", ([1, 2**40],)) == [([1, 2**40],)]
    await lane.close()


@postgres_only
async def test_statements_queued_on_a_busy_lane_share_a_pipeline_not_a_fate(
    make_db_layer,
):
    """Statements that wait for a busy lane go out together; when one fails
    the others run again alone, so only its caller sees the error and each
    of the others takes effect exactly once."""
    import psycopg

    lane = Lane("test", connect_kwargs("postgres"))
    await lane.run("CREATE TEMPORARY TABLE t (n int PRIMARY KEY)", ())
    busy = asyncio.ensure_future(lane.run("SELECT pg_sleep(0.1)", ()))
    await asyncio.sleep(0.03)  # deliberately timed: inside its 0.1 s statement
    insert = "INSERT INTO t VALUES ($1) RETURNING n"
    queued = [asyncio.ensure_future(lane.run(insert, (n,))) for n in range(5)]
    failing = asyncio.ensure_future(lane.run(insert, (1,)))  # a duplicate
    queued.append(asyncio.ensure_future(lane.run("SELECT $1::text", ("last",))))
    await busy
    assert [await job for job in queued] == [*([(n,)] for n in range(5)), [("last",)]]
    with pytest.raises(psycopg.errors.UniqueViolation):
        await failing
    assert await lane.run("SELECT array_agg(n ORDER BY n) FROM t", ()) == [
        ([0, 1, 2, 3, 4],)
    ]
    await lane.close()


@postgres_only
@pytest.mark.parametrize("capacity", [1, 2, 8, 100])
async def test_a_receiver_that_keeps_up_never_makes_its_channel_look_full(
    make_db_layer, capacity
):
    """Rows handed out from notifications are deleted before they fill a channel.

    Each message is sent once the previous one was received, so the channel
    never really holds more than one: ``ChannelFull`` would be a lie.
    """
    sender = make_db_layer(capacity=capacity)
    receiver = make_db_layer(capacity=capacity)
    channel = await receiver.new_channel()
    got: list[int] = []
    arrived = asyncio.Event()

    async def consume():
        while True:
            got.append((await receiver.receive(channel))["n"])
            arrived.set()

    consumer = asyncio.ensure_future(consume())
    await eventually(lambda: database_receiving(receiver, channel))
    try:
        for n in range(60):
            arrived.clear()
            await sender.send(channel, {"n": n})  # raises ChannelFull if it lies
            await asyncio.wait_for(arrived.wait(), 5)
    finally:
        consumer.cancel()
    assert got == list(range(60))


def layer_connections() -> int:
    try:
        with connections["postgres"].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() "
                "AND application_name = 'channels_app.layers.database'"
            )
            return cursor.fetchone()[0]
    finally:
        connections["postgres"].close()  # this thread's, or teardown would wait


@postgres_only
async def test_connections_stay_fixed_however_many_consumers_wait(make_db_layer):
    """One listener, one send and one claim connection for 300 receivers."""
    layer = make_db_layer()
    channels = [await layer.new_channel() for _ in range(290)]
    channels += [f"worker.queue{n}" for n in range(10)]
    receivers = [asyncio.ensure_future(layer.receive(c)) for c in channels]
    await eventually(lambda: all(database_receiving(layer, c) for c in channels))
    await asyncio.gather(*(layer.send(c, {"to": c}) for c in channels))
    got = await asyncio.wait_for(asyncio.gather(*receivers), 20)
    assert [m["to"] for m in got] == channels
    assert await sync_to_async(layer_connections)() == 3


@postgres_only
async def test_a_second_layer_in_the_same_process_delivers_nothing_twice(make_db_layer):
    first, second = make_db_layer(), make_db_layer()
    a = [asyncio.ensure_future(first.receive("both")) for _ in range(5)]
    b = [asyncio.ensure_future(second.receive("both")) for _ in range(5)]
    await eventually(
        lambda: (
            database_receiving(first, "both", 5)
            and database_receiving(second, "both", 5)
        )
    )
    for n in range(10):
        await first.send("both", {"n": n})
    got = await asyncio.wait_for(asyncio.gather(*a, *b), 10)
    assert sorted(m["n"] for m in got) == list(range(10))
    assert await nothing_within(second, "both")


@pytest.fixture
def private_layer(private_postgres, transactional_db):
    """A layer on the private server, its tables created by the app's migrations."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.settings",
        PGHOST="127.0.0.1",
        PGPORT=str(private_postgres.port),
        PGDATABASE="postgres",
        PGUSER="postgres",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTPROJECT)]),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "migrate",
            "--database",
            "postgres",
            "-v0",
            "--skip-checks",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    entry = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": str(private_postgres.port),
        "OPTIONS": {"connect_timeout": 3},
    }
    configured = {"default": connections.settings["default"], "private": entry}
    connections.settings["private"] = connections.configure_settings(configured)[
        "private"
    ]
    yield DatabaseChannelLayer(database="private", poll_interval=1)
    del connections.settings["private"]


async def test_layer_survives_a_postgresql_restart(private_layer, private_postgres):
    layer = private_layer
    try:
        await layer.send("before", {"n": 1})
        assert await receive_within(layer, "before") == {"n": 1}
        await layer.send("kept", {"queued": "before the restart"})
        waiting = asyncio.ensure_future(layer.receive("during"))
        await eventually(lambda: database_receiving(layer, "during"))

        await asyncio.to_thread(private_postgres.stop)
        # A send during the outage fails quickly and clearly; it does not hang.
        with pytest.raises(ChannelLayerUnavailable, match="PostgreSQL is unreachable"):
            await asyncio.wait_for(layer.send("during", {"n": 2}), 10)
        with pytest.raises(ChannelLayerUnavailable):
            await asyncio.wait_for(layer.send("during", {"n": 2}), 10)
        assert not waiting.done()

        await asyncio.to_thread(private_postgres.start)
        await layer.send("during", {"n": 3})
        # The waiting receiver reconnected by itself and resumed.
        assert await asyncio.wait_for(waiting, 15) == {"n": 3}
        # A clean shutdown keeps queued rows, even in UNLOGGED tables.
        assert await receive_within(layer, "kept", 10) == {
            "queued": "before the restart"
        }
    finally:
        await layer.close()


async def test_group_members_still_hear_their_groups_after_a_postgresql_crash(
    private_layer, private_postgres
):
    """Crash recovery empties UNLOGGED tables; memberships must not be one."""
    layer = private_layer
    try:
        channels = [await layer.new_channel() for _ in range(50)]
        for channel in channels:
            await layer.group_add("room", channel)

        await asyncio.to_thread(private_postgres.crash)
        await asyncio.to_thread(private_postgres.start)

        receivers = [asyncio.ensure_future(layer.receive(c)) for c in channels]
        deadline = asyncio.get_running_loop().time() + 15
        while True:  # the layer reconnects by itself; a send may fail meanwhile
            try:
                await layer.group_send("room", {"text": "after the crash"})
                break
            except ChannelLayerUnavailable:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)
        got = await asyncio.wait_for(asyncio.gather(*receivers), 15)
        assert got == [{"text": "after the crash"}] * 50
    finally:
        await layer.close()


@pytest.fixture
def bouncer_alias(pgbouncer, transactional_db):
    """``DATABASES["bouncer"]``: the test database, through PgBouncer."""
    entry = {
        **connections["postgres"].settings_dict,
        "HOST": "127.0.0.1",
        "PORT": str(pgbouncer.port),
    }
    entry.pop("TEST", None)
    configured = {"default": connections.settings["default"], "bouncer": entry}
    connections.settings["bouncer"] = connections.configure_settings(configured)[
        "bouncer"
    ]
    yield "bouncer"
    del connections.settings["bouncer"]


@postgres_only
async def test_sends_work_through_pgbouncer_in_transaction_mode(
    make_db_layer, bouncer_alias
):
    """Pooled sends (2 server connections for everyone) keep nothing in a session."""
    layer = make_db_layer(send_database=bouncer_alias)
    other = make_db_layer(send_database=bouncer_alias)
    channels = [await layer.new_channel() for _ in range(20)]
    for channel in channels:
        await other.group_add("pooled", channel)
    receivers = [asyncio.ensure_future(layer.receive(c)) for c in channels]
    for round_ in range(3):  # psycopg would prepare from the 2nd use on
        await asyncio.gather(
            *(other.send(c, {"round": round_}) for c in channels),
            *(layer.send("pooled.jobs", {"round": round_}) for _ in range(5)),
        )
        got = await asyncio.wait_for(asyncio.gather(*receivers), 10)
        assert [m["round"] for m in got] == [round_] * 20
        receivers = [asyncio.ensure_future(layer.receive(c)) for c in channels]
    assert await other.group_send("pooled", {"round": "all"}) == 0
    got = await asyncio.wait_for(asyncio.gather(*receivers), 10)
    assert {m["round"] for m in got} == {"all"}
    jobs = [await receive_within(other, "pooled.jobs") for _ in range(15)]
    assert sorted(m["round"] for m in jobs) == [0] * 5 + [1] * 5 + [2] * 5
