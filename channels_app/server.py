"""Daphne, plus what ``runserver`` adds: the lifespan protocol and in-process workers.

Daphne serves HTTP and WebSocket but neither sends the ASGI ``lifespan``
scope nor runs workers.  :class:`DevelopmentServer` does both on Daphne's own
event loop: the application's startup hooks complete before the reactor
starts taking connections, workers run next to the consumers (which is what
lets the in-memory layer reach them), and on shutdown the workers drain
before the shutdown hooks run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

# Installs Twisted's asyncio reactor; must come before anything imports
# twisted.internet.reactor.
from daphne.server import Server  # isort: skip

from twisted.internet import defer, reactor

from .worker import Worker

logger = logging.getLogger("channels_app.server")

#: Seconds the application gets to answer each lifespan message.
LIFESPAN_TIMEOUT = 30.0


class LifespanFailed(Exception):
    """The application reported that its startup or shutdown failed."""


class LifespanClient:
    """The server's side of the ASGI lifespan protocol for one application.

    An application that raises on the ``lifespan`` scope before answering
    does not support it; as the ASGI spec asks, the server then carries on
    without it.
    """

    def __init__(self, application: Any, timeout: float = LIFESPAN_TIMEOUT) -> None:
        self.application = application
        self.timeout = timeout
        self.supported = True
        self._inbox: asyncio.Queue[dict] = asyncio.Queue()
        self._replies: asyncio.Queue[dict] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def startup(self) -> None:
        """Run the startup hooks; ``LifespanFailed`` if the application says so."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.ensure_future(
            self.application(scope, self._inbox.get, self._replies.put)
        )
        await self._exchange("startup")

    async def shutdown(self) -> None:
        """Run the shutdown hooks; ``LifespanFailed`` if the application says so."""
        if self._task is None or not self.supported:
            return
        try:
            await self._exchange("shutdown")
        finally:
            if not self._task.done():
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _exchange(self, phase: str) -> None:
        await self._inbox.put({"type": f"lifespan.{phase}"})
        reply = asyncio.ensure_future(self._replies.get())
        done, _ = await asyncio.wait(
            {reply, self._task},
            timeout=self.timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if reply not in done:
            reply.cancel()
            if self._task in done:
                self.supported = False
                error = self._task.exception() if not self._task.cancelled() else None
                logger.debug("Application does not support lifespan: %r", error)
                return
            raise LifespanFailed(f"no answer to lifespan.{phase} in {self.timeout}s")
        message = reply.result()
        if message["type"] == f"lifespan.{phase}.failed":
            raise LifespanFailed(message.get("message") or f"{phase} failed")
        if message["type"] != f"lifespan.{phase}.complete":
            raise LifespanFailed(f"unexpected reply to lifespan.{phase}: {message!r}")


class DevelopmentServer(Server):
    """Daphne's server, running lifespan hooks and ``workers`` on its event loop."""

    def __init__(
        self, application: Any, *, workers: list[Worker] = (), **kwargs: Any
    ) -> None:
        super().__init__(application, **kwargs)
        self.workers = list(workers)
        self.listen_failure: str | None = None
        self._worker_tasks: list[asyncio.Task] = []
        self._lifespan = LifespanClient(application)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return reactor._asyncioEventloop

    def run(self) -> None:
        """Start up the application, serve until stopped, then shut it down.

        Raises ``LifespanFailed`` without serving if a startup hook fails.
        """
        asyncio.set_event_loop(self.loop)
        # The reactor is not running yet, so nothing is accepted before the
        # startup hooks have finished.
        self.loop.run_until_complete(self._lifespan.startup())
        reactor.callWhenRunning(self._start_workers)
        reactor.addSystemEventTrigger("before", "shutdown", self._before_shutdown)
        super().run()

    def listen_error(self, failure: Any) -> None:
        self.listen_failure = failure.getErrorMessage()
        super().listen_error(failure)

    def _start_workers(self) -> None:
        self._worker_tasks = [
            self.loop.create_task(worker.serve()) for worker in self.workers
        ]

    def _before_shutdown(self) -> defer.Deferred:
        return defer.Deferred.fromFuture(self.loop.create_task(self._shut_down()))

    async def _shut_down(self) -> None:
        for worker in self.workers:
            worker.stop()
        for outcome in await asyncio.gather(
            *self._worker_tasks, return_exceptions=True
        ):
            if isinstance(outcome, BaseException):
                logger.error("In-process worker crashed", exc_info=outcome)
            else:
                logger.info("In-process worker stopped: %s", outcome.summary())
        try:
            await self._lifespan.shutdown()
        except LifespanFailed as exc:
            logger.error("Application shutdown failed: %s", exc)
