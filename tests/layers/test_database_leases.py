"""Leases on a normal channel's messages claimed ahead of their receivers.

Under backlog a process claims rows ahead of its receivers.  If it is
killed (SIGKILL) before handing them out, they must return to the channel
once their lease expires; messages its receivers were handed (their
consumer started) must never be delivered again, and a holder must not
hand out a row whose lease it lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from channels_app.layers.database.models import ChannelMessage
from tests.servers import ROOT

from .database_fixtures import ALIASES, database_env, nothing_within, receive_within
from .test_database_layer import count_rows

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MESSAGES = 300
KILLS = 3
RECEIVERS = 2
HANDED_EACH = 12
#: Seconds a dead worker's claimed rows stay leased to it.
LEASE = 1.0


async def start_and_kill_a_worker(backend: str) -> tuple[list[int], int]:
    """A worker takes messages, holds more, and is killed: what it was handed."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.layers.database_worker",
        "jobs",
        str(RECEIVERS),
        str(HANDED_EACH),
        json.dumps({"lease": LEASE}),
        cwd=ROOT,
        env=database_env(backend),
        stdout=subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(worker.stdout.readline(), 30)
        report = json.loads(line)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        await worker.wait()
    assert worker.returncode == -signal.SIGKILL
    return report["handed"], report["held"]


async def test_a_killed_worker_loses_only_what_it_handed_out(make_db_layer, backend):
    sender = make_db_layer(capacity=MESSAGES * 2)
    for start in range(0, MESSAGES, 50):
        await asyncio.gather(
            *(sender.send("jobs", {"n": n}) for n in range(start, start + 50))
        )
    handed: list[int] = []
    held = 0
    for _ in range(KILLS):
        got, holding = await start_and_kill_a_worker(backend)
        assert len(got) == RECEIVERS * HANDED_EACH
        handed += got
        held += holding
    assert held, "the workers should have claimed rows ahead of their receivers"
    assert len(set(handed)) == len(handed), "a worker was handed a message twice"

    receiver = make_db_layer()
    rest: list[int] = []
    deadline = time.monotonic() + LEASE + 15
    while len(rest) < MESSAGES - len(handed) and time.monotonic() < deadline:
        try:
            message = await asyncio.wait_for(
                receiver.receive("jobs"), deadline - time.monotonic()
            )
        except asyncio.TimeoutError:
            break
        rest.append(message["n"])
    assert not set(rest) & set(handed), "a message handed out was delivered again"
    assert len(set(rest)) == len(rest), "a message was delivered twice"
    lost = sorted(set(range(MESSAGES)) - set(handed) - set(rest))
    assert not lost, f"{len(lost)} messages held by killed workers never came back"
    assert await nothing_within(receiver, "jobs", 0.5)
    assert await count_rows(backend, ChannelMessage) == 0


def sql(backend: str, statement: str, params: tuple = ()) -> list[tuple]:
    with connections[ALIASES[backend]].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


async def hold_some(layer, channel: str, received: list[int]) -> set[int]:
    """Receive from a backlog until the layer holds rows ahead of its receiver."""
    inbox = layer._state().inbox(channel)
    for _ in range(30):
        received.append((await receive_within(layer, channel))["n"])
        if inbox.leased:
            return set(inbox.leased)
    raise AssertionError("the layer never claimed rows ahead of its receiver")


async def test_a_holder_renews_its_leases_while_it_lives(make_db_layer, backend):
    lease = 0.3
    holder = make_db_layer(lease=lease)
    for n in range(50):
        await holder.send("jobs", {"n": n})
    held = await hold_some(holder, "jobs", [])
    leases = (
        "SELECT min(lease_expires) FROM channels_app_message WHERE lease_owner = %s"
    )
    owner = holder._state().lease_owner
    [(first,)] = await sync_to_async(sql)(backend, leases, (owner,))
    assert first is not None
    # Renewed before it lapsed, and again, while no receiver took anything
    # (the rows go back after LEASE = 1 s without takes).
    deadline = time.monotonic() + 0.9
    renewed = first
    while renewed < first + lease and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        [(renewed,)] = await sync_to_async(sql)(backend, leases, (owner,))
    assert renewed >= first + lease, "the leases were not renewed"
    assert renewed > time.time()
    assert held <= holder._state().inbox("jobs").leased


async def test_a_row_whose_lease_went_elsewhere_is_not_handed_out(
    make_db_layer, backend
):
    """A holder that stalled past its lease finds another process has the row."""
    holder = make_db_layer()
    for n in range(50):
        await holder.send("jobs", {"n": n})
    got: list[int] = []
    held = await hold_some(holder, "jobs", got)
    # What another process's claim of an expired lease does to the rows.
    stolen = await sync_to_async(sql)(
        backend,
        "UPDATE channels_app_message SET lease_owner = 'another', "
        "lease_expires = %s WHERE lease_owner = %s RETURNING id",
        (time.time() + 60, holder._state().lease_owner),
    )
    assert {row_id for (row_id,) in stolen} == held
    while True:
        try:
            got.append((await receive_within(holder, "jobs", 0.5))["n"])
        except asyncio.TimeoutError:
            break
    assert len(got) == len(set(got)) == 50 - len(held)
    assert await count_rows(backend, ChannelMessage) == len(held)  # still theirs
