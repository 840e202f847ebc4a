"""Telling a live consumer that its layer dropped its channel from groups.

A layer takes a channel out of its groups when a message to it expires
unread or its membership outlives ``group_expiry``.  The consumer behind it
may still be connected (it was only slow), and without a word it would stay
open and deaf to its groups.  The in-memory layer tells it out of band, through
a :class:`GroupLossWatch` on the source the consumer reads its channel through,
so nothing is added to the channel itself and the layer's visible state stays
what Channels' layer shows; layers shared between processes send a
:data:`~channels_app.layers.base.GROUPS_LOST` message instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .base import GROUPS_LOST


class GroupLossWatch:
    """The groups one channel lost, waiting for its consumer to pick them up.

    Read through the consumer's :class:`~.inmemory_queue.ChannelSource`: news
    completes the future the source waits on (the one in the channel's
    waiters) and comes out as one ``{"type": GROUPS_LOST, "groups": [...]}``,
    losses reported in between merged into it.  While there is none it holds
    no set and no future of its own: every consumer on the layer holds a
    watch, so each costs only this slotted object.
    """

    __slots__ = ("_loop", "_lost", "_registry", "channel", "waiter")

    def __init__(self, registry: GroupLossWatches, channel: str) -> None:
        self._registry = registry
        self.channel = channel
        self._lost: set[str] | None = None
        self._loop = asyncio.get_running_loop()
        #: The future to complete with :data:`NEWS` when a loss is reported.
        self.waiter: asyncio.Future[Any] | None = None

    @property
    def has_news(self) -> bool:
        return bool(self._lost)

    def report(self, groups: Iterable[str]) -> None:
        """Record ``groups`` as lost; callable from any thread."""
        if self._lost is None:
            self._lost = set()
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
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(NEWS)

    def take(self) -> dict[str, Any]:
        """The news so far, as one message."""
        groups, self._lost = sorted(self._lost or ()), None
        return {"type": GROUPS_LOST, "groups": groups}

    def close(self) -> None:
        """Stop listening: the consumer is gone."""
        self._registry.forget(self)


#: What a channel source's future completes with when the news is a loss
#: rather than a message (compared by identity).
NEWS: tuple[float, dict[str, Any]] = (float("inf"), {"type": GROUPS_LOST})


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
