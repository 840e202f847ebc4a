"""Where the counts live between scrapes: plain integers, one object per series.

Invariant (why this is fast): a frame, a handler call or a layer operation
adds to attributes of an object found once per connection, consumer class
or layer, so its cost is a few integer additions, with no lock and no label
lookup; Prometheus objects are built from these only when it scrapes
(:mod:`.exposition`).  Connection, frame, handler and worker tallies are
only changed on the event loop running that connection or worker, so they
need no lock: with one loop per process, as ASGI servers run, no increment
is lost (two loops in two threads serving the same route or consumer class
could lose one in a rare race).  Layer tallies may be changed from several
threads' event loops at once (``async_to_sync`` in sync views), so each has
a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

#: Upper bounds of the handler duration buckets, in seconds (Prometheus'
#: defaults: from 5 ms, where a handler is quick, to 10 s).
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


class ConnectionTally:
    """One (protocol, route): connections open now, and WebSocket frames."""

    __slots__ = ("in_bytes", "in_frames", "open", "out_bytes", "out_frames")

    def __init__(self) -> None:
        self.open = 0
        self.in_frames = self.in_bytes = self.out_frames = self.out_bytes = 0


class HandlerTally:
    """One (consumer class, handler): a duration histogram and the errors."""

    __slots__ = ("buckets", "errors", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BOUNDS) + 1)  # the last one is +Inf
        self.total = 0.0
        self.errors = 0
        # Observed by recording.timed_dispatch, inlined there: the bucket is
        # bisect_left(BOUNDS, seconds), the first bound >= it ("le").  The
        # count is the buckets' sum, so it is not kept apart.


class LayerTally:
    """One layer class: its operations, refused sends and full members."""

    __slots__ = (
        "channel_full",
        "full_members",
        "group_sends",
        "lock",
        "receives",
        "sends",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sends = self.receives = self.group_sends = 0
        self.channel_full = self.full_members = 0


class WorkerTally:
    """One worker channel: messages in flight, and finished by outcome."""

    __slots__ = ("failed", "handled", "in_flight")

    def __init__(self) -> None:
        self.in_flight = self.handled = self.failed = 0


K = TypeVar("K")
T = TypeVar("T")

connections: dict[tuple[str, str], ConnectionTally] = {}
handlers: dict[tuple[str, str], HandlerTally] = {}
layers: dict[str, LayerTally] = {}
workers: dict[str, WorkerTally] = {}
slow_client_closes: dict[str, int] = {}
#: Guards creating tallies, and the rare counts kept in plain dicts.
lock = threading.Lock()


def find(table: dict[K, T], key: K, kind: Callable[[], T]) -> T:
    """The tally for ``key``, created on first use."""
    found = table.get(key)
    if found is not None:
        return found
    # Under a lock so two threads creating the same series share one tally.
    with lock:
        found = table.get(key)
        if found is None:
            found = table[key] = kind()
        return found
