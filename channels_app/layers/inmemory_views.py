"""Read-only views that give the in-memory layer Channels' ``channels`` and
``groups`` attributes.

Channels' in-memory layer keeps plain dicts that test suites read directly;
ours keeps structures built for speed instead, and these views present them
in Channels' shape on demand, so keeping the shape costs the layer nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Protocol, cast

from ..types import Message
from .inmemory_groups import GroupMemberships
from .inmemory_queue import ChannelQueue


class InMemoryChannelLayer(Protocol):
    """What the views read of :class:`~.inmemory.InMemoryChannelLayer`."""

    _channels: dict[str, ChannelQueue]
    _memberships: GroupMemberships

    def get_capacity(self, channel: str) -> int: ...

    def _wall_clock_offset(self) -> float: ...


def held(queue: ChannelQueue) -> bool:
    """Whether Channels would still list this channel: messages or receivers.

    An empty channel may stay in our table until its expiry deadline (so
    sending to it again needs no new heap entry); Channels drops it at once.
    """
    return bool(queue.messages or queue.waiters)


class QueueView:
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
        offset = self._layer._wall_clock_offset()
        return deque((at + offset, message) for at, message in self._messages())

    def __repr__(self) -> str:
        size = self.qsize()
        return f"<channel queue {self._name!r} maxsize={self.maxsize} qsize={size}>"


class ChannelsView(Mapping[str, QueueView]):
    """``layer.channels``: the channels holding messages or waited on.

    That is the set Channels keeps (it drops a channel once a receive leaves
    it empty), so ``len()``, ``in`` and ``keys()`` answer the same.  Looking
    one name up is O(1); ``len()`` and iteration visit every channel the
    layer holds, which suits the tests and debugging they are for.
    """

    __slots__ = ("_layer",)

    def __init__(self, layer: InMemoryChannelLayer) -> None:
        self._layer = layer

    def __getitem__(self, name: str) -> QueueView:
        queue = self._layer._channels.get(name)
        if queue is None or not held(queue):
            raise KeyError(name)
        return QueueView(self._layer, name)

    def __contains__(self, name: object) -> bool:
        queue = self._layer._channels.get(name)  # type: ignore[call-overload]
        return queue is not None and held(queue)

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, q in self._layer._channels.items() if held(q)])

    def __len__(self) -> int:
        return sum(1 for queue in self._layer._channels.values() if held(queue))

    def __repr__(self) -> str:
        return repr({name: self[name] for name in self})


class MembersView(Mapping[str, float]):
    """``layer.groups[group]``: member channel -> when it joined (``time.time()``)."""

    __slots__ = ("_group", "_layer")

    def __init__(self, layer: InMemoryChannelLayer, group: str) -> None:
        self._layer = layer
        self._group = group

    def _members(self) -> dict[str, float]:
        return self._layer._memberships.members.get(self._group, {})

    def __getitem__(self, channel: str) -> float:
        return self._members()[channel] + self._layer._wall_clock_offset()

    def __contains__(self, channel: object) -> bool:
        return channel in self._members()

    def __iter__(self) -> Iterator[str]:
        # A snapshot: leaving the group while iterating it must not fail.
        return iter(list(self._members()))

    def __len__(self) -> int:
        return len(self._members())

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class GroupsView(Mapping[str, MembersView]):
    """``layer.groups``: group -> its members, as Channels exposes them; O(1) reads."""

    __slots__ = ("_layer",)

    def __init__(self, layer: InMemoryChannelLayer) -> None:
        self._layer = layer

    def __getitem__(self, group: str) -> MembersView:
        if group not in self._layer._memberships.members:
            raise KeyError(group)
        return MembersView(self._layer, group)

    def __contains__(self, group: object) -> bool:
        return group in self._layer._memberships.members

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._layer._memberships.members))

    def __len__(self) -> int:
        return len(self._layer._memberships.members)

    def __repr__(self) -> str:
        return repr({group: dict(self[group].items()) for group in self})


class ChannelsShapedViews:
    """The ``channels`` and ``groups`` attributes, for the layer to inherit."""

    @property
    def channels(self) -> Mapping[str, QueueView]:
        """Channels' ``channels`` dict, as a live read-only view.

        Test suites written for Channels read it (``len(layer.channels)``,
        ``name in layer.channels``, ``layer.channels[name].qsize()``).  It is
        built on demand from our own structures, so keeping it costs the
        layer's operations nothing.
        """
        return ChannelsView(cast(InMemoryChannelLayer, self))

    @property
    def groups(self) -> Mapping[str, Mapping[str, float]]:
        """Channels' ``groups`` (group -> {channel: joined at}), read-only and live.

        Join times are ``time.time()`` values, as in Channels, although the
        layer itself keeps time on the monotonic clock.
        """
        return GroupsView(cast(InMemoryChannelLayer, self))
