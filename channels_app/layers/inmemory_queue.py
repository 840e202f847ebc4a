"""One channel of the in-memory layer: its queued messages and its receivers.

Handing a message to a receiver is the delicate part (the receiver may be
waiting on another thread's event loop, or cancelled in between), so it lives
here with the queue it belongs to rather than among the layer's bookkeeping.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..exceptions import ChannelFull
from ..types import Message
from .group_loss import NEWS, GroupLossWatch

#: ``(expires_at, message)``, as queued and as handed to receivers.
Item = tuple[float, Message]


class _NoMessages(deque[Item]):
    """The one empty queue every channel without queued messages shares.

    An idle consumer's channel would otherwise hold a deque of its own (760
    bytes, one per open connection) that stays empty.  Invariant: nothing is
    ever added to it -- :meth:`ChannelQueue.enqueue` gives a channel its own
    deque first -- and the methods that add raise, so a mistake fails loudly
    instead of leaking messages into every channel.
    """

    def _refuse(self, *args: object) -> None:
        raise TypeError("NO_MESSAGES is shared; use ChannelQueue.enqueue")

    append = appendleft = extend = extendleft = insert = _refuse


NO_MESSAGES: deque[Item] = _NoMessages()


class ChannelQueue:
    """Queued messages and waiting receivers of one channel name."""

    __slots__ = ("armed", "capacity", "messages", "name", "waiters")

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        #: ``(expires_at, message)`` in arrival order (:data:`NO_MESSAGES`
        #: until the first one is queued).
        self.messages: deque[Item] = NO_MESSAGES
        #: Futures of pending ``receive()`` calls, oldest first.  A list, not
        #: a deque: a channel nearly always has at most one receiver (its
        #: consumer), so ``pop(0)`` is O(1) in practice, and an idle consumer's
        #: channel holds 88 bytes here instead of a deque's 760.
        self.waiters: list[asyncio.Future[Item]] = []
        #: Whether the layer's expiry heap holds an entry for this channel.
        self.armed = False

    def deliver(self, item: Item, put_back: Callable[[Item], None]) -> bool:
        """Hand ``item`` to a receiver, else queue it; True when it was queued.

        ``ChannelFull`` when it would have to be queued beyond ``capacity``.
        """
        if self.hand_to_waiter(item, put_back):
            return False
        if len(self.messages) >= self.capacity:
            raise ChannelFull(
                f"Channel {self.name!r} already holds {self.capacity} messages"
            )
        self.enqueue(item)
        return True

    def enqueue(self, item: Item, *, first: bool = False) -> None:
        """Queue ``item`` last (or ``first``), in a deque of this channel's own."""
        if self.messages is NO_MESSAGES:
            self.messages = deque()
        if first:
            self.messages.appendleft(item)
        else:
            self.messages.append(item)

    def redeliver(self, put_back: Callable[[Item], None]) -> None:
        """Hand queued messages, oldest first, to receivers that are waiting."""
        if not self.waiters:
            return
        messages, self.messages = self.messages, NO_MESSAGES
        for position, pending in enumerate(messages):
            try:
                self.deliver(pending, put_back)
            except ChannelFull:  # only reachable when put back over capacity
                for rest in itertools.islice(messages, position, None):
                    self.enqueue(rest)
                break

    def hand_to_waiter(self, item: Item, put_back: Callable[[Item], None]) -> bool:
        """Give ``item`` to the oldest live receiver; False if there is none.

        Nothing is handed over while older messages are queued.  A receiver
        on another thread's loop is woken through that loop; if it is gone by
        the time the hand-over runs, ``put_back`` requeues the item.
        """
        if self.messages or not self.waiters:
            return False
        loop = asyncio.get_running_loop()
        while self.waiters:
            waiter = self.waiters.pop(0)
            if waiter.done():
                continue
            if waiter.get_loop() is loop:
                waiter.set_result(item)
                return True
            if _hand_over_from_another_loop(waiter, item, put_back):
                return True
        return False

    def forget_waiter(self, waiter: asyncio.Future[Item]) -> None:
        """Drop a receiver that was cancelled before anything reached it."""
        try:
            self.waiters.remove(waiter)
        except ValueError:
            pass


class _Layer(Protocol):
    """What :class:`ChannelSource` uses of the in-memory layer."""

    def _take_unexpired(self, channel: str) -> tuple[ChannelQueue, Item | None]: ...

    def _abandon(self, queue: ChannelQueue, waiter: asyncio.Future[Item]) -> None: ...

    def _forget_if_idle(self, queue: ChannelQueue) -> None: ...


class ChannelSource:
    """A consumer's channel, and news of its lost groups, as one
    :class:`~channels_app.multiplex.PushSource`.

    While the channel is empty its consumer is a future in the channel's
    waiters, exactly where a pending ``receive()`` would be, so the hand-over
    (from any thread) and put-back rules are the same; it only needs no task
    and no coroutine frame while it waits.  A group loss completes that same
    future with :data:`~.group_loss.NEWS` (a done future in the waiters is
    skipped by every hand-over), so the news costs no second waiter.  News
    already there is given before queued messages.
    """

    __slots__ = ("channel", "layer", "queue", "watch")

    def __init__(self, layer: _Layer, channel: str, watch: GroupLossWatch) -> None:
        self.layer = layer
        self.channel = channel
        self.watch = watch
        self.queue: ChannelQueue | None = None

    def wait(self) -> asyncio.Future[Item]:
        ready: asyncio.Future[Item] = asyncio.get_running_loop().create_future()
        if self.watch.has_news:
            ready.set_result(NEWS)
            return ready
        queue, item = self.layer._take_unexpired(self.channel)
        self.queue = queue
        if item is None:
            queue.waiters.append(ready)
            self.watch.waiter = ready
        else:
            ready.set_result(item)
        return ready

    def take(self, ready: asyncio.Future[Item]) -> Message:
        self.watch.waiter = None
        item = ready.result()
        if item is NEWS:
            if self.queue is not None:
                self.queue.forget_waiter(ready)
                self.layer._forget_if_idle(self.queue)
            return self.watch.take()
        assert self.queue is not None  # a message came through the queue
        self.layer._forget_if_idle(self.queue)
        return item[1]

    def abandon(self, pending: asyncio.Future[Item]) -> None:
        self.watch.waiter = None
        queue = self.queue
        if queue is None:  # only ever waited for news, which the watch keeps
            pending.cancel()
        elif pending.done() and not pending.cancelled() and pending.result() is NEWS:
            queue.forget_waiter(pending)
            self.layer._forget_if_idle(queue)
        else:
            self.layer._abandon(queue, pending)

    def close(self) -> None:
        """The consumer is gone: stop collecting news for it."""
        self.watch.close()


def _hand_over_from_another_loop(
    waiter: asyncio.Future[Item], item: Item, put_back: Callable[[Item], None]
) -> bool:
    """Wake a receiver waiting on another thread's event loop, safely."""

    def hand_over() -> None:
        if waiter.done():
            put_back(item)
        else:
            waiter.set_result(item)

    try:
        waiter.get_loop().call_soon_threadsafe(hand_over)
    except RuntimeError:  # that loop is closed: its receiver is gone
        return False
    return True
