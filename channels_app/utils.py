"""Small async helpers shared by consumers and workers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


async def await_many_dispatch(
    consumer_callables: Sequence[Callable[[], Awaitable[Any]]],
    dispatch: Callable[[Any], Awaitable[Any]],
) -> None:
    """Receive from several sources at once and dispatch each message in turn.

    The first source (a consumer's client ``receive``) is read by the
    calling task itself; each further source (its channel layer) gets one
    long-lived pump task.  A lock makes dispatches run one at a time, so a
    consumer sees its messages serially just as with a single source.  No
    task is created per message, and a connection costs one extra task, not
    one per source plus a waiter: idle connections are what a server holds
    by the thousand.  Returns (or raises) as soon as any source's loop
    stops, after cancelling the others.
    """
    first, *others = consumer_callables
    if not others:
        while True:
            await dispatch(await first())

    turn = asyncio.Lock()
    current = asyncio.current_task()
    ended: list[asyncio.Task] = []

    async def pump(receive: Callable[[], Awaitable[Any]]) -> None:
        while True:
            message = await receive()
            async with turn:
                await dispatch(message)

    finishing = False

    def pump_ended(task: asyncio.Task) -> None:
        # Wake the calling task, which is waiting on its own source -- unless
        # it is already on its way out.
        if not finishing and not task.cancelled():
            ended.append(task)
            current.cancel()

    tasks = [asyncio.ensure_future(pump(receive)) for receive in others]
    for task in tasks:
        task.add_done_callback(pump_ended)
    try:
        await pump(first)
    except asyncio.CancelledError:
        if not ended:
            raise  # cancelled from outside
        if hasattr(current, "uncancel"):
            current.uncancel()
        ended[0].result()
    finally:
        finishing = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
