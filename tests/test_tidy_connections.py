"""Consumers that need their connections tidied at the same instant share one
trip to the ORM thread (``channels_app.db.tidy_connections``)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from channels_app import db


@pytest.fixture
def tidy_calls(monkeypatch):
    """Each call of the thread-side tidy-up; ``release`` lets them finish."""
    calls: list[str] = []
    release = threading.Event()

    def tidy() -> None:
        calls.append(threading.current_thread().name)
        assert release.wait(5)

    monkeypatch.setattr(db, "_close_old_connections", tidy)
    return calls, release


async def test_consumers_asking_at_once_share_one_tidy_up(tidy_calls):
    calls, release = tidy_calls
    waiting = [asyncio.ensure_future(db.tidy_connections()) for _ in range(100)]
    while not calls:  # the first has reached the ORM thread
        await asyncio.sleep(0.001)
    release.set()
    await asyncio.gather(*waiting)
    assert len(calls) == 1
    # Once it is done, the next one that asks gets a tidy-up of its own.
    await db.tidy_connections()
    assert len(calls) == 2


async def test_a_cancelled_waiter_does_not_cancel_the_others(tidy_calls):
    calls, release = tidy_calls
    first = asyncio.ensure_future(db.tidy_connections())
    second = asyncio.ensure_future(db.tidy_connections())
    while not calls:
        await asyncio.sleep(0.001)
    first.cancel()
    release.set()
    await second  # completes: the shared tidy-up was not cancelled
    assert first.cancelled() and len(calls) == 1
