"""The in-memory layer's idle sweep: expiry that happens while nobody calls.

Expired messages and memberships are normally dropped by the next layer
operation; a layer left idle would keep them for ever, so one timer on the
event loop runs a sweep soon after the earliest deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class SweepTimer:
    """At most one pending sweep, at least ``interval`` seconds from now.

    The spacing means many nearby deadlines cost one timer tick, not one
    each.  ``clock`` is read on every call, so a test that replaces the
    layer's clock moves the timer too.
    """

    __slots__ = ("_at", "_clock", "_handle", "_interval", "_loop", "_sweep")

    def __init__(
        self, sweep: Callable[[], None], interval: float, clock: Callable[[], float]
    ) -> None:
        self._sweep = sweep
        self._interval = interval
        self._clock = clock
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._at = 0.0

    def ensure(self, deadline: float) -> None:
        """Make sure a sweep runs soon after ``deadline`` even if the layer idles."""
        when = max(deadline, self._clock() + self._interval)
        if (
            self._handle is not None
            and self._at <= when
            and self._loop is not None
            and not self._loop.is_closed()
        ):
            return
        self.cancel()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._at = when
        self._handle = loop.call_later(when - self._clock(), self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._sweep()
