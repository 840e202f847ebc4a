"""A channel layer that lives inside one process.

Good for tests, development and single-process deployments.  Every operation
costs time proportional to what it touches (one channel, or the members of
one group), never to how many other channels or groups exist: expiry is kept
on two heaps ordered by deadline, group membership has a reverse index from
channel to groups, and reclaiming memory happens a little at a time as
deadlines pass (on any operation, and on a timer while the layer is idle).
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Iterator, Mapping
from time import monotonic
from time import time as wall_clock
from typing import Any

from ..exceptions import ChannelFull
from ..logging_limits import RateLimitedLog
from ..types import Message
from .base import BaseChannelLayer
from .group_loss import GroupLossWatch, GroupLossWatches
from .messages import is_flat, portable_copy, require_dict

logger = logging.getLogger("channels_app.layers")

#: The longest gap between idle sweeps, in seconds.
MAX_SWEEP_INTERVAL = 1.0


class _Channel:
    """Queued messages and waiting receivers of one channel name."""

    __slots__ = ("armed", "capacity", "messages", "name", "waiters")

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        #: ``(expires_at, message)`` in arrival order.
        self.messages: deque[tuple[float, Message]] = deque()
        #: Futures of pending ``receive()`` calls, oldest first.
        self.waiters: deque[asyncio.Future[tuple[float, Message]]] = deque()
        #: Whether the expiry heap holds an entry for this channel.
        self.armed = False


def _held(queue: _Channel) -> bool:
    """Whether Channels would still list this channel: messages or receivers.

    An empty channel may stay in our table until its expiry deadline (so
    sending to it again needs no new heap entry); Channels drops it at once.
    """
    return bool(queue.messages or queue.waiters)


def _wall_clock_offset() -> float:
    """What to add to one of our monotonic instants to get Channels' time.time()."""
    return wall_clock() - monotonic()


class _QueueView:
    """What Channels' ``layer.channels[name]`` is: a queue of (expiry, message).

    Read-only: it reports on the channel's live state (``qsize``, ``empty``,
    ``full``, ``maxsize``, and ``_queue`` to peek) the way an ``asyncio.Queue``
    would, with expiry on the wall clock as Channels stores it.  Messages go
    in and out through ``send`` and ``receive`` only, so that waiting
    receivers, capacity and expiry stay consistent.
    """

    __slots__ = ("_layer", "_name")

    def __init__(self, layer: InMemoryChannelLayer, name: str) -> None:
        self._layer = layer
        self._name = name

    def _messages(self) -> deque[tuple[float, Message]]:
        queue = self._layer._channels.get(self._name)
        return queue.messages if queue is not None else deque()

    @property
    def maxsize(self) -> int:
        queue = self._layer._channels.get(self._name)
        if queue is not None:
            return queue.capacity
        return self._layer.get_capacity(self._name)

    def qsize(self) -> int:
        return len(self._messages())

    def empty(self) -> bool:
        return not self._messages()

    def full(self) -> bool:
        return len(self._messages()) >= self.maxsize

    @property
    def _queue(self) -> deque[tuple[float, Message]]:
        """A snapshot of the queued ``(expires_at, message)``, oldest first."""
        offset = _wall_clock_offset()
        return deque((at + offset, message) for at, message in self._messages())

    def __repr__(self) -> str:
        size = self.qsize()
        return f"<channel queue {self._name!r} maxsize={self.maxsize} qsize={size}>"


class _ChannelsView(Mapping[str, "_QueueView"]):
    """``layer.channels``: the channels holding messages or waited on.

    That is the set Channels keeps (it drops a channel once a receive leaves
    it empty), so ``len()``, ``in`` and ``keys()`` answer the same.  Looking
    one name up is O(1); ``len()`` and iteration visit every channel the
    layer holds, which suits the tests and debugging they are for.
    """

    __slots__ = ("_layer",)

    def __init__(self, layer: InMemoryChannelLayer) -> None:
        self._layer = layer

    def __getitem__(self, name: str) -> _QueueView:
        queue = self._layer._channels.get(name)
        if queue is None or not _held(queue):
            raise KeyError(name)
        return _QueueView(self._layer, name)

    def __contains__(self, name: object) -> bool:
        queue = self._layer._channels.get(name)  # type: ignore[call-overload]
        return queue is not None and _held(queue)

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, q in self._layer._channels.items() if _held(q)])

    def __len__(self) -> int:
        return sum(1 for queue in self._layer._channels.values() if _held(queue))

    def __repr__(self) -> str:
        return repr({name: self[name] for name in self})


