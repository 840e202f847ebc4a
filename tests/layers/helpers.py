"""Waiting for layer messages in tests, with bounded time."""

from __future__ import annotations

import asyncio

import pytest


class FakeClock:
    """The in-memory layer's monotonic clock, moved by hand instead of sleeping
    (``monkeypatch.setattr(channels_app.layers.inmemory, "monotonic", clock)``)."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def receive_within(layer, channel: str, timeout: float = 5) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout)


class Listener:
    """Receives from one channel in the background, as a consumer does.

    Checking that nothing arrives never cancels a receive, which matters for
    layers where cancelling means "this consumer is gone" (pub/sub).
    """

    def __init__(self, layer, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self.inbox: asyncio.Queue[dict] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.inbox.put_nowait(await self.layer.receive(self.channel))

    def _raise_if_crashed(self) -> None:
        if self.task.done() and not self.task.cancelled():
            self.task.result()

    async def next(self, timeout: float = 5) -> dict:
        self._raise_if_crashed()
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def nothing(self, period: float) -> None:
        # Deliberate: "nothing arrives" can only be shown by waiting a while.
        await asyncio.sleep(period)
        self._raise_if_crashed()
        if not self.inbox.empty():
            pytest.fail(
                f"expected nothing on {self.channel!r}, received "
                f"{self.inbox.get_nowait()!r}"
            )

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def database_receiving(layer, channel: str, count: int = 1) -> bool:
    """Are ``count`` receives waiting on ``channel`` of a database layer, in
    this event loop, with the notifications that wake them listened for?

    Nothing public tells; tests about waking a receiver that already waits
    poll this (with :func:`tests.support.waiting.eventually`) instead of
    sleeping and hoping the receive got that far.
    """
    from channels_app.layers.database.backend import inbox_of

    waitlist = layer._loop_receivers().waitlists.get(inbox_of(channel))
    if waitlist is None or len(waitlist.waiters.get(channel, ())) < count:
        return False
    return waitlist.listening
