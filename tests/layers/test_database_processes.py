"""At most once across real processes: 8 receivers in 2 processes, 10,000 messages."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from tests.servers import ROOT

from .database_fixtures import database_env

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MESSAGES = 10_000
PROCESSES = 2
RECEIVERS_EACH = 4


async def test_each_message_reaches_exactly_one_of_8_receivers_in_2_processes(
    make_db_layer, backend
):
    sender = make_db_layer(capacity=MESSAGES * 2)
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.layers.database_worker",
            "jobs",
            str(RECEIVERS_EACH),
            cwd=ROOT,
            env=database_env(backend),
            stdout=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            line = await asyncio.wait_for(worker.stdout.readline(), 30)
            assert line.strip() == b"ready"
        batch = 100
        for start in range(0, MESSAGES, batch):
            await asyncio.gather(
                *(sender.send("jobs", {"n": n}) for n in range(start, start + batch))
            )
        for _ in range(PROCESSES * RECEIVERS_EACH):
            await sender.send("jobs", {"stop": True})
        outputs = [
            await asyncio.wait_for(worker.communicate(), 90) for worker in workers
        ]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    received = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    everything = [n for got in received for n in got]
    assert len(everything) == len(set(everything)), "a message was delivered twice"
    assert sorted(everything) == list(range(MESSAGES)), "a message was lost"
    assert all(received), "both processes should have taken part"
