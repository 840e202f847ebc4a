"""Running one consumer's handlers side by side: ``concurrency`` above 1.

A consumer handles its messages one at a time by default, so a handler that
waits on I/O holds up every message behind it.  A :class:`HandlerPool` runs
up to ``concurrency`` handlers at once while keeping the order that matters:
messages with the same ordering key run one after another, in arrival order,
and lifecycle messages (connect, disconnect, lifespan) wait for the work
taken before them, as with one-at-a-time handling.

The pool takes at most ``2 * concurrency`` messages ahead of the ones
finished.  Past that it stops reading, so a flood fills the server's inbox
and the layer's channel (which report it) instead of this process's memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from contextvars import ContextVar
from typing import Any, Protocol

from .exceptions import StopConsumer
from .types import Message

logger = logging.getLogger("channels_app.concurrency")

#: Messages that open or close a connection or an application: never pooled.
LIFECYCLE_TYPES = frozenset(
    {"websocket.connect", "websocket.disconnect", "http.disconnect"}
)

#: ``finished(message, outcome, seconds)``: outcome is None, the exception a
#: handler raised, or ``CancelledError`` for a message cut off or never run.
Finished = Callable[[Message, BaseException | None, float], None]


def is_lifecycle(message: Message) -> bool:
    """Whether ``message`` starts or ends the connection (run inline, in order)."""
    message_type = message.get("type")
    return message_type in LIFECYCLE_TYPES or (
        isinstance(message_type, str) and message_type.startswith("lifespan.")
    )


class PooledConsumer(Protocol):
    """What the pool uses of its consumer (named here, not imported: no cycle)."""

    async def dispatch(self, message: Message) -> None: ...

    def ordering_key(self, message: Message) -> Hashable | None: ...

    async def handler_failed(self, message: Message, error: Exception) -> None: ...

    async def call_hook(
        self, hook: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any: ...

    def _handler_for(self, message: Message) -> Callable[[Message], Any]: ...


class PoolWatch:
    """The pools running inside one application instance, for whoever runs it.

    The worker makes one per instance and calls :func:`watch_pools` in the
    instance's task; pools created there report each message's end to
    ``finished`` and can be drained together when the worker stops.
    """

    def __init__(self, finished: Finished) -> None:
        self.pools: list[HandlerPool] = []
        self.finished = finished
        #: The last message a pool took in, so the worker can tell a message
        #: it handed over was pooled (its end is reported later) or handled.
        self.last_pooled: Message | None = None

    @property
    def pending(self) -> int:
        """Messages the pools have taken and not finished."""
        return sum(pool.pending for pool in self.pools)

    async def drain(self, timeout: float) -> None:
        """Let every pool's taken messages finish within ``timeout`` seconds."""
        if self.pending:
            logger.info(
                "Waiting up to %.1fs for %d pooled message(s)", timeout, self.pending
            )
        deadline = time.monotonic() + timeout
        for pool in list(self.pools):
            left = max(0.0, deadline - time.monotonic())
            await pool.drain(left, "the worker is stopping", "drain timeout")


_watch: ContextVar[PoolWatch | None] = ContextVar(
    "channels_app_pool_watch", default=None
)


def watch_pools(watch: PoolWatch) -> None:
    """Report pools created from now on in this context (this task and the
    tasks it starts) to ``watch``."""
    _watch.set(watch)


