"""Stream histories in this process's memory.

For development and tests, and for one-process deployments: the history
lives as long as the store object, and every store object starts new epochs,
so a restarted server tells reconnecting clients their positions are gone
(rather than replaying a history that no longer exists).  Pair it with the
in-memory channel layer; other processes cannot see it.
"""

from __future__ import annotations

import bisect
import itertools
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .codec import decode, encode
from .positions import History, StreamMessage
from .store import HistoryLimits


def new_epoch() -> str:
    """A fresh epoch: random, so two histories never share one."""
    return secrets.token_hex(6)


@dataclass
class _Log:
    epoch: str = field(default_factory=new_epoch)
    last: int = 0
    #: (offset, time, encoded data), oldest first; offsets consecutive.
    entries: deque[tuple[int, float, str]] = field(default_factory=deque)

    def first(self) -> int:
        return self.entries[0][0] if self.entries else self.last + 1

    def trim(self, limits: HistoryLimits, now: float) -> None:
        entries = self.entries
        if limits.max_messages is not None:
            while len(entries) > limits.max_messages:
                entries.popleft()
        if limits.max_age is not None:
            cutoff = now - limits.max_age
            while entries and entries[0][1] < cutoff:
                entries.popleft()


class InMemoryStreamStore:
    """:class:`~channels_app.streams.store.StreamStore` in a dict of deques.

    All work happens synchronously between awaits, so concurrent coroutines
    of one event loop see appends in one order without a lock.
    """

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._logs: dict[str, _Log] = {}

    async def append(
        self, stream: str, data: dict[str, Any], limits: HistoryLimits
    ) -> StreamMessage:
        text = encode(data)
        log = self._logs.get(stream)
        if log is None:
            log = self._logs[stream] = _Log()
        now = self._clock()
        # Times never go backwards within a log, so age trimming can stop at
        # the first young entry (a clock stepped back must not strand old ones).
        if log.entries and now < log.entries[-1][1]:
            now = log.entries[-1][1]
        log.last += 1
        log.entries.append((log.last, now, text))
        log.trim(limits, now)
        return StreamMessage(stream, log.epoch, log.last, decode(text), now)

    async def read(
        self, stream: str, after: int | None, limits: HistoryLimits
    ) -> History:
        log = self._logs.get(stream)
        if log is None:
            return History(new_epoch(), 1, 0, [])
        log.trim(limits, self._clock())
        messages = []
        if after is not None and log.entries:
            start = bisect.bisect_right(log.entries, after, key=lambda e: e[0])
            messages = [
                StreamMessage(stream, log.epoch, offset, decode(text), when)
                for offset, when, text in itertools.islice(log.entries, start, None)
            ]
        return History(log.epoch, log.first(), log.last, messages)

    async def delete(self, stream: str) -> None:
        self._logs.pop(stream, None)

    async def close(self) -> None:
        """Nothing to release; the histories stay until the store is dropped."""
