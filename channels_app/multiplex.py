"""Reading a consumer's message sources at once, serially dispatched.

A consumer reads its client (the server's ``receive``) and its channel on
the layer, and must see their messages one at a time.  The obvious way -- a
task per source, each awaiting ``receive()`` -- costs a task, a coroutine
and a waiter per source per connection whether anything arrives or not, and
idle connections are what a server holds by the thousand.  Sources that can
say "tell me when a message is ready" (:class:`PushSource`; the in-memory
layer's channels and group-loss news) therefore cost only a waiting future
while idle: a short-lived task is started when one completes and drains the
source until it is empty again.  Other sources (any layer's ``receive``,
such as channels_redis') get a long-lived pump task as before.

Measured on an idle echo consumer on the in-memory layer under Daphne with
5,000 connections (``benchmarks/serve.py``'s idle-memory figure): the stack
added 7.9 KB of RSS per connection to a bare ASGI app's with the two pump
tasks this replaces, 3.3 KB without them (and the slimmer state that came
with it); tracemalloc agrees (7.7 KB -> 3.2 KB).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PushSource(Protocol):
    """A message source that needs no task of its own while nothing arrives.

    Invariants the dispatch loop relies on: ``wait`` returns a future that is
    already done when a message is ready, and otherwise completes (on the
    consumer's loop) once one is; ``take`` is only given that future once it
    is done and returns its message; ``abandon`` is given a future not taken,
    done or not, and must keep a message it holds (by putting it back) so that
    nothing is lost when the consumer stops in between.
    """

    def wait(self) -> asyncio.Future[Any]: ...

    def take(self, ready: asyncio.Future[Any]) -> Any: ...

    def abandon(self, pending: asyncio.Future[Any]) -> None: ...


Source = Callable[[], Awaitable[Any]] | PushSource


async def await_many_dispatch(
    consumer_callables: Sequence[Source],
    dispatch: Callable[[Any], Awaitable[Any]],
) -> None:
    """Receive from several sources at once and dispatch each message in turn.

    The first source (a consumer's client ``receive``) is read by the
    calling task itself.  A lock makes dispatches run one at a time, so a
    consumer sees its messages serially just as with a single source, and
    each source's messages in the order it gives them.  Returns (or raises)
    as soon as a dispatch from another source raises or a pumped source's
    loop stops, after stopping the others.  A coroutine function, as in
    Channels; consumers call :func:`dispatch_many` instead.
    """
    await dispatch_many(consumer_callables, dispatch)


def dispatch_many(
    consumer_callables: Sequence[Source],
    dispatch: Callable[[Any], Awaitable[Any]],
) -> Coroutine[Any, Any, None]:
    """:func:`await_many_dispatch`'s work, as a coroutine to await: every
    connection holds one coroutine frame less than through the wrapper."""
    first, *others = consumer_callables
    assert not isinstance(first, PushSource), "the first source is awaited"
    if not others:
        return _dispatch_each(first, dispatch)
    return _Multiplexer(others, dispatch).run(first)


async def _dispatch_each(
    receive: Callable[[], Awaitable[Any]], dispatch: Callable[[Any], Awaitable[Any]]
) -> None:
    while True:
        await dispatch(await receive())


class _Multiplexer:
    """The state of one :func:`await_many_dispatch` call.

    Slotted, with the task set made on first use and one context shared by
    its callbacks (``add_done_callback`` copies the current one otherwise):
    an idle connection holds this object for its whole life.
    """

    __slots__ = (
        "context",
        "current",
        "dispatch",
        "failed",
        "finishing",
        "others",
        "tasks",
        "turn",
        "waiting",
    )

    def __init__(
        self, others: Sequence[Source], dispatch: Callable[[Any], Awaitable[Any]]
    ) -> None:
        self.others = others
        self.dispatch = dispatch
        self.turn = asyncio.Lock()
        current = asyncio.current_task()
        assert current is not None  # called from a coroutine, inside a task
        self.current = current
        #: The task whose failure stops the consumer.
        self.failed: asyncio.Task[None] | None = None
        self.finishing = False
        self.tasks: set[asyncio.Task[None]] | None = None
        #: (source, future) for push sources' futures not yet taken (see
        #: ``_watch``): a list, as there are one or two.
        self.waiting: list[tuple[PushSource, asyncio.Future[Any]]] = []
        self.context = contextvars.copy_context()

    async def run(self, first: Callable[[], Awaitable[Any]]) -> None:
        for source in self.others:
            if isinstance(source, PushSource):
                self._watch(source, source.wait())
            else:
                self._start(self._pump(source))
        try:
            while True:  # self._pump(first), without one more coroutine frame
                message = await first()
                async with self.turn:
                    await self.dispatch(message)
        except asyncio.CancelledError:
            if self.failed is None:
                raise  # cancelled from outside
            if hasattr(self.current, "uncancel"):
                self.current.uncancel()
            self.failed.result()
        finally:
            self.finishing = True
            waiting, self.waiting = self.waiting, []
            for source, pending in waiting:
                source.abandon(pending)
            tasks = list(self.tasks or ())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, receive: Callable[[], Awaitable[Any]]) -> None:
        while True:
            message = await receive()
            async with self.turn:
                await self.dispatch(message)

    async def _drain(self, source: PushSource, ready: asyncio.Future[Any]) -> None:
        """Dispatch ``source``'s messages until it has none ready, then watch it.

        A message is taken only once this task holds the turn, so one that
        arrives while another source's handler runs stays with its source.
        """
        while True:
            try:
                async with self.turn:
                    if not self._claim(ready):
                        return  # abandoned by run's cleanup meanwhile
                    message = source.take(ready)
                    await self.dispatch(message)
            except BaseException:
                if self._claim(ready):  # cancelled before taking it
                    source.abandon(ready)
                raise
            ready = source.wait()
            self.waiting.append((source, ready))
            if not ready.done():
                ready.add_done_callback(self._ready, context=self.context)
                return

    def _watch(self, source: PushSource, ready: asyncio.Future[Any]) -> None:
        # Invariant: a future in ``waiting`` belongs to nobody else yet; the
        # one who removes it (``_claim``, or run's cleanup) takes or abandons
        # it, so a message handed over is dispatched or put back exactly once
        # -- even when the drain task meant for it is cancelled unstarted.
        self.waiting.append((source, ready))
        if ready.done():
            self._start(self._drain(source, ready))
        else:
            ready.add_done_callback(self._ready, context=self.context)

    def _ready(self, ready: asyncio.Future[Any]) -> None:
        if self.finishing or ready.cancelled():
            return  # abandoned by ``run``'s cleanup
        # One or two sources: a scan costs less than a partial holding the
        # source per wait.
        source = next(s for s, f in self.waiting if f is ready)
        self._start(self._drain(source, ready))

    def _claim(self, ready: asyncio.Future[Any]) -> bool:
        """Take ``ready`` out of ``waiting``; False if someone else did."""
        for index, (_, future) in enumerate(self.waiting):
            if future is ready:
                del self.waiting[index]
                return True
        return False

    def _start(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        if self.tasks is None:
            self.tasks = set()
        self.tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        assert self.tasks is not None  # added by _start
        self.tasks.discard(task)
        # A drain that ran dry ends normally; anything else stops the consumer
        # by waking the calling task, which is waiting on its own source --
        # unless it is already on its way out.
        if self.finishing or task.cancelled() or task.exception() is None:
            return
        if self.failed is None:
            self.failed = task
            self.current.cancel()
