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

    Each source gets a long-lived pump task; a lock makes dispatches run one
    at a time, so a consumer sees its messages serially just as with a single
    source.  This costs no task creation per message, unlike re-arming
    ``asyncio.wait`` after every message.  Returns (or raises) as soon as any
    pump stops, after cancelling the others.
    """
    if len(consumer_callables) == 1:
        receive = consumer_callables[0]
        while True:
            await dispatch(await receive())

    turn = asyncio.Lock()

    async def pump(receive: Callable[[], Awaitable[Any]]) -> None:
        while True:
            message = await receive()
            async with turn:
                await dispatch(message)

    tasks = [asyncio.ensure_future(pump(receive)) for receive in consumer_callables]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
