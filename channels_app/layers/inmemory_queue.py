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

from ..exceptions import ChannelFull
from ..types import Message

#: ``(expires_at, message)``, as queued and as handed to receivers.
Item = tuple[float, Message]


class ChannelQueue:
    """Queued messages and waiting receivers of one channel name."""

    __slots__ = ("armed", "capacity", "messages", "name", "waiters")

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        #: ``(expires_at, message)`` in arrival order.
        self.messages: deque[Item] = deque()
        #: Futures of pending ``receive()`` calls, oldest first.
        self.waiters: deque[asyncio.Future[Item]] = deque()
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
        self.messages.append(item)
        return True

    def redeliver(self, put_back: Callable[[Item], None]) -> None:
        """Hand queued messages, oldest first, to receivers that are waiting."""
        if not self.waiters:
            return
        messages, self.messages = self.messages, deque()
        for position, pending in enumerate(messages):
            try:
                self.deliver(pending, put_back)
            except ChannelFull:  # only reachable when put back over capacity
                self.messages.extend(itertools.islice(messages, position, None))
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
            waiter = self.waiters.popleft()
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