class HandlerPool:
    """Run one consumer's handlers, up to ``limit`` at a time.

    ``dispatch`` is what the consumer's receive loop calls for each message:
    it returns as soon as the message is queued (or, for a lifecycle message,
    handled), and blocks while ``2 * limit`` messages are taken and unfinished.
    """

    def __init__(
        self,
        consumer: PooledConsumer,
        limit: int,
        grace_period: float,
        handle: Callable[[Message], Awaitable[None]] | None = None,
    ) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"concurrency must be an int of at least 1, not {limit!r}")
        self.consumer = consumer
        #: Runs one message's handler: the consumer's dispatch, or the same
        #: wrapped (by metrics, to time it).
        self.handle = handle or consumer.dispatch
        self.limit = limit
        self.grace_period = grace_period
        self.take_ahead = 2 * limit
        self._slots = asyncio.Semaphore(limit)
        #: Messages waiting behind a running one of the same key.
        self._chains: dict[Hashable, deque[tuple[Message, str]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Tasks not yet started, with their messages (and chain key).
        self._unstarted: dict[
            asyncio.Task[None], tuple[list[Message], Hashable | None]
        ] = {}
        #: Handler names of the running messages, by task (for the warning).
        self._running: dict[asyncio.Task[Any], str] = {}
        self._taken = 0
        self._empty = asyncio.Event()
        self._empty.set()
        self._space = asyncio.Event()
        self._receiver: asyncio.Task[Any] | None = None
        self._inline = False
        self._stop_requested = False
        self._watch = _watch.get()
        if self._watch is not None:
            self._watch.pools.append(self)

    @property
    def pending(self) -> int:
        """Messages taken and not finished (running or queued behind a key)."""
        return self._taken

    # -- the receive loop's side ------------------------------------------------

    async def run(self, receiving: Coroutine[Any, Any, Any]) -> None:
        """Run the consumer's receive loop until it ends, then wind down.

        The loop runs in a task of its own so that a pooled handler raising
        :class:`StopConsumer` can end it while it waits for the next message.
        """
        receiver = self._receiver = asyncio.ensure_future(receiving)
        try:
            await asyncio.wait({receiver})
        except asyncio.CancelledError:
            # The server is shutting the consumer down: grace, then cancel.
            receiver.cancel()
            await self.drain(self.grace_period, "the consumer was cancelled")
            raise
        if receiver.cancelled():  # by _request_stop
            await self.drain(self.grace_period, "a handler raised StopConsumer")
            raise StopConsumer()
        await self.drain(self.grace_period, "the consumer ended")
        error = receiver.exception()
        if error is not None:
            raise error

    async def dispatch(self, message: Message) -> None:
        """Queue ``message`` for a handler, or handle a lifecycle message inline."""
        # Validated here, in the receive loop, so a message without a handler
        # ends the connection as it does at concurrency 1.
        name = self.consumer._handler_for(message).__name__
        if is_lifecycle(message):
            await self.drain(self.grace_period, f"{message['type']} arrived")
            self._inline = True
            try:
                await self.handle(message)
            finally:
                self._inline = False
            if self._stop_requested:
                raise StopConsumer()
            return
        key = self.consumer.ordering_key(message)
        while self._taken >= self.take_ahead:
            self._space.clear()
            await self._space.wait()
        if self._stop_requested:
            raise StopConsumer()
        self._taken += 1
        self._empty.clear()
        if self._watch is not None:
            self._watch.last_pooled = message
        if key is None:
            self._start(self._run_one(message, name), [message])
        elif key in self._chains:
            self._chains[key].append((message, name))
        else:
            self._chains[key] = deque()
            self._start(self._run_chain(key, message, name), [message], key)

    # -- running handlers -------------------------------------------------------

    def _start(
        self,
        coroutine: Coroutine[Any, Any, None],
        messages: list[Message],
        key: Hashable | None = None,
    ) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        self._unstarted[task] = (messages, key)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # A task cancelled before its first step never runs its body (nor its
        # finally clauses): account for its messages here instead.
        never_ran = self._unstarted.pop(task, None)
        if never_ran is not None:
            messages, key = never_ran
            if key is not None:
                messages += [message for message, _ in self._chains.pop(key, ())]
            for message in messages:
                self._finished(message, asyncio.CancelledError(), 0.0)

    def _begin(self) -> None:
        task = asyncio.current_task()
        assert task is not None  # pooled handlers run as tasks
        self._unstarted.pop(task, None)

    async def _run_chain(self, key: Hashable, first: Message, name: str) -> None:
        # Invariant: a key is in _chains exactly while this task runs for it,
        # so messages of one key never run side by side, and run in order.
        self._begin()
        queued = self._chains[key]
        try:
            await self._run_one(first, name)
            while queued:
                await self._run_one(*queued.popleft())
        finally:
            del self._chains[key]
            for message, _ in queued:  # cancelled: these never ran
                self._finished(message, asyncio.CancelledError(), 0.0)

    async def _run_one(self, message: Message, name: str) -> None:
        self._begin()
        outcome: BaseException | None = None
        started = time.perf_counter()
        try:
            async with self._slots:
                task = asyncio.current_task()
                assert task is not None  # pooled handlers run as tasks
                self._running[task] = name
                started = time.perf_counter()
                try:
                    await self.handle(message)
                finally:
                    del self._running[task]
        except StopConsumer:
            self._request_stop()
        except asyncio.CancelledError as exc:
            outcome = exc
            raise
        except Exception as exc:
            outcome = exc
            logger.error(
                "%s.%s failed on a %r message; the consumer goes on",
                type(self.consumer).__qualname__,
                name,
                message.get("type"),
                exc_info=exc,
            )
            await self._after_failure(message, exc)
        finally:
            self._finished(message, outcome, time.perf_counter() - started)

    async def _after_failure(self, message: Message, error: Exception) -> None:
        try:
            # A sync consumer may override it as a plain method.
            await self.consumer.call_hook(self.consumer.handler_failed, message, error)
        except StopConsumer:
            self._request_stop()
        except Exception:
            logger.exception(
                "%s.handler_failed raised", type(self.consumer).__qualname__
            )

    def _finished(
        self, message: Message, outcome: BaseException | None, seconds: float
    ) -> None:
        self._taken -= 1
        self._space.set()
        if not self._taken:
            self._empty.set()
        if self._watch is not None:
            self._watch.finished(message, outcome, seconds)

    def _request_stop(self) -> None:
        """A handler raised StopConsumer: take nothing more, end the consumer."""
        self._stop_requested = True
        receiver = self._receiver
        # An inline lifecycle handler is let finish; dispatch raises after it.
        if receiver is not None and not receiver.done() and not self._inline:
            receiver.cancel()

    # -- winding down -----------------------------------------------------------

    async def drain(
        self, timeout: float, why: str, limit: str = "grace period"
    ) -> None:
        """Wait up to ``timeout`` seconds for the taken messages, then cancel.

        The cancellation is logged as a warning naming the handlers still
        running.  If this wait is itself cancelled, the handlers are cancelled
        at once and the cancellation goes on.
        """
        if not self._taken:
            return
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
            return
        except asyncio.TimeoutError:
            pass
        except asyncio.CancelledError:
            self._cancel_all(why, "")
            raise
        self._cancel_all(why, f" after the {round(timeout, 1):g}s {limit}")
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _cancel_all(self, why: str, after: str) -> None:
        running = sorted(self._running.values())
        queued = self._taken - len(running)
        logger.warning(
            "%s: %s; cancelled %d handler(s) still running%s: %s%s",
            type(self.consumer).__qualname__,
            why,
            len(running),
            after,
            ", ".join(running) or "none",
            f"; {queued} queued message(s) not run" if queued > 0 else "",
        )
        for task in list(self._tasks):
            task.cancel()