class _MembersView(Mapping[str, float]):
    """``layer.groups[group]``: member channel -> when it joined (``time.time()``)."""

    __slots__ = ("_group", "_layer")

    def __init__(self, layer: InMemoryChannelLayer, group: str) -> None:
        self._layer = layer
        self._group = group

    def _members(self) -> dict[str, float]:
        return self._layer._groups.get(self._group, {})

    def __getitem__(self, channel: str) -> float:
        return self._members()[channel] + _wall_clock_offset()

    def __contains__(self, channel: object) -> bool:
        return channel in self._members()

    def __iter__(self) -> Iterator[str]:
        # A snapshot: leaving the group while iterating it must not fail.
        return iter(list(self._members()))

    def __len__(self) -> int:
        return len(self._members())

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class _GroupsView(Mapping[str, "_MembersView"]):
    """``layer.groups``: group -> its members, as Channels exposes them; O(1) reads."""

    __slots__ = ("_layer",)

    def __init__(self, layer: InMemoryChannelLayer) -> None:
        self._layer = layer

    def __getitem__(self, group: str) -> _MembersView:
        if group not in self._layer._groups:
            raise KeyError(group)
        return _MembersView(self._layer, group)

    def __contains__(self, group: object) -> bool:
        return group in self._layer._groups

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._layer._groups))

    def __len__(self) -> int:
        return len(self._layer._groups)

    def __repr__(self) -> str:
        return repr({group: dict(self[group].items()) for group in self})


