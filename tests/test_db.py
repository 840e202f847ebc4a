"""Database connection hygiene: fresh connections when needed, no hop otherwise."""

import asyncio
import contextvars
import math
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator as RawCommunicator
from django.db import connection, connections

from channels_app import db
from channels_app.consumer import AsyncConsumer
from channels_app.db import connection_activity, database_sync_to_async
from channels_app.testing import ApplicationCommunicator


@pytest.fixture
def clean_activity():
    connection_activity.dirty = False
    connection_activity.deadline = math.inf
    yield connection_activity


class NoDatabase(AsyncConsumer):
    async def work_do(self, message):
        await self.send({"type": "work.done", "n": message["n"]})


async def test_consumer_without_database_work_never_hops(clean_activity):
    comm = RawCommunicator(NoDatabase.as_asgi(), {"type": "work"})
    with mock.patch("channels_app.db.close_old_connections") as closer:
        for n in range(50):
            await comm.send_input({"type": "work.do", "n": n})
            assert (await comm.receive_output())["n"] == n
    assert closer.call_count == 0
    comm.stop(exceptions=False)


def _current_connection():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.connection


def _close_connection():
    connection.close()


class UsesOrm(AsyncConsumer):
    async def work_do(self, message):
        self.scope["seen"].append(await sync_to_async(_current_connection)())
        await self.send({"type": "work.done"})


@pytest.mark.django_db(transaction=True)
async def test_orm_consumer_gets_fresh_connection_after_conn_max_age(clean_activity):
    settings_dict = connections.settings["default"]
    old_max_age = settings_dict.get("CONN_MAX_AGE", 0)
    settings_dict["CONN_MAX_AGE"] = 0.3
    await sync_to_async(_close_connection)()
    try:
        comm = RawCommunicator(UsesOrm.as_asgi(), {"type": "work", "seen": []})
        seen = comm.scope["seen"]
        for pause in (0, 0, 0.5):
            await asyncio.sleep(pause)  # deliberate: 0.5 s outlives CONN_MAX_AGE
            await comm.send_input({"type": "work.do"})
            await comm.receive_output()
        comm.stop(exceptions=False)
    finally:
        settings_dict["CONN_MAX_AGE"] = old_max_age
    first, second, third = seen
    assert first is second, "a young connection is reused"
    assert third is not second, "an expired connection is replaced before the handler"


async def test_idle_connection_hops_only_once_its_deadline_passes(clean_activity):
    loop = asyncio.get_running_loop()
    clean_activity.deadline = loop.time() + 3600
    assert not clean_activity.needs_tidying()
    clean_activity.deadline = 0
    assert clean_activity.needs_tidying()


@pytest.mark.django_db(transaction=True)
async def test_a_query_marks_connections_for_tidying(clean_activity):
    await sync_to_async(_current_connection)()
    assert clean_activity.needs_tidying()
    await db.aclose_old_connections()
    assert not clean_activity.dirty


async def test_database_sync_to_async_closes_before_and_after():
    calls = []

    @database_sync_to_async
    def work():
        calls.append("work")
        return 42

    with mock.patch(
        "channels_app.db.close_old_connections",
        side_effect=lambda: calls.append("close"),
    ):
        assert await work() == 42
    assert calls == ["close", "work", "close"]


async def test_database_sync_to_async_runs_in_a_given_context():
    # asgiref's ``context`` argument: the call sees (and changes) that
    # context instead of a copy of the caller's.
    var = contextvars.ContextVar("test_db_var", default="caller")
    chosen = contextvars.copy_context()
    chosen.run(var.set, "chosen")

    def read_and_set():
        seen = var.get()
        var.set("changed")
        return seen

    with mock.patch("channels_app.db.close_old_connections"):
        assert await database_sync_to_async(read_and_set, context=chosen)() == (
            "chosen"
        )
    assert chosen[var] == "changed"
    assert var.get() == "caller"


async def test_communicator_keeps_connections_open_for_test_transactions():
    closer = mock.Mock()

    class Threaded(AsyncConsumer):
        async def work_do(self, message):
            await database_sync_to_async(lambda: None)()
            await self.send({"type": "work.done"})

    comm = ApplicationCommunicator(Threaded.as_asgi(), {"type": "work"})
    with mock.patch("channels_app.db.close_old_connections", closer):
        await comm.send_input({"type": "work.do"})
        await comm.receive_output()
    assert closer.call_count == 0
    comm.stop(exceptions=False)
