"""Telling a live consumer that its layer dropped its channel from groups.

A layer takes a channel out of its groups when a message to it expires
unread or its membership outlives ``group_expiry``.  The consumer behind it
may still be connected (it was only slow), and without a word it would stay
open and deaf to its groups.  The in-memory layer tells it out of band, through
a :class:`GroupLossWatch` the consumer opens for its channel, so nothing is
added to the channel itself and the layer's visible state stays what
Channels' layer shows; layers shared between processes send a
:data:`~channels_app.layers.base.GROUPS_LOST` message instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .base import GROUPS_LOST


class GroupLossWatch:
    """The groups one channel lost, waiting for its consumer to pick them up.

    ``receive`` is a message source like the channel's own ``receive``: it
    returns ``{"type": GROUPS_LOST, "groups": [...]}`` once there is news,
    merging losses reported in between into one message.
    """

    def __init__(self, registry: GroupLossWatches, channel: str) -> None:
        self._registry = registry
        self.channel = channel
        self._lost: set[str] = set()
        self._loop = asyncio.get_running_loop()
        # A future made only while ``receive`` waits, rather than an
        # ``asyncio.Event``: every consumer on the layer holds a watch, and an
        # Event's deque of waiters costs 760 bytes per connection.
        self._waiter: asyncio.Future[None] | None = None

    def report(self, groups: Iterable[str]) -> None:
        """Record ``groups`` as lost; callable from any thread."""
        self._lost.update(groups)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        while not self._lost:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        groups, self._lost = sorted(self._lost), set()
        return {"type": GROUPS_LOST, "groups": groups}

    def close(self) -> None:
        """Stop listening: the consumer is gone."""
        self._registry.forget(self)


class GroupLossWatches:
    """A layer's open watches, by channel; reporting to a channel without one
    is a dictionary miss, so layers can report on every loss."""

    def __init__(self) -> None:
        self._watches: dict[str, GroupLossWatch] = {}

    def open(self, channel: str) -> GroupLossWatch:
        watch = GroupLossWatch(self, channel)
        self._watches[channel] = watch
        return watch

    def forget(self, watch: GroupLossWatch) -> None:
        if self._watches.get(watch.channel) is watch:
            del self._watches[watch.channel]

    def report(self, channel: str, groups: Iterable[str]) -> None:
        watch = self._watches.get(channel)
        if watch is not None:
            groups = list(groups)
            if groups:
                watch.report(groups)
