"""Run consumers for named channels: the engine of ``runworker`` and ``runserver``.

A :class:`Worker` takes messages from a channel layer and hands each to the
project's application under the scope ``{"type": "channel", "channel": name}``
(a :class:`~channels_app.routing.ChannelNameRouter` inside the root router
picks the consumer).  The same class serves the ``runworker`` command and the
workers ``runserver`` starts in-process, so both behave the same way.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import ThreadSensitiveContext

from . import metrics
from .concurrency import Finished, PoolWatch, watch_pools
from .routing import ChannelNameRouter
from .types import ChannelLayer, Message
from .unwrap import find_wrapped, protocol_branch

logger = logging.getLogger("channels_app.worker")

#: Pause before retrying after the layer failed to deliver; doubles up to the max.
RECEIVE_RETRY_DELAY = 0.5
RECEIVE_RETRY_MAX_DELAY = 5.0


@dataclass
class WorkerStats:
    """What a worker has done, for its exit summary."""

    handled: int = 0
    failed: int = 0
    #: Handlers still running when the drain timeout ran out.
    cancelled: int = 0
    started: float = field(default_factory=time.monotonic)
    stopped: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.stopped or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Messages finished (handled or failed) per second."""
        elapsed = self.elapsed
        return (self.handled + self.failed) / elapsed if elapsed > 0 else 0.0

    def summary(self) -> str:
        cancelled = f", {self.cancelled} cancelled" if self.cancelled else ""
        return (
            f"{self.handled} handled, {self.failed} failed{cancelled} in "
            f"{self.elapsed:.1f}s ({self.rate:.1f} messages/s)"
        )


class ApplicationInstance:
    """One running instance of the application for one channel.

    Messages go in one at a time through :meth:`handle`, which returns when
    the application asks for its next message (it has finished with this one)
    or when the instance ends.  The instance lives on between messages, as a
    consumer does between the frames of a WebSocket.
    """

    def __init__(
        self, application: Any, channel: str, finished: Finished | None = None
    ) -> None:
        self.channel = channel
        #: Consumers with ``concurrency`` above 1 take messages into a pool
        #: and report their end here, later than ``handle`` returns.
        self.watch = PoolWatch(finished or (lambda *outcome: None))
        self.scope = {"type": "channel", "channel": channel}
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.turn: asyncio.Future[None] | None = None
        self.current: dict[str, Any] | None = None
        self.taken = False
        self.task = asyncio.ensure_future(self._run(application))
        self.task.add_done_callback(self._ended)

    async def _run(self, application: Any) -> None:
        # Its own context gives this instance its own thread for sync code, so
        # sync consumers on several instances really run side by side.
        watch_pools(self.watch)
        async with ThreadSensitiveContext():
            await application(self.scope, self.receive, self.send)

    async def receive(self) -> dict[str, Any]:
        if self.taken:
            # Back for more: the application is done with the last message.
            self._finish_turn()
        message = await self.inbox.get()
        self.taken = True
        return message

    async def send(self, message: Message) -> None:
        raise RuntimeError(
            f"A consumer for channel {self.channel!r} has no client to send "
            f"{message.get('type')!r} to; send replies through the channel layer "
            f"(self.channel_layer.send or group_send) instead"
        )

    async def handle(self, message: Message) -> BaseException | None:
        """Run ``message`` through the instance; the error that ended it, if any."""
        self.current = message
        self.taken = False
        self.turn = asyncio.get_running_loop().create_future()
        self.inbox.put_nowait(message)
        try:
            await self.turn
        finally:
            self.current = None
        if self.task.done() and not self.task.cancelled():
            return self.task.exception()
        return None

    @property
    def alive(self) -> bool:
        return not self.task.done()

    async def close(self, timeout: float = 1.0) -> None:
        """Cancel the instance and give it ``timeout`` seconds to wind down.

        An idle instance ends at once.  One stuck in a sync handler cannot be
        interrupted (its thread runs on), so it is not waited for past that.
        """
        self.task.cancel()
        await asyncio.wait({self.task}, timeout=timeout)

    def _finish_turn(self) -> None:
        if self.turn is not None and not self.turn.done():
            self.turn.set_result(None)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._finish_turn()
        if task.cancelled() or task.exception() is None:
            return
        if self.current is None:
            # Died between messages (e.g. handling a message sent to its own
            # channel); nobody else will report it.
            logger.error(
                "Application for channel %r failed",
                self.channel,
                exc_info=task.exception(),
            )


