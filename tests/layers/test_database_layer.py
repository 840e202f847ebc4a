"""The database channel layer on SQLite and PostgreSQL: what users rely on."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync
from django.db import connections

from channels_app.exceptions import ChannelFull, MessageTooLarge
from channels_app.layers import channel_layers
from channels_app.layers.database import DatabaseChannelLayer
from channels_app.models import ChannelMessage, GroupMembership
from tests.support.waiting import eventually

from .database_fixtures import nothing_within, receive_within
from .helpers import database_receiving

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def rows(backend_name: str, model) -> int:
    alias = "default" if backend_name == "sqlite" else "postgres"
    return model.objects.using(alias).count()


async def count_rows(backend_name: str, model) -> int:
    from asgiref.sync import sync_to_async

    return await sync_to_async(rows)(backend_name, model)


# -- channels -------------------------------------------------------------


async def test_receive_waits_for_a_later_send(make_db_layer):
    sender, receiver = make_db_layer(), make_db_layer()
    waiting = asyncio.ensure_future(receive_within(receiver, "later"))
    await asyncio.sleep(0.2)  # deliberate: time passes, and nothing arrives
    assert not waiting.done()
    await sender.send("later", {"type": "x"})
    assert await waiting == {"type": "x"}


async def test_a_tuple_arrives_as_a_list(make_db_layer):
    """As through any serialising layer (the in-memory one keeps tuples)."""
    layer = make_db_layer()
    await layer.send("values", {"type": "t", "tuple": (1, 2), "deep": [(3,)]})
    got = await receive_within(layer, "values")
    assert got == {"type": "t", "tuple": [1, 2], "deep": [[3]]}


async def test_a_received_message_leaves_no_row(make_db_layer, backend):
    layer = make_db_layer()
    await layer.send("once", {"type": "only"})
    assert await count_rows(backend, ChannelMessage) == 1
    assert await receive_within(layer, "once") == {"type": "only"}

    async def no_rows() -> bool:
        return await count_rows(backend, ChannelMessage) == 0

    await eventually(no_rows)


async def test_bad_input_is_refused_and_nothing_is_queued(make_db_layer, backend):
    """The errors say what is wrong (the contract only asks for TypeError), a
    name with a trailing newline is refused (Channels' own check lets it
    through), and a message over ``max_message_size`` is refused."""
    layer = make_db_layer(max_message_size=10_000)
    with pytest.raises(TypeError, match="dict"):
        await layer.send("bad", ["not", "a", "dict"])
    with pytest.raises(TypeError, match=r"message\['when'\]"):
        await layer.send("bad", {"when": object()})
    with pytest.raises(TypeError, match="invalid"):
        await layer.send("bad name", {"type": "x"})
    with pytest.raises(TypeError, match="invalid"):
        await layer.receive("chat\n")
    with pytest.raises(MessageTooLarge, match="10000"):
        await layer.send("bad", {"blob": b"x" * 20_000})
    assert await count_rows(backend, ChannelMessage) == 0


async def test_channel_full_names_the_channel_and_its_capacity(make_db_layer):
    """(channels_redis raises a bare ChannelFull, so the contract cannot ask.)"""
    layer = make_db_layer(capacity=3)
    for n in range(3):
        await layer.send("bounded", {"n": n})
    with pytest.raises(ChannelFull, match="'bounded' already holds 3"):
        await layer.send("bounded", {"n": 3})


async def test_expired_messages_leave_the_table(make_db_layer, backend):
    layer = make_db_layer(expiry=0.3, cleanup_interval=0.05)
    await layer.send("stale", {"type": "old"})
    await asyncio.sleep(0.5)  # deliberate: past the 0.3 s expiry
    assert await count_rows(backend, ChannelMessage) == 1

    async def traffic_cleaned_up() -> bool:
        # Cleanup piggy-backs on traffic: the expired row leaves the table.
        await layer.send("fresh", {"type": "new"})
        await receive_within(layer, "fresh")
        return await count_rows(backend, ChannelMessage) == 0

    await eventually(traffic_cleaned_up)


async def test_process_specific_channels_across_two_layers(make_db_layer):
    server, worker = make_db_layer(), make_db_layer()
    channels = [await server.new_channel() for _ in range(3)]
    receivers = [asyncio.ensure_future(receive_within(server, c)) for c in channels]
    await eventually(lambda: all(database_receiving(server, c) for c in channels))
    for n, channel in enumerate(channels):
        await worker.send(channel, {"n": n})
    assert [(await r)["n"] for r in receivers] == [0, 1, 2]


async def test_bang_channels_keep_order_whether_or_not_a_message_rides_along(
    make_db_layer, backend
):
    """On PostgreSQL small messages to ``!`` channels come in their notification,
    large ones are claimed from the table: mixed, they still arrive in order,
    once each, and leave nothing behind in the table."""
    sender, receiver = make_db_layer(), make_db_layer()
    channel = await receiver.new_channel()
    assert await nothing_within(receiver, channel, 0.1)
    sizes = [10, 6000, 10, 10, 9000, 10] * 10

    async def send_all():
        for n, size in enumerate(sizes):
            await sender.send(channel, {"n": n, "pad": "x" * size})

    sending = asyncio.ensure_future(send_all())
    got = []
    while len(got) < len(sizes):
        message = await receive_within(receiver, channel)
        got.append(message["n"])
        assert len(message["pad"]) == sizes[message["n"]]
    await sending
    assert got == list(range(len(sizes)))
    assert await nothing_within(receiver, channel, 0.3)
    assert await count_rows(backend, ChannelMessage) == 0


async def test_a_message_arriving_while_nobody_receives_waits_for_the_receiver(
    make_db_layer, backend
):
    sender, receiver = make_db_layer(), make_db_layer()
    channel = await receiver.new_channel()
    assert await nothing_within(receiver, channel, 0.1)
    for n in range(5):
        await sender.send(channel, {"n": n})
    # Deliberate: notifications arrive (and are dropped) with no receiver
    # waiting; the messages must still be there afterwards.
    await asyncio.sleep(0.3)
    assert [(await receive_within(receiver, channel))["n"] for _ in range(5)] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert await count_rows(backend, ChannelMessage) == 0


async def test_rows_claimed_ahead_go_back_when_their_process_stops_receiving(
    make_db_layer,
):
    """Under backlog a process claims a normal channel's rows ahead of its
    receivers; those it does not use return within a second or so."""
    busy, idle = make_db_layer(), make_db_layer()
    for n in range(10):
        await busy.send("backlog", {"n": n})
    first = [(await receive_within(busy, "backlog"))["n"] for _ in range(3)]
    rest = [(await receive_within(idle, "backlog", 5))["n"] for _ in range(7)]
    assert sorted(first + rest) == list(range(10))
    assert first == [0, 1, 2]


async def test_synchronous_code_sends_with_async_to_sync(make_db_layer):
    """Each call from plain sync code runs on a fresh event loop; all arrive."""
    layer = make_db_layer()

    def like_a_view() -> None:
        for n in range(3):
            async_to_sync(layer.send)("from-sync", {"n": n})

    await asyncio.to_thread(like_a_view)
    got = [(await receive_within(layer, "from-sync"))["n"] for _ in range(3)]
    assert got == [0, 1, 2]


# -- groups ---------------------------------------------------------------


async def test_group_send_reaches_every_member_once(make_db_layer):
    server, worker = make_db_layer(), make_db_layer()
    channels = [await server.new_channel() for _ in range(20)]
    for channel in channels:
        await server.group_add("room", channel)
    await server.group_add("room", channels[0])  # re-adding does not duplicate
    assert await worker.group_send("room", {"type": "hello"}) == 0
    for channel in channels:
        assert await receive_within(server, channel) == {"type": "hello"}
        assert await nothing_within(server, channel, 0.05)


async def test_group_add_renews_the_membership(make_db_layer, backend):
    layer = make_db_layer(group_expiry=0.6)
    channel = await layer.new_channel()
    await layer.group_add("renewed", channel)
    await asyncio.sleep(0.4)  # deliberate, as are the next: expiry is the subject
    await layer.group_add("renewed", channel)
    await asyncio.sleep(0.4)  # 0.8 s after the first add, 0.4 s after renewal
    await layer.group_send("renewed", {"type": "still"})
    assert await receive_within(layer, channel) == {"type": "still"}
    assert await count_rows(backend, GroupMembership) == 1


async def test_expired_messages_take_their_channel_out_of_groups(
    make_db_layer, backend
):
    layer = make_db_layer(expiry=0.2, cleanup_interval=0.05)
    await layer.group_add("g", "abandoned")
    await layer.send("abandoned", {"type": "never read"})
    await asyncio.sleep(0.3)  # deliberate: past the 0.2 s expiry
    await layer.send("elsewhere", {})  # traffic triggers the cleanup
    await asyncio.sleep(0.2)  # deliberate: past the cleanup interval
    await layer.send("elsewhere", {})
    assert await count_rows(backend, GroupMembership) == 0


def vacuum_state() -> tuple[object, int]:
    """The message table's last vacuum and its dead rows, as PostgreSQL's
    statistics report them."""
    try:
        with connections["postgres"].cursor() as cursor:
            cursor.execute(
                "SELECT greatest(last_vacuum, last_autovacuum), n_dead_tup "
                "FROM pg_stat_user_tables WHERE relid = %s::regclass",
                [ChannelMessage._meta.db_table],
            )
            return cursor.fetchone()
    finally:
        connections["postgres"].close()  # this thread's, or teardown would wait


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_cleanup_vacuums_the_tables_after_churn(
    make_db_layer, backend, monkeypatch
):
    """Queue churn leaves dead rows; the layer reclaims them without waiting for
    autovacuum (which may be off, and visits a database once a minute).

    (SQLite reuses the pages of deleted rows by itself.)
    """
    from asgiref.sync import sync_to_async

    from channels_app.layers.database import postgres_sql

    monkeypatch.setattr(postgres_sql, "VACUUM_DEAD_ROWS", 100)
    vacuumed_before, _ = await sync_to_async(vacuum_state)()
    layer = make_db_layer(cleanup_interval=0.05, vacuum_interval=0.0)
    for n in range(300):
        await layer.send("churn", {"n": n})
        await layer.receive("churn")
    deadline = time.monotonic() + 5
    while True:
        await layer.send("churn", {})  # traffic triggers the cleanup
        await layer.receive("churn")
        vacuumed, dead = await sync_to_async(vacuum_state)()
        if vacuumed != vacuumed_before or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert vacuumed is not None and vacuumed != vacuumed_before
    assert dead < 300
    await layer.send("churn", {"after": "vacuum"})
    assert await receive_within(layer, "churn") == {"after": "vacuum"}


def test_vacuum_waits_for_churn_and_for_the_interval():
    """Dead rows past the threshold plus a fifth of the live ones, and a last
    vacuum (by anyone) at least ``vacuum_interval`` ago; only for the process
    that holds the cleanup lock."""
    from channels_app.layers.database.postgres_sql import VACUUM_DEAD_ROWS, vacuum_due

    due = vacuum_due

    def cleanup(held=True, dead=VACUUM_DEAD_ROWS, live=0, since=None):
        return (held, dead, live, since, None)

    assert due(cleanup(), 1.0)
    assert due(cleanup(since=1.5), 1.0)
    assert not due(cleanup(since=0.5), 1.0)
    assert not due(cleanup(dead=VACUUM_DEAD_ROWS - 1), 1.0)
    assert not due(cleanup(live=50_000, dead=VACUUM_DEAD_ROWS + 9_999), 1.0)
    assert due(cleanup(live=50_000, dead=VACUUM_DEAD_ROWS + 10_000), 1.0)
    assert not due(cleanup(held=False), 1.0)
    assert not due(cleanup(), None)


async def test_flush_empties_the_tables(make_db_layer, backend):
    layer = make_db_layer()
    await layer.send("a", {})
    await layer.group_add("g", "b")
    assert await count_rows(backend, ChannelMessage) == 1
    assert await count_rows(backend, GroupMembership) == 1
    await layer.flush()
    assert await count_rows(backend, ChannelMessage) == 0
    assert await count_rows(backend, GroupMembership) == 0


# -- configuration ----------------------------------------------------------


def test_built_from_channel_layers_settings(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_app.layers.database.DatabaseChannelLayer",
            "CONFIG": {"database": "default", "expiry": 30, "capacity": 7},
        }
    }
    layer = channel_layers["default"]
    assert isinstance(layer, DatabaseChannelLayer)
    assert (layer.expiry, layer.capacity, layer.database) == (30, 7, "default")
    assert layer.extensions == ["groups", "flush"]


def test_unknown_database_or_option_is_a_clear_error(settings):
    from channels_app.exceptions import InvalidChannelLayerError

    with pytest.raises(InvalidChannelLayerError, match="'nowhere' is not in DATABASES"):
        DatabaseChannelLayer(database="nowhere")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_app.layers.database.DatabaseChannelLayer",
            "CONFIG": {"alias": "default"},
        }
    }
    with pytest.raises(InvalidChannelLayerError, match="alias"):
        channel_layers["default"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_polling_latency_on_sqlite_is_bounded(make_db_layer):
    """Without notifications a receiver in another process polls at most 0.1 s."""
    sender, receiver = make_db_layer(), make_db_layer()
    waiting = asyncio.ensure_future(receive_within(receiver, "slow"))
    await asyncio.sleep(1.0)  # deliberate: let the back-off reach its ceiling
    sent = time.monotonic()
    await sender.send("slow", {})
    await waiting
    assert time.monotonic() - sent < 1.0
    assert connections["default"].vendor == "sqlite"
