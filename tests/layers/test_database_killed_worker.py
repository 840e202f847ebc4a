"""A worker killed (SIGKILL) in the middle of a backlog on a normal channel.

Messages its receivers were handed (their consumer started) must never be
delivered again, and everything else must still reach the next receiver:
a claim takes only what the receivers waiting for it need, so a process
holds nothing it has not handed out.
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

from channels_app.layers.database.models import ChannelMessage
from tests.servers import ROOT

from .database_fixtures import database_env, nothing_within
from .test_database_layer import count_rows

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MESSAGES = 300
KILLS = 3
RECEIVERS = 2
HANDED_EACH = 12


async def start_and_kill_a_worker(backend: str) -> list[int]:
    """A worker takes messages and is killed: what it was handed."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.layers.database_worker",
        "jobs",
        str(RECEIVERS),
        str(HANDED_EACH),
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
    handed: list[int] = report["handed"]
    return handed


async def test_a_killed_worker_loses_only_what_it_handed_out(make_db_layer, backend):
    sender = make_db_layer(capacity=MESSAGES * 2)
    for start in range(0, MESSAGES, 50):
        await asyncio.gather(
            *(sender.send("jobs", {"n": n}) for n in range(start, start + 50))
        )
    handed: list[int] = []
    for _ in range(KILLS):
        got = await start_and_kill_a_worker(backend)
        assert len(got) == RECEIVERS * HANDED_EACH
        handed += got
    assert len(set(handed)) == len(handed), "a worker was handed a message twice"

    receiver = make_db_layer()
    rest: list[int] = []
    deadline = time.monotonic() + 15
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
    assert not lost, f"{len(lost)} messages were lost with the killed workers"
    assert await nothing_within(receiver, "jobs", 0.5)
    assert await count_rows(backend, ChannelMessage) == 0
