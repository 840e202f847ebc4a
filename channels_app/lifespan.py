"""The ASGI ``lifespan`` protocol, both halves of it.

:class:`Lifespan` is the application's half: ``ProtocolTypeRouter`` answers
the ``lifespan`` scope with it, running the project's startup and shutdown
hooks.  :class:`LifespanClient` is the server's half, which ``runserver``'s
server uses to drive those hooks around serving.  They live together so that
one file shows the whole conversation.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import sync_to_async

from .types import Receive, Scope, Send

logger = logging.getLogger("channels_app.lifespan")

#: Seconds the application gets to answer each lifespan message.
LIFESPAN_TIMEOUT = 30.0


# -- the application's side ----------------------------------------------------


class Lifespan:
    """Answer the ASGI ``lifespan`` scope by running startup and shutdown hooks.

    Hooks take no arguments; coroutine functions are awaited and plain
    functions run in a thread, so they may use the ORM.  Hooks run in the
    order given.  If one raises, the server is told the phase failed (with
    the error as the message) and the remaining hooks of that phase are
    skipped, which makes a server refuse to start rather than serve a
    half-initialised project.
    """

    def __init__(
        self,
        on_startup: Iterable[Callable[[], Any]] = (),
        on_shutdown: Iterable[Callable[[], Any]] = (),
    ) -> None:
        self.hooks = {"startup": list(on_startup), "shutdown": list(on_shutdown)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            phase = message["type"].removeprefix("lifespan.")
            if phase not in self.hooks:
                raise ValueError(f"Unexpected lifespan message {message['type']!r}")
            try:
                for hook in self.hooks[phase]:
                    await self._run(hook)
            except Exception as exc:
                logger.exception("lifespan %s hook failed", phase)
                await send({"type": f"lifespan.{phase}.failed", "message": f"{exc!r}"})
                return
            await send({"type": f"lifespan.{phase}.complete"})
            if phase == "shutdown":
                return

    @staticmethod
    async def _run(hook: Callable[[], Any]) -> None:
        if inspect.iscoroutinefunction(hook):
            await hook()
        else:
            await sync_to_async(hook)()


# -- the server's side ---------------------------------------------------------


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
        self._to_application: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[Any] | None = None

    async def startup(self) -> None:
        """Run the startup hooks; ``LifespanFailed`` if the application says so."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.ensure_future(
            self.application(scope, self._to_application.get, self._replies.put)
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
        assert self._task is not None  # started by startup()
        await self._to_application.put({"type": f"lifespan.{phase}"})
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