class Worker:
    """Run ``application`` for each message on ``channels`` of ``channel_layer``.

    ``concurrency`` instances serve each channel; with the default of one, a
    channel's messages are handled strictly in the order they arrive.  An
    exception in a handler is logged with its traceback, counted as failed,
    and the next message gets a fresh application instance.

    :meth:`stop` makes the worker stop taking messages; messages already
    being handled are given ``drain_timeout`` seconds to finish before they
    are cancelled.
    """

    def __init__(
        self,
        application: Any,
        channels: Iterable[str],
        channel_layer: ChannelLayer,
        *,
        concurrency: int = 1,
        drain_timeout: float = 30.0,
    ) -> None:
        self.application = application
        self.channels = list(channels)
        self.channel_layer = channel_layer
        if not self.channels:
            raise ValueError("Worker needs at least one channel name to listen on")
        for name in self.channels:
            if not isinstance(name, str) or "!" in name:
                raise ValueError(
                    f"Worker channel names must be plain names shared by all "
                    f"workers, not process-specific ones: {name!r}"
                )
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.concurrency = concurrency
        self.drain_timeout = drain_timeout
        self.stats = WorkerStats()
        self._stopping = False
        # Held so the drain task is not garbage-collected while it runs.
        self._drainer: asyncio.Future[None] | None = None
        self._idle: set[asyncio.Task[None]] = set()
        #: Slots past their last message, waiting for pooled handlers (each
        #: bounded by the drain deadline itself, so drain() leaves them be).
        self._settling: set[asyncio.Task[Any]] = set()
        #: Metrics' end-of-message callbacks of pooled messages, by id.
        self._in_flight: dict[int, Callable[[BaseException | None], None]] = {}
        self._slots: list[asyncio.Task[None]] = []
        self._drain_deadline = 0.0

    # -- running ---------------------------------------------------------------

    def run(self) -> WorkerStats:
        """Run until stopped, on a new event loop (blocking)."""
        return asyncio.run(self.serve())

    async def serve(self) -> WorkerStats:
        """Handle messages until :meth:`stop`, then drain; return the statistics."""
        self.stats = WorkerStats()
        self._slots = [
            asyncio.ensure_future(self._serve_slot(channel))
            for channel in self.channels
            for _ in range(self.concurrency)
        ]
        try:
            outcomes = await asyncio.gather(*self._slots, return_exceptions=True)
        finally:
            self.stats.stopped = time.monotonic()
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                logger.error("Worker slot crashed", exc_info=outcome)
        return self.stats

    def stop(self) -> None:
        """Stop taking messages; handlers already running go on to finish.

        Call it on the worker's event loop (a loop signal handler is fine).
        Calling it a second time cancels in-flight handlers straight away.
        """
        if self._stopping:
            for slot in self._slots:
                slot.cancel()
            return
        self._stopping = True
        self._drain_deadline = time.monotonic() + self.drain_timeout
        for slot in list(self._idle):
            self._settling.add(slot)
            slot.cancel()
        self._drainer = asyncio.ensure_future(self.drain())

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def drain(self) -> None:
        """Wait up to ``drain_timeout`` for in-flight handlers, then cancel them."""
        busy = [s for s in self._slots if not s.done() and s not in self._settling]
        if not busy:
            return
        logger.info("Waiting for %d in-flight message(s) to finish", len(busy))
        _, late = await asyncio.wait(busy, timeout=self.drain_timeout)
        late -= self._settling
        if late:
            logger.warning(
                "%d handler(s) did not finish within the %gs drain timeout and "
                "were cancelled",
                len(late),
                self.drain_timeout,
            )
            self.stats.cancelled += len(late)
            for slot in late:
                slot.cancel()

    # -- one instance's loop ----------------------------------------------------

    async def _serve_slot(self, channel: str) -> None:
        instance: ApplicationInstance | None = None
        delay = RECEIVE_RETRY_DELAY
        try:
            while not self._stopping:
                task = asyncio.current_task()
                assert task is not None  # a slot runs as a task
                self._idle.add(task)
                try:
                    message = await self.channel_layer.receive(channel)
                except asyncio.CancelledError:
                    if self._stopping:
                        return
                    raise
                except Exception:
                    logger.exception(
                        "Receiving from channel %r failed; retrying in %.1fs",
                        channel,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECEIVE_RETRY_MAX_DELAY)
                    continue
                finally:
                    self._idle.discard(task)
                delay = RECEIVE_RETRY_DELAY
                if instance is None or not instance.alive:
                    finished = functools.partial(self._pooled_finished, channel)
                    instance = ApplicationInstance(self.application, channel, finished)
                await self._handle(instance, channel, message)
        finally:
            if instance is not None and instance.alive:
                task = asyncio.current_task()
                assert task is not None  # a slot runs as a task
                self._settling.add(task)
                try:
                    # Pooled handlers (consumer concurrency > 1) finish within
                    # what is left of the drain timeout; none at concurrency 1.
                    left = max(0.0, self._drain_deadline - time.monotonic())
                    await instance.watch.drain(left)
                finally:
                    await instance.close()

    async def _handle(
        self, instance: ApplicationInstance, channel: str, message: Any
    ) -> None:
        started = time.perf_counter()
        finished = metrics.worker_message_started(channel)
        error = await instance.handle(message)
        if error is None and instance.watch.last_pooled is message:
            # Counted by _pooled_finished when its handler ends.
            self._in_flight[id(message)] = finished
            return
        finished(error)
        took = (time.perf_counter() - started) * 1000
        message_type = message.get("type") if isinstance(message, dict) else None
        if error is None:
            self.stats.handled += 1
            logger.debug(
                "%s: %s handled in %.1f ms", channel, message_type or "?", took
            )
        else:
            self.stats.failed += 1
            logger.error(
                "%s: %s failed after %.1f ms",
                channel,
                message_type or "?",
                took,
                exc_info=error,
            )

    def _pooled_finished(
        self, channel: str, message: Message, outcome: BaseException | None, took: float
    ) -> None:
        message_type = message.get("type", "?")
        ended = self._in_flight.pop(id(message), None)
        if ended is not None:
            ended(outcome)
        if isinstance(outcome, asyncio.CancelledError):
            self.stats.cancelled += 1
        elif outcome is None:
            self.stats.handled += 1
            logger.debug(
                "%s: %s handled in %.1f ms", channel, message_type, took * 1000
            )
        else:
            # The pool logged the traceback (channels_app.concurrency).
            self.stats.failed += 1
            logger.error(
                "%s: %s failed after %.1f ms: %r",
                channel,
                message_type,
                took * 1000,
                outcome,
            )


# -- finding the channels a project routes ---------------------------------------


def channel_router(application: Any) -> ChannelNameRouter | None:
    """The ChannelNameRouter under the ``"channel"`` key of the root router.

    Middleware wrapping either router is looked through (via ``inner``).
    """
    branch = protocol_branch(application, "channel")
    found: ChannelNameRouter | None = find_wrapped(branch, ChannelNameRouter)
    return found


def routed_channels(application: Any) -> list[str]:
    """Every channel name the project's ChannelNameRouter knows, in order."""
    router = channel_router(application)
    return list(router.application_mapping) if router is not None else []


def select_channels(
    names: Iterable[str],
    only: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> list[str]:
    """Filter ``names`` by glob patterns: keep ``only`` matches, drop ``exclude``."""
    only, exclude = list(only), list(exclude)
    return [
        name
        for name in names
        if (not only or any(fnmatch.fnmatchcase(name, p) for p in only))
        and not any(fnmatch.fnmatchcase(name, p) for p in exclude)
    ]
