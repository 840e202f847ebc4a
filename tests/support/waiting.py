"""Wait for something to have happened, instead of sleeping and hoping.

A test that sleeps "long enough" for another task, thread or process is slow
when the machine is idle and flaky when it is busy.  Poll the condition the
test depends on instead::

    await eventually(lambda: len(journal) == 4)
    eventually_sync(lambda: path.exists(), timeout=10)

Both return the condition's (truthy) value and raise ``AssertionError`` naming
the condition, and ``describe()`` if given, when the timeout passes first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: How often a condition is checked, in seconds.
POLL_INTERVAL = 0.01


def _failure(condition: Callable, timeout: float, describe: Callable | None) -> str:
    name = getattr(condition, "__qualname__", repr(condition))
    detail = f": {describe()}" if describe is not None else ""
    return f"{name} not true within {timeout}s{detail}"


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float = 5.0,
    *,
    interval: float = POLL_INTERVAL,
    describe: Callable[[], Any] | None = None,
) -> T:
    """Poll ``condition`` (a function, or a coroutine function) until it is
    truthy, letting the event loop run in between."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(_failure(condition, timeout, describe))
        await asyncio.sleep(interval)


def eventually_sync(
    condition: Callable[[], T],
    timeout: float = 5.0,
    *,
    interval: float = POLL_INTERVAL,
    describe: Callable[[], Any] | None = None,
) -> T:
    """:func:`eventually` for code without an event loop (threads, processes)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(_failure(condition, timeout, describe))
        time.sleep(interval)
