"""A channel layer that lives inside one process.

Good for tests, development and single-process deployments.  Every operation
costs time proportional to what it touches (one channel, or the members of
one group), never to how many other channels or groups exist: expiry is kept
on two heaps ordered by deadline, group membership has a reverse index from
channel to groups, and reclaiming memory happens a little at a time as
deadlines pass (on any operation, and on a timer while the layer is idle).

The pieces have modules of their own: one channel's queue and receivers
(:mod:`.inmemory_queue`), group membership (:mod:`.inmemory_groups`), the
idle sweep (:mod:`.sweep_timer`) and the Channels-shaped ``channels`` and
``groups`` views (:mod:`.inmemory_views`).  Every clock read is here, on
``monotonic``, which tests that fake time patch.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import heapq
import itertools
import logging
import secrets
from collections.abc import Mapping
from time import monotonic
from time import time as wall_clock
from typing import Any

from ..exceptions import ChannelFull
from ..logging_limits import RateLimitedLog
from ..types import Message
from .base import BaseChannelLayer, require_positive, warn_members_skipped
from .dict_compaction import Compaction
from .group_loss import GroupLossWatches
from .inmemory_groups import GroupMemberships
from .inmemory_queue import NO_MESSAGES, ChannelQueue, ChannelSource, Item
from .inmemory_views import ChannelsShapedViews
from .messages import is_flat, portable_copy, require_dict
from .sweep_timer import SweepTimer

logger = logging.getLogger("channels_app.layers")

#: The longest gap between idle sweeps, in seconds.
MAX_SWEEP_INTERVAL = 1.0


def _clock() -> float:
    """The layer's clock, looked up at each call so a patched one applies."""
    return monotonic()


