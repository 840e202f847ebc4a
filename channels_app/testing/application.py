from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from asgiref.testing import ApplicationCommunicator as BaseApplicationCommunicator

from ..db import closing_disabled
from ..types import ASGIApp, Message, Receive, Scope, Send


def _keeping_connections(application: Any) -> ASGIApp:
    """Run ``application`` with connection closing switched off.

    Tests run inside a transaction (Django's ``TestCase``); closing the
    connection from a consumer would end it.  The flag lives in the
    application task's context, so the threads it calls into see it too.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        closing_disabled.set(True)
        return await application(scope, receive, send)  # type: ignore[no-any-return]

    return app


class ApplicationCommunicator(BaseApplicationCommunicator):
    """asgiref's communicator, safe to use inside Django test transactions.

    ``receive_output`` and ``wait`` raise ``asyncio.TimeoutError`` after their
    timeout instead of hanging, and re-raise any exception the application hit.
    """

    def __init__(self, application: Any, scope: Scope) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            _keeping_connections(application), scope
        )

    # asgiref's methods, typed (asgiref leaves them unannotated).

    async def send_input(self, message: Message) -> None:
        await super().send_input(message)  # type: ignore[no-untyped-call]

    async def receive_output(self, timeout: float = 1) -> Message:
        """The application's next message, or its exception as soon as it ends.

        asgiref's version waits out the whole timeout before looking at an
        application that has already failed, so each test of a failing
        consumer sat idle for it; this one stops waiting when the application
        ends.  What it raises, and when nothing comes, are asgiref's.
        """
        queue: asyncio.Queue[Message] = self.output_queue
        if not queue.empty():
            return queue.get_nowait()
        application: asyncio.Future[None] = self.future
        if application.done():
            application.result()
            raise asyncio.TimeoutError  # it ended and can send nothing more
        getter = asyncio.ensure_future(queue.get())
        either: set[asyncio.Future[Any]] = {getter, application}
        try:
            await asyncio.wait(
                either,
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        if application.done():
            application.result()
        else:
            application.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await application
        raise asyncio.TimeoutError

    async def receive_nothing(
        self, timeout: float = 0.1, interval: float = 0.01
    ) -> bool:
        nothing: bool = await super().receive_nothing(timeout, interval)  # type: ignore[no-untyped-call]
        return nothing

    async def wait(self, timeout: float = 1) -> None:
        await super().wait(timeout)  # type: ignore[no-untyped-call]