class InMemoryChannelLayer(BaseChannelLayer):
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
        _require_positive("expiry", expiry)
        _require_positive("group_expiry", group_expiry)
        _require_positive("capacity", capacity, integer=True)
        super().__init__(
            expiry=expiry, capacity=capacity, channel_capacity=channel_capacity
        )
        for _, value in self._capacity_rules:
            _require_positive("channel_capacity values", value, integer=True)
        self.group_expiry = group_expiry
        self.require_portable_messages = require_portable_messages
        self._channels: dict[str, _Channel] = {}
        self._groups: dict[str, dict[str, float]] = {}
        self._groups_of: dict[str, set[str]] = {}
        # (deadline, tie-breaker, channel) for channels holding messages.
        self._message_deadlines: list[tuple[float, int, _Channel]] = []
        # (deadline, tie-breaker, group, channel) for group memberships.
        self._membership_deadlines: list[tuple[float, int, str, str]] = []
        self._memberships = 0
        self._tiebreak = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._timer_at = 0.0
        self._sweep_interval = min(MAX_SWEEP_INTERVAL, expiry / 10)
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
        if channel not in self._channels:
            self.require_valid_channel_name(channel)
        now = self._clean_expired()
        if type(now) is not float:  # replaced by a test double: read the clock
            now = monotonic()
        queue = self._channel(channel)
        while queue.messages:
            expires_at, message = queue.messages.popleft()
            if expires_at > now:
                return message
            self._message_expired(queue)

        waiter: asyncio.Future[tuple[float, Message]] = (
            asyncio.get_running_loop().create_future()
        )
        queue.waiters.append(waiter)
        try:
            _, message = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed a message, then cancelled before running: keep it.
                self._put_back(channel, waiter.result())
            else:
                _discard(queue.waiters, waiter)
            self._forget_if_idle(queue)
            raise
        self._forget_if_idle(queue)
        return message

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A fresh process-specific (``!``) channel name."""
        name = f"{prefix.rstrip('.')}.inmemory!{secrets.token_hex(12)}"
        self.require_valid_channel_name(name)
        return name

    def watch_group_losses(self, channel: str) -> GroupLossWatch:
        """Out-of-band news of the groups ``channel`` is dropped from by expiry.

        Consumers open one for their channel (see :mod:`.group_loss`); the
        channel itself never gets an extra message, as in Channels.
        """
        return self._group_loss_watches.open(channel)

    # -- groups -------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``, or renew its membership."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        now = monotonic()
        self._expire_due(now)
        members = self._groups.setdefault(group, {})
        renewed = channel in members
        members[channel] = now
        if renewed:
            return
        self._memberships += 1
        self._groups_of.setdefault(channel, set()).add(group)
        deadline = now + self.group_expiry
        heapq.heappush(
            self._membership_deadlines,
            (deadline, next(self._tiebreak), group, channel),
        )
        self._compact_membership_deadlines()
        self._ensure_timer(deadline)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; a no-op when it is not a member."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self._expire_due(monotonic())
        self._leave(group, channel)

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
        members = self._groups.get(group)
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
            self._warn_full(group, dropped, len(members), named, capacities)
        return dropped

    def _warn_full(
        self,
        group: str,
        dropped: int,
        size: int,
        named: list[str],
        capacities: set[int],
    ) -> None:
        """One line for one group_send; rate-limited per group."""
        low, high = min(capacities), max(capacities)
        self.full_channel_warnings.log(
            group,
            "group_send to group %r skipped %d of %d members: their channels are "
            "full (capacity %s), so they miss this message (%s%s)",
            group,
            dropped,
            size,
            low if low == high else f"{low}-{high}",
            ", ".join(map(repr, named)),
            ", ..." if dropped > len(named) else "",
            totals={"members skipped": dropped},
        )

    # -- flush, close, introspection ------------------------------------------

    async def flush(self) -> None:
        """Drop every message and group; pending receives keep waiting."""
        for queue in self._channels.values():
            queue.messages.clear()
            queue.armed = False
        self._channels = {
            name: queue for name, queue in self._channels.items() if queue.waiters
        }
        self._groups.clear()
        self._groups_of.clear()
        self._memberships = 0
        self._message_deadlines.clear()
        self._membership_deadlines.clear()
        self._cancel_timer()

    async def close(self) -> None:
        """Stop the idle sweep timer and write held-back warnings; the layer
        remains usable."""
        self._cancel_timer()
        self.full_channel_warnings.flush()

    @property
    def channels(self) -> Mapping[str, _QueueView]:
        """Channels' ``channels`` dict, as a live read-only view.

        Test suites written for Channels read it (``len(layer.channels)``,
        ``name in layer.channels``, ``layer.channels[name].qsize()``).  It is
        built on demand from our own structures, so keeping it costs the
        layer's operations nothing.
        """
        return _ChannelsView(self)

    @property
    def groups(self) -> Mapping[str, Mapping[str, float]]:
        """Channels' ``groups`` (group -> {channel: joined at}), read-only and live.

        Join times are ``time.time()`` values, as in Channels, although the
        layer itself keeps time on the monotonic clock.
        """
        return _GroupsView(self)

    def stats(self) -> dict[str, int]:
        """Sizes of the internal structures and running totals, for monitoring."""
        return {
            "channels": len(self._channels),
            "queued_messages": sum(len(q.messages) for q in self._channels.values()),
            "waiting_receivers": sum(len(q.waiters) for q in self._channels.values()),
            "groups": len(self._groups),
            "memberships": self._memberships,
            "deadlines": len(self._message_deadlines) + len(self._membership_deadlines),
            "dropped_messages": self.dropped_messages,
            "expired_messages": self.expired_messages,
        }

    # -- delivery -------------------------------------------------------------

    def _copy(self, message: Any) -> Message:
        if self.require_portable_messages:
            return portable_copy(message)
        require_dict(message)
        return copy.deepcopy(message)

    def _channel(self, name: str) -> _Channel:
        queue = self._channels.get(name)
        if queue is None:
            queue = self._channels[name] = _Channel(name, self.get_capacity(name))
        return queue

    def _deliver(self, queue: _Channel, item: tuple[float, Message]) -> None:
        """Hand ``item`` to the oldest live waiter, or queue it."""
        if queue.waiters and not queue.messages:
            loop = asyncio.get_running_loop()
            while queue.waiters:
                waiter = queue.waiters.popleft()
                if waiter.done():
                    continue
                if waiter.get_loop() is loop:
                    waiter.set_result(item)
                    return
                if self._hand_over_from_another_loop(queue, waiter, item):
                    return
        if len(queue.messages) >= queue.capacity:
            raise ChannelFull(
                f"Channel {queue.name!r} already holds {queue.capacity} messages"
            )
        queue.messages.append(item)
        if not queue.armed:
            self._arm(queue, item[0])

    def _hand_over_from_another_loop(
        self,
        queue: _Channel,
        waiter: asyncio.Future[tuple[float, Message]],
        item: tuple[float, Message],
    ) -> bool:
        """Wake a receiver waiting on another thread's event loop, safely."""

        def hand_over() -> None:
            if waiter.done():
                self._put_back(queue.name, item)
            else:
                waiter.set_result(item)

        try:
            waiter.get_loop().call_soon_threadsafe(hand_over)
        except RuntimeError:  # that loop is closed: its receiver is gone
            return False
        return True

    def _put_back(self, name: str, item: tuple[float, Message]) -> None:
        """Return an undelivered message to the head of its channel's queue."""
        queue = self._channel(name)
        queue.messages.appendleft(item)
        if not queue.armed:
            self._arm(queue, item[0])
        if queue.waiters:
            messages, queue.messages = queue.messages, deque()
            for position, pending in enumerate(messages):
                try:
                    self._deliver(queue, pending)
                except ChannelFull:  # only reachable when put back over capacity
                    queue.messages.extend(itertools.islice(messages, position, None))
                    break

    def _forget_if_idle(self, queue: _Channel) -> None:
        idle = not (queue.armed or queue.waiters or queue.messages)
        if idle and self._channels.get(queue.name) is queue:
            del self._channels[queue.name]

    # -- expiry ---------------------------------------------------------------

    def _arm(self, queue: _Channel, deadline: float) -> None:
        queue.armed = True
        heapq.heappush(self._message_deadlines, (deadline, next(self._tiebreak), queue))
        self._ensure_timer(deadline)

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

        memberships = self._membership_deadlines
        while memberships and memberships[0][0] <= now:
            _, _, group, channel = heapq.heappop(memberships)
            joined = self._groups.get(group, {}).get(channel)
            if joined is None:
                continue  # discarded since
            deadline = joined + self.group_expiry
            if deadline <= now:
                self._leave(group, channel)
                self._group_loss_watches.report(channel, (group,))
            else:  # renewed since: look again at the new deadline
                heapq.heappush(
                    memberships, (deadline, next(self._tiebreak), group, channel)
                )

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

    def _message_expired(self, queue: _Channel) -> None:
        """A receiver found an expired message: its channel leaves its groups."""
        self.expired_messages += 1
        self._remove_from_groups(queue.name)

    def _leave(self, group: str, channel: str) -> None:
        members = self._groups.get(group)
        if members is None or members.pop(channel, None) is None:
            return
        self._memberships -= 1
        if not members:
            del self._groups[group]
        groups = self._groups_of.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._groups_of[channel]

    def _remove_from_groups(self, channel: str) -> None:
        """Unread messages expiring mean nobody reads ``channel``: drop it.

        Channels' name and meaning (take ``channel`` out of every group), and
        called through ``self`` whenever a message expires, so test fixtures
        that wrap it see the same calls; the reverse index makes it cost the
        channel's own groups only.
        """
        groups = self._groups_of.pop(channel, ())
        for group in groups:
            members = self._groups.get(group)
            if members is not None and members.pop(channel, None) is not None:
                self._memberships -= 1
                if not members:
                    del self._groups[group]
        self._group_loss_watches.report(channel, groups)

    def _compact_membership_deadlines(self) -> None:
        """Rebuild the heap when stale entries (left by discards) dominate it."""
        deadlines = self._membership_deadlines
        if len(deadlines) < 1024 or len(deadlines) < 2 * self._memberships:
            return
        rebuilt = [
            (joined + self.group_expiry, next(self._tiebreak), group, channel)
            for group, members in self._groups.items()
            for channel, joined in members.items()
        ]
        heapq.heapify(rebuilt)
        self._membership_deadlines = rebuilt

    # -- the idle sweep timer ---------------------------------------------------

    def _ensure_timer(self, deadline: float) -> None:
        """Make sure a sweep runs soon after ``deadline`` even if the layer idles.

        Sweeps are at least ``expiry / 10`` (at most a second) apart, so many
        nearby deadlines cost one timer tick, not one each.
        """
        when = max(deadline, monotonic() + self._sweep_interval)
        if (
            self._timer is not None
            and self._timer_at <= when
            and self._timer_loop is not None
            and not self._timer_loop.is_closed()
        ):
            return
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer_loop = loop
        self._timer_at = when
        self._timer = loop.call_later(when - monotonic(), self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        self._expire_due(monotonic())
        upcoming = [
            heap[0][0]
            for heap in (self._message_deadlines, self._membership_deadlines)
            if heap
        ]
        if upcoming:
            self._ensure_timer(min(upcoming))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _discard(
    waiters: deque[asyncio.Future[tuple[float, Message]]],
    waiter: asyncio.Future[tuple[float, Message]],
) -> None:
    try:
        waiters.remove(waiter)
    except ValueError:
        pass


def _require_positive(name: str, value: Any, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"InMemoryChannelLayer {name} must be {kind}, not {value!r}")