class InMemoryChannelLayer(ChannelsShapedViews, BaseChannelLayer):
    """In-process channel layer with expiry, capacities and groups.

    ``require_portable_messages`` (on by default) refuses, with a
    ``TypeError`` naming the key, any value a network layer could not
    serialise, so code tested here does not lose data in production.
    ``group_send`` returns how many members were skipped because their
    channel was full; :meth:`stats` reports sizes and running totals.
    Meant for one event loop; a send made on another thread's loop (such as
    ``async_to_sync`` in a plain thread) still wakes a waiting receiver safely.

    Test suites written for Channels keep working: ``channels`` and ``groups``
    are read-only views shaped like Channels' dicts, and ``_clean_expired`` /
    ``_remove_from_groups`` exist and are called at Channels' moments.
    """

    extensions = ["groups", "flush"]

    #: Seconds between two warnings about full members of the same group;
    #: ``full_channel_warnings.interval`` changes it for one layer.
    full_warning_interval: float = 10.0

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
        require_portable_messages: bool = True,
    ) -> None:
        require_positive("expiry", expiry)
        require_positive("group_expiry", group_expiry)
        require_positive("capacity", capacity, integer=True)
        super().__init__(
            expiry=expiry, capacity=capacity, channel_capacity=channel_capacity
        )
        for _, value in self._capacity_rules:
            require_positive("channel_capacity values", value, integer=True)
        self.group_expiry = group_expiry
        self.require_portable_messages = require_portable_messages
        self._channels: dict[str, ChannelQueue] = {}
        self._channel_deletions = Compaction()
        self._memberships = GroupMemberships(group_expiry)
        # (deadline, tie-breaker, channel) for channels holding messages.
        self._message_deadlines: list[tuple[float, int, ChannelQueue]] = []
        self._tiebreak = itertools.count()
        self._timer = SweepTimer(
            self._sweep, min(MAX_SWEEP_INTERVAL, expiry / 10), _clock
        )
        self.dropped_messages = 0
        self.expired_messages = 0
        #: At most one "members skipped" warning per group per interval.
        self.full_channel_warnings = RateLimitedLog(logger, self.full_warning_interval)
        self._group_loss_watches = GroupLossWatches()

    # -- channels -----------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        """Queue ``message`` on ``channel``; ``ChannelFull`` at capacity."""
        if channel not in self._channels:
            self.require_valid_channel_name(channel)
        message = self._copy(message)
        now = monotonic()
        self._expire_due(now)
        self._deliver(self._channel(channel), (now + self.expiry, message))

    async def receive(self, channel: str) -> Message:
        """The oldest unexpired message on ``channel``, waiting if there is none.

        Each message goes to exactly one receiver.  A receive cancelled after
        a message was handed to it puts that message back at the head.
        """
        queue, item = self._take_unexpired(channel)
        if item is not None:
            return item[1]
        waiter: asyncio.Future[Item] = asyncio.get_running_loop().create_future()
        queue.waiters.append(waiter)
        try:
            _, message = await waiter
        except asyncio.CancelledError:
            self._abandon(queue, waiter)
            raise
        self._forget_if_idle(queue)
        return message

    def push_source(self, channel: str) -> ChannelSource:
        """``channel`` as a message source that waits without a task.

        What consumers read their channel through (see
        :mod:`channels_app.multiplex`): the same queue and hand-over as
        :meth:`receive`, so both keep each message to exactly one receiver,
        plus out-of-band news of the groups the channel is dropped from by
        expiry (:mod:`.group_loss`); the channel itself never gets an extra
        message, as in Channels.  ``close()`` it when the consumer ends.
        """
        return ChannelSource(self, channel, self._group_loss_watches.open(channel))

    def _take_unexpired(self, channel: str) -> tuple[ChannelQueue, Item | None]:
        """``channel``'s queue and its oldest unexpired message, if any."""
        if channel not in self._channels:
            self.require_valid_channel_name(channel)
        now = self._clean_expired()
        if type(now) is not float:  # replaced by a test double: read the clock
            now = monotonic()
        queue = self._channel(channel)
        while queue.messages:
            item = queue.messages.popleft()
            if not queue.messages:  # emptied: back to the shared empty queue
                queue.messages = NO_MESSAGES
            if item[0] > now:
                return queue, item
            self._message_expired(queue)
        return queue, None

    def _abandon(self, queue: ChannelQueue, waiter: asyncio.Future[Item]) -> None:
        """A receiver stopped waiting: keep what was handed to it, if anything."""
        if waiter.done() and not waiter.cancelled():
            # Handed a message, then cancelled before running: keep it.
            self._put_back(queue.name, waiter.result())
        else:
            queue.forget_waiter(waiter)
            waiter.cancel()
        self._forget_if_idle(queue)

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A fresh process-specific (``!``) channel name."""
        name = f"{prefix.rstrip('.')}.inmemory!{secrets.token_hex(12)}"
        self.require_valid_channel_name(name)
        return name

    # -- groups -------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``, or renew its membership."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        now = monotonic()
        self._expire_due(now)
        deadline = self._memberships.add(group, channel, now)
        if deadline is not None:
            self._timer.ensure(deadline)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; a no-op when it is not a member."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self._expire_due(monotonic())
        self._memberships.leave(group, channel)

    async def group_send(self, group: str, message: Message) -> int:
        """Queue ``message`` on every member channel of ``group``.

        A member whose channel is full misses the message.  The number
        missed is returned and added to ``dropped_messages``, and one WARNING
        line states it, with the group, its size and the capacity — at most
        one line per group every ``full_warning_interval`` seconds: the
        group_sends in between are counted, and a line at the end of the
        interval states how many there were and how many members they missed
        in all (see ``channels_app.logging_limits.RateLimitedLog``).
        """
        self.require_valid_group_name(group)
        template = self._copy(message)
        now = self._clean_expired()
        if type(now) is not float:  # replaced by a test double: read the clock
            now = monotonic()
        members = self._memberships.members.get(group)
        if not members:
            return 0
        clone = dict.copy if is_flat(template) else portable_copy
        expires_at = now + self.expiry
        dropped = 0
        named: list[str] = []  # The first few members missed, to name them.
        capacities: set[int] = set()
        for channel in members:
            queue = self._channel(channel)
            try:
                self._deliver(queue, (expires_at, clone(template)))
            except ChannelFull:
                dropped += 1
                capacities.add(queue.capacity)
                if len(named) < 3:
                    named.append(channel)
        if dropped:
            self.dropped_messages += dropped
            warn_members_skipped(
                self.full_channel_warnings,
                group,
                dropped,
                len(members),
                named,
                capacities,
            )
        return dropped

    # -- flush, close, introspection ------------------------------------------

    async def flush(self) -> None:
        """Drop every message and group; pending receives keep waiting."""
        for queue in self._channels.values():
            queue.messages.clear()
            queue.armed = False
        self._channels = {
            name: queue for name, queue in self._channels.items() if queue.waiters
        }
        self._memberships.clear()
        self._message_deadlines.clear()
        self._timer.cancel()

    async def close(self) -> None:
        """Stop the idle sweep timer and write held-back warnings; the layer
        remains usable."""
        self._timer.cancel()
        self.full_channel_warnings.flush()

    def stats(self) -> dict[str, int]:
        """Sizes of the internal structures and running totals, for monitoring."""
        return {
            "channels": len(self._channels),
            "queued_messages": sum(len(q.messages) for q in self._channels.values()),
            "waiting_receivers": sum(len(q.waiters) for q in self._channels.values()),
            "groups": len(self._memberships.members),
            "memberships": self._memberships.count,
            "deadlines": len(self._message_deadlines)
            + len(self._memberships.deadlines),
            "dropped_messages": self.dropped_messages,
            "expired_messages": self.expired_messages,
        }

    # -- delivery -------------------------------------------------------------

    def _copy(self, message: Any) -> Message:
        if self.require_portable_messages:
            return portable_copy(message)
        require_dict(message)
        return copy.deepcopy(message)

    def _channel(self, name: str) -> ChannelQueue:
        queue = self._channels.get(name)
        if queue is None:
            queue = self._channels[name] = ChannelQueue(name, self.get_capacity(name))
        return queue

    def _deliver(self, queue: ChannelQueue, item: Item) -> None:
        """Hand ``item`` to the oldest live waiter, or queue it."""
        queued = queue.deliver(item, functools.partial(self._put_back, queue.name))
        if queued and not queue.armed:
            self._arm(queue, item[0])

    def _put_back(self, name: str, item: Item) -> None:
        """Return an undelivered message to the head of its channel's queue."""
        queue = self._channel(name)
        queue.enqueue(item, first=True)
        if not queue.armed:
            self._arm(queue, item[0])
        queue.redeliver(functools.partial(self._put_back, name))

    def _forget_if_idle(self, queue: ChannelQueue) -> None:
        idle = not (queue.armed or queue.waiters or queue.messages)
        if idle and self._channels.get(queue.name) is queue:
            del self._channels[queue.name]
            if self._channel_deletions.deleted(len(self._channels)):
                self._channels = dict(self._channels)

    # -- expiry ---------------------------------------------------------------

    def _arm(self, queue: ChannelQueue, deadline: float) -> None:
        queue.armed = True
        heapq.heappush(self._message_deadlines, (deadline, next(self._tiebreak), queue))
        self._timer.ensure(deadline)

    def _expire_due(self, now: float) -> None:
        """Handle every deadline that has passed; O(1) when none has."""
        deadlines = self._message_deadlines
        while deadlines and deadlines[0][0] <= now:
            queue = heapq.heappop(deadlines)[2]
            queue.armed = False
            messages = queue.messages
            while messages and messages[0][0] <= now:
                messages.popleft()
                self.expired_messages += 1
                # Per message, as Channels does, so a spy counts the same calls;
                # after the first one it finds no groups left: O(1).
                self._remove_from_groups(queue.name)
            if messages:
                self._arm(queue, messages[0][0])
            else:
                self._forget_if_idle(queue)
        for group, channel in self._memberships.expire_due(now):
            self._group_loss_watches.report(channel, (group,))

    def _clean_expired(self) -> float:
        """Drop every message and membership whose time is up; return the time.

        Channels' name for its full sweep, which ``receive`` and
        ``group_send`` run first; ours run it at the same moments, through
        ``self`` so a fixture wrapping it sees each call.  Here it only visits
        what is due (heap order), so it is O(1) when nothing is.  Returning
        the instant it used spares those callers a second clock read (Channels
        returns None; a wrapper that returns what it wraps passes it on).
        """
        now = monotonic()
        self._expire_due(now)
        return now

    def _message_expired(self, queue: ChannelQueue) -> None:
        """A receiver found an expired message: its channel leaves its groups."""
        self.expired_messages += 1
        self._remove_from_groups(queue.name)

    def _remove_from_groups(self, channel: str) -> None:
        """Unread messages expiring mean nobody reads ``channel``: drop it.

        Channels' name and meaning (take ``channel`` out of every group), and
        called through ``self`` whenever a message expires, so test fixtures
        that wrap it see the same calls; the reverse index makes it cost the
        channel's own groups only.
        """
        groups = self._memberships.remove_channel(channel)
        self._group_loss_watches.report(channel, groups)

    def _sweep(self) -> None:
        """The idle sweep: expire what is due, then wait for the next deadline."""
        self._expire_due(monotonic())
        upcoming = [
            deadline
            for deadline in (
                self._message_deadlines[0][0] if self._message_deadlines else None,
                self._memberships.next_deadline(),
            )
            if deadline is not None
        ]
        if upcoming:
            self._timer.ensure(min(upcoming))

    @staticmethod
    def _wall_clock_offset() -> float:
        """What to add to one of our monotonic instants to get Channels'
        ``time.time()``."""
        return wall_clock() - monotonic()
