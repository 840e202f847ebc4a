"""Small helpers shared by consumers, routers and workers."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


def name_that_thing(thing: Any) -> str:
    """A dotted name for ``thing``, for log lines and error messages.

    Functions, classes and methods give ``module.qualified.name`` (so a
    method says which class it is on); a module gives its own name; any
    other object gives the name of its class.  Mocks give ``"<mock>"``:
    they answer every attribute, so looking for a name on one would invent
    it.  Channels formats names the same way, but from ``__name__``, so its
    answer leaves out enclosing classes and functions.
    """
    if hasattr(type(thing), "mock_calls"):
        return "<mock>"
    if isinstance(thing, types.ModuleType):
        return thing.__name__
    if isinstance(thing, types.MethodType):
        thing = thing.__func__
    qualname = getattr(thing, "__qualname__", None)
    if not isinstance(qualname, str):
        return name_that_thing(type(thing))
    module = getattr(thing, "__module__", None)
    if not isinstance(module, str):
        # Methods of built-in types (str.join, [].append) name no module
        # themselves; the type they belong to does.
        owner = getattr(thing, "__objclass__", None)
        if owner is None and getattr(thing, "__self__", None) is not None:
            owner = type(thing.__self__)
        module = getattr(owner, "__module__", None)
    return f"{module}.{qualname}" if module else qualname


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
    assert current is not None  # called from a coroutine, inside a task
    ended: list[asyncio.Task[None]] = []

    async def pump(receive: Callable[[], Awaitable[Any]]) -> None:
        while True:
            message = await receive()
            async with turn:
                await dispatch(message)

    finishing = False

    def pump_ended(task: asyncio.Task[None]) -> None:
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
