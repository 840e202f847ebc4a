"""Warnings that cannot flood a log.

A condition that repeats on every message — a full channel, a slow
consumer — would otherwise write one line per occurrence: hundreds of
thousands of lines for one burst, burying everything else and costing more
than the work being reported on.  :class:`RateLimitedLog` writes at most one
line per key (a group, a channel, ...) per interval and counts the rest, so
the lines that do appear still state how much happened.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

__all__ = ["RateLimitedLog"]


class _Window:
    """One key's current interval: when it began and what it held back."""

    __slots__ = ("last", "started", "suppressed", "timer", "totals")

    def __init__(self, started: float) -> None:
        self.started = started
        self.suppressed = 0
        self.totals: dict[str, int] = {}
        self.last: tuple[str, tuple[Any, ...]] | None = None
        self.timer: asyncio.TimerHandle | None = None


class RateLimitedLog:
    """Log at most one record per key every ``interval`` seconds.

    The first :meth:`log` call for a key writes its record at once and
    opens an interval.  Calls for that key within the interval write
    nothing: they are counted, and the numbers in their ``totals`` summed.
    When the interval is over, one record reports them: the latest held-back
    message followed by ``(latest of N similar messages not logged in the
    last 10s; in all they reported 99900 members skipped)``.  That record is
    written by a timer on the running event loop when there is one;
    otherwise the next call for the key, or :meth:`flush`, writes the
    report.  So a steady flood gives one line per key per interval, and a
    burst gives two lines, the second with its totals.

    At most ``max_keys`` keys are remembered; the oldest is reported and
    forgotten to make room.  Safe to call from several threads.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        *,
        level: int = logging.WARNING,
        max_keys: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        self.logger = logger
        self.interval = interval
        self.level = level
        self.max_keys = max_keys
        #: Where time comes from (seconds; only differences matter).
        self.clock = clock
        #: How many records have been held back since this was created.
        self.suppressed_total = 0
        self._windows: dict[Hashable, _Window] = {}
        self._lock = threading.Lock()

    def log(
        self,
        key: Hashable,
        msg: str,
        *args: Any,
        totals: Mapping[str, int] | None = None,
    ) -> bool:
        """Log ``msg % args`` for ``key`` unless its interval is still running.

        ``totals`` (label -> number, such as ``{"members skipped": 3}``) are
        summed over the records held back and stated when they are reported.
        Returns whether a record was written now.
        """
        if not self.logger.isEnabledFor(self.level):
            return False
        reports = []
        with self._lock:
            now = self.clock()
            window = self._windows.get(key)
            if window is not None and now - window.started < self.interval:
                self._hold_back(key, window, now, msg, args, totals)
                return False
            if window is not None:
                del self._windows[key]  # Re-inserted last: oldest stay first.
                if window.timer is not None:
                    window.timer.cancel()
                if window.suppressed:
                    note = self._note("not logged in the previous", window, now)
                    reports.append((msg + " (%s)", (*args, note)))
            if not reports:
                reports.append((msg, args))
            self._windows[key] = _Window(now)
            while len(self._windows) > self.max_keys:
                oldest = next(iter(self._windows))
                report = self._report(self._windows.pop(oldest), now)
                if report is not None:
                    reports.append(report)
        for report_msg, report_args in reports:
            self.logger.log(self.level, report_msg, *report_args)
        return True

    def flush(self) -> None:
        """Report every key's held-back records now."""
        with self._lock:
            now = self.clock()
            reports = []
            for window in self._windows.values():
                if window.suppressed:
                    reports.append(self._report(window, now))
                    self._restart(window, now)
        for report in reports:
            if report is not None:
                self.logger.log(self.level, report[0], *report[1])

    def _hold_back(
        self,
        key: Hashable,
        window: _Window,
        now: float,
        msg: str,
        args: tuple[Any, ...],
        totals: Mapping[str, int] | None,
    ) -> None:
        window.suppressed += 1
        self.suppressed_total += 1
        window.last = (msg, args)
        for label, value in (totals or {}).items():
            window.totals[label] = window.totals.get(label, 0) + value
        if window.timer is None:
            window.timer = self._call_later(
                window.started + self.interval - now, key, window
            )

    def _call_later(
        self, delay: float, key: Hashable, window: _Window
    ) -> asyncio.TimerHandle | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None  # No loop: the next call or flush() reports.
        return loop.call_later(max(delay, 0), self._interval_over, key, window)

    def _interval_over(self, key: Hashable, window: _Window) -> None:
        with self._lock:
            if self._windows.get(key) is not window:
                return  # Already reported by a later call.
            window.timer = None
            now = self.clock()
            report = self._report(window, now)
            self._restart(window, now)
        if report is not None:
            self.logger.log(self.level, report[0], *report[1])

    def _report(
        self, window: _Window, now: float
    ) -> tuple[str, tuple[Any, ...]] | None:
        """The record stating ``window``'s held-back messages, if it has any."""
        if not window.suppressed or window.last is None:
            return None
        msg, args = window.last
        note = self._note("not logged in the last", window, now, latest=True)
        return msg + " (%s)", (*args, note)

    def _note(
        self, when: str, window: _Window, now: float, latest: bool = False
    ) -> str:
        count = window.suppressed
        seconds = f"{max(now - window.started, 0):.0f}s"
        if latest and count == 1:
            note = f"held back {seconds} by rate limiting"
        else:
            similar = "similar message" if count == 1 else "similar messages"
            note = f"{count} {similar} {when} {seconds}"
            if latest:
                note = f"latest of {note}"
        if window.totals:
            stated = ", ".join(f"{v} {label}" for label, v in window.totals.items())
            note += f"; in all they reported {stated}"
        return note

    @staticmethod
    def _restart(window: _Window, now: float) -> None:
        window.started = now
        window.suppressed = 0
        window.totals = {}
        window.last = None
        if window.timer is not None:
            window.timer.cancel()
            window.timer = None
